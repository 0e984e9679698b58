"""Ctrl-C on `hpo run`: workers stop within seconds, trials FAIL as interrupted and resume next run."""

from __future__ import annotations

import os
import signal
import time

import pytest
from optuna.trial import TrialState

from faultkit import (alive, assert_exact_end, counts, create_study, fault_env, finished_values, load, logs_of,
                      mid_trial, record_figure, run_worker_here, start_run, wait_for, worker_pids,
                      write_study)
from hpo import trials

pytestmark = [pytest.mark.faults, pytest.mark.slow]

EPOCHS = 6
SLEEP_PER_EPOCH = "1.0"  # a trial lasts ~6 s: Ctrl-C lands mid-trial even on a loaded machine
N_TRIALS = 2


def _interruptible_run(tmp_path, name, url, data_dir, procs):
    study_file = write_study(tmp_path, name, epochs=EPOCHS, n_trials=N_TRIALS)
    watched = create_study(study_file, url, data_dir)
    env = fault_env(data_dir, tmp_path, url, HPO_FAULT_SLEEP_PER_EPOCH=SLEEP_PER_EPOCH)
    run = start_run(env, study_file, tmp_path / "logs", "--workers", "2")
    procs.append(run)
    # Interrupt while a trial is mid-way (a checkpoint stored, epochs left to run).
    wait_for(lambda: mid_trial(watched, min_epochs=1, max_epochs=2), 120, "a worker to be mid-trial")
    return run


def test_ctrl_c_records_interrupted_trials_and_the_next_run_resumes_them(sqlite_url, unique_name, fake_cifar, tmp_path, procs):
    run = _interruptible_run(tmp_path, unique_name, sqlite_url, fake_cifar, procs)
    os.kill(run.pid, signal.SIGINT)
    interrupted_at = time.monotonic()
    assert run.wait(timeout=60) == 130, logs_of(tmp_path)
    stop_seconds = time.monotonic() - interrupted_at

    study = load(sqlite_url, unique_name)
    assert not any(alive(pid) for pid in worker_pids(study))
    by_state = counts(study)
    interrupted = {t.number: t for t in study.get_trials(states=(TrialState.FAIL,))}
    assert by_state["RUNNING"] == 0 and len(interrupted) >= 1, by_state
    assert all(t.user_attrs["stop_reason"] == "interrupted" for t in interrupted.values())
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in queued) == sorted(interrupted)  # each retried once
    # A trial interrupted after its first epoch resumes from its checkpoint; one interrupted before starts afresh.
    assert all(t.system_attrs.get(trials.SYS_RESUME) == interrupted[t.user_attrs["retry_of"]].user_attrs.get("checkpoint")
               for t in queued)
    assert any(t.system_attrs.get(trials.SYS_RESUME) for t in queued)
    before = finished_values(study)

    # The next run takes the queued retries first and ends the study at exactly N.
    run_worker_here(sqlite_url, unique_name, fake_cifar, tmp_path / "artifacts")
    study = load(sqlite_url, unique_name)
    by_state = assert_exact_end(study, N_TRIALS)
    assert by_state["FAIL"] == len(interrupted) and by_state["COMPLETE"] == N_TRIALS, by_state
    assert {k: v for k, v in finished_values(study).items() if k in before} == before
    retries = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if "retry_of" in t.user_attrs]
    assert len(retries) == len(interrupted)
    for trial in retries:
        original = interrupted[trial.user_attrs["retry_of"]]
        if not original.params:
            # Pressed before it sampled anything (a press while asking is held until the worker owns
            # the trial, then raised before the objective runs): nothing to resume, so its retry
            # starts afresh, from no checkpoint, with what the sampler proposes.
            assert "checkpoint" not in original.user_attrs and "resumed_from_epoch" not in trial.user_attrs
            continue
        assert trial.params == original.params
        if "checkpoint" not in original.user_attrs:
            continue
        resumed_from = trial.user_attrs["resumed_from_epoch"]
        assert resumed_from >= 1
        assert trial.user_attrs["history"][:resumed_from] == original.user_attrs["history"][:resumed_from]
    # Liveness bound: the workers finish what they were told within seconds, not a trial later.
    assert stop_seconds < 30, stop_seconds
    record_figure("time for `hpo run` to stop on Ctrl-C", stop_seconds, "s", workers=2)


def test_second_ctrl_c_stops_at_once_and_nothing_stays_running(sqlite_url, unique_name, fake_cifar, tmp_path, procs, monkeypatch):
    run = _interruptible_run(tmp_path, unique_name, sqlite_url, fake_cifar, procs)
    os.kill(run.pid, signal.SIGINT)
    time.sleep(0.05)
    os.kill(run.pid, signal.SIGINT)
    second_at = time.monotonic()
    assert run.wait(timeout=30) == 130, logs_of(tmp_path)
    stop_seconds = time.monotonic() - second_at
    study = load(sqlite_url, unique_name)
    pids = worker_pids(study)
    assert pids and not any(alive(pid) for pid in pids)  # killed, not left behind
    before = finished_values(study)

    # Whatever the kill left RUNNING is reaped (worker_lost) by the next run; the study still ends at N.
    monkeypatch.setenv("HPO_HEARTBEAT_SECONDS", "1")
    run_worker_here(sqlite_url, unique_name, fake_cifar, tmp_path / "artifacts")
    study = load(sqlite_url, unique_name)
    assert_exact_end(study, N_TRIALS)
    fails = [t.user_attrs.get("stop_reason") for t in study.get_trials(states=(TrialState.FAIL,))]
    assert fails and set(fails) <= {"interrupted", "worker_lost"}, fails
    assert {k: v for k, v in finished_values(study).items() if k in before} == before
    assert stop_seconds < 10, stop_seconds
    record_figure("time for `hpo run` to stop on a second Ctrl-C", stop_seconds, "s", workers=2)

"""Ctrl-C, issue 13: a second press exits without stranding a trial, the terminal says what stopped
and how to resume it, and user stops never use up the crash-retry limit.

Real `hpo run` / `hpo worker` processes on SQLite get SIGINT on their process group, as a terminal
sends it; the retry-limit cases run on a real SQLite file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

from faultkit import (HPO, counts, create_study, fault_env, load, logs_of, mid_trial, start_run, wait_for,
                      write_study)
from hpo import trials
from hpo.storage import open_storage
from hpo.study import enqueue_retry
from hpo.workers.liveness import Heartbeat, reap_stale_trials

pytestmark = [pytest.mark.faults]

EPOCHS = 6
SLEEP_PER_EPOCH = "1.0"  # a trial lasts ~6 s: the interrupt lands mid-trial


def _press_twice(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # the terminal signals the foreground process group
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)


def _interrupted_numbers(line: str) -> list[int]:
    match = re.search(r"interrupted: trials? ([\d, ]+) stopped", line)
    return sorted(int(n) for n in match.group(1).split(",")) if match else []


@pytest.mark.slow
def test_a_second_ctrl_c_on_hpo_run_still_records_the_trials_and_says_how_to_resume(
        sqlite_url, unique_name, fake_cifar, tmp_path, procs):
    study_file = write_study(tmp_path, unique_name, epochs=EPOCHS, n_trials=2)
    watched = create_study(study_file, sqlite_url, fake_cifar)
    env = fault_env(fake_cifar, tmp_path, sqlite_url, HPO_FAULT_SLEEP_PER_EPOCH=SLEEP_PER_EPOCH)
    run = start_run(env, study_file, tmp_path / "logs", "--workers", "2")
    procs.append(run)
    wait_for(lambda: mid_trial(watched, min_epochs=1, max_epochs=3), 120, "a worker to be mid-trial")

    _press_twice(run)
    assert run.wait(timeout=60) == 130, logs_of(tmp_path)

    study = load(sqlite_url, unique_name)
    by_state = counts(study)
    failed = study.get_trials(states=(TrialState.FAIL,))
    # The storage answered within the grace: nothing is left RUNNING for a reaper, and nothing is "lost".
    assert by_state["RUNNING"] == 0 and failed, by_state
    assert {t.user_attrs["stop_reason"] for t in failed} == {"interrupted"}
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in queued) == sorted(t.number for t in failed)
    out = (tmp_path / "logs" / "run.out").read_text()
    line = next(ln for ln in out.splitlines() if ln.startswith("interrupted:"))
    assert _interrupted_numbers(line) == sorted(t.number for t in failed), line
    assert line.endswith(f"resume with: hpo run --study {study_file}"), line
    assert "Traceback" not in logs_of(tmp_path)


@pytest.mark.slow
def test_ctrl_c_on_hpo_worker_names_the_trial_and_the_resume_command(sqlite_url, unique_name, fake_cifar, tmp_path, procs):
    study_file = write_study(tmp_path, unique_name, epochs=EPOCHS, n_trials=1)
    watched = create_study(study_file, sqlite_url, fake_cifar)
    env = fault_env(fake_cifar, tmp_path, sqlite_url, HPO_FAULT_SLEEP_PER_EPOCH=SLEEP_PER_EPOCH)
    worker = subprocess.Popen([*HPO, "worker", "--study", unique_name, "--devices", "cpu"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    procs.append(worker)
    wait_for(lambda: mid_trial(watched, min_epochs=1, max_epochs=3), 120, "the worker to be mid-trial")

    _press_twice(worker)
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 130, err
    assert "Traceback" not in err
    trial = load(sqlite_url, unique_name).get_trials(states=(TrialState.FAIL,))
    assert [t.user_attrs["stop_reason"] for t in trial] == ["interrupted"]
    last = err.strip().splitlines()[-1]
    assert last == (f"interrupted: trial {trial[0].number} stopped and queued to resume from its last checkpoint; "
                    f"resume with: hpo worker --study {unique_name}"), err


# --- the crash-retry limit ---------------------------------------------------------------------------

def _failed(study: optuna.Study, reason: str, **system_attrs) -> optuna.trial.FrozenTrial:
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.FAIL, params={"x": 0.5},
        distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
        user_attrs={"stop_reason": reason}, system_attrs=system_attrs))
    return study.get_trials()[-1]


def test_user_stops_never_use_up_the_crash_retry_limit(tmp_path):
    study = optuna.create_study(study_name="retries", storage=open_storage(f"sqlite:///{tmp_path}/hpo.db"))
    # Interrupted five times over: queued every time, its crash count unchanged.
    attrs: dict = {}
    for _ in range(5):
        failed = _failed(study, "interrupted", **attrs)
        assert enqueue_retry(study, failed, trials.StopReason.INTERRUPTED)
        attrs = dict(study.get_trials()[-1].system_attrs)
        assert attrs[trials.SYS_RETRIES] == 0 and attrs[trials.SYS_RETRY_OF] == 0
    # Crashes still count: two retries, then the configuration is dropped.
    attrs = {}
    queued = []
    for _ in range(3):
        failed = _failed(study, "worker_lost", **attrs)
        queued.append(enqueue_retry(study, failed, trials.StopReason.WORKER_LOST))
        attrs = dict(study.get_trials()[-1].system_attrs)
    assert queued == [True, True, False]


def test_a_crash_after_user_stops_still_has_its_retries(tmp_path):
    study = optuna.create_study(study_name="retries", storage=open_storage(f"sqlite:///{tmp_path}/hpo.db"))
    failed = _failed(study, "interrupted")
    for _ in range(3):
        enqueue_retry(study, failed, trials.StopReason.INTERRUPTED)
        failed = _failed(study, "interrupted", **study.get_trials()[-1].system_attrs)
    assert enqueue_retry(study, failed, trials.StopReason.WORKER_LOST)  # the first crash: retried


def test_a_worker_interrupted_then_killed_has_its_trial_recorded_as_interrupted(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HEARTBEAT_SECONDS", "1")
    storage = open_storage(f"sqlite:///{tmp_path}/hpo.db")
    study = optuna.create_study(study_name="marker", storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    storage.set_trial_system_attr(trial._trial_id, trials.SYS_WORKER, "w-1")
    heartbeat = Heartbeat.for_study(study, "w-1", {"host": "h", "pid": 1, "device": "cpu", "device_name": "cpu"})
    heartbeat.trial_id = trial._trial_id
    heartbeat.beat()
    heartbeat.mark_interrupted()  # the first press reached the storage; a second press then cut the worker short
    # A plain lost worker beside it, for contrast.
    other = study.ask()
    other.suggest_float("x", 0, 1)
    storage.set_trial_system_attr(other._trial_id, trials.SYS_WORKER, "w-2")

    assert sorted(reap_stale_trials(study, now=time.time() + 3600)) == [trial.number, other.number]
    reasons = {t.number: t.user_attrs.get("stop_reason") for t in study.get_trials(states=(TrialState.FAIL,))}
    assert reasons == {trial.number: "interrupted", other.number: "worker_lost"}
    retries = {t.user_attrs["retry_of"]: t.system_attrs[trials.SYS_RETRIES] for t in study.get_trials(states=(TrialState.WAITING,))}
    assert retries == {trial.number: 0, other.number: 1}

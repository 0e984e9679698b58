"""A worker killed with SIGKILL mid-trial: detected through heartbeats, failed, resumed elsewhere."""

from __future__ import annotations

import os
import time

import pytest
from optuna.trial import TrialState

from hpo.workers import STALE_HEARTBEATS

from faultkit import (HEARTBEAT_SECONDS, assert_exact_end, create_study, fault_env, finished_values, freeze_and_kill, load,
                       logs_of, mid_trial, record_figure, start_worker, wait_for, write_study)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

EPOCHS = 5
N_TRIALS = 2


def test_killed_worker_trial_is_detected_and_resumed_from_its_checkpoint(storage_url, unique_name, fake_cifar, tmp_path, procs):
    study_file = write_study(tmp_path, unique_name, epochs=EPOCHS, n_trials=N_TRIALS)
    create_study(study_file, storage_url, fake_cifar)
    env = fault_env(fake_cifar, tmp_path, storage_url, HPO_FAULT_SLEEP_PER_EPOCH="0.6")
    victim = start_worker(env, unique_name, tmp_path / "victim.log", worker_id="victim")
    survivor = start_worker(env, unique_name, tmp_path / "survivor.log", worker_id="survivor")
    procs += [victim, survivor]

    watched = load(storage_url, unique_name)
    victim_mid_way = lambda: mid_trial(watched, min_epochs=2, max_epochs=EPOCHS - 1, worker="victim")  # noqa: E731
    # The finished values are read on the frozen victim: nothing can finish between that read and the kill.
    killed, before = freeze_and_kill(
        lambda sig: os.killpg(victim.pid, sig),
        lambda: (mid := victim_mid_way()) and (mid[0], finished_values(load(storage_url, unique_name))),
        120, "the victim worker to be mid-trial with a checkpoint")
    killed_at = time.monotonic()
    victim.wait(timeout=10)

    def killed_trial_failed():
        trial = watched.get_trials(deepcopy=False)[killed.number]
        return trial if trial.state == TrialState.FAIL else None

    lost = wait_for(killed_trial_failed, STALE_HEARTBEATS * HEARTBEAT_SECONDS + 60, "the killed worker's trial to be reaped")
    detect_seconds = time.monotonic() - killed_at
    assert survivor.wait(timeout=120) == 0, logs_of(tmp_path)

    study = load(storage_url, unique_name)
    by_state = assert_exact_end(study, N_TRIALS)
    assert by_state["FAIL"] == 1, by_state
    assert lost.user_attrs["stop_reason"] == "worker_lost"
    # Liveness bound (DECISIONS.md): detected within 3 heartbeat intervals plus 30 s.
    assert detect_seconds <= STALE_HEARTBEATS * HEARTBEAT_SECONDS + 30, detect_seconds

    retries = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params
    resumed_from = retry.user_attrs["resumed_from_epoch"]
    assert resumed_from >= 1  # from its last checkpoint, not from scratch
    history = retry.user_attrs["history"]
    assert [r["epoch"] for r in history] == list(range(1, EPOCHS + 1))
    # The epochs before the resume point are the killed trial's own records, carried by the checkpoint.
    assert history[:resumed_from] == lost.user_attrs["history"][:resumed_from]
    after = finished_values(study)
    assert {number: after[number] for number in before} == before  # finished trials' values unchanged
    record_figure("time to detect a killed worker", detect_seconds, "s", storage=storage_url.split(":")[0],
                  heartbeat_seconds=HEARTBEAT_SECONDS)

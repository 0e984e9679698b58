"""The database going away during a run: workers retry with backoff, carry on, and lose nothing.

Stops and restarts the local PostgreSQL cluster (``pg_ctlcluster``), so it needs root and must run
serially; the finalizer always starts the cluster again, because other tests and CI need it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from faultkit import (assert_exact_end, create_study, fault_env, finished_values, load, logs_of, mid_trial,
                      record_figure, require_root, start_run, wait_for, write_study)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres]

OUTAGE_SECONDS = 10.0
N_TRIALS = 4
EPOCHS = 4


def _cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        pytest.skip("no local PostgreSQL cluster (/etc/postgresql) to stop and start")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], check=False).returncode == 0


@pytest.fixture
def postgres_cluster(postgres_url):
    """Stop/start functions for the local cluster; it is started again whatever the test does."""
    require_root("stopping PostgreSQL")
    cluster = _cluster()

    def stop():
        subprocess.run([*cluster, "stop", "-m", "fast"], check=True, capture_output=True)

    def start():
        subprocess.run([*cluster, "start"], check=True, capture_output=True)
        wait_for(_pg_ready, 60, "PostgreSQL to accept connections again")

    yield stop, start
    if not _pg_ready():
        subprocess.run([*cluster, "start"], check=False, capture_output=True)
        wait_for(_pg_ready, 60, "PostgreSQL to accept connections again")


def test_workers_ride_out_a_postgresql_restart(postgres_cluster, postgres_url, unique_name, fake_cifar, tmp_path, procs):
    stop, start = postgres_cluster
    study_file = write_study(tmp_path, unique_name, epochs=EPOCHS, n_trials=N_TRIALS)
    watched = create_study(study_file, postgres_url, fake_cifar)
    env = fault_env(fake_cifar, tmp_path, postgres_url, HPO_FAULT_SLEEP_PER_EPOCH="0.5",
                    HPO_STORAGE_RETRY_SECONDS="120")
    run = start_run(env, study_file, tmp_path / "logs", "--workers", "2")
    procs.append(run)

    def one_finished_and_one_mid_way():
        done = watched.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return done and mid_trial(watched, min_epochs=1, max_epochs=EPOCHS - 1)

    wait_for(one_finished_and_one_mid_way, 120, "a finished trial and a trial mid-way")
    before = finished_values(watched)
    stopped_at = time.monotonic()
    stop()
    try:
        time.sleep(OUTAGE_SECONDS)
    finally:
        start()
    outage_seconds = time.monotonic() - stopped_at

    assert run.wait(timeout=240) == 0, logs_of(tmp_path)
    study = load(postgres_url, unique_name)
    by_state = assert_exact_end(study, N_TRIALS)
    # No trial lost to the outage; the only FAIL allowed is a trial created past N by the two workers
    # asking at once, ended "budget" before any training (DECISIONS: the exact budget).
    failed = [t.user_attrs for t in study.get_trials(states=(TrialState.FAIL,))]
    assert all(attrs.get("stop_reason") == "budget" for attrs in failed), (by_state, failed)
    after = finished_values(study)
    assert {number: after[number] for number in before} == before  # nothing finished was lost or changed
    worker_logs = "\n".join(p.read_text() for p in Path(tmp_path / "logs").rglob("worker-*.log"))
    assert "failed" in worker_logs and "retry" in worker_logs  # the outage was met, and ridden out
    assert "Traceback" not in logs_of(tmp_path)
    record_figure("PostgreSQL outage survived", outage_seconds, "s", retry_limit_seconds=120)

"""Many workers on one SQLite file: no "database is locked" reaches the user; beyond it, clear advice."""

from __future__ import annotations

import sqlite3

import optuna
import pytest

from faultkit import (assert_exact_end, counts, create_study, fault_env, load, logs_of, reasons, record_figure, start_run,
                      write_study)
from hpo.errors import HpoError
from hpo.storage import RetryingStorage

WORKERS = 8
N_TRIALS = 16


@pytest.mark.faults
@pytest.mark.slow
def test_eight_workers_share_one_sqlite_file(sqlite_url, unique_name, fake_cifar, tmp_path, procs):
    study_file = write_study(tmp_path, unique_name, epochs=1, n_trials=N_TRIALS)
    create_study(study_file, sqlite_url, fake_cifar)
    # Default heartbeats (10 s): this case is about lock contention, not about reaping lost workers.
    env = fault_env(fake_cifar, tmp_path, sqlite_url, HPO_HEARTBEAT_SECONDS="10")
    run = start_run(env, study_file, tmp_path / "logs", "--workers", str(WORKERS))
    procs.append(run)
    assert run.wait(timeout=300) == 0, logs_of(tmp_path)
    study = load(sqlite_url, unique_name)
    assert_exact_end(study, N_TRIALS)
    # The only failures allowed: trials a worker asked for while another took the last slot (never trained).
    assert set(reasons(study)) <= {"budget"}, reasons(study)
    output = logs_of(tmp_path)
    assert output.count("joined study") == WORKERS  # all eight really worked on it
    assert "database is locked" not in output and "Traceback" not in output
    record_figure("concurrent SQLite workers held", WORKERS, "workers", trials=N_TRIALS)


@pytest.mark.faults
def test_a_sqlite_file_locked_too_long_points_to_postgresql_or_the_journal(tmp_path):
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}"
    backend = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 0.05}})
    storage = RetryingStorage(backend, url, retry_seconds=1.0)
    optuna.create_study(study_name="s", storage=storage)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock for longer than we wait
    try:
        with pytest.raises(HpoError) as info:
            optuna.create_study(study_name="t", storage=storage)
    finally:
        holder.rollback()
        holder.close()
    message = str(info.value)
    assert "database is locked" in message and "postgresql://" in message and "journal:///" in message
    assert len(message.splitlines()) == 1
    # The lock gone, the same storage object works again.
    optuna.create_study(study_name="t", storage=storage)
    assert {s.study_name for s in storage.get_all_studies()} == {"s", "t"}
    assert counts(optuna.load_study(study_name="t", storage=storage))["RUNNING"] == 0

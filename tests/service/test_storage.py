"""Storage URLs, password masking, and every storage kind opening for real."""

from __future__ import annotations

import optuna
import pytest

from hpo.errors import ConfigError, EnvironmentFault
from hpo.storage import mask_text, mask_url, open_storage, resolve_storage_url, safe_component, storage_kind


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    assert resolve_storage_url() == "sqlite:///hpo.db"
    monkeypatch.setenv("HPO_STORAGE", "sqlite:///env.db")
    assert resolve_storage_url() == "sqlite:///env.db"
    url_file = tmp_path / "url"
    url_file.write_text("\n  postgresql://u:pw@h/db  \n")
    assert resolve_storage_url(storage_file=url_file) == "postgresql://u:pw@h/db"
    # Both at once used to let --storage win without a word; issue 13 makes it a mistake to say.
    with pytest.raises(ConfigError, match="both name the storage; give one of them"):
        resolve_storage_url("sqlite:///cli.db", url_file)
    with pytest.raises(ConfigError, match="empty"):
        (tmp_path / "empty").write_text("")
        resolve_storage_url(storage_file=tmp_path / "empty")


def test_passwords_are_masked():
    url = "postgresql://hpo:s3cr3t@db.example:5432/hpo"
    assert mask_url(url) == "postgresql://hpo:***@db.example:5432/hpo"
    assert "s3cr3t" not in mask_text(f"could not connect to {url}: password s3cr3t refused", url)
    assert mask_url("sqlite:///hpo.db") == "sqlite:///hpo.db"


@pytest.mark.parametrize("url,kind", [("sqlite:///a.db", "sqlite"), ("postgresql://x/y", "postgresql"),
                                      ("postgresql+psycopg://x/y", "postgresql"), ("mysql://r@h/d", "mysql"),
                                      ("journal:///a.log", "journal"), ("redis://h:6379/0", "redis")])
def test_storage_kinds(url, kind):
    assert storage_kind(url) == kind


def test_unknown_scheme_and_unreachable_server_are_one_sentence():
    with pytest.raises(ConfigError, match="unknown scheme"):
        storage_kind("mongodb://x")
    with pytest.raises(EnvironmentFault) as info:  # a server down: exit code 1, not a user mistake
        open_storage("postgresql://postgres:hunter2@127.0.0.1:1/test")
    assert "hunter2" not in str(info.value) and "***" in str(info.value)
    assert "not reachable" in str(info.value) and info.value.exit_code == 1


@pytest.mark.parametrize("bad", ["../x", "/abs", "a\x00b", ".hidden", "a/b", "..", ""])
def test_hostile_names_are_refused(bad):
    with pytest.raises(ConfigError):
        safe_component(bad)


def _roundtrip(url: str, name: str) -> None:
    storage = open_storage(url)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    again = optuna.load_study(study_name=name, storage=open_storage(url))
    assert len(again.trials) == 3
    optuna.delete_study(study_name=name, storage=storage)


def test_sqlite_and_journal_file(tmp_path, unique_name):
    _roundtrip(f"sqlite:///{tmp_path}/s.db", unique_name)
    _roundtrip(f"journal:///{tmp_path}/s.log", unique_name)


@pytest.mark.postgres
def test_postgresql(postgres_url, unique_name):
    _roundtrip(postgres_url, unique_name)


@pytest.mark.mysql
def test_mysql(mysql_url, unique_name):
    _roundtrip(mysql_url, unique_name)


@pytest.mark.redis
def test_redis_journal(redis_url, unique_name):
    _roundtrip(redis_url, unique_name)


def _rdb_engine(storage):
    backend = storage
    while not hasattr(backend, "engine") and hasattr(backend, "_backend"):
        backend = backend._backend
    return getattr(backend, "engine", None)


def _batched_write(url: str, name: str) -> None:
    import sqlalchemy

    from hpo.storage import open_retrying_storage, set_user_attrs

    storage = open_retrying_storage(url)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    trial = study.ask()
    attrs = {"val_accuracy": 0.5, "epochs_run": 3, "device_name": "cpu", "history": [{"epoch": 1}], "macs": 10**9}
    engine, commits = _rdb_engine(storage), []
    if engine is not None:
        sqlalchemy.event.listen(engine, "commit", lambda connection: commits.append(1))
    set_user_attrs(trial, attrs)
    if engine is not None:
        assert len(commits) == 1  # five attributes, one transaction
    set_user_attrs(trial, {"val_accuracy": 0.75, "stop_reason": "pruned"})  # an upsert per key
    assert trial.user_attrs == {**attrs, "val_accuracy": 0.75, "stop_reason": "pruned"}
    study.tell(trial, 0.75)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(trial, {"late": 1, "later": 2})
    stored = optuna.load_study(study_name=name, storage=open_storage(url)).trials[0]
    assert stored.user_attrs == {**attrs, "val_accuracy": 0.75, "stop_reason": "pruned"}
    optuna.delete_study(study_name=name, storage=storage)


def test_result_attributes_are_one_transaction_on_sqlite_and_correct_on_the_journal(tmp_path, unique_name):
    _batched_write(f"sqlite:///{tmp_path}/b.db", unique_name)
    _batched_write(f"journal:///{tmp_path}/b.log", unique_name)


@pytest.mark.postgres
def test_result_attributes_are_one_transaction_on_postgresql(postgres_url, unique_name):
    _batched_write(postgres_url, unique_name)


@pytest.mark.mysql
def test_result_attributes_are_one_transaction_on_mysql(mysql_url, unique_name):
    _batched_write(mysql_url, unique_name)


def test_sqlite_files_use_the_write_ahead_log_with_full_syncs(tmp_path, unique_name):
    import sqlite3

    path = tmp_path / "w.db"
    storage = open_storage(f"sqlite:///{path}")
    optuna.create_study(study_name=unique_name, storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    raw = sqlite3.connect(path)  # the mode is stored in the file, for every process that opens it
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 2
    raw.close()


def test_an_in_memory_sqlite_database_keeps_its_tables():
    storage = open_storage("sqlite:///:memory:")
    optuna.create_study(study_name="m", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="m", storage=storage).trials) == 2

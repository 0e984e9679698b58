"""Storage URLs as Optuna's users write them: plain mysql:// and postgresql:// on the real servers (in
hpo and in `hpo dashboard`), $OPTUNA_STORAGE after $HPO_STORAGE, and journal files in Optuna's own
form (a plain path) that the `optuna` CLI and optuna-dashboard open, beside hpo's older journal:///."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from hpo.errors import ConfigError
from hpo.storage import open_storage, resolve_storage_url, storage_kind

HPO = [sys.executable, "-m", "hpo"]
START_SECONDS = 120  # a cold start of a server process on a loaded 2-core machine


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HPO_STORAGE", "OPTUNA_STORAGE")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


def _study_with_a_trial(url: str, name: str) -> None:
    study = optuna.create_study(study_name=name, storage=open_storage(url))
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, values=[0.5]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _served_studies(command: list[str], env: dict, cwd: Path) -> list[str]:
    """Start a dashboard process, read its study list from the JSON API, stop it."""
    port = _free_port()
    log = cwd / f"dashboard-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([*command, "--port", str(port)], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{command} exited with code {proc.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as response:
                    return [s["study_name"] for s in json.loads(response.read())["study_summaries"]]
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"{command} did not answer within {START_SECONDS} s: {log.read_text()}")
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_hpo_storage_wins_over_optuna_storage_which_wins_over_the_default(monkeypatch):
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert resolve_storage_url() == "sqlite:///hpo.db"
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://o@h/db")
    assert resolve_storage_url() == "postgresql://o@h/db"
    monkeypatch.setenv("HPO_STORAGE", "mysql://h@h/db")
    assert resolve_storage_url() == "mysql://h@h/db"
    assert resolve_storage_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.postgres
def test_status_reads_optuna_storage_from_a_real_process(postgres_url, unique_name, tmp_path):
    _study_with_a_trial(postgres_url, unique_name)
    proc = subprocess.run(HPO + ["status"], env=_env(OPTUNA_STORAGE=postgres_url), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"{unique_name}: 1 finished" in proc.stdout
    assert not (tmp_path / "hpo.db").exists()  # the default was not used, nor created


@pytest.mark.mysql
def test_plain_mysql_url_opens_in_hpo_and_in_hpo_dashboard(mysql_url, unique_name, tmp_path):
    assert mysql_url.startswith("mysql://")
    _study_with_a_trial(mysql_url, unique_name)
    assert optuna.load_study(study_name=unique_name, storage=open_storage(mysql_url)).trials[0].value == 0.5
    served = _served_studies(HPO + ["dashboard", "--storage", mysql_url], _env(), tmp_path)
    assert unique_name in served


@pytest.mark.postgres
def test_plain_postgresql_url_opens_in_hpo_dashboard(postgres_url, unique_name, tmp_path):
    _study_with_a_trial(postgres_url, unique_name)
    assert unique_name in _served_studies(HPO + ["dashboard"], _env(HPO_STORAGE=postgres_url), tmp_path)


def test_a_plain_path_is_a_journal_file_that_optuna_cli_and_dashboard_open(tmp_path):
    journal = tmp_path / "study.log"
    assert storage_kind(str(journal)) == "journal"
    _study_with_a_trial(str(journal), "journaled")
    # The older journal:/// form names the same file.
    assert optuna.load_study(study_name="journaled", storage=open_storage(f"journal:///{journal}")).trials[0].value == 0.5
    scripts = Path(sys.executable).parent  # the console scripts of this environment
    listed = subprocess.run([str(scripts / "optuna"), "studies", "--storage", str(journal), "-f", "json"],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert [s["name"] for s in json.loads(listed.stdout)] == ["journaled"]
    assert "journaled" in _served_studies([str(scripts / "optuna-dashboard"), str(journal)], _env(), tmp_path)


def test_a_plain_path_to_a_sqlite_file_is_refused_with_the_url_to_write(tmp_path):
    with pytest.raises(ConfigError, match=r"sqlite:///hpo.db"):
        storage_kind("hpo.db")
    sqlite_file = tmp_path / "store"
    open_storage(f"sqlite:///{sqlite_file}")
    with pytest.raises(ConfigError, match="is a SQLite file, not a journal; write sqlite:///"):
        open_storage(str(sqlite_file))


def test_read_only_commands_do_not_create_a_missing_journal_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        open_storage(str(tmp_path / "missing.log"), must_exist=True)
    assert not (tmp_path / "missing.log").exists()

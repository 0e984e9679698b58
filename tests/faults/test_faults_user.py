"""Environment faults and the hints of issue 13, as a user meets them through the real CLI.

Every case runs the CLI in-process (``CliRunner``) on real files, real read-only bind mounts, a real
SQLite file, a real closed PostgreSQL port and real sockets, and asserts what README's exit-code
table promises: one line on stderr, no traceback, exit code 1 for an environment fault and 2 for a
user mistake; ``hpo --debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from typer.testing import CliRunner

import hpo.cli
from faultkit import create_study, require_root, write_study

pytestmark = pytest.mark.faults


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(hpo.cli.app, list(args), env=env)


def one_line(result, code: int, *words: str) -> str:
    """The single stderr line of a refused command (exit ``code``), checked to name ``words``."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only by a bind mount (chmod does not stop root); unmounted after."""
    require_root("a read-only bind mount")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True, capture_output=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


@pytest.fixture(scope="module")
def stored(fake_cifar, tmp_path_factory):
    """A SQLite study with three COMPLETE trials, written as `hpo run` writes them (no training)."""
    folder = tmp_path_factory.mktemp("stored")
    url = f"sqlite:///{folder}/hpo.db"
    study = create_study(write_study(folder, "stored"), url, fake_cifar)
    for i, acc in enumerate([0.5, 0.6, 0.7]):
        history = [{"epoch": e, "train_loss": 1.0, "train_accuracy": acc, "val_loss": 1.0, "val_accuracy": acc,
                    "epoch_seconds": 1.0, "images_per_second": 100.0, "lr": 0.01, "elapsed_seconds": float(e)}
                   for e in (1, 2, 3)]
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 0.01 * (i + 1)}, distributions={"lr": FloatDistribution(1e-3, 0.1, log=True)},
            values=[acc], state=TrialState.COMPLETE,
            user_attrs={"val_accuracy": acc, "param_count": 1000 * (i + 1), "train_seconds": 3.0, "n_val_images": 30,
                        "history": history, "epochs_run": 3, "macs": 5000,
                        **({"checkpoint": "never-uploaded"} if i == 2 else {})}))
    return url, folder


# --- export into a folder that cannot be written -------------------------------------------------

@pytest.mark.parametrize("fmt", ["md", "csv", "pptx", "html", "png", "svg"])
def test_export_into_a_read_only_folder_is_one_line_and_exit_1(fmt, stored, tmp_path):
    url, _ = stored
    with read_only(tmp_path / "ro") as folder:
        for out in (folder / f"deck.{fmt}", folder / "missing" / f"deck.{fmt}"):
            line = one_line(invoke("export", "--study", "stored", "--storage", url, "--format", fmt, "--out", str(out)), 1,
                            "Read-only file system", "choose a writable path")
            assert str(folder) in line


def test_export_into_a_missing_folder_creates_it(stored, tmp_path):
    url, _ = stored
    out = tmp_path / "new" / "deep" / "front.md"
    result = invoke("export", "--study", "stored", "--storage", url, "--format", "md", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.is_file()


def test_export_under_a_file_names_it(stored, tmp_path):
    url, _ = stored
    (tmp_path / "afile").write_text("x")
    one_line(invoke("export", "--study", "stored", "--storage", url, "--format", "md",
                    "--out", str(tmp_path / "afile" / "x.md")), 1, "afile", "is a file")


# --- SQLite files: read-only, corrupt; a server down --------------------------------------------

def test_run_on_a_read_only_sqlite_file_names_it_and_exits_1(stored, tmp_path, fake_cifar):
    url, folder = stored
    copy = tmp_path / "ro" / "hpo.db"
    copy.parent.mkdir()
    shutil.copy(url.split(":///", 1)[1], copy)
    with read_only(copy.parent):
        line = one_line(invoke("run", "--study", str(folder / "stored.yaml"), "--storage", f"sqlite:///{copy}",
                               "--devices", "cpu", "--data-dir", str(fake_cifar)), 1, str(copy), "read-only")
    assert "database server" not in line


@pytest.mark.parametrize("command", [["status"], ["pareto", "--study", "x"], ["run", "--study", "cpu-quick"]])
def test_a_corrupt_sqlite_file_is_one_line_and_exit_1(command, tmp_path):
    bad = tmp_path / "hpo.db"
    bad.write_bytes(b"this is not a database " * 100)
    line = one_line(invoke(*command, "--storage", f"sqlite:///{bad}"), 1, str(bad), "not a SQLite database")
    assert "database server" not in line  # SQLite has no server
    assert bad.read_bytes() == b"this is not a database " * 100


def test_a_database_server_down_is_one_line_and_exit_1():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:pw@127.0.0.1:{port}/test"
    for command in (["status"], ["pareto", "--study", "x"], ["worker", "--study", "x", "--n-trials", "2"]):
        line = one_line(invoke(*command, "--storage", url), 1, "not reachable", f"127.0.0.1:{port}")
        assert "pw@" not in line


# --- the dashboard's port --------------------------------------------------------------------------

@pytest.mark.parametrize("port", ["0", "65536", "-1", "100000"])
def test_dashboard_port_out_of_range_is_exit_2(port, stored):
    url, _ = stored
    one_line(invoke("dashboard", "--storage", url, "--port", port), 2, f"--port {port}", "1 to 65535")


def test_dashboard_port_in_use_is_exit_1(stored):
    url, _ = stored
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line(invoke("dashboard", "--storage", url, "--port", str(port)), 1, f"--port {port}", "already in use")


# --- --debug -----------------------------------------------------------------------------------------

def test_debug_shows_the_traceback_and_keeps_the_line_and_the_code(tmp_path, monkeypatch):
    monkeypatch.delenv("HPO_DEBUG", raising=False)
    bad = tmp_path / "hpo.db"
    bad.write_text("garbage " * 100)
    plain = invoke("status", "--storage", f"sqlite:///{bad}")
    # --debug sets HPO_DEBUG for the workers; naming it in env= makes the runner restore it afterwards.
    debug = invoke("--debug", "status", "--storage", f"sqlite:///{bad}", env={"HPO_DEBUG": "0"})
    assert "HPO_DEBUG" not in os.environ
    assert plain.exit_code == debug.exit_code == 1
    assert "Traceback" not in plain.output and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()


def test_a_usage_error_is_one_line_too():
    one_line(invoke("status", "--no-such-option"), 2, "--no-such-option", "status --help`")
    one_line(invoke("dashboard", "--port", "eighty"), 2, "--port")


# --- hints that named the wrong thing ----------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_on_a_missing_gpu_names_its_own_flag(fake_cifar):
    line = one_line(invoke("train", "--device", "cuda:0", "--data-dir", str(fake_cifar), "--epochs", "1"), 2, "cuda:0")
    assert "--device cpu" in line and "--devices" not in line


def test_train_with_a_read_only_checkpoint_folder_names_the_checkpoint(fake_cifar, tmp_path):
    with read_only(tmp_path / "ro") as folder:
        line = one_line(invoke("train", "--model", "linear", "--device", "cpu", "--data-dir", str(fake_cifar),
                               "--epochs", "1", "--checkpoint", str(folder / "run.pt")), 1, "--checkpoint", "run.pt")
    assert "--artifacts" not in line
    line = one_line(invoke("train", "--model", "linear", "--device", "cpu", "--data-dir", str(fake_cifar), "--epochs", "1",
                           "--checkpoint", str(tmp_path / "missing" / "run.pt")), 1, "does not exist", "mkdir -p")


def test_validate_a_folder_says_it_is_a_folder(tmp_path):
    write_study(tmp_path, "inside")
    for target in (str(tmp_path), f"{tmp_path}/"):
        one_line(invoke("validate", target), 2, "is a folder", "inside")


@pytest.mark.parametrize("command", [["reproduce", "--trial", "7"], ["evaluate", "--trial", "7"]])
def test_an_unknown_trial_gives_the_range_of_trial_numbers(command, stored, fake_cifar):
    url, _ = stored
    line = one_line(invoke(*command, "--study", "stored", "--storage", url, "--data-dir", str(fake_cifar)), 2,
                    "no trial 7", "numbered 0 to 2")
    assert "hpo status" not in line


def test_a_missing_data_folder_is_named_and_not_created(stored, tmp_path, monkeypatch):
    url, _ = stored
    missing = tmp_path / "no-such-data"
    monkeypatch.setenv("HPO_OFFLINE", "0")  # the download is tried...
    for proxy in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # ...and refused at once: no network traffic in tests
    one_line(invoke("train", "--model", "linear", "--device", "cpu", "--data-dir", str(missing), "--epochs", "1"), 2,
             str(missing), "does not exist", "--data-dir")
    assert not missing.exists()
    # A command that reads a stored study does not even try to download.
    (tmp_path / "artifacts").mkdir()
    one_line(invoke("evaluate", "--study", "stored", "--storage", url, "--trial", "2", "--data-dir", str(missing),
                    "--artifacts", str(tmp_path / "artifacts")), 2, str(missing), "does not exist")
    assert not missing.exists()


def test_read_only_commands_create_no_artifact_folder(stored, tmp_path, monkeypatch, fake_cifar):
    url, _ = stored
    monkeypatch.chdir(tmp_path)
    one_line(invoke("evaluate", "--study", "stored", "--storage", url, "--trial", "2", "--data-dir", str(fake_cifar)), 2,
             "artifact store folder", "does not exist")
    assert not (tmp_path / "artifacts").exists()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("pruner, args, words", [
    ("median", "{n_startup_trials: -3}", ["pruner.args.n_startup_trials is -3", "integer >= 0"]),
    ("median", "{n_warmup_steps: 2.5}", ["pruner.args.n_warmup_steps is 2.5", "must be an integer"]),
    ("percentile", "{percentile: true}", ["pruner.args.percentile is True", "must be a number"]),
    ("hyperband", "{max_resource: -1}", ["pruner.args.max_resource is -1", "integer >= 1"]),
    ("wilcoxon", "{p_threshold: 3}", ["pruner.args.p_threshold is 3", "from 0 to 1"]),
])
def test_pruner_arguments_are_checked_before_any_trial(pruner, args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default storage, sqlite:///hpo.db, would land here
    path = write_study(tmp_path, "pruned", extra="")
    path.write_text(path.read_text().replace("pruner: none", f"pruner: {{name: {pruner}, args: {args}}}"))
    for command in (["validate", str(path)], ["run", "--study", str(path), "--devices", "cpu"]):
        one_line(invoke(*command), 2, "pruned.yaml", *words)
    assert not (tmp_path / "hpo.db").exists()

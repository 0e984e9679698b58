"""Faults inside one trial (NaN loss, out of memory, checkpoint unwritable) and an unreachable device.

Each trial ends with a recorded reason and the worker goes on with the next trial. The worker loop
runs in this process (torch is already imported); the faults are real: the trainer's OOM and NaN
seams, a full tmpfs and a read-only bind mount under the artifact store.
"""

from __future__ import annotations

import subprocess

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

import hpo.cli
from faultkit import assert_exact_end, counts, create_study, load, reasons, require_root, run_worker_here, write_study
from hpo.errors import HpoError

pytestmark = pytest.mark.faults


@pytest.fixture
def fast_heartbeats(monkeypatch):
    monkeypatch.setenv("HPO_HEARTBEAT_SECONDS", "1")


def test_diverged_trials_are_pruned_with_their_last_value(sqlite_url, unique_name, fake_cifar, tmp_path, monkeypatch, fast_heartbeats):
    create_study(write_study(tmp_path, unique_name, epochs=3, n_trials=2), sqlite_url, fake_cifar)
    monkeypatch.setenv("HPO_FAULT_NAN_AT_EPOCH", "2")
    outcome = run_worker_here(sqlite_url, unique_name, fake_cifar, tmp_path / "artifacts")
    assert outcome == {"PRUNED": 2}
    study = load(sqlite_url, unique_name)
    assert_exact_end(study, 2)
    for trial in study.get_trials():
        assert trial.user_attrs["stop_reason"] == "diverged"
        assert [r["epoch"] for r in trial.user_attrs["history"]] == [1]  # the NaN epoch is not recorded
        assert trial.user_attrs["val_accuracy"] == trial.user_attrs["history"][0]["val_accuracy"]


def test_out_of_memory_fails_the_trial_and_the_worker_goes_on(sqlite_url, unique_name, fake_cifar, tmp_path, monkeypatch, fast_heartbeats):
    create_study(write_study(tmp_path, unique_name, epochs=3, n_trials=2), sqlite_url, fake_cifar)
    monkeypatch.setenv("HPO_FAULT_OOM_AT_EPOCH", "2")
    with pytest.raises(HpoError, match="2 consecutive failed trials.*oom: out of memory"):
        run_worker_here(sqlite_url, unique_name, fake_cifar, tmp_path / "artifacts")
    study = load(sqlite_url, unique_name)
    # Both trials ran (the worker went on after the first OOM), failed as oom, and nothing is left RUNNING.
    assert counts(study)["FAIL"] == 2 and counts(study)["RUNNING"] == 0
    assert reasons(study) == ["oom", "oom"]
    assert all("out of memory on cpu" in t.user_attrs["error"] for t in study.get_trials())
    assert not study.get_trials(states=(TrialState.WAITING,))  # oom is not retried with the same configuration

    # Once the cause is gone, the next run gets its own attempts and completes the study.
    monkeypatch.delenv("HPO_FAULT_OOM_AT_EPOCH")
    assert run_worker_here(sqlite_url, unique_name, fake_cifar, tmp_path / "artifacts") == {"COMPLETE": 2}
    assert_exact_end(load(sqlite_url, unique_name), 2)


# A wide CNN whose checkpoint (weights + momentum, ~2.4 MB) cannot fit on a 1 MB disk, then a linear
# model whose checkpoint (~100 kB) can: the first trial fails for its checkpoint, the second completes.
WIDE_THEN_SMALL_SPACE = """\
params:
  model: {choices: [cnn, linear]}
  cnn.channels: {choices: [[128, 256]]}
  lr: 0.01
  optimizer: sgd
  batch_size: 16
  augment: none
"""
WIDE_THEN_SMALL_ENQUEUE = """\
enqueue:
  - {model: cnn, cnn.channels: [128, 256]}
  - {model: linear}
"""


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (DECISIONS.md: disk full on CPU), unmounted at the end."""
    require_root("mounting a tmpfs")
    folder = tmp_path / "tiny-disk"
    folder.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder))
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder made read-only by a bind mount (chmod does not stop root), unmounted at the end."""
    require_root("a read-only bind mount")
    folder = tmp_path / "read-only"
    folder.mkdir()
    _mount("--bind", str(folder), str(folder))
    try:
        _mount("-o", "remount,bind,ro", str(folder))
    except subprocess.CalledProcessError:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        raise
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def test_disk_full_fails_that_trial_frees_its_space_and_the_next_trial_runs(sqlite_url, unique_name, fake_cifar, tmp_path, tiny_disk, fast_heartbeats):
    study_file = write_study(tmp_path, unique_name, epochs=2, n_trials=1, space=WIDE_THEN_SMALL_SPACE,
                             extra=WIDE_THEN_SMALL_ENQUEUE)
    create_study(study_file, sqlite_url, fake_cifar)
    outcome = run_worker_here(sqlite_url, unique_name, fake_cifar, tiny_disk)
    assert outcome == {"FAIL": 1, "COMPLETE": 1}
    study = load(sqlite_url, unique_name)
    assert_exact_end(study, 1)
    wide, small = study.get_trials()
    assert wide.state == TrialState.FAIL and wide.params["model"] == "cnn"
    assert wide.user_attrs["stop_reason"] == "error"
    assert "checkpoint" in wide.user_attrs["error"] and "No space left on device" in wide.user_attrs["error"]
    assert small.state == TrialState.COMPLETE and small.params["model"] == "linear"
    # The failed trial's partial file was removed: only the small trial's checkpoint is on the disk.
    assert sorted(p.name for p in tiny_disk.iterdir()) == [small.user_attrs["checkpoint"]]


def test_read_only_artifact_store_fails_trials_with_the_reason_and_stops_clearly(sqlite_url, unique_name, fake_cifar, tmp_path, read_only_dir, fast_heartbeats):
    create_study(write_study(tmp_path, unique_name, epochs=2, n_trials=2), sqlite_url, fake_cifar)
    with pytest.raises(HpoError, match="2 consecutive failed trials.*Read-only file system"):
        run_worker_here(sqlite_url, unique_name, fake_cifar, read_only_dir)
    study = load(sqlite_url, unique_name)
    assert counts(study)["FAIL"] == 2 and counts(study)["RUNNING"] == 0 and counts(study)["WAITING"] == 0
    assert reasons(study) == ["error", "error"]
    assert all("checkpoint could not be written" in t.user_attrs["error"] for t in study.get_trials())
    # The epoch whose checkpoint could not be stored is still in the history, matching the result attributes.
    assert all(t.user_attrs["history"][-1]["epoch"] == t.user_attrs["epochs_run"] == 1 for t in study.get_trials())
    assert all(t.user_attrs["history"][-1]["val_accuracy"] == t.user_attrs["val_accuracy"] for t in study.get_trials())
    assert not list(read_only_dir.iterdir())


def test_scratch_checkpoints_do_not_pile_up(sqlite_url, unique_name, fake_cifar, tmp_path, monkeypatch, fast_heartbeats):
    # Each trial writes its checkpoint to a local scratch folder before the artifact store takes it;
    # those copies must go, or a long study fills the worker's disk.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    create_study(write_study(tmp_path, unique_name, epochs=2, n_trials=3), sqlite_url, fake_cifar)
    assert run_worker_here(sqlite_url, unique_name, fake_cifar, tmp_path / "artifacts") == {"COMPLETE": 3}
    assert not [p for p in scratch.rglob("*") if p.is_file()]
    # The store keeps one checkpoint per trial that the retention policy (keep: front) keeps.
    study = optuna.load_study(study_name=unique_name, storage=sqlite_url)
    attrs = study._storage.get_study_system_attrs(study._study_id)
    removed = {int(k.rsplit(":", 1)[1]) for k in attrs if k.startswith("hpo:checkpoint_removed:")}
    kept = {t.user_attrs["checkpoint"] for t in study.trials if t.number not in removed}
    assert kept and {p.name for p in (tmp_path / "artifacts").iterdir()} == kept


@pytest.mark.parametrize("command", [["worker", "--study", "any"], ["run", "--study", "cpu-quick"]])
def test_unreachable_device_is_refused_at_start(command, tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_STORAGE", f"sqlite:///{tmp_path}/hpo.db")
    result = CliRunner().invoke(hpo.cli.app, [*command, "--devices", "cuda:3"])
    assert result.exit_code == 2, result.output
    assert "cuda:3" in result.output and "not available" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1

"""The checkpoint room: retention on hand-made trials, upload and download through a real artifact store."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo.checkpoints import CheckpointError, apply_policy, checkpoints_to_remove, download_checkpoint, upload_checkpoint


def _trial(number, state, acc=0.5, params=1000, seconds=10.0, reason=None, **extra):
    attrs = {"checkpoint": f"ckpt-{number}", "val_accuracy": acc, "param_count": params, "train_seconds": seconds}
    if reason:
        attrs["stop_reason"] = reason
    attrs.update(extra)
    t = create_trial(state=state, value=acc if state == TrialState.COMPLETE else None, params={"x": 0.1},
                     distributions={"x": FloatDistribution(0, 1)}, user_attrs=attrs)
    t.number = number
    return t


def test_front_policy_keeps_only_front_trials_and_resumable_failures():
    trials = [
        _trial(0, TrialState.COMPLETE, acc=0.8, params=1000, seconds=10),  # front
        _trial(1, TrialState.COMPLETE, acc=0.7, params=2000, seconds=20),  # dominated by 0
        _trial(2, TrialState.COMPLETE, acc=0.9, params=5000, seconds=30),  # front (most accurate)
        _trial(3, TrialState.PRUNED, acc=0.4, reason="pruned"),
        _trial(4, TrialState.FAIL, reason="interrupted"),                  # its retry has not finished
        _trial(5, TrialState.FAIL, reason="error"),
        _trial(6, TrialState.FAIL, reason="worker_lost"),
        _trial(7, TrialState.COMPLETE, acc=0.8, params=1000, seconds=10, retry_of=6),  # retry of 6, duplicate of 0
    ]
    assert checkpoints_to_remove(trials, "front", None, {}) == [1, 3, 5, 6]
    assert checkpoints_to_remove(trials, "all", None, {}) == [3, 5, 6]
    assert checkpoints_to_remove(trials, "none", None, {}) == [0, 1, 2, 3, 5, 6, 7]


def test_disk_budget_drops_the_least_accurate_first():
    trials = [_trial(0, TrialState.COMPLETE, acc=0.9, params=9000), _trial(1, TrialState.COMPLETE, acc=0.8, params=5000),
              _trial(2, TrialState.COMPLETE, acc=0.7, params=1000)]
    sizes = {0: 400, 1: 400, 2: 400}
    assert checkpoints_to_remove(trials, "all", 1000, sizes) == [2]
    assert checkpoints_to_remove(trials, "all", 300, sizes) == [0, 1, 2]


def test_apply_policy_removes_files_from_a_real_artifact_store(tmp_path):
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for number, (state, acc, params) in enumerate([(TrialState.COMPLETE, 0.8, 100), (TrialState.COMPLETE, 0.7, 200),
                                                   (TrialState.PRUNED, 0.3, 100)]):
        (tmp_path / "src").write_bytes(b"x" * 10)
        with open(tmp_path / "src", "rb") as f:
            store.write(f"ckpt-{number}", f)
        study.add_trial(_trial(number, state, acc=acc, params=params))
    assert apply_policy(study, store, {"keep": "front"}) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ckpt")) == ["ckpt-0"]
    assert apply_policy(study, store, {"keep": "front"}) == []  # idempotent: already removed


class _FullStore(optuna.artifacts.FileSystemArtifactStore):
    """A store on a disk that fills up after ``room`` writes (writes a partial file, then fails)."""

    def __init__(self, base_path, room: int) -> None:
        super().__init__(base_path)
        self.folder = Path(base_path)
        self.room = room

    def write(self, artifact_id, content_body) -> None:
        if self.room == 0:
            (self.folder / artifact_id).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= 1
        super().write(artifact_id, content_body)


def _running_trial():
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    return study.ask()


def test_upload_keeps_one_checkpoint_per_trial_and_download_fetches_it(tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    store = optuna.artifacts.FileSystemArtifactStore(str(store_dir))
    trial = _running_trial()
    path = tmp_path / "trial-0.pt"
    path.write_bytes(b"epoch 1")
    first = upload_checkpoint(store, trial, path, None)
    path.write_bytes(b"epoch 2")
    second = upload_checkpoint(store, trial, path, first)
    assert sorted(p.name for p in store_dir.iterdir()) == [second]  # the previous one was removed
    dest = tmp_path / "resume.pt"
    dest.write_bytes(b"stale")
    assert download_checkpoint(store, second, dest) == dest and dest.read_bytes() == b"epoch 2"


def test_upload_on_a_full_disk_removes_the_partial_file_and_raises(tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    store = _FullStore(str(store_dir), room=1)
    trial = _running_trial()
    path = tmp_path / "trial-0.pt"
    path.write_bytes(b"epoch 1")
    first = upload_checkpoint(store, trial, path, None)
    with pytest.raises(CheckpointError, match=r"cannot store the checkpoint in the artifact store \(No space left"):
        upload_checkpoint(store, trial, path, first)
    assert sorted(p.name for p in store_dir.iterdir()) == [first]  # the partial upload is gone, the last good one kept


def test_an_unreachable_checkpoint_downloads_as_none_with_a_warning(tmp_path, caplog):
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="hpo"):
        assert download_checkpoint(store, "no-such-artifact", tmp_path / "resume.pt", trial_number=7) is None
    assert "trial 7: checkpoint no-such-artifact unreachable" in caplog.text and "restarting from scratch" in caplog.text

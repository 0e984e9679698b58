"""The checkpoint retention policy on hand-made trials."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo.checkpoints import apply_policy, checkpoints_to_remove


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

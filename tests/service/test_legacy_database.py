"""A database written by the previous release (0.1.0) still loads, reports and resumes.

The database is built here with plain Optuna calls and literal attribute names, exactly in the
layout 0.1.0 wrote (read off a real 0.1.0 run), and deliberately not through ``hpo.trials``:
if a later change renamed a stored attribute, this test must fail. Its expected outputs were
printed by 0.1.0 on this same database.
"""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from hpo.cli import app

HPO = [sys.executable, "-m", "hpo"]

SPACE = """\
params:
  model: cnn
  cnn.channels: {choices: [[4], [8]]}
  cnn.kernel_size: 3
  lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
  optimizer: sgd
  batch_size: 32
  augment: none
"""

STUDY = """\
name: legacy
description: a study written by the previous release
dataset: {kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}
space: tiny.yaml
objectives: [val_accuracy]
sampler: random
pruner: none
epochs: 2
n_trials: 4
seed: 0
"""

# What 0.1.0 stored for STUDY: the resolved definition, its hash, and the fingerprint of the
# fake CIFAR-10 that tests/conftest.py writes (the `fake_cifar` fixture).
DEFINITION = {
    "name": "legacy", "description": "a study written by the previous release",
    "dataset": {"kind": "minicifar", "n_classes": 4, "R": 1, "train_size": 0.75, "image_size": 32},
    "space": {"description": "", "params": {
        "model": "cnn", "cnn.channels": {"choices": [[4], [8]]}, "cnn.kernel_size": 3,
        "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
        "optimizer": "sgd", "batch_size": 32, "augment": "none"}},
    "objectives": ["val_accuracy"], "sampler": {"name": "random", "args": {}}, "pruner": {"name": "none", "args": {}},
    "epochs": 2, "n_trials": 4, "train": {},
    "constraints": {"max_params": None, "max_macs": None, "max_epoch_seconds": None},
    "enqueue": [], "seed": 0,
    "hypervolume_reference": {"params": 100000000.0, "train_seconds": 600.0, "macs": 10000000000.0},
    "checkpoints": {"keep": "front", "disk_budget_mb": 2000.0},
}
DEFINITION_HASH = "3b1198cc35e26354551ccbb4554431a09dd6f4296fc6e160fa5885a6afe9b0fa"
FINGERPRINT = "49e66f43e6424c984b250efbc56b0cf7745c5152aed69f434ad40bbedcb668e1"

DISTRIBUTIONS = {
    "cnn.channels": CategoricalDistribution(choices=("[4]", "[8]")),
    "lr": FloatDistribution(low=0.001, high=0.1, log=True),
}


def _epoch(epoch: int, val_accuracy: float, seconds: float) -> dict:
    return {"epoch": epoch, "train_loss": 1.2, "train_accuracy": 0.5, "val_loss": 0.9, "val_accuracy": val_accuracy,
            "epoch_seconds": seconds, "images_per_second": 2000.0, "lr": 0.01, "elapsed_seconds": seconds * epoch}


def build_legacy_database(url: str) -> None:
    """The 0.1.0 layout: study attributes, a complete, a pruned, a lost trial and its queued retry."""
    study = optuna.create_study(study_name="legacy", storage=url, directions=["maximize"])
    study.set_metric_names(["val_accuracy"])
    for key, value in {"definition": DEFINITION, "definition_hash": DEFINITION_HASH, "dataset_fingerprint": FINGERPRINT,
                       "hpo_version": "0.1.0", "hardware": "cpu (cpu), torch 2.14.1, 2 CPU cores", "n_trials": 4}.items():
        study.set_user_attr(key, value)
    history = [_epoch(1, 0.70, 0.04), _epoch(2, 0.7666666666666667, 0.02)]
    study.add_trial(create_trial(
        state=TrialState.COMPLETE, values=[0.7666666666666667], params={"cnn.channels": "[8]", "lr": 0.04},
        distributions=DISTRIBUTIONS, intermediate_values={1: 0.70, 2: 0.7666666666666667},
        user_attrs={"param_count": 8420, "macs": 63488, "history": history, "val_accuracy": 0.7666666666666667,
                    "val_loss": 0.9, "train_accuracy": 0.5, "train_loss": 1.2, "epochs_run": 2, "train_seconds": 0.06,
                    "images_per_second": 2000.0, "device_name": "cpu", "peak_memory_bytes": 791265280},
        system_attrs={"hpo:worker": "old-worker-0", "hpo:heartbeat": 1796115084.0, "constraints:size": -1.0}))
    study.add_trial(create_trial(
        state=TrialState.PRUNED, params={"cnn.channels": "[4]", "lr": 0.002}, distributions=DISTRIBUTIONS,
        intermediate_values={1: 0.25},
        user_attrs={"param_count": 4276, "macs": 31744, "history": [_epoch(1, 0.25, 0.03)], "val_accuracy": 0.25,
                    "val_loss": 1.3, "train_accuracy": 0.3, "train_loss": 1.4, "epochs_run": 1, "train_seconds": 0.03,
                    "stop_reason": "pruned"},
        system_attrs={"hpo:worker": "old-worker-0", "constraints:size": -1.0}))
    study.add_trial(create_trial(
        state=TrialState.FAIL, params={"cnn.channels": "[4]", "lr": 0.01}, distributions=DISTRIBUTIONS,
        user_attrs={"param_count": 4276, "macs": 31744, "history": [_epoch(1, 0.5, 0.03)], "stop_reason": "worker_lost"},
        system_attrs={"hpo:worker": "old-worker-1", "hpo:heartbeat": 1796115000.0}))
    study.add_trial(create_trial(
        state=TrialState.WAITING, params={"cnn.channels": "[4]", "lr": 0.01}, distributions=DISTRIBUTIONS,
        user_attrs={"retry_of": 2}, system_attrs={"hpo:retry_of": 2, "hpo:retries": 1}))


# Printed by 0.1.0 (`hpo pareto --study legacy --format json`) on build_legacy_database's database,
# with the columns issue 11 added (accuracy intervals, ties with the knee, the confidence level);
# every key and value 0.1.0 printed is still there, in the same order.
#
# The legacy trial stored no n_val_images. Its definition (minicifar, 4 classes, R 1, train_size
# 0.75) gives 4 x 5000 = 20,000 kept images of the real CIFAR-10, 15,000 / 5,000; but the fake
# CIFAR it ran on holds 30 per class: 120 kept, 90 / 30, and 0.7667 is 23 of 30, not a whole
# number of 5,000 images (3833.3). So the derived count does not fit, and no interval is shown
# rather than one that claims 5,000 images (+-1.2 points where 30 images give +-15).
EXPECTED_PARETO = {
    "study": "legacy",
    "axes": ["val_accuracy", "param_count", "train_seconds"],
    "hypervolume": 0.3904518754721605,
    "knee_trial": 0,
    "confidence": 0.95,
    "front": [
        {"trial": 0, "val_accuracy": 0.7666666666666667, "val_accuracy_lower": None, "val_accuracy_upper": None,
         "param_count": 8420, "macs": 63488, "train_seconds": 0.06,
         "knee": True, "ties_knee": False, "cnn.channels": "[8]", "lr": 0.04},
    ],
}
OLD_FRONT_KEYS = ["trial", "val_accuracy", "param_count", "macs", "train_seconds", "knee", "cnn.channels", "lr"]


@pytest.fixture
def legacy(tmp_path, fake_cifar):
    (tmp_path / "tiny.yaml").write_text(SPACE)
    (tmp_path / "legacy.yaml").write_text(STUDY)
    url = f"sqlite:///{tmp_path}/legacy.db"
    build_legacy_database(url)
    return tmp_path, url


def test_legacy_database_reports(legacy):
    _, url = legacy
    runner = CliRunner()
    status = runner.invoke(app, ["status", "legacy", "--storage", url])
    assert status.exit_code == 0, status.output
    first = status.output.splitlines()[0].split()
    assert first == ["legacy", "finished", "2/4", "complete", "1", "pruned", "1", "failed", "1", "running", "0",
                     "waiting", "1"], status.output
    assert "stop reasons: pruned 1, worker_lost 1" in status.output
    assert "│     0 │       76.67% │ cnn.channels=[8], lr=0.04 │" in status.output
    pareto = runner.invoke(app, ["pareto", "--study", "legacy", "--storage", url, "--format", "json"])
    assert pareto.exit_code == 0, pareto.output
    assert json.loads(pareto.output) == EXPECTED_PARETO
    assert list(json.loads(pareto.output)["front"][0]) == list(EXPECTED_PARETO["front"][0])  # column order too
    assert [key for key in json.loads(pareto.output)["front"][0] if key in OLD_FRONT_KEYS] == OLD_FRONT_KEYS


def test_legacy_database_exports(legacy):
    folder, url = legacy
    out = folder / "legacy.md"
    result = CliRunner().invoke(app, ["export", "--study", "legacy", "--storage", url, "--format", "md",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    # 0.1.0's line, with the empty "Ties knee" cell after "Knee" (no interval: see EXPECTED_PARETO).
    assert out.read_text().splitlines()[-1] == "| 0 | 76.67% | 8.42k | 63.5k | 0.1 | yes |  | [8] | 0.04 |"


@pytest.mark.slow
def test_legacy_database_resumes(legacy, worker_env):
    folder, url = legacy
    proc = subprocess.run(HPO + ["run", "--study", str(folder / "legacy.yaml"), "--devices", "cpu", "--storage", url],
                          env=worker_env, capture_output=True, text=True, timeout=300, cwd=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    study = optuna.load_study(study_name="legacy", storage=url)
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 4  # the stored budget, exactly
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    retry = trials[3]  # the queued retry of the lost trial ran first, with its configuration
    assert retry.state == TrialState.COMPLETE and retry.params == trials[2].params
    assert retry.user_attrs["retry_of"] == 2 and len(retry.user_attrs["history"]) == 2
    assert all(t.user_attrs["val_accuracy"] >= 0 for t in trials if t.state == TrialState.COMPLETE)

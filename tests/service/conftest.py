"""Fixtures for the study service: tiny study files on the fake CIFAR data, worker environments."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

TINY_SPACE = """\
params:
  model: cnn
  cnn.channels: {choices: [[4], [8]]}
  cnn.kernel_size: 3
  lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
  optimizer: sgd
  batch_size: 32
  augment: none
"""


def write_study(folder: Path, name: str, *, epochs: int = 2, n_trials: int = 4, pruner: str = "none",
                objectives: str = "[val_accuracy]", sampler: str = "random", extra: str = "") -> Path:
    """A study file with a tiny CNN space on MINICIFAR (4 classes of the fake CIFAR, all images kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(TINY_SPACE)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        description: tiny study for tests
        dataset: {{kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}}
        space: tiny.yaml
        objectives: {objectives}
        sampler: {sampler}
        pruner: {pruner}
        epochs: {epochs}
        n_trials: {n_trials}
        seed: 0
        """) + extra)
    return path


@pytest.fixture
def worker_env(fake_cifar, tmp_path) -> dict:
    """Environment for real `hpo` processes: offline, fake data, fast heartbeats, one CPU thread."""
    return {
        **os.environ,
        "HPO_OFFLINE": "1",
        "HPO_DATA_DIR": str(fake_cifar),
        "HPO_ARTIFACTS": str(tmp_path / "artifacts"),
        "HPO_HEARTBEAT_SECONDS": "1",
        "HPO_TEST_CWD": str(tmp_path),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


HPO = [sys.executable, "-m", "hpo"]


@pytest.fixture
def study_file():
    """``write_study`` as a fixture (test folders are not packages, so tests don't import conftest)."""
    return write_study

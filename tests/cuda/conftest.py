"""CUDA tests (``python -m pytest -m cuda tests/cuda``): skipped where torch sees no CUDA device.

cuBLAS repeats its results bit for bit only with a fixed workspace, which it reads when its first
handle is made: set here, before any test touches the GPU.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

REPO = Path(__file__).resolve().parents[2]
HPO = [sys.executable, "-m", "hpo"]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device: run on a GPU machine with `python -m pytest -m cuda tests/cuda`")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def gpu_env(fake_cifar, tmp_path) -> dict:
    """Environment for real `hpo` processes on the GPU: offline, fake data, fast heartbeats."""
    return {
        **os.environ,
        "HPO_OFFLINE": "1",
        "HPO_DATA_DIR": str(fake_cifar),
        "HPO_ARTIFACTS": str(tmp_path / "artifacts"),
        "HPO_HEARTBEAT_SECONDS": "1",
        "HPO_PACKING_DIR": str(tmp_path / "packing"),
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


@pytest.fixture
def deterministic():
    """torch's deterministic algorithms on (the trainer then leaves cuDNN's autotuner off), restored after."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(before)

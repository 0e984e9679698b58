"""Shared helpers for the model tests: knobs that make every family cheap on a CPU."""

from __future__ import annotations

import pytest
import torch

from hpo.models import variants

# Per family: overrides keeping the architecture (depth, blocks, layout) but shrinking width, so the
# whole zoo forwards and backwards in seconds. Transfer never touches pretrained weights here.
SMALL_KNOBS: dict[str, dict] = {
    "resnet": {"width": 4},
    "preact_resnet": {"width": 4},
    "vgg": {"width": 8},
    "densenet": {"growth_rate": 4},
    "transfer": {"pretrained": False, "input_size": 32},
    "cnn": {},
    "mlp": {},
    "linear": {},
}


def _family_of(name: str) -> str:
    return variants()[name][0] if name in variants() else name


@pytest.fixture
def small_knobs():
    """A function: family or variant name -> cheap knob overrides (keeps the variant's structure)."""
    return lambda name: dict(SMALL_KNOBS[_family_of(name)])


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME, offline: no test ever reaches the network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HPO_OFFLINE", "1")
    return tmp_path / "torch"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The models here are tiny (batch 2, narrow widths): a second intra-op thread only adds
    # synchronisation, and on a busy CI machine its spin-waits dominate. Restored afterwards so
    # other packages' tests keep the default.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""A model family is one new module plus one registration line, and then works everywhere.

The module below is what a user writes: a config dataclass of knobs and a builder, registered with
one ``@register_family`` line. Nothing else in hpo changes, and the family is then listed, built,
counted, sampled from a search space and trained by ``hpo train``.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from hpo.models import registry

FAMILY_MODULE = textwrap.dedent('''\
    """A two-layer convolutional net: the smallest family worth registering."""
    from dataclasses import dataclass

    from torch import nn

    from hpo.models.registry import register_family


    @dataclass
    class TwoConvConfig:
        width: int = 8  # channels of both convolutions

        def __post_init__(self):
            if not isinstance(self.width, int) or self.width < 1:
                raise ValueError(f"twoconv width must be an integer >= 1 (got {self.width!r})")


    @register_family("twoconv", TwoConvConfig, "two 3x3 convolutions, global pooling, a linear head")
    def build(config, num_classes):
        return nn.Sequential(
            nn.Conv2d(3, config.width, 3, padding=1), nn.ReLU(), nn.Conv2d(config.width, config.width, 3, padding=1),
            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(config.width, num_classes))
''')


@pytest.fixture
def twoconv(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry.families()))  # the plug-in leaves no trace
    path = tmp_path / "twoconv_family.py"
    path.write_text(FAMILY_MODULE)
    spec = importlib.util.spec_from_file_location("twoconv_family", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "twoconv_family", module)
    spec.loader.exec_module(module)
    return module


def test_one_module_one_registration_line(twoconv):
    assert FAMILY_MODULE.count("@register_family(") == 1  # the one registration line
    from hpo.models import count_params, create_model, families

    assert "twoconv" in families()
    model = create_model("twoconv", num_classes=4, width=6)
    assert count_params(model) == (3 * 9 * 6 + 6) + (6 * 9 * 6 + 6) + (6 * 4 + 4)
    with pytest.raises(ValueError, match="unknown knob 'depth' for model family 'twoconv'"):
        create_model("twoconv", depth=3)


def test_plugin_family_in_a_search_space(twoconv):
    from hpo.space import load_space

    space = load_space({"params": {"model": "twoconv", "twoconv.width": {"type": "int", "low": 4, "high": 16}}},
                       origin="space.yaml")
    assert space.families() == ["twoconv"]
    with pytest.raises(Exception, match="twoconv.width"):
        load_space({"params": {"model": "twoconv", "twoconv.width": {"choices": [0, 4]}}}, origin="space.yaml")


def test_plugin_family_trains_with_hpo_train(twoconv, fake_cifar):
    from hpo.cli import app

    result = CliRunner().invoke(app, ["train", "--model", "twoconv", "--set", "width=4", "--dataset", "minicifar",
                                      "--data-dir", str(fake_cifar), "--epochs", "1", "--set", "batch_size=16"])
    assert result.exit_code == 0, result.output
    assert "val_accuracy" in result.output or "val acc" in result.output.lower()

"""Trial configuration: routing a trial's values, typed configs that refuse unknown keys, the model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hpo.errors import ConfigError
from hpo.models import count_params, create_model
from hpo.models.densenet import DenseNetConfig
from hpo.train import seed_everything
from hpo.train_config import TrainConfig, TrainConfigError
from hpo.trial_config import TrialConfig, split_model_overrides

BASE = TrainConfig.from_dict({"epochs": 2, "seed": 5, "batch_size": 64})


def test_from_params_routes_by_name():
    config = TrialConfig.from_params(
        {"model": "resnet", "resnet.depth": 18, "resnet.width": 32, "lr": 0.1, "augment": "flip"}, BASE)
    assert config.family == "resnet"
    assert (config.model.depth, config.model.width) == (18, 32)
    assert config.train == dataclasses.replace(BASE, lr=0.1, augment="flip")


def test_from_params_refuses_other_family_and_missing_model():
    with pytest.raises(ConfigError, match="vgg.depth is a knob of vgg, but model is resnet"):
        TrialConfig.from_params({"model": "resnet", "vgg.depth": 16}, BASE)
    with pytest.raises(ConfigError, match="no model"):
        TrialConfig.from_params({"lr": 0.1}, BASE)


def test_from_params_builds_both_configs_over_the_base():
    params = {"model": "densenet", "densenet.growth_rate": 8, "densenet.depth": "cifar", "lr": 0.2, "momentum": 0.8}
    config = TrialConfig.from_params(params, BASE)
    assert config.family == "densenet"
    assert isinstance(config.model, DenseNetConfig) and config.model.growth_rate == 8
    assert config.train == dataclasses.replace(BASE, lr=0.2, momentum=0.8)
    assert config.params == params
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.family = "resnet"  # type: ignore[misc]


def test_from_params_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="unknown knob 'colour' for model family 'densenet'"):
        TrialConfig.from_params({"model": "densenet", "densenet.colour": 3}, BASE)
    with pytest.raises(TrainConfigError, match="unknown trainer option 'learning_rate'"):
        TrialConfig.from_params({"model": "densenet", "learning_rate": 0.1}, BASE)
    with pytest.raises(TrainConfigError, match="trainer option lr must be a number > 0"):
        TrialConfig.from_params({"model": "densenet", "lr": 0.0}, BASE)


def test_build_model_seeds_then_builds_like_create_model():
    params = {"model": "resnet", "resnet.depth": 10, "resnet.width": 8}
    config = TrialConfig.from_params(params, BASE)
    torch.manual_seed(123)  # the global RNG state before must not matter
    model = config.build_model(num_classes=4)
    seed_everything(BASE.seed)
    expected = create_model("resnet", num_classes=4, depth=10, width=8)
    assert count_params(model) == count_params(expected)
    for (name, ours), (_, theirs) in zip(model.state_dict().items(), expected.state_dict().items()):
        assert torch.equal(ours, theirs), name
    assert torch.equal(next(config.build_model(4).parameters()), next(model.parameters()))


def test_split_model_overrides_routes_and_types():
    family, knobs, options = split_model_overrides("resnet18", ["width=16", "lr=0.1", "milestones=0.5,0.75"])
    assert family == "resnet"
    assert knobs == {"width": 16}
    assert options == {"lr": 0.1, "milestones": (0.5, 0.75)}
    with pytest.raises(ConfigError, match="is neither a knob of resnet"):
        split_model_overrides("resnet", ["colour=3"])

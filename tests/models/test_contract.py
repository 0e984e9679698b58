"""Contract tests generated from the registry: every family and every variant builds, runs forward
and backward, and behaves the same way with respect to knobs and the number of classes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hpo.errors import ConfigError
from hpo.models import create_model, families, list_models, make_config, variants

ALL_VARIANTS = sorted(variants())
ALL_FAMILIES = sorted(families())


def _forward_backward(model: nn.Module, num_classes: int) -> None:
    torch.manual_seed(0)
    model.train()
    x = torch.randn(2, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable, "a model must have something to train"
    for name, param in trainable:
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for _, p in trainable)


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_variant_forward_backward(name, small_knobs):
    model = create_model(name, num_classes=10, **small_knobs(name))
    _forward_backward(model, 10)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_family_forward_backward(family, small_knobs):
    model = create_model(family, num_classes=7, **small_knobs(family))
    _forward_backward(model, 7)


def test_required_variants_are_registered():
    required = {
        "resnet10", "resnet18", "resnet34", "resnet50", "preact_resnet18", "preact_resnet34",
        "densenet121", "densenet_cifar", "densenet_mini", "vgg11", "vgg13", "vgg16", "vgg19",
        "softmax", "mlp1024", "cnn_stride", "cnn_maxpool", "resnet18_pretrained", "resnet18_frozen",
    }
    assert required <= set(variants())
    assert {"resnet", "preact_resnet", "densenet", "vgg", "linear", "mlp", "cnn", "transfer"} <= set(families())
    assert set(list_models("vgg*")) == {"vgg", "vgg11", "vgg13", "vgg16", "vgg19"}


def _last_linear(model: nn.Module) -> str:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_num_classes_changes_only_the_head(name):
    knobs = {"pretrained": False} if variants()[name][0] == "transfer" else {}
    with torch.device("meta"):  # shapes only: no weights allocated
        ten = create_model(name, num_classes=10, **knobs)
        hundred = create_model(name, num_classes=100, **knobs)
    shapes10 = {k: v.shape for k, v in ten.state_dict().items()}
    shapes100 = {k: v.shape for k, v in hundred.state_dict().items()}
    assert shapes10.keys() == shapes100.keys()
    changed = {k for k in shapes10 if shapes10[k] != shapes100[k]}
    head = _last_linear(ten)
    assert changed == {f"{head}.weight", f"{head}.bias"}
    assert shapes100[f"{head}.weight"][0] == 100


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_unknown_knob_is_refused_by_name(family):
    with pytest.raises(ValueError, match="colour_depth"):
        make_config(family, colour_depth=3)


def test_unknown_knob_on_a_variant_is_refused():
    with pytest.raises(ValueError, match="'depht'"):
        create_model("resnet18", depht=34)


def test_unknown_model_name_is_refused():
    with pytest.raises(ConfigError, match="unknown model 'resnet19'"):
        create_model("resnet19")


def test_model_errors_are_config_errors_and_value_errors():
    # The CLI prints ConfigErrors without a traceback; Python callers may catch ValueError.
    for bad in ({"depht": 18}, {"depth": 17}):
        with pytest.raises(ConfigError):
            make_config("resnet", **bad)
        with pytest.raises(ValueError):
            make_config("resnet", **bad)


def test_in_channels_is_not_a_knob():
    for family in ALL_FAMILIES:
        with pytest.raises(ValueError, match="in_channels"):
            make_config(family, in_channels=1)


@pytest.mark.parametrize(
    ("family", "knobs", "message"),
    [
        ("resnet", {"depth": 17}, "depth must be one of 10, 18, 34, 50, 101, 152"),
        ("resnet", {"block": "wide"}, "block must be one of basic, bottleneck"),
        ("resnet", {"width": 0}, "width must be an integer >= 1"),
        ("resnet", {"blocks": []}, "blocks must be a list"),
        ("preact_resnet", {"depth": 20}, "model preact_resnet: depth"),
        ("densenet", {"depth": 100}, "depth must be one of 121, 169, 201, 161, cifar"),
        ("densenet", {"reduction": 0}, "reduction must be a number in \\(0, 1\\]"),
        ("vgg", {"depth": 12}, "depth must be one of 11, 13, 16, 19"),
        ("vgg", {"batch_norm": "yes"}, "batch_norm must be true or false"),
        ("mlp", {"dropout": 1.0}, "dropout must be a number in \\[0, 1\\)"),
        ("mlp", {"activation": "tanh"}, "activation must be one of relu, leaky_relu, selu, gelu"),
        ("cnn", {"downsample": "avgpool"}, "downsample must be one of stride, maxpool"),
        ("cnn", {"depth": 6, "downsample": "maxpool"}, "shrink a 32x32 image to nothing"),
        ("transfer", {"mode": "partial"}, "mode must be one of frozen, finetune, scratch"),
        ("transfer", {"backbone": "vit_b_16"}, "backbone must be one of"),
    ],
)
def test_bad_knob_value_is_a_config_error(family, knobs, message):
    with pytest.raises(ConfigError, match=message) as info:
        make_config(family, **knobs)
    assert str(list(knobs.values())[0]) in str(info.value) or "image" in str(info.value)

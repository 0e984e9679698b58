"""Parameter and MAC counts: hand-computed small models, the kuangliu reference counts, and the
tables that ``hpo models`` prints."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from hpo.models import (
    count_macs,
    count_params,
    create_model,
    describe_families,
    families,
    model_stats,
    reference_table,
    variants,
)

# Parameter counts of kuangliu/pytorch-cifar's models for 10 classes, and of softmax regression
# on 3x32x32 inputs (3072 * 10 weights + 10 biases).
KUANGLIU_PARAMS = {
    "resnet18": 11_173_962,
    "resnet50": 23_520_842,
    "preact_resnet18": 11_171_146,
    "densenet121": 6_956_298,
    "densenet_cifar": 1_000_618,
    "vgg16": 14_728_266,
    "softmax": 30_730,
}


@pytest.mark.parametrize(("name", "expected"), sorted(KUANGLIU_PARAMS.items()))
def test_param_counts_match_the_references(name, expected):
    with torch.device("meta"):  # counting needs shapes only
        model = create_model(name, num_classes=10)
    assert count_params(model) == expected


def test_meta_stats_equal_a_real_build():
    model = create_model("cnn_bn")
    assert model_stats("cnn_bn") == (count_params(model), count_macs(model))


def test_count_params_counts_frozen_parameters_too():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert count_params(model) == (4 * 3 + 3) + (3 * 2 + 2)


def test_count_macs_of_a_hand_computable_model():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 32 * 32, 10))
    conv_macs = (8 * 32 * 32) * (3 * 3 * 3)  # one 3x3x3 dot product per output value
    linear_macs = 8 * 32 * 32 * 10
    assert count_macs(model, (3, 32, 32)) == conv_macs + linear_macs


def test_count_macs_scales_with_input_and_stride():
    model = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2))
    assert count_macs(model, (3, 32, 32)) == (4 * 16 * 16) * (3 * 5 * 5)
    assert count_macs(model, (3, 64, 64)) == (4 * 32 * 32) * (3 * 5 * 5)


def test_count_macs_leaves_the_model_untouched():
    model = create_model("cnn_bn")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model)
    assert model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included


def test_resnet18_costs_about_056_gmacs():
    # The commonly quoted cost of CIFAR ResNet18 is 0.56 GMACs per image.
    _, macs = model_stats("resnet18")
    assert 0.55e9 < macs < 0.57e9


def _params(name: str, **knobs) -> int:
    with torch.device("meta"):
        return count_params(create_model(name, **knobs))


def test_resnet_width_scales_params_quadratically():
    full = _params("resnet18", width=64)
    half = _params("resnet18", width=32)
    assert 0.24 < half / full < 0.26
    assert _params("resnet34") > full > _params("resnet10")


def test_vgg_width_scales_params_quadratically():
    full = _params("vgg16", width=64)
    half = _params("vgg16", width=32)
    assert 0.24 < half / full < 0.26


def test_densenet_growth_rate_is_its_width_knob():
    small = _params("densenet", depth="cifar")
    large = _params("densenet", depth="cifar", growth_rate=24)
    assert 3.5 < large / small < 4.5  # convs scale with growth_rate squared


def test_width_scales_macs_quadratically():
    _, full = model_stats("resnet10", width=16)
    _, half = model_stats("resnet10", width=8)
    assert 0.24 < half / full < 0.26


def test_reference_table_rows():
    names = ["softmax", "cnn_stride", "densenet_mini", "resnet18_pretrained", "resnet18_frozen"]
    table = reference_table(num_classes=10, names=names)
    assert [name for name, _, _ in table] == names
    by_name = {name: (params, macs) for name, params, macs in table}
    assert by_name["softmax"] == (30_730, 30_720)
    assert by_name["cnn_stride"][0] == count_params(create_model("cnn_stride"))
    assert all(params > 0 and macs > 0 for params, macs in by_name.values())
    # Transfer variants count the same architecture whatever the mode; no weights are loaded.
    assert by_name["resnet18_pretrained"] == by_name["resnet18_frozen"]
    assert reference_table(num_classes=100, names=["softmax"]) == [("softmax", 307_300, 307_200)]


def test_reference_table_lists_every_variant_by_default(monkeypatch, tmp_path):
    # Only the listing is checked here; the rows themselves are checked above. An empty cache
    # (hpo.models.stats_cache) counts every variant once.
    import hpo.models.stats as stats

    monkeypatch.setenv("HPO_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(stats, "model_stats", lambda name, num_classes: calls.append(name) or (1, 1))
    assert [name for name, _, _ in reference_table()] == sorted(variants()) == calls


def test_describe_families_lists_knobs_with_types_and_defaults():
    described = {name: (description, knobs) for name, description, knobs in describe_families()}
    assert set(described) == set(families())
    for name, (description, knobs) in described.items():
        assert description
        expected = [(f.name, f.default) for f in dataclasses.fields(families()[name].config_cls)
                    if f.default is not dataclasses.MISSING]
        assert [(k, d) for k, _, d in knobs if (k, d) in expected] == expected
    resnet_knobs = {k: (t, d) for k, t, d in described["resnet"][1]}
    assert resnet_knobs["depth"] == ("int", 18)
    assert resnet_knobs["blocks"] == ("list[int] | None", None)
    cnn_knobs = {k: (t, d) for k, t, d in described["cnn"][1]}
    assert cnn_knobs["hidden"] == ("list[int]", [])

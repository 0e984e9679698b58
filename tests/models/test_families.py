"""Family-specific structure: the knobs build what they say."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hpo.models import count_params, create_model, make_config


def _modules(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_resnet18_matches_the_kuangliu_layout():
    with torch.device("meta"):
        model = create_model("resnet18")
    stem = model.conv1
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride) == (3, 64, (3, 3), (1, 1))
    assert not _modules(model, nn.MaxPool2d)
    assert [len(stage) for stage in model.layers] == [2, 2, 2, 2]
    assert [stage[0].conv1.out_channels for stage in model.layers] == [64, 128, 256, 512]
    # Projection shortcuts (1x1 conv + BN) exactly where the shape changes: the first block of stages 2-4.
    projections = [len(block.shortcut) for stage in model.layers for block in stage]
    assert projections == [0, 0, 2, 0, 2, 0, 2, 0]
    assert model.linear.in_features == 512


def test_resnet_depth_picks_bottleneck_blocks():
    with torch.device("meta"):
        model = create_model("resnet50")
    assert [len(stage) for stage in model.layers] == [3, 4, 6, 3]
    assert model.layers[0][0].conv3.out_channels == 256  # 64 * expansion 4
    assert model.linear.in_features == 2048


def test_resnet_blocks_override_depth():
    model = create_model("resnet", depth=152, blocks=[1, 2], width=8, block="bottleneck")
    assert [len(stage) for stage in model.layers] == [1, 2]
    assert model.linear.in_features == 16 * 4
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_activation_knob_replaces_every_relu():
    model = create_model("resnet18", width=4, activation="gelu")
    assert _modules(model, nn.GELU)
    assert not _modules(model, nn.ReLU)
    model = create_model("cnn", activation="leaky_relu")
    assert _modules(model, nn.LeakyReLU) and not _modules(model, nn.ReLU)


def test_dropout_knob_sits_before_the_classifier():
    model = create_model("resnet18", width=4, dropout=0.3)
    assert model.dropout.p == 0.3
    model.eval()  # dropout off: deterministic
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    features = torch.ones(4, model.linear.in_features)
    assert not torch.equal(model.linear(model.dropout(features)), model.linear(features))


def test_preact_block_order_and_shortcut():
    with torch.device("meta"):
        model = create_model("preact_resnet18")
    assert not _modules(model.conv1, nn.BatchNorm2d)
    first_down = model.layers[1][0]
    assert isinstance(first_down.shortcut, nn.Conv2d) and first_down.shortcut.stride == (2, 2)
    assert first_down.bn1.num_features == 64  # pre-activation: BN on the block's input
    assert model.layers[0][0].shortcut is None


def test_densenet_depth_string_is_accepted():
    assert make_config("densenet", depth="121").depth == 121
    assert make_config("densenet", depth="cifar").resolved() == ([6, 12, 24, 16], 12)
    assert make_config("densenet", depth=161).resolved() == ([6, 12, 36, 24], 48)


def test_densenet_mini_has_three_dense_blocks():
    model = create_model("densenet_mini")
    transitions = [m for m in model.features if type(m).__name__ == "Transition"]
    assert len(transitions) == 2
    assert model.conv1.out_channels == 24  # 2 * growth_rate 12
    # 24 + 2*12 = 48 -> 24; 24 + 4*12 = 72 -> 36; 36 + 4*12 = 84 features
    assert model.linear.in_features == 84
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_vgg_batch_norm_and_width_knobs():
    plain = create_model("vgg11", width=16, batch_norm=False)
    assert not _modules(plain, nn.BatchNorm2d)
    convs = _modules(plain, nn.Conv2d)
    assert [c.out_channels for c in convs] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert len(_modules(plain, nn.MaxPool2d)) == 5
    assert len(_modules(create_model("vgg19", width=8), nn.Conv2d)) == 16


def test_mlp_depth_width_and_hidden():
    model = create_model("mlp", depth=2, width=100)
    assert count_params(model) == (3072 * 100 + 100) + (100 * 100 + 100) + (100 * 10 + 10)
    model = create_model("mlp", hidden=[64], depth=5, batch_norm=True, dropout=0.5)
    linears = _modules(model, nn.Linear)
    assert [(m.in_features, m.out_features) for m in linears] == [(3072, 64), (64, 10)]
    assert len(_modules(model, nn.BatchNorm1d)) == 1
    assert _modules(model, nn.Dropout)[0].p == 0.5
    assert count_params(create_model("mlp", hidden=[])) == 30_730  # no hidden layer: softmax regression


def test_cnn_stride_is_two_strided_convs_and_a_linear_layer():
    model = create_model("cnn_stride")
    convs = _modules(model, nn.Conv2d)
    assert [(c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [(16, (5, 5), (2, 2), (2, 2))] * 2
    assert not _modules(model, nn.MaxPool2d)
    # 32 -> 16 -> 8: the classifier sees 16 * 8 * 8 features
    assert count_params(model) == (3 * 16 * 25 + 16) + (16 * 16 * 25 + 16) + (16 * 8 * 8 * 10 + 10)


def test_cnn_maxpool_pools_after_stride_one_convs():
    model = create_model("cnn_maxpool")
    assert all(c.stride == (1, 1) for c in _modules(model, nn.Conv2d))
    assert len(_modules(model, nn.MaxPool2d)) == 2
    assert model.classifier.in_features == 16 * 8 * 8


def test_cnn_depth_width_double_channels_and_channels_override():
    model = create_model("cnn", depth=3, width=8, kernel_size=3, hidden=[32], batch_norm=True)
    assert [c.out_channels for c in _modules(model, nn.Conv2d)] == [8, 16, 32]
    assert model.classifier.in_features == 32
    assert model.hidden[0].in_features == 32 * 4 * 4
    assert len(_modules(model, nn.BatchNorm2d)) == 3 and len(_modules(model, nn.BatchNorm1d)) == 1
    model = create_model("cnn", channels=[5], depth=3)
    assert [c.out_channels for c in _modules(model, nn.Conv2d)] == [5]


@pytest.mark.parametrize("kernel_size", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("downsample", ["stride", "maxpool"])
def test_cnn_flatten_size_matches_the_feature_map(kernel_size, downsample):
    model = create_model("cnn", channels=[4, 4, 4], kernel_size=kernel_size, downsample=downsample)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_image_size_knob_for_flat_models():
    assert create_model("linear", image_size=8)(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    assert create_model("mlp", width=16, image_size=16)(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert create_model("cnn", image_size=64)(torch.randn(2, 3, 64, 64)).shape == (2, 10)

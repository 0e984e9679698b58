"""DenseNet-BC (Huang et al. 2017) for 32x32 images, laid out as kuangliu/pytorch-cifar's
``densenet.py``.

A 3x3 stem convolution to ``2 * growth_rate`` channels; dense blocks of bottleneck layers
(BN-act-1x1 conv to ``4 * growth_rate``, BN-act-3x3 conv to ``growth_rate``, concatenated onto
the input); between blocks a transition (BN-act-1x1 conv compressing by ``reduction``, 2x2 average
pool); then BN-act, global average pooling and a linear head. Any number of dense blocks works
(kuangliu's code has four and pools 4x4; adaptive pooling is the same there and has no parameters,
so DenseNet121 keeps its 6,956,298 parameters and densenet_cifar its 1,000,618).

The width knob of this family is ``growth_rate`` (channels each layer adds; the stem has twice as
many): there is no separate ``width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from hpo.models.common import check_activation, check_choice, check_dropout, check_int, check_int_list, make_activation
from hpo.models.registry import ModelConfigError, register_family, register_variant

# preset -> (layers per dense block, growth rate)
DENSENET_PRESETS: dict[int | str, tuple[tuple[int, ...], int]] = {
    121: ((6, 12, 24, 16), 32),
    169: ((6, 12, 32, 32), 32),
    201: ((6, 12, 48, 32), 32),
    161: ((6, 12, 36, 24), 48),
    "cifar": ((6, 12, 24, 16), 12),
}


@dataclass
class DenseNetConfig:
    """Knobs of the ``densenet`` family.

    ``depth`` is a preset (121, 169, 201, 161 or ``cifar``) giving the layers per dense block and the
    growth rate; ``block_config`` and ``growth_rate`` override the preset's.
    """

    depth: int | str = 121  # 121 | 169 | 201 | 161 | "cifar"
    block_config: list[int] | None = None  # layers per dense block (any count >= 1); overrides depth
    growth_rate: int | None = None  # channels added per layer (the width knob); None = preset's
    reduction: float = 0.5  # transition compression: out channels = floor(in * reduction)
    activation: str = "relu"  # relu | leaky_relu | selu | gelu
    dropout: float = 0.0  # before the classifier

    def __post_init__(self) -> None:
        # "--set depth=121" arrives as a string; presets are keyed by int.
        if isinstance(self.depth, str) and self.depth.isdigit():
            self.depth = int(self.depth)
        if self.block_config is None or self.growth_rate is None:
            check_choice("densenet", "depth", self.depth, DENSENET_PRESETS)
        if self.block_config is not None:
            self.block_config = check_int_list("densenet", "block_config", self.block_config)
        if self.growth_rate is not None:
            check_int("densenet", "growth_rate", self.growth_rate)
        reduction = self.reduction
        if isinstance(reduction, bool) or not isinstance(reduction, (int, float)) or not 0 < reduction <= 1:
            raise ModelConfigError(f"model densenet: reduction must be a number in (0, 1] (got {self.reduction!r})")
        check_activation("densenet", self.activation)
        check_dropout("densenet", self.dropout)

    def resolved(self) -> tuple[list[int], int]:
        """The layers per dense block and the growth rate this config describes."""
        preset_blocks, preset_growth = DENSENET_PRESETS.get(self.depth, (None, None))
        block_config = self.block_config if self.block_config is not None else list(preset_blocks)
        growth_rate = self.growth_rate if self.growth_rate is not None else preset_growth
        return block_config, growth_rate


class DenseLayer(nn.Module):
    """Bottleneck layer: BN-act-conv1x1 (4k), BN-act-conv3x3 (k); output concatenated to input."""

    def __init__(self, in_planes: int, growth_rate: int, activation: str) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.act(self.bn1(x)))
        out = self.conv2(self.act(self.bn2(out)))
        return torch.cat([out, x], 1)  # (N, in_planes + k, H, W)


class Transition(nn.Module):
    """BN-act-conv1x1 to ``out_planes``, then 2x2 average pooling."""

    def __init__(self, in_planes: int, out_planes: int, activation: str) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)
        self.act = make_activation(activation)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.act(self.bn(x))))


class DenseNet(nn.Module):
    """Generic DenseNet-BC with any number of dense blocks.

    Args:
        block_config: layers in each dense block.
        growth_rate: channels each layer adds (the stem has ``2 * growth_rate``).
        reduction: transition compression factor.
        num_classes: outputs of the head.
        activation: activation name.
        dropout: dropout probability before the head.
    """

    def __init__(
        self,
        block_config: list[int],
        growth_rate: int = 12,
        reduction: float = 0.5,
        num_classes: int = 10,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        num_planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(3, num_planes, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for i, n_layers in enumerate(block_config):
            layers = []
            for _ in range(n_layers):
                layers.append(DenseLayer(num_planes, growth_rate, activation))
                num_planes += growth_rate
            stages.append(nn.Sequential(*layers))
            if i < len(block_config) - 1:
                out_planes = int(math.floor(num_planes * reduction))
                stages.append(Transition(num_planes, out_planes, activation))
                num_planes = out_planes
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(num_planes)
        self.act = make_activation(activation)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(num_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(self.conv1(x))  # (N, C, 4, 4) for four blocks at 32x32
        out = torch.flatten(self.pool(self.act(self.bn(out))), 1)  # (N, C)
        return self.linear(self.dropout(out))


@register_family("densenet", DenseNetConfig, "DenseNet-BC (bottleneck + compression), kuangliu CIFAR layout")
def build(config: DenseNetConfig, num_classes: int) -> nn.Module:
    """Build a DenseNet from its config.

    Args:
        config: the family's knobs.
        num_classes: outputs of the head.

    Returns:
        The DenseNet module.
    """
    block_config, growth_rate = config.resolved()
    return DenseNet(block_config, growth_rate, config.reduction, num_classes, config.activation, config.dropout)


register_variant("densenet121", "densenet", depth=121)
register_variant("densenet169", "densenet", depth=169)
register_variant("densenet201", "densenet", depth=201)
register_variant("densenet161", "densenet", depth=161)
register_variant("densenet_cifar", "densenet", depth="cifar")
register_variant("densenet_mini", "densenet", block_config=[2, 4, 4], growth_rate=12)

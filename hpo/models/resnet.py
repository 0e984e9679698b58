"""ResNet for 32x32 images (He et al. 2016), laid out as kuangliu/pytorch-cifar's ``resnet.py``.

A 3x3 stem convolution (no max-pool, so a 32x32 input reaches the last stage at 4x4), four stages
of basic or bottleneck blocks at ``width * [1, 2, 4, 8]`` channels with strides 1, 2, 2, 2, a 1x1
convolution + BN shortcut wherever the shape changes, global average pooling and a linear head.
At depth 18, width 64 this is exactly kuangliu's ResNet18 (11,173,962 parameters for 10 classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hpo.models.common import (
    check_activation,
    check_choice,
    check_dropout,
    check_int,
    check_int_list,
    make_activation,
)
from hpo.models.registry import register_family, register_variant

# depth -> (block type, blocks per stage), as DECISIONS.md fixes them.
RESNET_DEPTHS: dict[int, tuple[str, list[int]]] = {
    10: ("basic", [1, 1, 1, 1]),
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}
BLOCK_TYPES = ("basic", "bottleneck")


@dataclass
class ResNetConfig:
    """Knobs of the ``resnet`` family (shared by ``preact_resnet``).

    ``depth`` picks the block type and blocks per stage (10/18/34 basic, 50/101/152 bottleneck);
    ``blocks`` (one count per stage, any number of stages) overrides it, with ``block``
    (default basic when ``blocks`` is given, otherwise the depth's type).
    """

    depth: int = 18  # 10 | 18 | 34 | 50 | 101 | 152
    blocks: list[int] | None = None  # blocks per stage; overrides depth
    block: str | None = None  # basic | bottleneck; None = the depth's (basic with `blocks`)
    width: int = 64  # first stage's channels; stage i has width * 2**i (reference 64)
    activation: str = "relu"  # relu | leaky_relu | selu | gelu
    dropout: float = 0.0  # before the classifier

    family = "resnet"  # error messages name the family; a class attribute, not a knob

    def __post_init__(self) -> None:
        name = self.family
        if self.blocks is None:
            check_choice(name, "depth", self.depth, RESNET_DEPTHS)
        else:
            self.blocks = check_int_list(name, "blocks", self.blocks)
        if self.block is not None:
            check_choice(name, "block", self.block, BLOCK_TYPES)
        check_int(name, "width", self.width)
        check_activation(name, self.activation)
        check_dropout(name, self.dropout)

    def stages(self) -> tuple[str, list[int]]:
        """The block type and the blocks per stage this config describes."""
        if self.blocks is not None:
            return self.block or "basic", list(self.blocks)
        block, blocks = RESNET_DEPTHS[self.depth]
        return self.block or block, list(blocks)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity (or 1x1 conv-BN) shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act = make_activation(activation)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes * self.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * self.expansion),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand to ``4 * planes``, each followed by BN."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.act = make_activation(activation)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes * self.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * self.expansion),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act(out + self.shortcut(x))


class ResNet(nn.Module):
    """Generic CIFAR ResNet: stem, ``len(blocks)`` stages, average pool, dropout, linear head.

    Args:
        block: the block class (``BasicBlock`` or ``Bottleneck``).
        blocks: number of blocks in each stage; stage i has ``width * 2**i`` planes, stride 2 from
            the second stage on.
        width: planes of the stem and the first stage.
        num_classes: outputs of the head.
        activation: activation name (see :func:`hpo.models.common.make_activation`).
        dropout: dropout probability before the head.
    """

    def __init__(
        self,
        block: type[nn.Module],
        blocks: list[int],
        width: int = 64,
        num_classes: int = 10,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = make_activation(activation)
        in_planes = width
        stages = []
        for i, n_blocks in enumerate(blocks):
            planes = width * 2**i
            layers = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(block(in_planes, planes, stride, activation))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layers = nn.Sequential(*stages)
        # Adaptive pooling equals kuangliu's avg_pool2d(4) at 32x32 and also accepts other sizes.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))  # (N, width, 32, 32)
        out = self.layers(out)  # (N, C, 4, 4) for four stages
        out = torch.flatten(self.pool(out), 1)  # (N, C)
        return self.linear(self.dropout(out))


@register_family("resnet", ResNetConfig, "ResNet (basic/bottleneck blocks), kuangliu CIFAR layout")
def build(config: ResNetConfig, num_classes: int) -> nn.Module:
    """Build a ResNet from its config.

    Args:
        config: the family's knobs.
        num_classes: outputs of the head.

    Returns:
        The ResNet module.
    """
    block_type, blocks = config.stages()
    block = BasicBlock if block_type == "basic" else Bottleneck
    return ResNet(block, blocks, config.width, num_classes, config.activation, config.dropout)


register_variant("resnet10", "resnet", depth=10)
register_variant("resnet18", "resnet", depth=18)
register_variant("resnet34", "resnet", depth=34)
register_variant("resnet50", "resnet", depth=50)
register_variant("resnet101", "resnet", depth=101)
register_variant("resnet152", "resnet", depth=152)

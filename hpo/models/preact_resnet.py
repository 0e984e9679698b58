"""Pre-activation ResNet (He et al. 2016, "Identity Mappings"), as kuangliu/pytorch-cifar's
``preact_resnet.py``.

Each block runs BN-activation before each convolution; the shortcut is the identity or a bare 1x1
convolution (no BN) applied to the pre-activated input. As in kuangliu's code, the stem is a bare
3x3 convolution and there is no final BN-activation before pooling, so PreActResNet18 has
11,171,146 parameters for 10 classes. Knobs are those of ``resnet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hpo.models.common import make_activation
from hpo.models.registry import register_family, register_variant
from hpo.models.resnet import ResNetConfig


@dataclass
class PreActResNetConfig(ResNetConfig):
    """Knobs of ``preact_resnet``: the same as ``resnet`` (depth/blocks/block/width/...)."""

    family = "preact_resnet"


class PreActBlock(nn.Module):
    """BN-act-conv3x3, BN-act-conv3x3, plus the shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.act = make_activation(activation)
        self.shortcut = None
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Conv2d(in_planes, planes * self.expansion, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(x))
        # A projection shortcut sees the pre-activated input; the identity sees the raw one.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act(self.bn2(out)))
        return out + shortcut


class PreActBottleneck(nn.Module):
    """BN-act-conv1x1, BN-act-conv3x3 (strided), BN-act-conv1x1 to ``4 * planes``."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, activation: str) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.act = make_activation(activation)
        self.shortcut = None
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Conv2d(in_planes, planes * self.expansion, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act(self.bn2(out)))
        out = self.conv3(self.act(self.bn3(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Generic pre-activation ResNet: bare stem conv, stages, average pool, dropout, linear head.

    Args:
        block: ``PreActBlock`` or ``PreActBottleneck``.
        blocks: number of blocks in each stage (stage i: ``width * 2**i`` planes).
        width: planes of the stem and the first stage.
        num_classes: outputs of the head.
        activation: activation name.
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
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.conv1(x))  # (N, C, 4, 4) for four stages at 32x32
        out = torch.flatten(self.pool(out), 1)  # (N, C)
        return self.linear(self.dropout(out))


@register_family("preact_resnet", PreActResNetConfig, "Pre-activation ResNet, kuangliu CIFAR layout")
def build(config: PreActResNetConfig, num_classes: int) -> nn.Module:
    """Build a pre-activation ResNet from its config.

    Args:
        config: the family's knobs.
        num_classes: outputs of the head.

    Returns:
        The PreActResNet module.
    """
    block_type, blocks = config.stages()
    block = PreActBlock if block_type == "basic" else PreActBottleneck
    return PreActResNet(block, blocks, config.width, num_classes, config.activation, config.dropout)


register_variant("preact_resnet18", "preact_resnet", depth=18)
register_variant("preact_resnet34", "preact_resnet", depth=34)
register_variant("preact_resnet50", "preact_resnet", depth=50)

"""VGG (Simonyan & Zisserman 2015) for 32x32 images, laid out as kuangliu/pytorch-cifar's ``vgg.py``.

3x3 conv (with bias) - BN - activation layers and 2x2 max-pools following the configuration lists
below, then a linear head on the 512 (x width/64) features left at 1x1. VGG16 at width 64 has
14,728,266 parameters for 10 classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hpo.models.common import check_activation, check_bool, check_choice, check_dropout, check_int, make_activation
from hpo.models.registry import register_family, register_variant

# depth -> conv output channels at width 64, "M" = 2x2 max-pool (kuangliu's cfg).
VGG_LAYERS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


@dataclass
class VGGConfig:
    """Knobs of the ``vgg`` family."""

    depth: int = 16  # 11 | 13 | 16 | 19 weight layers
    width: int = 64  # first conv's channels; all convs scale by width/64 (reference 64)
    batch_norm: bool = True  # BN after each conv
    activation: str = "relu"  # relu | leaky_relu | selu | gelu
    dropout: float = 0.0  # before the classifier

    def __post_init__(self) -> None:
        check_choice("vgg", "depth", self.depth, VGG_LAYERS)
        check_int("vgg", "width", self.width)
        check_bool("vgg", "batch_norm", self.batch_norm)
        check_activation("vgg", self.activation)
        check_dropout("vgg", self.dropout)


class VGG(nn.Module):
    """Generic VGG: a conv/pool feature stack, then dropout and a linear head.

    Args:
        layers: conv output channels, with ``"M"`` for a 2x2 max-pool.
        num_classes: outputs of the head.
        batch_norm: put BN after each conv.
        activation: activation name.
        dropout: dropout probability before the head.
    """

    def __init__(
        self,
        layers: list[int | str],
        num_classes: int = 10,
        batch_norm: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        in_channels = 3
        for item in layers:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
                continue
            modules.append(nn.Conv2d(in_channels, item, 3, padding=1))
            if batch_norm:
                modules.append(nn.BatchNorm2d(item))
            modules.append(make_activation(activation, inplace=True))
            in_channels = item
        self.features = nn.Sequential(*modules)
        # Five pools take 32x32 to 1x1; adaptive pooling keeps other input sizes working.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.flatten(self.pool(self.features(x)), 1)  # (N, 512 * width / 64)
        return self.classifier(self.dropout(out))


@register_family("vgg", VGGConfig, "VGG 11/13/16/19 with batch norm, kuangliu CIFAR layout")
def build(config: VGGConfig, num_classes: int) -> nn.Module:
    """Build a VGG from its config.

    Args:
        config: the family's knobs.
        num_classes: outputs of the head.

    Returns:
        The VGG module.
    """
    # Scale every conv by width/64, keeping at least one channel.
    layers = [item if item == "M" else max(1, item * config.width // 64) for item in VGG_LAYERS[config.depth]]
    return VGG(layers, num_classes, config.batch_norm, config.activation, config.dropout)


register_variant("vgg11", "vgg", depth=11)
register_variant("vgg13", "vgg", depth=13)
register_variant("vgg16", "vgg", depth=16)
register_variant("vgg19", "vgg", depth=19)

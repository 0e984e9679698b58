"""Small plain CNNs of the classification practice: conv layers that halve the image each time,
then optional fully-connected layers and a linear classifier.

Each conv layer is ``kernel_size`` x ``kernel_size`` with ``kernel_size // 2`` padding and halves
the feature map either by stride 2 (``downsample: stride``) or by a stride-1 conv followed by a 2x2
max-pool (``downsample: maxpool``). For example ``cnn_stride`` is two 16@5x5 stride-2 conv layers
then one linear layer: 32x32 -> 16x16 -> 8x8, 16 * 8 * 8 features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from hpo.models.common import (
    check_activation,
    check_bool,
    check_choice,
    check_dropout,
    check_int,
    check_int_list,
    make_activation,
)
from hpo.models.registry import ModelConfigError, register_family, register_variant

DOWNSAMPLE = ("stride", "maxpool")


@dataclass
class CNNConfig:
    """Knobs of the ``cnn`` family.

    The conv layers' channels are ``channels`` when given, otherwise ``depth`` layers starting at
    ``width`` channels and doubling each layer (the defaults give [16, 32]).
    """

    channels: list[int] | None = None  # conv output channels per layer; overrides depth/width
    depth: int = 2  # conv layers when `channels` is not given
    width: int = 16  # first conv's channels when `channels` is not given; doubles per layer
    kernel_size: int = 5  # conv kernel side, padding kernel_size // 2
    downsample: str = "stride"  # stride: stride-2 convs | maxpool: stride-1 conv + 2x2 max-pool
    hidden: list[int] = field(default_factory=list)  # fully-connected layers before the classifier
    batch_norm: bool = False  # BN after each conv and hidden linear layer
    dropout: float = 0.0  # before each fully-connected layer (hidden ones and the classifier)
    activation: str = "relu"  # relu | leaky_relu | selu | gelu
    image_size: int = 32  # input side in pixels

    def __post_init__(self) -> None:
        if self.channels is not None:
            self.channels = check_int_list("cnn", "channels", self.channels)
        check_int("cnn", "depth", self.depth)
        check_int("cnn", "width", self.width)
        check_int("cnn", "kernel_size", self.kernel_size)
        check_choice("cnn", "downsample", self.downsample, DOWNSAMPLE)
        self.hidden = check_int_list("cnn", "hidden", self.hidden, min_len=0)
        check_bool("cnn", "batch_norm", self.batch_norm)
        check_dropout("cnn", self.dropout)
        check_activation("cnn", self.activation)
        check_int("cnn", "image_size", self.image_size)
        if self.feature_size() < 1:
            raise ModelConfigError(
                f"model cnn: {len(self.conv_channels())} downsampling conv layers shrink a "
                f"{self.image_size}x{self.image_size} image to nothing; use fewer layers (depth/channels)"
            )

    def conv_channels(self) -> list[int]:
        """The conv layers' output channels this config describes."""
        if self.channels is not None:
            return list(self.channels)
        return [self.width * 2**i for i in range(self.depth)]

    def feature_size(self) -> int:
        """Side of the feature map after the conv layers."""
        side, k = self.image_size, self.kernel_size
        for _ in self.conv_channels():
            if self.downsample == "stride":
                side = (side + 2 * (k // 2) - k) // 2 + 1
            else:
                side = (side + 2 * (k // 2) - k) + 1
                side //= 2
        return side


class CNN(nn.Module):
    """Generic plain CNN: conv stack, flatten, hidden linear layers, linear classifier.

    Args:
        config: the family's knobs (see :class:`CNNConfig`).
        num_classes: outputs.
    """

    def __init__(self, config: CNNConfig, num_classes: int = 10) -> None:
        super().__init__()
        k = config.kernel_size
        stride = 2 if config.downsample == "stride" else 1
        conv: list[nn.Module] = []
        in_channels = 3
        for channels in config.conv_channels():
            # BN's shift makes the conv bias redundant.
            conv.append(nn.Conv2d(in_channels, channels, k, stride=stride, padding=k // 2, bias=not config.batch_norm))
            if config.batch_norm:
                conv.append(nn.BatchNorm2d(channels))
            conv.append(make_activation(config.activation, inplace=True))
            if config.downsample == "maxpool":
                conv.append(nn.MaxPool2d(2))
            in_channels = channels
        self.features = nn.Sequential(*conv)
        in_features = in_channels * config.feature_size() ** 2
        fc: list[nn.Module] = []
        for units in config.hidden:
            if config.dropout > 0:
                fc.append(nn.Dropout(config.dropout))
            fc.append(nn.Linear(in_features, units, bias=not config.batch_norm))
            if config.batch_norm:
                fc.append(nn.BatchNorm1d(units))
            fc.append(make_activation(config.activation, inplace=True))
            in_features = units
        self.hidden = nn.Sequential(*fc)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.flatten(self.features(x), 1)  # (N, C * S * S)
        return self.classifier(self.dropout(self.hidden(out)))


@register_family("cnn", CNNConfig, "Plain CNN (strided or max-pooled convs, optional FC layers)")
def build(config: CNNConfig, num_classes: int) -> nn.Module:
    """Build a plain CNN from its config.

    Args:
        config: the family's knobs.
        num_classes: outputs.

    Returns:
        The CNN module.
    """
    return CNN(config, num_classes)


# The practice's ladder: strided convs, then max-pooling, then FC + dropout, then deeper with BN.
register_variant("cnn_stride", "cnn", channels=[16, 16], kernel_size=5, downsample="stride")
register_variant("cnn_maxpool", "cnn", channels=[16, 16], kernel_size=5, downsample="maxpool")
register_variant("cnn_fc", "cnn", channels=[16, 32], kernel_size=5, downsample="maxpool", hidden=[256], dropout=0.5)
register_variant(
    "cnn_bn", "cnn", channels=[32, 64, 128], kernel_size=3, downsample="maxpool", hidden=[256], batch_norm=True,
    dropout=0.3,
)

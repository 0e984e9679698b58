"""Multi-layer perceptron on the flattened image: [linear - BN - activation - dropout] x n, linear."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hpo.models.common import (
    check_activation,
    check_bool,
    check_dropout,
    check_int,
    check_int_list,
    make_activation,
)
from hpo.models.registry import register_family, register_variant


@dataclass
class MLPConfig:
    """Knobs of the ``mlp`` family.

    The hidden layers are ``hidden`` when given, otherwise ``depth`` layers of ``width`` units
    (the defaults give one hidden layer of 1024 units).
    """

    hidden: list[int] | None = None  # hidden layer sizes; overrides depth/width ([] = softmax regression)
    depth: int = 1  # number of hidden layers when `hidden` is not given
    width: int = 1024  # units per hidden layer when `hidden` is not given
    activation: str = "relu"  # relu | leaky_relu | selu | gelu
    batch_norm: bool = False  # BatchNorm1d after each hidden linear layer
    dropout: float = 0.0  # after each hidden layer's activation
    image_size: int = 32  # input side in pixels

    def __post_init__(self) -> None:
        if self.hidden is not None:
            self.hidden = check_int_list("mlp", "hidden", self.hidden, min_len=0)
        check_int("mlp", "depth", self.depth, low=0)
        check_int("mlp", "width", self.width)
        check_activation("mlp", self.activation)
        check_bool("mlp", "batch_norm", self.batch_norm)
        check_dropout("mlp", self.dropout)
        check_int("mlp", "image_size", self.image_size)

    def hidden_sizes(self) -> list[int]:
        """The hidden layer sizes this config describes."""
        return list(self.hidden) if self.hidden is not None else [self.width] * self.depth


class MLP(nn.Module):
    """Generic MLP classifier.

    Args:
        hidden: hidden layer sizes.
        num_classes: outputs.
        activation: activation name.
        batch_norm: BatchNorm1d after each hidden linear layer.
        dropout: dropout after each hidden activation.
        image_size: input side in pixels.
    """

    def __init__(
        self,
        hidden: list[int],
        num_classes: int = 10,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_features = 3 * image_size * image_size
        for units in hidden:
            # BN's shift makes the linear bias redundant.
            layers.append(nn.Linear(in_features, units, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers.append(make_activation(activation, inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_features = units
        self.hidden = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(torch.flatten(x, 1)))  # (N, 3*H*W) -> (N, classes)


@register_family("mlp", MLPConfig, "Multi-layer perceptron on the flattened image")
def build(config: MLPConfig, num_classes: int) -> nn.Module:
    """Build an MLP from its config.

    Args:
        config: the family's knobs.
        num_classes: outputs.

    Returns:
        The MLP module.
    """
    return MLP(
        config.hidden_sizes(), num_classes, config.activation, config.batch_norm, config.dropout, config.image_size
    )


register_variant("mlp1024", "mlp", hidden=[1024])
register_variant("mlp512x2", "mlp", hidden=[512, 512])

"""Softmax regression: one linear layer on the flattened image (the practice's first model)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hpo.models.common import check_int
from hpo.models.registry import register_family, register_variant


@dataclass
class LinearConfig:
    """Knobs of the ``linear`` family (no depth or width: it has a single layer)."""

    image_size: int = 32  # input height = width in pixels; inputs are 3 x image_size x image_size

    def __post_init__(self) -> None:
        check_int("linear", "image_size", self.image_size)


class LinearClassifier(nn.Module):
    """Flatten the image and apply one ``nn.Linear`` (logits of a softmax regression).

    Args:
        num_classes: outputs.
        image_size: input side in pixels.
    """

    def __init__(self, num_classes: int = 10, image_size: int = 32) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * image_size * image_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, 1))  # (N, 3*H*W) -> (N, classes)


@register_family("linear", LinearConfig, "Softmax regression on the flattened image")
def build(config: LinearConfig, num_classes: int) -> nn.Module:
    """Build a softmax-regression model.

    Args:
        config: the family's knobs.
        num_classes: outputs.

    Returns:
        The linear classifier.
    """
    return LinearClassifier(num_classes, config.image_size)


register_variant("softmax", "linear")

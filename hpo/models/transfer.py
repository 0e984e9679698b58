"""Transfer learning from an ImageNet-pretrained torchvision backbone.

The backbone is a torchvision model whose ImageNet classifier is replaced by ``nn.Identity`` (so
it outputs a feature vector), followed by optional dropout and a new linear head. Images arrive
at CIFAR size and are resized inside ``forward`` (bilinear) to ``input_size``. Three modes:

- ``finetune``: pretrained weights, every parameter trains (the trainer gives the backbone
  ``lr * backbone_lr_mult``);
- ``frozen``: pretrained weights, only the head trains; the backbone stays in eval mode (its BN
  statistics are ImageNet's) and its features can be cached;
- ``scratch``: the same architecture with random initialisation, for "fine-tuned vs from scratch".

Weights come from torchvision's weights enums through torch.hub's cache:
``$TORCH_HOME/hub/checkpoints/<file name of the weights URL>``. When that file is missing it is
downloaded, unless ``HPO_OFFLINE=1`` or the download server is unreachable, in which case a
:class:`~hpo.errors.WeightsNotFoundError` names the exact path to put the file at.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from hpo.errors import WeightsNotFoundError
from hpo.models.common import check_bool, check_choice, check_dropout, check_int
from hpo.models.registry import register_family, register_variant

MODES = ("frozen", "finetune", "scratch")
_CONNECT_TIMEOUT_S = 5.0  # how long to wait for the weights server before calling it offline


def _cut_fc(model: nn.Module) -> int:
    # ResNets: the whole classifier is `fc`.
    feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    return feature_dim


def _cut_last_linear(model: nn.Module) -> int:
    # MobileNetV3: keep the pretrained hidden layer of `classifier`, drop only its last Linear.
    feature_dim = model.classifier[-1].in_features
    model.classifier[-1] = nn.Identity()
    return feature_dim


# backbone name -> (torchvision constructor, ImageNet weights, classifier remover returning feature_dim)
BACKBONES: dict[str, tuple[Callable[..., nn.Module], Any, Callable[[nn.Module], int]]] = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1, _cut_fc),
    "resnet34": (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1, _cut_fc),
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V1, _cut_fc),
    "mobilenet_v3_small": (
        torchvision.models.mobilenet_v3_small,
        torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1,
        _cut_last_linear,
    ),
}


@dataclass
class TransferConfig:
    """Knobs of the ``transfer`` family."""

    backbone: str = "resnet18"  # resnet18 | resnet34 | resnet50 | mobilenet_v3_small
    mode: str = "finetune"  # frozen | finetune | scratch
    input_size: int = 224  # pixels the images are resized to (32, 64, 112, 224); 224 = ImageNet's
    pretrained: bool = True  # load ImageNet weights (ignored in scratch mode, which never does)
    dropout: float = 0.0  # before the head

    def __post_init__(self) -> None:
        check_choice("transfer", "backbone", self.backbone, BACKBONES)
        check_choice("transfer", "mode", self.mode, MODES)
        check_int("transfer", "input_size", self.input_size, low=32)
        check_bool("transfer", "pretrained", self.pretrained)
        check_dropout("transfer", self.dropout)


def weights_path(backbone: str) -> Path:
    """Where torch.hub's cache keeps the backbone's ImageNet weights (honours ``TORCH_HOME``).

    Args:
        backbone: a key of ``BACKBONES``.

    Returns:
        ``<torch hub dir>/checkpoints/<file name of the weights URL>``.
    """
    url = BACKBONES[backbone][1].url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _server_reachable(url: str) -> bool:
    # DNS lookups have no timeout of their own, so connect from a daemon thread and stop waiting
    # after _CONNECT_TIMEOUT_S: an offline machine fails in seconds, not minutes.
    parts = urlparse(url)
    if urllib.request.getproxies().get(parts.scheme):
        return True  # behind a proxy a direct connection proves nothing; let the download try
    port = parts.port or (443 if parts.scheme == "https" else 80)
    reachable = threading.Event()

    def connect() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=_CONNECT_TIMEOUT_S):
                reachable.set()
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(_CONNECT_TIMEOUT_S)
    return reachable.is_set()


def load_pretrained_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """The backbone's ImageNet state dict, from torch.hub's cache or downloaded into it.

    Args:
        backbone: a key of ``BACKBONES``.

    Returns:
        The state dict (CPU tensors) of the full torchvision model, classifier included.

    Raises:
        WeightsNotFoundError: the file is missing and cannot be downloaded (``HPO_OFFLINE=1``, or
            the server is unreachable), or it is not a readable checkpoint.
    """
    url = BACKBONES[backbone][1].url
    path = weights_path(backbone)
    fix = f"copy {path.name} there, or set TORCH_HOME to a folder holding hub/checkpoints/{path.name}"
    if not path.exists():
        if os.environ.get("HPO_OFFLINE", "") not in ("", "0"):
            raise WeightsNotFoundError(
                f"pretrained {backbone} weights are not at {path} and HPO_OFFLINE is set: {fix}"
            )
        if not _server_reachable(url):
            raise WeightsNotFoundError(
                f"pretrained {backbone} weights are not at {path} and {url} is unreachable: {fix}"
            )
        match = torch.hub.HASH_REGEX.search(path.name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Downloads to a temporary file and renames it, so an interrupted download leaves nothing.
            torch.hub.download_url_to_file(url, str(path), match.group(1) if match else None, progress=False)
        except (OSError, RuntimeError) as err:
            raise WeightsNotFoundError(
                f"downloading pretrained {backbone} weights from {url} to {path} failed ({err}): {fix}"
            ) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable or foreign file is the same user-fixable problem
        raise WeightsNotFoundError(f"{path} is not a readable {backbone} checkpoint ({err}): replace it") from err


class TransferNet(nn.Module):
    """A torchvision backbone (classifier removed) plus dropout and a linear head.

    Args:
        backbone_name: a key of ``BACKBONES``.
        num_classes: outputs of the head.
        mode: ``frozen``, ``finetune`` or ``scratch``.
        input_size: side in pixels images are resized to before the backbone.
        pretrained: load the ImageNet weights (never in scratch mode).
        dropout: dropout probability before the head.

    Attributes:
        backbone: the torchvision model, outputting ``(N, feature_dim)`` features.
        head: ``nn.Linear(feature_dim, num_classes)``.
        normalization: ``"imagenet"``: the trainer normalises inputs with ImageNet mean/std.
    """

    normalization = "imagenet"

    def __init__(
        self,
        backbone_name: str = "resnet18",
        num_classes: int = 10,
        mode: str = "finetune",
        input_size: int = 224,
        pretrained: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        constructor, _, cut_classifier = BACKBONES[backbone_name]
        self.backbone_name = backbone_name
        self.mode = mode
        self.input_size = input_size
        self.backbone = constructor(weights=None)
        if pretrained and mode != "scratch":
            try:
                self.backbone.load_state_dict(load_pretrained_state_dict(backbone_name))
            except RuntimeError as err:  # wrong keys or shapes: the cached file is not this model's
                path = weights_path(backbone_name)
                raise WeightsNotFoundError(f"{path} does not hold {backbone_name} weights ({err}): replace it") from err
        self.feature_dim = cut_classifier(self.backbone)
        self.head_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, num_classes)
        if mode == "frozen":
            self.backbone.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> TransferNet:
        """Set training mode, keeping a frozen backbone in eval mode (ImageNet BN statistics)."""
        super().train(mode)
        if self.mode == "frozen":
            self.backbone.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Resize images to ``input_size`` and run the backbone.

        Args:
            x: normalised images, ``(N, 3, H, W)``.

        Returns:
            Features, ``(N, feature_dim)``.
        """
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=False)
        if self.mode == "frozen":
            with torch.no_grad():  # nothing upstream trains; save the activation memory
                return self.backbone(x)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_dropout(self.features(x)))  # (N, num_classes)


@register_family("transfer", TransferConfig, "ImageNet-pretrained torchvision backbone + new linear head")
def build(config: TransferConfig, num_classes: int) -> nn.Module:
    """Build a TransferNet from its config.

    Args:
        config: the family's knobs.
        num_classes: outputs of the head.

    Returns:
        The TransferNet.

    Raises:
        WeightsNotFoundError: pretrained weights are needed and not available.
    """
    return TransferNet(config.backbone, num_classes, config.mode, config.input_size, config.pretrained, config.dropout)


register_variant("resnet18_pretrained", "transfer", backbone="resnet18", mode="finetune")
register_variant("resnet18_frozen", "transfer", backbone="resnet18", mode="frozen")
register_variant("resnet18_scratch", "transfer", backbone="resnet18", mode="scratch", pretrained=False)
register_variant("resnet50_pretrained", "transfer", backbone="resnet50", mode="finetune")
register_variant("mobilenet_v3_small_pretrained", "transfer", backbone="mobilenet_v3_small", mode="finetune")

"""Frozen transfer: backbone features of the unaugmented images, computed once and cached on disk.

A frozen ``TransferNet`` trains only its head, so the backbone's output for an image never changes
(DECISIONS.md: augmentation does not apply in frozen mode). The trainer computes the features of
the train and val splits once per run, or reads them from a cache file keyed by the data
fingerprint, the backbone, the input size and the autocast dtype, then trains the head on them.

The functions are duck-typed on ``TransferNet``'s interface (``backbone``, ``head``, ``mode``,
``features``, ``feature_dim``), so the trainer does not depend on which backbones exist.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from hpo.checkpoints import atomic_save
from hpo.data import IMAGENET_MEAN, IMAGENET_STD
from hpo.data.loader import DeviceLoader


def is_transfer(model: nn.Module, mode: str) -> bool:
    """Whether ``model`` is a transfer model (a backbone and a head) in ``mode`` (``frozen``, ``finetune``...)."""
    return (
        getattr(model, "mode", None) == mode
        and isinstance(getattr(model, "head", None), nn.Module)
        and isinstance(getattr(model, "backbone", None), nn.Module)
    )


def head_forward(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The part of a transfer model's forward after the backbone: its dropout (if any), then the head."""
    dropout = getattr(model, "head_dropout", None)
    if isinstance(dropout, nn.Module):
        return lambda features: model.head(dropout(features))
    return model.head


def _compute_features(model: nn.Module, split: Any, device: torch.device, batch_size: int, autocast) -> torch.Tensor:
    loader = DeviceLoader(split, batch_size, device=device, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    chunks = []
    model.eval()
    with torch.inference_mode(), autocast():
        for x, _ in loader:
            chunks.append(model.features(x).float())  # (B, feature_dim)
    # Concatenating outside inference mode gives a normal tensor, usable as an autograd input.
    return torch.cat(chunks) if chunks else torch.empty(0, model.feature_dim, device=device)


def frozen_features(
    model: nn.Module, data: Any, device: torch.device, batch_size: int, autocast: Callable[[], Any],
    precision_tag: str, cache_dir: str | Path | None,
) -> dict[str, torch.Tensor]:
    """Backbone features of the unaugmented train and val images, from the cache when present.

    Args:
        model: a frozen transfer model, on ``device``.
        data: an ``hpo.data.Dataset`` (uses ``train``, ``val`` and ``fingerprint``).
        device: where the features are computed and kept.
        batch_size: images per backbone batch.
        autocast: a factory of the autocast context the backbone runs under.
        precision_tag: names that autocast dtype in the cache key.
        cache_dir: the cache folder, or None to compute in memory.

    Returns:
        ``{"train": (N, feature_dim), "val": (M, feature_dim)}`` float32 tensors on ``device``.
    """
    backbone_name = str(getattr(model, "backbone_name", type(model.backbone).__name__))
    input_size = int(getattr(model, "input_size", 0))
    key = f"{data.fingerprint}|{backbone_name}|{input_size}|{precision_tag}"
    cache_path = None
    if cache_dir is not None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        cache_path = Path(cache_dir) / f"features-{backbone_name}-{input_size}px-{digest}.pt"
        if cache_path.exists():
            try:
                cached = torch.load(cache_path, map_location=device, weights_only=True)
                if isinstance(cached, dict) and cached.get("key") == key:
                    return {"train": cached["train"], "val": cached["val"]}
            except Exception:  # a torn or foreign file: recompute and overwrite it
                pass
    features = {name: _compute_features(model, getattr(data, name), device, batch_size, autocast) for name in ("train", "val")}
    if cache_path is not None:
        try:
            atomic_save({"key": key, **{k: v.cpu() for k, v in features.items()}}, cache_path)
        except OSError:
            pass  # the cache only saves time; a full disk must not fail the trial
    return features

"""One trial's training: optimizer, schedule, per-epoch metrics, checkpoints.

``train(model, data, config)`` trains a model the caller built (seeded with ``seed_everything``) on a
``hpo.data.Dataset`` and returns a ``TrainResult``. The design follows airbench:

- the whole dataset lives on the device as uint8, and augmentation is a batched tensor operation
  (``hpo.data.loader.DeviceLoader``), so there are no loader workers and no per-image Python work;
- loss and accuracy accumulate on the device; the host reads them once per epoch, so the GPU's
  queue never drains mid-epoch for bookkeeping (the only other waits are the device
  synchronisations at the epoch's start, end and train/eval boundary that make its timings honest);
- bf16 autocast and channels-last memory format on CUDA (``precision`` / ``channels_last`` = auto),
  fp32 on CPUs without native bf16, where bf16 is 8-30x slower.

Timing. ``epoch_seconds`` is the device-synchronised time of one epoch's training and evaluation.
It excludes the one-time move of the data to the device (and, for frozen transfer, the feature
cache build), the checkpoint write and the ``on_epoch`` callback. ``train_seconds`` is their sum.
``elapsed_seconds`` is wall-clock time since the epoch loop began, so it also counts previous epochs'
checkpoint writes and callbacks; after a resume it continues from the checkpoint's value.

Reproducibility. The global torch RNG is seeded with ``config.seed`` when training starts (dropout),
and a CPU ``torch.Generator`` seeded with it drives data order and augmentation, so on CPU the same
model initialisation, config and seed give identical metrics, and a resumed run continues exactly
as an uninterrupted one (checkpoints hold every RNG state). The model's initialisation is the
caller's: call ``seed_everything(seed)`` before building it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import math
import os
import random
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpo.data.augment import AUGMENT_LEVELS
from hpo.data.loader import DeviceLoader, FeatureLoader
from hpo.device import device_name, resolve_device, supports_bf16, synchronize
from hpo.errors import ConfigError, HpoError

from hpo.train_config import (  # noqa: F401  (re-exported: hpo.train.TrainConfig)
    OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig, TrainConfigError, _is_number,
)
from hpo.trials import EpochMetrics  # noqa: F401  (re-exported)

# Fault-injection seams for the caller's handling paths (tests and the fault suite set them).
FAULT_OOM_ENV = "HPO_FAULT_OOM_AT_EPOCH"  # raise torch.OutOfMemoryError at the start of this epoch
FAULT_NAN_ENV = "HPO_FAULT_NAN_AT_EPOCH"  # make this epoch's loss NaN, so training diverges
FAULT_SLEEP_ENV = "HPO_FAULT_SLEEP_PER_EPOCH"  # seconds to idle after each epoch (a trial slow enough to kill mid-way)

# Fallback ImageNet statistics, used only while hpo.data does not provide them.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

# Config fields that change how fast a run goes, not what it computes (on CPU): a checkpoint
# written under other values of these may be resumed.
_RUNTIME_FIELDS = frozenset({"eval_batch_size", "precision", "channels_last", "compile", "max_epoch_seconds"})



# ----------------------------------------------------------------------------------------------
# Results and stops


@dataclass
class TrainResult:
    """A finished training run: its per-epoch history and run-wide measurements."""

    history: list[EpochMetrics]
    train_seconds: float  # sum of epoch_seconds
    epochs_run: int  # epochs in history, resumed ones included
    images_per_second: float  # mean over epochs
    device_name: str
    peak_memory_bytes: int  # CUDA: max allocated by tensors; otherwise the process's peak RSS
    param_count: int  # all of the model's parameters, a frozen backbone's included

    def _last(self, name: str) -> float:
        return getattr(self.history[-1], name) if self.history else float("nan")

    @property
    def val_accuracy(self) -> float:
        """Validation accuracy after the last epoch."""
        return self._last("val_accuracy")

    @property
    def val_loss(self) -> float:
        """Validation loss after the last epoch."""
        return self._last("val_loss")

    @property
    def train_accuracy(self) -> float:
        """Training accuracy during the last epoch."""
        return self._last("train_accuracy")

    @property
    def train_loss(self) -> float:
        """Training loss during the last epoch."""
        return self._last("train_loss")

    @property
    def best_val_accuracy(self) -> float:
        """The highest validation accuracy over all epochs."""
        return max((m.val_accuracy for m in self.history), default=float("nan"))

    def to_dict(self) -> dict[str, Any]:
        """Run-wide values and the final metrics, without the history."""
        return {
            "val_accuracy": self.val_accuracy,
            "best_val_accuracy": self.best_val_accuracy,
            "val_loss": self.val_loss,
            "train_accuracy": self.train_accuracy,
            "train_loss": self.train_loss,
            "train_seconds": self.train_seconds,
            "epochs_run": self.epochs_run,
            "images_per_second": self.images_per_second,
            "device_name": self.device_name,
            "peak_memory_bytes": self.peak_memory_bytes,
            "param_count": self.param_count,
        }


class TrainingStopped(Exception):
    """Training stopped early for a reason the study records as a pruned trial.

    Attributes:
        reason: the trial's ``stop_reason`` (``diverged``, ``too_slow``).
        message: one sentence saying what happened.
        history: metrics of the epochs completed before the stop.
        epoch: the epoch at which training stopped.
    """

    reason = "stopped"

    def __init__(self, message: str, history: Sequence[EpochMetrics], epoch: int) -> None:
        super().__init__(message)
        self.message = message
        self.history = list(history)
        self.epoch = epoch


class Diverged(TrainingStopped):
    """The training loss became NaN or infinite; that epoch is not in ``history``."""

    reason = "diverged"


class TooSlow(TrainingStopped):
    """An epoch took longer than ``max_epoch_seconds``; that epoch is in ``history`` (and checkpointed)."""

    reason = "too_slow"


class CheckpointError(HpoError):
    """A checkpoint could not be read (missing, corrupt, incompatible) or written (disk full, read-only).

    Not a ``TrainingStopped``: a failed trial, not a pruned one. On a read failure the caller
    restarts from scratch with a warning.

    Attributes:
        reason: ``checkpoint``.
        path: the checkpoint file.
        history: metrics of the epochs completed before a write failure.
    """

    reason = "checkpoint"

    def __init__(self, message: str, path: str | Path, history: Sequence[EpochMetrics] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path)
        self.history = list(history)


# ----------------------------------------------------------------------------------------------
# Seeding


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (all devices); call before building a model.

    Args:
        seed: the study's or trial's seed.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# Learning-rate schedule


class LrSchedule:
    """The learning rate of every optimizer step, with a checkpointable state of plain numbers.

    For constant, step, cosine and plateau the rate of step ``s`` is
    ``base_lr * factor(s) * plateau_scale``: a linear warm-up from ``lr/10`` over ``warmup_epochs``,
    then the shape (constant; /10 at each milestone; half-cosine to 0 at the last step). Plateau
    follows torch's ``ReduceLROnPlateau(mode='max', factor=0.1, patience=plateau_patience,
    threshold=1e-4)`` on validation accuracy, once per epoch. Onecycle is torch's ``OneCycleLR``
    (max_lr = each group's lr, its rise lasting ``warmup_epochs`` or 30% of training when 0,
    without momentum cycling so the configured momentum holds).

    Args:
        optimizer: its param groups' current ``lr`` are the base rates.
        config: the trainer config.
        steps_per_epoch: optimizer steps per epoch.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> None:
        self.optimizer = optimizer
        self.kind = config.schedule
        self.total_steps = max(1, config.epochs * steps_per_epoch)
        self.warmup_steps = min(round(config.warmup_epochs * steps_per_epoch), self.total_steps)
        self.milestone_steps = [round(m * self.total_steps) for m in config.milestones]
        self.patience = config.plateau_patience
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.step_count = 0
        self.plateau_scale = 1.0
        self.best = -math.inf
        self.bad_epochs = 0
        self._onecycle = None
        if self.kind == "onecycle":
            pct_start = config.warmup_epochs / config.epochs if config.warmup_epochs > 0 else 0.3
            self._onecycle = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=self.base_lrs,
                total_steps=self.total_steps,
                pct_start=min(max(pct_start, 1e-6), 1 - 1e-6),
                cycle_momentum=False,
            )
        else:
            self._apply()

    def factor(self, step: int) -> float:
        """The multiplier of the base rate at optimizer step ``step`` (0-based), before plateau cuts."""
        if step < self.warmup_steps:
            return 0.1 + 0.9 * step / self.warmup_steps
        if self.kind == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if self.kind == "step":
            return 0.1 ** sum(step >= m for m in self.milestone_steps)
        return 1.0

    def _apply(self) -> None:
        factor = self.factor(self.step_count) * self.plateau_scale
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def step_batch(self) -> None:
        """Advance after an optimizer step."""
        self.step_count += 1
        if self._onecycle is not None:
            if self.step_count < self.total_steps:  # OneCycleLR refuses steps past its end
                self._onecycle.step()
        else:
            self._apply()

    def step_epoch(self, val_accuracy: float) -> None:
        """Advance after an epoch's evaluation (only the plateau schedule uses it)."""
        if self.kind != "plateau":
            return
        if val_accuracy > self.best * (1.0 + 1e-4) or self.best == -math.inf:
            self.best = val_accuracy
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.plateau_scale *= 0.1
            self.bad_epochs = 0
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        """The state to checkpoint (numbers only, loadable with ``weights_only=True``)."""
        return {
            "kind": self.kind,
            "step_count": self.step_count,
            "plateau_scale": self.plateau_scale,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "onecycle": self._onecycle.state_dict() if self._onecycle is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from ``state_dict`` (after the optimizer's own state is restored)."""
        if state.get("kind") != self.kind:
            raise ValueError(f"schedule state is for {state.get('kind')!r}, not {self.kind!r}")
        self.step_count = int(state["step_count"])
        self.plateau_scale = float(state["plateau_scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        if self._onecycle is not None:
            self._onecycle.load_state_dict(dict(state["onecycle"]))
        else:
            self._apply()


# ----------------------------------------------------------------------------------------------
# Checkpoints


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """Write ``obj`` so that ``path`` holds either the old file or the complete new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # make the rename durable; some filesystems refuse dir fsync
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``train`` (tensors and plain values only: ``weights_only=True``).

    Args:
        path: the checkpoint file.
        map_location: where to put its tensors; keep ``cpu`` when restoring RNG states.

    Returns:
        The checkpoint dict: ``model``, ``optimizer``, ``schedule``, ``epoch``, ``history``
        (list of dicts), ``rng``, ``config`` (dict).

    Raises:
        CheckpointError: the file is missing, unreadable, corrupt or not a trainer checkpoint.
    """
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist", path) from None
    except Exception as exc:  # torch raises many types for torn or foreign files
        raise CheckpointError(
            f"checkpoint {path} is unreadable or corrupt ({type(exc).__name__}); delete it to restart from scratch",
            path,
        ) from exc
    required = {"model", "optimizer", "schedule", "epoch", "history", "rng", "config"}
    if not isinstance(checkpoint, dict) or not required <= checkpoint.keys():
        raise CheckpointError(f"{path} is not an hpo trainer checkpoint (missing keys)", path)
    return checkpoint


# ----------------------------------------------------------------------------------------------
# Frozen transfer: cached backbone features


def _is_transfer(model: nn.Module, mode: str) -> bool:
    # Duck-typed on TransferNet's interface (backbone, head, mode, features) so the trainer does not
    # depend on which backbones hpo.models can build.
    return (
        getattr(model, "mode", None) == mode
        and isinstance(getattr(model, "head", None), nn.Module)
        and isinstance(getattr(model, "backbone", None), nn.Module)
    )


def _head_forward(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The part of a transfer model's forward after the backbone: its dropout (if any), then the head."""
    dropout = getattr(model, "head_dropout", None)
    if isinstance(dropout, nn.Module):
        return lambda features: model.head(dropout(features))
    return model.head


def _imagenet_stats() -> tuple[Sequence[float], Sequence[float]]:
    try:
        from hpo.data import IMAGENET_MEAN, IMAGENET_STD
    except ImportError:
        return _IMAGENET_MEAN, _IMAGENET_STD
    return IMAGENET_MEAN, IMAGENET_STD


def eval_normalization(model: nn.Module, data: Any) -> tuple[Sequence[float], Sequence[float]]:
    """The per-channel mean and std a model's inputs are normalised with, in training and evaluation.

    Args:
        model: the model; ``normalization = "imagenet"`` (pretrained backbones) selects ImageNet's.
        data: the dataset, whose own ``mean``/``std`` apply otherwise.

    Returns:
        ``(mean, std)``, three values each, on the [0, 1] pixel scale.
    """
    if getattr(model, "normalization", None) == "imagenet":
        return _imagenet_stats()
    return data.mean, data.std


def _compute_features(model: nn.Module, split: Any, device: torch.device, batch_size: int, autocast) -> torch.Tensor:
    mean, std = _imagenet_stats()
    loader = DeviceLoader(split, batch_size, device=device, mean=mean, std=std)
    chunks = []
    model.eval()
    with torch.inference_mode(), autocast():
        for x, _ in loader:
            chunks.append(model.features(x).float())  # (B, feature_dim)
    # Concatenating outside inference mode gives a normal tensor, usable as an autograd input.
    return torch.cat(chunks) if chunks else torch.empty(0, model.feature_dim, device=device)


def _frozen_features(
    model: nn.Module, data: Any, device: torch.device, batch_size: int, autocast, precision_tag: str,
    cache_dir: str | Path | None,
) -> dict[str, torch.Tensor]:
    """Backbone features of the unaugmented train and val images, from the cache when present."""
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
            _atomic_torch_save({"key": key, **{k: v.cpu() for k, v in features.items()}}, cache_path)
        except OSError:
            pass  # the cache only saves time; a full disk must not fail the trial
    return features


# ----------------------------------------------------------------------------------------------
# torch.compile cache


_COMPILED: "OrderedDict[str, tuple[nn.Module, Callable]]" = OrderedDict()
_COMPILE_CACHE_SIZE = 4  # architectures kept compiled per process (each holds one model copy)
# torch.compile backend; HPO_COMPILE_BACKEND=aot_eager (or eager) isolates a compiler bug from a model bug.
COMPILE_BACKEND_ENV = "HPO_COMPILE_BACKEND"


def _architecture_key(model: nn.Module, extra: tuple) -> str:
    """Equal for models whose compiled code is interchangeable: same classes, knobs and tensor shapes."""
    parts = [repr(model), repr(extra), repr(getattr(model, "mode", None))]
    for name, module in model.named_modules():
        knobs = sorted(
            (k, v) for k, v in vars(module).items()
            if not k.startswith("_") and k != "training" and isinstance(v, (int, float, str, bool, tuple))
        )
        parts.append(f"{name}:{type(module).__module__}.{type(module).__qualname__}:{knobs!r}")
    for name, tensor in model.state_dict().items():
        parts.append(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}")
    parts.extend(f"{name}:{p.requires_grad}" for name, p in model.named_parameters())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _compiled(model: nn.Module, extra: tuple) -> tuple[nn.Module, Callable]:
    """A module to train (holding ``model``'s weights) and its compiled forward, reused across trials."""
    backend = os.environ.get(COMPILE_BACKEND_ENV, "").strip() or "inductor"
    key = _architecture_key(model, (*extra, backend))
    if key in _COMPILED:
        module, forward = _COMPILED[key]
        _COMPILED.move_to_end(key)
    else:
        # A private copy: the caller keeps its model object, and a later trial's weights loaded
        # into the cached copy never overwrite an earlier trial's model.
        module = copy.deepcopy(model)
        forward = torch.compile(module, backend=backend)
        _COMPILED[key] = (module, forward)
        while len(_COMPILED) > _COMPILE_CACHE_SIZE:
            _COMPILED.popitem(last=False)
    module.load_state_dict(model.state_dict())
    return module, forward


# ----------------------------------------------------------------------------------------------
# Evaluation


def _eval_sums(forward: Callable, loader, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross entropy and correct count over a loader, as device tensors (no host sync)."""
    loss_sum = torch.zeros((), device=loader.device)
    correct = torch.zeros((), device=loader.device, dtype=torch.long)
    with torch.inference_mode(), autocast():
        for x, y in loader:
            logits = forward(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    return loss_sum, correct


def _resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    native = supports_bf16(device)
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and native else None
    if not native:
        raise TrainConfigError(
            f"trainer option precision bf16 needs native bf16 support, which {device_name(device)} lacks; "
            "use precision fp32 or auto"
        )
    return torch.bfloat16


def _autocast_factory(device: torch.device, dtype: torch.dtype | None) -> Callable[[], Any]:
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def _use_channels_last(setting: str | bool, device: torch.device) -> bool:
    return device.type == "cuda" if setting == "auto" else bool(setting)


def evaluate(
    model: nn.Module,
    split: Any,
    *,
    device: str | torch.device = "auto",
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 1024,
    precision: str = "auto",
    channels_last: str | bool = "auto",
) -> tuple[float, float]:
    """Loss and accuracy of a model on a split (e.g. the test split, for ``hpo evaluate``).

    Args:
        model: the trained model; moved to ``device`` and left in eval mode.
        split: an object with ``images`` (uint8 (N, 3, H, W)) and ``labels`` (int64 (N,)).
        device: a device or a spec accepted by ``hpo.device.resolve_device``.
        mean: per-channel normalisation mean ([0, 1] pixel scale); ImageNet's for pretrained backbones.
        std: per-channel normalisation standard deviation.
        batch_size: images per batch.
        precision: auto | fp32 | bf16, as in ``TrainConfig``.
        channels_last: auto | True | False, as in ``TrainConfig``.

    Returns:
        ``(loss, accuracy)``: mean cross entropy and the fraction classified correctly.

    Raises:
        ValueError: the split is empty.
    """
    device = resolve_device(device)
    n = int(split.labels.shape[0])
    if n == 0:
        raise ValueError("cannot evaluate on an empty split")
    use_channels_last = _use_channels_last(channels_last, device)
    model.to(device)
    if use_channels_last:
        model.to(memory_format=torch.channels_last)
    model.eval()
    loader = DeviceLoader(split, batch_size, device=device, mean=mean, std=std, channels_last=use_channels_last)
    autocast = _autocast_factory(device, _resolve_precision(precision, device))
    loss_sum, correct = _eval_sums(model, loader, autocast)
    loss_total, correct_total = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()
    return loss_total / n, correct_total / n


# ----------------------------------------------------------------------------------------------
# Training


def _fault_epoch(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an epoch number (got {value!r})") from None


def _peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource  # Unix only
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def _param_groups(model: nn.Module, config: TrainConfig, head_only: bool) -> list[dict[str, Any]]:
    if head_only:
        return [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr": config.lr}]
    trainable = [p for p in model.parameters() if p.requires_grad]
    if _is_transfer(model, "finetune"):
        backbone_ids = {id(p) for p in model.backbone.parameters()}
        backbone = [p for p in trainable if id(p) in backbone_ids]
        rest = [p for p in trainable if id(p) not in backbone_ids]  # the head (and any adapter)
        groups = [{"params": rest, "lr": config.lr}]
        if backbone:
            groups.append({"params": backbone, "lr": config.lr * config.backbone_lr_mult})
        return groups
    return [{"params": trainable, "lr": config.lr}]


def _make_optimizer(groups: list[dict[str, Any]], config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    fused = True if device.type == "cuda" else None  # one kernel per step on CUDA
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
            fused=fused,
        )
    optimizer_cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return optimizer_cls(groups, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def _rng_state(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "data": generator.get_state(),
    }


def _restore_rng(state: Mapping[str, Any], generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    generator.set_state(state["data"].cpu())


def train(
    model: nn.Module,
    data: Any,
    config: TrainConfig,
    *,
    device: str | torch.device = "auto",
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    checkpoint_path: str | Path | None = None,
    resume_from: str | Path | None = None,
    feature_cache_dir: str | Path | None = None,
) -> TrainResult:
    """Train a model on a dataset's train split, evaluating on its val split after every epoch.

    A frozen transfer model (``mode == "frozen"``) trains only its head, on backbone features of the
    unaugmented images computed once (cached in ``feature_cache_dir``); ``augment`` does not apply,
    and ``model.train()`` must keep the frozen backbone in eval mode (``TransferNet`` does).
    A finetuned one gets two parameter groups: the backbone at ``lr * backbone_lr_mult``.

    Args:
        model: the model, built and initialised by the caller (see ``seed_everything``); trained in place.
        data: an ``hpo.data.Dataset`` (uses ``train``, ``val``, ``mean``, ``std``, ``fingerprint``).
        config: the trainer config; validated here.
        device: a device or a spec accepted by ``hpo.device.resolve_device``.
        on_epoch: called with each epoch's metrics after its checkpoint is written; what it raises
            (e.g. ``optuna.TrialPruned``) propagates unchanged.
        checkpoint_path: where to write a checkpoint after every epoch (atomically).
        resume_from: a checkpoint to continue from, at the epoch after it; its history is kept.
        feature_cache_dir: where frozen-transfer features are cached, keyed by data fingerprint,
            backbone and input size; None computes them in memory.

    Returns:
        The run's result.

    Raises:
        TrainConfigError: an invalid config value.
        Diverged: the training loss became NaN or infinite.
        TooSlow: an epoch exceeded ``config.max_epoch_seconds``.
        CheckpointError: ``resume_from`` is unreadable or from another config (rebuild the model before
            retrying from scratch: it may hold part of the checkpoint), or a checkpoint write failed.
        torch.OutOfMemoryError: the device ran out of memory (or ``HPO_FAULT_OOM_AT_EPOCH`` says so).
    """
    config.validate()
    device = resolve_device(device)
    oom_epoch, nan_epoch = _fault_epoch(FAULT_OOM_ENV), _fault_epoch(FAULT_NAN_ENV)
    sleep_per_epoch = float(os.environ.get(FAULT_SLEEP_ENV, "0") or 0)
    for split_name in ("train", "val"):
        if getattr(data, split_name).labels.shape[0] == 0:
            raise ValueError(f"the dataset's {split_name} split is empty; training needs both train and val images")
    autocast_dtype = _resolve_precision(config.precision, device)
    autocast = _autocast_factory(device, autocast_dtype)
    frozen = _is_transfer(model, "frozen")
    use_channels_last = _use_channels_last(config.channels_last, device) and not frozen
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)  # data order and augmentation
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN pick the fastest kernels
        torch.cuda.reset_peak_memory_stats(device)

    model.to(device)
    if use_channels_last:
        model.to(memory_format=torch.channels_last)

    # One-time data placement (excluded from the epoch timings).
    if frozen:
        features = _frozen_features(
            model, data, device, config.eval_batch_size, autocast, str(autocast_dtype), feature_cache_dir
        )
        train_loader = FeatureLoader(
            features["train"], data.train.labels, config.batch_size,
            device=device, shuffle=True, generator=generator, drop_last=True,
        )
        val_loader = FeatureLoader(features["val"], data.val.labels, config.eval_batch_size, device=device)
        train_module, forward, trained = model, _head_forward(model), model
    else:
        mean, std = eval_normalization(model, data)
        train_loader = DeviceLoader(
            data.train, config.batch_size, device=device, mean=mean, std=std, shuffle=True,
            augment_level=config.augment, generator=generator, channels_last=use_channels_last, drop_last=True,
        )
        val_loader = DeviceLoader(
            data.val, config.eval_batch_size, device=device, mean=mean, std=std, channels_last=use_channels_last
        )
        if config.compile:
            train_module, forward = _compiled(model, (str(device), use_channels_last, str(autocast_dtype)))
        else:
            train_module, forward = model, model
        trained = train_module

    optimizer = _make_optimizer(_param_groups(train_module, config, head_only=frozen), config, device)
    schedule = LrSchedule(optimizer, config, len(train_loader))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    history: list[EpochMetrics] = []
    start_epoch = 0

    if resume_from is not None:
        checkpoint = load_checkpoint(resume_from, map_location="cpu")
        saved = {k: v for k, v in checkpoint["config"].items() if k not in _RUNTIME_FIELDS}
        current = {k: v for k, v in config.to_dict().items() if k not in _RUNTIME_FIELDS}
        if saved != current:
            changed = sorted(k for k in current.keys() | saved.keys() if saved.get(k) != current.get(k))
            raise CheckpointError(
                f"checkpoint {resume_from} was written with other trainer options ({', '.join(changed)}); "
                "restart from scratch",
                resume_from,
            )
        try:
            train_module.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            schedule.load_state_dict(checkpoint["schedule"])
            _restore_rng(checkpoint["rng"], generator, device)
            history = [EpochMetrics(**entry) for entry in checkpoint["history"]]
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {resume_from} does not fit this model or config ({type(exc).__name__}); "
                "restart from scratch",
                resume_from,
            ) from exc
        start_epoch = int(checkpoint["epoch"])

    try:
        synchronize(device)
        loop_start = time.perf_counter() - (history[-1].elapsed_seconds if history else 0.0)
        for epoch in range(start_epoch + 1, config.epochs + 1):
            if oom_epoch == epoch:
                raise torch.OutOfMemoryError(
                    f"CUDA out of memory (simulated by {FAULT_OOM_ENV}={epoch} at the start of epoch {epoch})"
                )
            synchronize(device)
            epoch_start = time.perf_counter()

            trained.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            lr = optimizer.param_groups[0]["lr"]
            for x, y in train_loader:
                with autocast():
                    logits = forward(x)  # (B, num_classes)
                    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                if nan_epoch == epoch:
                    loss = loss * float("nan")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    nn.utils.clip_grad_norm_(params, config.grad_clip)
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                schedule.step_batch()
                loss_sum += loss.detach().float() * y.shape[0]
                correct += (logits.argmax(1) == y).sum()
            synchronize(device)
            train_phase_seconds = time.perf_counter() - epoch_start

            trained.eval()
            val_loss_sum, val_correct = _eval_sums(forward, val_loader, autocast)
            # The epoch's one host read: everything accumulated on the device, at once.
            train_loss, train_correct, val_loss, val_correct_count = torch.stack(
                [loss_sum, correct.to(loss_sum.dtype), val_loss_sum, val_correct.to(loss_sum.dtype)]
            ).tolist()
            epoch_seconds = time.perf_counter() - epoch_start
            n_train, n_val = train_loader.num_images, int(val_loader.labels.shape[0])
            train_loss /= n_train
            if not math.isfinite(train_loss):
                raise Diverged(f"training diverged at epoch {epoch}: the train loss is {train_loss}", history, epoch)
            metrics = EpochMetrics(
                epoch=epoch,
                train_loss=train_loss,
                train_accuracy=train_correct / n_train,
                val_loss=val_loss / n_val,
                val_accuracy=val_correct_count / n_val,
                epoch_seconds=epoch_seconds,
                images_per_second=n_train / max(train_phase_seconds, 1e-9),
                lr=lr,
                elapsed_seconds=time.perf_counter() - loop_start,
            )
            history.append(metrics)
            schedule.step_epoch(metrics.val_accuracy)

            if checkpoint_path is not None:
                checkpoint = {
                    "format": 1,
                    "epoch": epoch,
                    "model": train_module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "history": [m.to_dict() for m in history],
                    "rng": _rng_state(generator, device),
                    "config": config.to_dict(),
                }
                try:
                    _atomic_torch_save(checkpoint, Path(checkpoint_path))
                except (OSError, RuntimeError) as exc:  # torch.save reports some write errors as RuntimeError
                    detail = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
                    raise CheckpointError(
                        f"cannot write checkpoint {checkpoint_path}: {detail}; "
                        "free space or choose a writable --artifacts directory",
                        checkpoint_path,
                        history,
                    ) from exc
            if on_epoch is not None:
                on_epoch(metrics)
            if sleep_per_epoch:
                time.sleep(sleep_per_epoch)  # after the epoch's timing, checkpoint and report: changes no metric
            if config.max_epoch_seconds > 0 and epoch_seconds > config.max_epoch_seconds:
                raise TooSlow(
                    f"epoch {epoch} took {epoch_seconds:.1f} s, over max_epoch_seconds={config.max_epoch_seconds:g}",
                    history,
                    epoch,
                )
    finally:
        if train_module is not model:  # compiled copy: hand the trained weights back to the caller's model
            model.load_state_dict(train_module.state_dict())

    return TrainResult(
        history=history,
        train_seconds=sum(m.epoch_seconds for m in history),
        epochs_run=len(history),
        images_per_second=(sum(m.images_per_second for m in history) / len(history)) if history else 0.0,
        device_name=device_name(device),
        peak_memory_bytes=_peak_memory_bytes(device),
        param_count=sum(p.numel() for p in model.parameters()),
    )

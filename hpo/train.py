"""One trial's training: optimizer, schedule, per-epoch metrics, checkpoints.

``train(model, data, config)`` trains a model the caller built (seeded with ``seed_everything``) on a
``hpo.data.Dataset`` and returns a ``TrainResult``. Its neighbours: the learning-rate schedule is
``hpo.schedule``, the checkpoint file ``hpo.checkpoints``, the frozen-transfer feature cache
``hpo.models.transfer_features``, the compile cache ``hpo.compiled`` and test-only fault injection
``hpo.faults``. The design follows airbench:

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
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpo.checkpoints import (
    TrainerState, check_compatible, load_checkpoint, restore_trainer_state, save_checkpoint,
)
from hpo.compiled import compiled_module
from hpo.data import IMAGENET_MEAN, IMAGENET_STD
from hpo.data.loader import DeviceLoader, FeatureLoader
from hpo.device import device_name, resolve_device, supports_bf16, synchronize
from hpo.faults import FaultPlan
from hpo.models.transfer_features import frozen_features, head_forward, is_transfer
from hpo.schedule import LrSchedule
from hpo.train_config import TrainConfig, TrainConfigError
from hpo.trials import EpochMetrics, StopReason


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

    @property
    def val_accuracy(self) -> float:
        """Validation accuracy after the last epoch."""
        return self.history[-1].val_accuracy if self.history else math.nan

    @property
    def val_loss(self) -> float:
        """Validation loss after the last epoch."""
        return self.history[-1].val_loss if self.history else math.nan

    @property
    def train_accuracy(self) -> float:
        """Training accuracy during the last epoch."""
        return self.history[-1].train_accuracy if self.history else math.nan

    @property
    def train_loss(self) -> float:
        """Training loss during the last epoch."""
        return self.history[-1].train_loss if self.history else math.nan

    @property
    def best_val_accuracy(self) -> float:
        """The highest validation accuracy over all epochs."""
        return max((m.val_accuracy for m in self.history), default=math.nan)


class TrainingStopped(Exception):
    """Training stopped early for a reason the study records as a pruned trial.

    Attributes:
        reason: the trial's stop reason (``StopReason.DIVERGED``, ``StopReason.TOO_SLOW``).
        message: one sentence saying what happened.
        history: metrics of the epochs completed before the stop.
        epoch: the epoch at which training stopped.
    """

    reason: StopReason

    def __init__(self, message: str, history: Sequence[EpochMetrics], epoch: int) -> None:
        super().__init__(message)
        self.message = message
        self.history = list(history)
        self.epoch = epoch


class Diverged(TrainingStopped):
    """The training loss became NaN or infinite; that epoch is not in ``history``."""

    reason = StopReason.DIVERGED


class TooSlow(TrainingStopped):
    """An epoch took longer than ``max_epoch_seconds``; that epoch is in ``history`` (and checkpointed)."""

    reason = StopReason.TOO_SLOW


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


def eval_normalization(model: nn.Module, data: Any) -> tuple[Sequence[float], Sequence[float]]:
    """The per-channel mean and std a model's inputs are normalised with, in training and evaluation.

    Args:
        model: the model; ``normalization = "imagenet"`` (pretrained backbones) selects ImageNet's.
        data: the dataset, whose own ``mean``/``std`` apply otherwise.

    Returns:
        ``(mean, std)``, three values each, on the [0, 1] pixel scale.
    """
    if getattr(model, "normalization", None) == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD
    return data.mean, data.std


# ----------------------------------------------------------------------------------------------
# Training


def _peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource  # Unix only
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def _make_optimizer(module: nn.Module, config: TrainConfig, device: torch.device, head_only: bool) -> torch.optim.Optimizer:
    """The optimizer of a run: the head alone for frozen transfer; the backbone at ``lr * backbone_lr_mult``
    for finetuned transfer; every trainable parameter otherwise."""
    if head_only:
        groups = [{"params": [p for p in module.head.parameters() if p.requires_grad], "lr": config.lr}]
    elif is_transfer(module, "finetune"):
        trainable = [p for p in module.parameters() if p.requires_grad]
        backbone_ids = {id(p) for p in module.backbone.parameters()}
        backbone = [p for p in trainable if id(p) in backbone_ids]
        groups = [{"params": [p for p in trainable if id(p) not in backbone_ids], "lr": config.lr}]  # head (+ adapter)
        if backbone:
            groups.append({"params": backbone, "lr": config.lr * config.backbone_lr_mult})
    else:
        groups = [{"params": [p for p in module.parameters() if p.requires_grad], "lr": config.lr}]
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


@dataclass
class _Run:
    """What one run trains with, placed on the device once, before the first epoch's timing starts."""

    module: nn.Module  # holds the trained weights: the caller's model, or its compiled copy
    forward: Callable[[torch.Tensor], torch.Tensor]  # a batch of images (or frozen features) -> logits
    trained: nn.Module  # what train()/eval() switch: the module, or a frozen model around its head
    train_loader: DeviceLoader | FeatureLoader
    val_loader: DeviceLoader | FeatureLoader
    generator: torch.Generator  # data order and augmentation
    device: torch.device
    autocast: Callable[[], Any]
    frozen: bool  # frozen transfer: only the head is optimised
    # Set by train() once the run is placed:
    optimizer: torch.optim.Optimizer | None = None
    schedule: LrSchedule | None = None
    params: list[nn.Parameter] = field(default_factory=list)  # every optimised parameter (for gradient clipping)

    def attach(self, optimizer: torch.optim.Optimizer, config: TrainConfig) -> None:
        """Take the run's optimizer, and the learning-rate schedule that drives it."""
        self.optimizer = optimizer
        self.schedule = LrSchedule(optimizer, config, len(self.train_loader))
        self.params = [p for group in optimizer.param_groups for p in group["params"]]


def _place(model: nn.Module, data: Any, config: TrainConfig, device: torch.device,
           feature_cache_dir: str | Path | None) -> _Run:
    """Seed, move the model and the data to the device, and build the loaders."""
    autocast_dtype = _resolve_precision(config.precision, device)
    autocast = _autocast_factory(device, autocast_dtype)
    frozen = is_transfer(model, "frozen")
    use_channels_last = _use_channels_last(config.channels_last, device) and not frozen
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)  # data order and augmentation
    if device.type == "cuda":
        # Fixed batch shapes: let cuDNN pick the fastest kernels, unless the caller asked for deterministic
        # algorithms (torch.use_deterministic_algorithms), under which runs must repeat bit for bit.
        torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()
        torch.cuda.reset_peak_memory_stats(device)

    model.to(device)
    if use_channels_last:
        model.to(memory_format=torch.channels_last)

    if frozen:
        features = frozen_features(
            model, data, device, config.eval_batch_size, autocast, str(autocast_dtype), feature_cache_dir
        )
        train_loader = FeatureLoader(
            features["train"], data.train.labels, config.batch_size,
            device=device, shuffle=True, generator=generator, drop_last=True,
        )
        val_loader = FeatureLoader(features["val"], data.val.labels, config.eval_batch_size, device=device)
        module, forward, trained = model, head_forward(model), model
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
            module, forward = compiled_module(model, (str(device), use_channels_last, str(autocast_dtype)))
        else:
            module, forward = model, model
        trained = module

    return _Run(
        module=module, forward=forward, trained=trained, train_loader=train_loader, val_loader=val_loader,
        generator=generator, device=device, autocast=autocast, frozen=frozen,
    )


def _resume(run: _Run, config: TrainConfig, resume_from: str | Path) -> tuple[int, list[EpochMetrics]]:
    """Restore a run from a checkpoint; returns the last epoch it completed and its history."""
    state = TrainerState.from_dict(load_checkpoint(resume_from, map_location="cpu"))
    check_compatible(state, config.to_dict(), resume_from)
    history = restore_trainer_state(
        state, module=run.module, optimizer=run.optimizer, schedule=run.schedule,
        generator=run.generator, device=run.device, path=resume_from,
    )
    return int(state.epoch), history


def _train_phase(run: _Run, config: TrainConfig, poison_loss: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One pass over the training split; returns the summed loss and correct count (on the device) and the lr.

    The lr is the one of the pass's last optimizer step (first parameter group).
    """
    run.trained.train()
    loss_sum = torch.zeros((), device=run.device)
    correct = torch.zeros((), device=run.device, dtype=torch.long)
    lr = run.optimizer.param_groups[0]["lr"]
    for x, y in run.train_loader:
        with run.autocast():
            logits = run.forward(x)  # (B, num_classes)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        if poison_loss:
            loss = loss * float("nan")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(run.params, config.grad_clip)
        lr = run.optimizer.param_groups[0]["lr"]
        run.optimizer.step()
        run.schedule.step_batch()
        loss_sum += loss.detach().float() * y.shape[0]
        correct += (logits.argmax(1) == y).sum()
    return loss_sum, correct, lr


def _epoch(run: _Run, config: TrainConfig, epoch: int, *, poison_loss: bool, loop_start: float,
           history: Sequence[EpochMetrics]) -> EpochMetrics:
    """Train one epoch and evaluate on the val split, with one host read; raises Diverged on a NaN loss."""
    synchronize(run.device)
    epoch_start = time.perf_counter()
    loss_sum, correct, lr = _train_phase(run, config, poison_loss)
    synchronize(run.device)
    train_phase_seconds = time.perf_counter() - epoch_start

    run.trained.eval()
    val_loss_sum, val_correct = _eval_sums(run.forward, run.val_loader, run.autocast)
    # The epoch's one host read: everything accumulated on the device, at once.
    train_loss, train_correct, val_loss, val_correct_count = torch.stack(
        [loss_sum, correct.to(loss_sum.dtype), val_loss_sum, val_correct.to(loss_sum.dtype)]
    ).tolist()
    epoch_seconds = time.perf_counter() - epoch_start
    n_train, n_val = run.train_loader.num_images, int(run.val_loader.labels.shape[0])
    train_loss /= n_train
    if not math.isfinite(train_loss):
        raise Diverged(f"training diverged at epoch {epoch}: the train loss is {train_loss}", history, epoch)
    return EpochMetrics(
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


def _write_checkpoint(run: _Run, config: TrainConfig, epoch: int, history: Sequence[EpochMetrics],
                      path: str | Path) -> None:
    state = TrainerState.capture(
        epoch=epoch, module=run.module, optimizer=run.optimizer, schedule=run.schedule, history=history,
        generator=run.generator, device=run.device, config=config.to_dict(),
    )
    save_checkpoint(state, path, history)


def _run_epochs(run: _Run, config: TrainConfig, start_epoch: int, history: list[EpochMetrics], *,
                checkpoint_path: str | Path | None, on_epoch: Callable[[EpochMetrics], None] | None,
                faults: FaultPlan | None) -> None:
    """The epoch loop, from ``start_epoch + 1`` to the last epoch; appends each epoch's metrics to ``history``."""
    synchronize(run.device)
    loop_start = time.perf_counter() - (history[-1].elapsed_seconds if history else 0.0)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        if faults is not None:
            faults.start_epoch(epoch)
        poison_loss = faults is not None and faults.poisons_loss(epoch)
        metrics = _epoch(run, config, epoch, poison_loss=poison_loss, loop_start=loop_start, history=history)
        history.append(metrics)
        run.schedule.step_epoch(metrics.val_accuracy)
        if checkpoint_path is not None:
            _write_checkpoint(run, config, epoch, history, checkpoint_path)
        if on_epoch is not None:
            on_epoch(metrics)
        if faults is not None:
            faults.end_epoch(epoch)  # after the epoch's timing, checkpoint and report: changes no metric
        if config.max_epoch_seconds > 0 and metrics.epoch_seconds > config.max_epoch_seconds:
            raise TooSlow(
                f"epoch {epoch} took {metrics.epoch_seconds:.1f} s, over max_epoch_seconds={config.max_epoch_seconds:g}",
                history,
                epoch,
            )


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
    faults: FaultPlan | None = None,
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
        faults: faults to inject (tests only; see ``hpo.faults``); None injects none.

    Returns:
        The run's result.

    Raises:
        TrainConfigError: an invalid config value.
        Diverged: the training loss became NaN or infinite.
        TooSlow: an epoch exceeded ``config.max_epoch_seconds``.
        CheckpointError: ``resume_from`` is unreadable or from another config (rebuild the model before
            retrying from scratch: it may hold part of the checkpoint), or a checkpoint write failed.
        torch.OutOfMemoryError: the device ran out of memory (or ``faults`` simulated it).
    """
    config.validate()
    device = resolve_device(device)
    for split_name in ("train", "val"):
        if getattr(data, split_name).labels.shape[0] == 0:
            raise ValueError(f"the dataset's {split_name} split is empty; training needs both train and val images")
    run = _place(model, data, config, device, feature_cache_dir)
    run.attach(_make_optimizer(run.module, config, device, head_only=run.frozen), config)
    start_epoch, history = _resume(run, config, resume_from) if resume_from is not None else (0, [])

    try:
        _run_epochs(run, config, start_epoch, history, checkpoint_path=checkpoint_path, on_epoch=on_epoch,
                    faults=faults)
    finally:
        if run.module is not model:  # compiled copy: hand the trained weights back to the caller's model
            model.load_state_dict(run.module.state_dict())

    return TrainResult(
        history=history,
        train_seconds=sum(m.epoch_seconds for m in history),
        epochs_run=len(history),
        images_per_second=(sum(m.images_per_second for m in history) / len(history)) if history else 0.0,
        device_name=device_name(device),
        peak_memory_bytes=_peak_memory_bytes(device),
        param_count=sum(p.numel() for p in model.parameters()),
    )

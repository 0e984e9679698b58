"""The trainer's checkpoint file: what it holds, how it is written and read back.

A checkpoint is one ``torch.save`` dict of tensors and plain values whose keys are the fields of
:class:`TrainerState` (the weights, optimizer, schedule, history, every RNG state and the config
after an epoch), loadable with ``weights_only=True``, so RNG states are tensors, never numpy
objects.

Writes are atomic (a temporary file, fsync, rename), so a crash mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from hpo.errors import HpoError
from hpo.trials import EpochMetrics

FORMAT_VERSION = 1

# Config fields that change how fast a run goes, not what it computes (on CPU): a checkpoint
# written under other values of these may be resumed.
RUNTIME_FIELDS = frozenset({"eval_batch_size", "precision", "channels_last", "compile", "max_epoch_seconds"})


class CheckpointError(HpoError):
    """A checkpoint could not be read (missing, corrupt, incompatible) or written (disk full, read-only).

    Not a ``TrainingStopped``: a failed trial, not a pruned one. On a read failure the caller
    restarts from scratch with a warning.

    Attributes:
        reason: ``checkpoint``, the kind of failure; not a stop reason (such a trial records ``error``).
        path: the checkpoint file.
        history: metrics of the epochs completed before a write failure.
    """

    reason = "checkpoint"

    def __init__(self, message: str, path: str | Path, history: Sequence[EpochMetrics] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path)
        self.history = list(history)


def atomic_save(obj: Any, path: Path) -> None:
    """Write ``obj`` with ``torch.save`` so that ``path`` holds either the old file or the complete new one.

    Args:
        obj: what to save.
        path: the file; its folder is created when missing.

    Raises:
        OSError: the write failed (the temporary file is removed); ``torch.save`` reports some
            write errors as ``RuntimeError``.
    """
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


def rng_state(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Every RNG state a run draws from: torch's global CPU (and CUDA) generator and the data generator."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "data": generator.get_state(),
    }


def restore_rng(state: Mapping[str, Any], generator: torch.Generator, device: torch.device) -> None:
    """Put back the RNG states ``rng_state`` captured (loaded with ``map_location="cpu"``)."""
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    generator.set_state(state["data"].cpu())


@dataclass(kw_only=True)
class TrainerState:
    """A run's state after an epoch: what a checkpoint holds, its keys being these field names."""

    format: int = FORMAT_VERSION
    epoch: int  # the last completed epoch (1-based)
    model: dict[str, torch.Tensor]  # the trained module's state_dict
    optimizer: dict[str, Any]
    schedule: dict[str, Any]  # LrSchedule.state_dict()
    history: list[dict[str, Any]]  # one EpochMetrics.to_dict() per completed epoch
    rng: dict[str, Any]  # rng_state()
    config: dict[str, Any]  # TrainConfig.to_dict() of the run that wrote it

    @classmethod
    def capture(
        cls, *, epoch: int, module: nn.Module, optimizer: torch.optim.Optimizer, schedule: Any,
        history: Sequence[EpochMetrics], generator: torch.Generator, device: torch.device, config: Mapping[str, Any],
    ) -> TrainerState:
        """The state of a run after ``epoch``.

        Args:
            epoch: the last completed epoch.
            module: the module being trained.
            optimizer: its optimizer.
            schedule: its ``LrSchedule``.
            history: the metrics of every completed epoch.
            generator: the data-order generator.
            device: the training device (whose CUDA generator is saved).
            config: the run's ``TrainConfig.to_dict()``.
        """
        return cls(
            epoch=epoch,
            model=module.state_dict(),
            optimizer=optimizer.state_dict(),
            schedule=schedule.state_dict(),
            history=[m.to_dict() for m in history],
            rng=rng_state(generator, device),
            config=dict(config),
        )

    @classmethod
    def from_dict(cls, checkpoint: Mapping[str, Any]) -> TrainerState:
        """The state a ``load_checkpoint`` dict holds (keys this release does not know are ignored)."""
        return cls(**{f.name: checkpoint[f.name] for f in dataclasses.fields(cls) if f.name in checkpoint})

    def to_dict(self) -> dict[str, Any]:
        """The dict ``torch.save`` writes (shallow: the tensors are not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def epochs(self) -> list[EpochMetrics]:
        """The history as metrics."""
        return [EpochMetrics(**entry) for entry in self.history]


# Every key but the format version: a file without one of them is no trainer checkpoint.
_REQUIRED_KEYS = frozenset(f.name for f in dataclasses.fields(TrainerState)) - {"format"}


def save_checkpoint(state: TrainerState, path: str | Path, history: Sequence[EpochMetrics] = ()) -> None:
    """Write a checkpoint atomically.

    Args:
        state: the run's state.
        path: the file.
        history: the metrics of the completed epochs, carried by the error on failure.

    Raises:
        CheckpointError: the write failed (disk full, read-only folder ...); the message says how to fix it.
    """
    try:
        atomic_save(state.to_dict(), Path(path))
    except (OSError, RuntimeError) as exc:  # torch.save reports some write errors as RuntimeError
        detail = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"cannot write checkpoint {path}: {detail}; free space there, or give a path in a writable folder",
            path,
            history,
        ) from exc


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``train`` (tensors and plain values only: ``weights_only=True``).

    Args:
        path: the checkpoint file.
        map_location: where to put its tensors; keep ``cpu`` when restoring RNG states.

    Returns:
        The checkpoint dict, keyed by the fields of ``TrainerState`` (``TrainerState.from_dict``
        reads it as one).

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
    if not isinstance(checkpoint, dict) or not _REQUIRED_KEYS <= checkpoint.keys():
        raise CheckpointError(f"{path} is not an hpo trainer checkpoint (missing keys)", path)
    return checkpoint


def check_compatible(state: TrainerState, config: Mapping[str, Any], path: str | Path) -> None:
    """Refuse to resume a checkpoint written under trainer options that change what a run computes.

    Args:
        state: the checkpoint's state.
        config: the resuming run's ``TrainConfig.to_dict()``.
        path: the checkpoint file, for the message.

    Raises:
        CheckpointError: naming the options that differ (fields in ``RUNTIME_FIELDS`` may differ).
    """
    saved = {k: v for k, v in state.config.items() if k not in RUNTIME_FIELDS}
    current = {k: v for k, v in config.items() if k not in RUNTIME_FIELDS}
    if saved != current:
        changed = sorted(k for k in current.keys() | saved.keys() if saved.get(k) != current.get(k))
        raise CheckpointError(
            f"checkpoint {path} was written with other trainer options ({', '.join(changed)}); restart from scratch",
            path,
        )


def restore_trainer_state(
    state: TrainerState, *, module: nn.Module, optimizer: torch.optim.Optimizer, schedule: Any,
    generator: torch.Generator, device: torch.device, path: str | Path,
) -> list[EpochMetrics]:
    """Load a checkpoint's weights, optimizer, schedule and RNG states into a run about to resume.

    Args:
        state: the checkpoint's state (loaded on the CPU).
        module: the module being trained.
        optimizer: its optimizer, built for the same parameter groups.
        schedule: its ``LrSchedule``.
        generator: the data-order generator.
        device: the training device.
        path: the checkpoint file, for the message.

    Returns:
        The history of the epochs the checkpoint holds.

    Raises:
        CheckpointError: the checkpoint does not fit this model or config (``module`` may then
            hold part of it: rebuild the model before starting from scratch).
    """
    try:
        module.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        schedule.load_state_dict(state.schedule)
        restore_rng(state.rng, generator, device)
        return state.epochs
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} does not fit this model or config ({type(exc).__name__}); restart from scratch",
            path,
        ) from exc

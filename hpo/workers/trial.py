"""One trial's run: configuration -> model -> trainer -> the state and values told to Optuna.

A :class:`TrialRun` takes one asked trial through its suggestions, the size constraints, the
resume from a retried trial's checkpoint, the training (each epoch: the history attribute, the
checkpoint upload, the report and the pruning decision) and its result. Every attribute it writes
goes through :mod:`hpo.trials`; how each outcome ends is DECISIONS.md "Trials" (the stop-reason
table is in :mod:`hpo.trials`).

The trainer is passed in (:attr:`TrialContext.trainer`, ``hpo.train.train`` by default), so a
benchmark or a test swaps it without patching.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.trial import TrialState

from hpo import compat
from hpo.checkpoints import CheckpointError, TrainerState, download_checkpoint, load_checkpoint, upload_checkpoint
from hpo.config import StudyConfig
from hpo.refit import refit_seed_of
from hpo.tracking import Tracking
from hpo.trial_config import TrialConfig
from hpo.trials import (
    MACS,
    PARAM_COUNT,
    SCALAR_CURVES,
    SYS_RESUME,
    TRAIN_SECONDS,
    VAL_ACCURACY,
    EpochMetrics,
    StopReason,
    TrialRecord,
    train_seconds_of,
    write_record,
)

if TYPE_CHECKING:
    from hpo.faults import FaultPlan
    from hpo.pruners import BasePruner

log = logging.getLogger("hpo")

Trainer = Callable[..., Any]
"""A callable with ``hpo.train.train``'s signature, returning an ``hpo.train.TrainResult``."""


@dataclass
class TrialContext:
    """What a worker holds while it runs trials: the study, its data, its pruner and where things go.

    Attributes:
        study: The loaded study (with the worker's sampler and ``pruner.optuna_pruner``).
        config: The study's stored definition.
        dataset: An ``hpo.data.Dataset`` (only ``classes`` is read here; the trainer reads the rest).
        device: The training device.
        artifact_store: Where checkpoints are stored.
        feature_cache_dir: The frozen-transfer feature cache.
        pruner: An ``hpo.pruners.BasePruner``, asked after every epoch but the last.
        worker_id: The worker's name, stored on each of its trials.
        tensorboard_dir: Where learning curves go, or None.
        scratch_dir: Local copies of checkpoints while a trial runs (removed with the worker).
        trainer: The training function (``hpo.train.train`` when None).
        model_builder: ``(trial_config, num_classes) -> model`` (``TrialConfig.build_model`` when None).
        faults: An ``hpo.faults.FaultPlan`` handed to the trainer (tests), or None.
        deadline: A ``hpo.workers.deadline.WorkerDeadline`` checked after every epoch but the
            last, or None.
    """

    study: optuna.Study
    config: StudyConfig
    dataset: Any
    device: torch.device
    artifact_store: Any
    feature_cache_dir: Path
    pruner: BasePruner
    worker_id: str = "worker-0"
    tensorboard_dir: Path | None = None
    scratch_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hpo-trial-")))
    trainer: Trainer | None = None
    model_builder: Callable[[TrialConfig, int], torch.nn.Module] | None = None
    faults: FaultPlan | None = None
    deadline: Any = None
    tracking: Tracking = field(default_factory=Tracking)  # trackers and callbacks (hpo.tracking); none by default

    def __post_init__(self) -> None:
        if self.trainer is None:
            from hpo.train import train

            self.trainer = train


def trial_constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    """The sampler's ``constraints_func``: feasible (<= 0) unless a size constraint was exceeded."""
    violation = TrialRecord.of(trial).constraint_violation
    return [float(violation if violation is not None else -1.0)]


def objective_values(config: StudyConfig, metrics: Mapping[str, float]) -> list[float]:
    """The values told to Optuna, in the order of ``config.objectives``."""
    return [float(metrics[name]) for name in config.objectives]


def _write(trial: optuna.Trial, **fields: Any) -> None:
    # Fields without a value are left out rather than stored as None.
    write_record(trial, **{name: value for name, value in fields.items() if value is not None})


@dataclass(frozen=True)
class _Size:
    param_count: int
    macs: int
    violation: float  # > 0: by how much the larger constraint is exceeded


class TrialRun:
    """One asked trial, run to its end by :meth:`run`.

    Args:
        ctx: The worker's context.
        trial: The asked trial.
    """

    def __init__(self, ctx: TrialContext, trial: optuna.Trial) -> None:
        self.ctx, self.trial = ctx, trial
        self.history: list[dict] = []  # EpochMetrics.to_dict() per completed epoch, restored ones included
        self.checkpoint_id: str | None = None
        self.checkpoint_path = ctx.scratch_dir / f"trial-{trial.number}.pt"
        self.resume_path: Path | None = None
        self.writer: Any = None
        self.single_objective = len(ctx.study.directions) == 1
        self.system_attrs: dict = {}  # the asked trial's system attributes, read once by run()
        self.refit_seed: int | None = None  # set for a trial of a refit study (hpo.refit)
        self.trained: torch.nn.Module | None = None  # the model the trainer trained

    def run(self) -> tuple[TrialState, list[float] | None]:
        """Run the trial and return the state and values to tell Optuna.

        User attributes are written on the way (model size, per-epoch history, checkpoint).
        Interrupts (KeyboardInterrupt) propagate, for the caller to record them, and so does the
        worker's timeout (``StopAtEpochEnd`` with ``interrupted``); the study's deadline ends the
        trial PRUNED with ``deadline`` and the value it reached.
        """
        from hpo.train import TrainingStopped
        from hpo.workers.deadline import StopAtEpochEnd

        config = self.ctx.config.space.sample(self.trial, self.ctx.config.base_train, self.ctx.config.model_defaults)
        # Read once: the refit seed here, the checkpoint to resume from in _restore.
        self.system_attrs = self.trial.storage.get_trial_system_attrs(compat.trial_id(self.trial))
        self.refit_seed = refit_seed_of(self.system_attrs)
        if self.refit_seed is not None:
            # A refit: the same configuration and split, a new seed for initialisation, data order and augmentation.
            config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=self.refit_seed))
        model = self._build(config)
        size = self._measure(model)
        if size.violation > 0:
            return TrialState.FAIL, None
        self.resume_path = self._restore()
        self.writer = self._tensorboard_writer()
        self.ctx.tracking.trial_started(self.trial, self.history)  # restored epochs of a resumed trial included
        try:
            result = self._train(model, config)
            if self.refit_seed is not None:
                self._evaluate_test(config)
        except optuna.TrialPruned:
            self._record_result(stop_reason=StopReason.PRUNED)
            return TrialState.PRUNED, None
        except TrainingStopped as stop:
            self._record_result(stop_reason=stop.reason, error=str(stop))
            return TrialState.PRUNED, None
        except StopAtEpochEnd as stop:
            if stop.reason != StopReason.DEADLINE:
                raise
            self._record_result(stop_reason=StopReason.DEADLINE)
            return TrialState.PRUNED, None  # Optuna keeps the last reported value, as for pruned trials
        except torch.OutOfMemoryError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            self._record_result(stop_reason=StopReason.OOM, error=f"out of memory on {self.ctx.device}: {first_line}")
            return TrialState.FAIL, None
        except CheckpointError as exc:
            self._record_result(stop_reason=StopReason.ERROR, error=f"checkpoint could not be written: {exc}")
            return TrialState.FAIL, None
        finally:
            del model
            self.trained = None
            self._clean_up()
        return self._finish(result, size)

    def _build(self, config: TrialConfig) -> torch.nn.Module:
        num_classes = len(self.ctx.dataset.classes)
        if self.ctx.model_builder is not None:
            return self.ctx.model_builder(config, num_classes)
        return config.build_model(num_classes)

    def _measure(self, model: torch.nn.Module) -> _Size:
        # Size first, then the constraints: a trial over them costs no training.
        from hpo.models import count_macs, count_params

        # MACs at the resolution the model trains on (an image folder's image_size, 32 for CIFAR).
        image_shape = tuple(int(d) for d in self.ctx.dataset.train.images.shape[1:])  # (3, H, W)
        param_count, macs = int(count_params(model)), int(count_macs(model, image_shape))
        _write(self.trial, param_count=param_count, macs=macs)
        limits = self.ctx.config.constraints
        violation = 0.0
        if limits.max_params and param_count > limits.max_params:
            violation = max(violation, param_count / limits.max_params - 1.0)
        if limits.max_macs and macs > limits.max_macs:
            violation = max(violation, macs / limits.max_macs - 1.0)
        self.trial.set_constraint("size", violation if violation > 0 else -1.0)
        if violation > 0:
            _write(self.trial, stop_reason=StopReason.CONSTRAINT, constraint_violation=violation,
                   error=f"{param_count:,} parameters / {macs:,} MACs exceed the study's constraints "
                         f"(max_params={limits.max_params}, max_macs={limits.max_macs})")
        return _Size(param_count, macs, violation)

    def _restore(self) -> Path | None:
        """Download a retried trial's checkpoint and take over its history; None to start afresh."""
        trial = self.trial
        resume_id = self.system_attrs.get(SYS_RESUME)
        if not resume_id:
            return None
        path = download_checkpoint(self.ctx.artifact_store, resume_id, self.ctx.scratch_dir / f"resume-{trial.number}.pt",
                                   trial_number=trial.number)
        if path is None:
            return None
        try:
            self.history = list(TrainerState.from_dict(load_checkpoint(path, map_location="cpu")).history)
        except CheckpointError as exc:
            log.warning("trial %d: checkpoint unreadable (%s); restarting from scratch", trial.number, exc)
            path.unlink(missing_ok=True)
            return None
        _write(trial, resumed_from_epoch=len(self.history))
        # A retry is a new Optuna trial: report its restored epochs again, so that its curve is whole.
        for entry in self.history:
            self._report(EpochMetrics.from_dict(entry))
        return path

    def _train(self, model: torch.nn.Module, config: TrialConfig) -> Any:
        ctx = self.ctx
        options = dict(device=ctx.device, on_epoch=self.on_epoch, checkpoint_path=self.checkpoint_path,
                       feature_cache_dir=ctx.feature_cache_dir, faults=ctx.faults)
        self.trained = model
        try:
            return ctx.trainer(model, ctx.dataset, config.train, resume_from=self.resume_path, **options)
        except CheckpointError as exc:
            path = getattr(exc, "path", None)
            if self.resume_path is None or path is None or Path(path) != Path(self.resume_path):
                raise
            # DECISIONS: an unusable checkpoint means a fresh start, with a warning, not a failed trial.
            log.warning("trial %d: cannot resume (%s); restarting from scratch", self.trial.number, exc)
            _write(self.trial, resumed_from_epoch=0)
            self.history.clear()
            fresh_model = self.trained = self._build(config)  # the failed resume may have loaded part of the checkpoint
            return ctx.trainer(fresh_model, ctx.dataset, config.train, resume_from=None, **options)

    def _evaluate_test(self, config: TrialConfig) -> None:
        # A refit is measured on the test split too: it is a chosen configuration, not a search step.
        from hpo.train import eval_normalization, evaluate

        test = getattr(self.ctx.dataset, "test", None)
        if test is None or not len(test):
            return
        model = self.trained
        mean, std = eval_normalization(model, self.ctx.dataset)
        _loss, accuracy = evaluate(model, test, device=self.ctx.device, mean=mean, std=std,
                                   batch_size=config.train.eval_batch_size)
        _write(self.trial, test_accuracy=float(accuracy), n_test_images=len(test))
        del model

    def on_epoch(self, metrics: EpochMetrics) -> None:
        """The trainer's per-epoch callback: store the epoch and its checkpoint, report, maybe prune.

        Raises:
            optuna.TrialPruned: the pruner stops the trial (never after the last epoch).
            StopAtEpochEnd: the study's deadline or the worker's timeout passed (never after the last epoch).
        """
        self.history.append(metrics.to_dict())
        if self.writer is not None:
            for name in SCALAR_CURVES:
                self.writer.add_scalar(name, getattr(metrics, name), metrics.epoch)
        uploaded = None
        if self.checkpoint_path.exists():
            uploaded = self.checkpoint_id = upload_checkpoint(self.ctx.artifact_store, self.trial,
                                                              self.checkpoint_path, self.checkpoint_id)
        # One write per epoch, before the pruner: mo_asha reads this history.
        _write(self.trial, history=self.history, checkpoint=uploaded or None)
        self.ctx.tracking.epoch(self.trial, metrics)
        self._report(metrics)
        # Never prune or stop after the last epoch: its compute is already spent.
        if metrics.epoch >= self.ctx.config.epochs:
            return
        if self.ctx.deadline is not None:
            self.ctx.deadline.check()  # raises StopAtEpochEnd at the study's deadline or the worker's timeout
        if self.ctx.pruner.should_prune(self.ctx.study, self.trial, metrics.epoch, metrics):
            raise optuna.TrialPruned(f"pruned at epoch {metrics.epoch}")

    def _report(self, metrics: EpochMetrics) -> None:
        # Intermediate values feed the dashboard, TPE's ranking of pruned trials and Optuna's own
        # pruners; Optuna refuses them on multi-objective studies.
        if self.single_objective:
            self.trial.report(float(metrics.val_accuracy), int(metrics.epoch))

    def _record_result(self, history: list[dict] | None = None, **fields: Any) -> None:
        # The trial's outcome in one write: the history (its last epoch may not be stored yet, e.g.
        # when that epoch's checkpoint upload failed), the last epoch's metrics, and ``fields``.
        history = self.history if history is None else history
        if history:
            last = EpochMetrics.from_dict(history[-1])
            fields.update(history=list(history), train_accuracy=float(last.train_accuracy),
                          train_loss=float(last.train_loss), val_accuracy=float(last.val_accuracy),
                          val_loss=float(last.val_loss), epochs_run=int(last.epoch),
                          # Compute time: training + evaluation epochs, without checkpoint writes and storage calls.
                          train_seconds=train_seconds_of(history),
                          # The n of val_accuracy's interval (a test's stand-in dataset may have no splits).
                          n_val_images=len(self.ctx.dataset.val) if hasattr(self.ctx.dataset, "val") else None)
        _write(self.trial, **fields)

    def _finish(self, result: Any, size: _Size) -> tuple[TrialState, list[float] | None]:
        history = self.history or [m.to_dict() for m in result.history]
        self._record_result(history, images_per_second=float(result.images_per_second),
                            device_name=result.device_name, peak_memory_bytes=int(result.peak_memory_bytes))
        metrics = {
            VAL_ACCURACY: result.history[-1].val_accuracy,
            PARAM_COUNT: float(size.param_count),
            TRAIN_SECONDS: train_seconds_of(self.history) if self.history else result.train_seconds,
            MACS: float(size.macs),
        }
        values = objective_values(self.ctx.config, metrics)
        if not all(math.isfinite(v) for v in values):
            _write(self.trial, stop_reason=StopReason.DIVERGED)
            return TrialState.PRUNED, None
        return TrialState.COMPLETE, values

    def _tensorboard_writer(self) -> Any:
        if self.ctx.tensorboard_dir is None:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(Path(self.ctx.tensorboard_dir) / self.ctx.config.name / f"trial-{self.trial.number:05d}"))

    def _clean_up(self) -> None:
        if self.writer is not None:
            self.writer.close()
        # The artifact store holds the checkpoint; local copies would fill the worker's disk trial by trial.
        self.checkpoint_path.unlink(missing_ok=True)
        if self.resume_path is not None:
            self.resume_path.unlink(missing_ok=True)
        if self.ctx.device.type == "cuda":
            # Free the trial's GPU memory for the next trial on this device now, reference cycles
            # included. (On the CPU the interpreter's own collector suffices: a full collection
            # scans every cached trial of the study, 0.05 s at 3 000 trials.)
            gc.collect()
            torch.cuda.empty_cache()


def run_trial(ctx: TrialContext, trial: optuna.Trial) -> tuple[TrialState, list[float] | None]:
    """Run one asked trial to its end (see :class:`TrialRun`).

    Returns:
        The state and values to tell Optuna.
    """
    return TrialRun(ctx, trial).run()

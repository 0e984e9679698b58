"""The tracker contract: what a tracker is told about a trial, and when.

A worker tells each of its trackers, for every trial it runs:

1. :meth:`Tracker.on_trial_start` once the trial's configuration is known (restored epochs of a
   resumed trial follow at once, as :meth:`~Tracker.on_epoch` calls);
2. :meth:`Tracker.on_epoch` after every epoch, before the pruner decides;
3. :meth:`Tracker.on_trial_end` once the trial's result is told to Optuna and stored: its state,
   values, final metrics with their intervals, stop reason and checkpoint file.

A trial stopped by an interrupt or the worker's timeout ends at the worker's next trial or exit,
with what storage recorded for it. Tracker calls never fail a trial: a tracker that raises is
logged as a warning (:mod:`hpo.tracking.session`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo.trials import N_TEST_IMAGES, N_VAL_IMAGES, REPORTED_FIELDS, SCALAR_CURVES, STOP_REASON, TEST_ACCURACY, \
    VAL_ACCURACY, EpochMetrics, TrialRecord

EPOCH_CURVES: tuple[str, ...] = (*SCALAR_CURVES, "epoch_seconds")  # what on_epoch trackers log, per epoch


@dataclass(frozen=True)
class TrialStart:
    """A trial whose run begins.

    Attributes:
        study: The study's name.
        number: The trial's number.
        params: Its configuration: the sampled values and the search space's fixed ones, decoded.
        worker_id: The worker that runs it.
        objectives: The study's objectives, in order.
    """

    study: str
    number: int
    params: Mapping[str, Any]
    worker_id: str = ""
    objectives: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrialEnd:
    """A trial whose result is stored.

    Attributes:
        number: The trial's number.
        state: ``COMPLETE``, ``PRUNED``, ``FAIL`` (Optuna's state names), or ``RUNNING`` for a trial
            whose worker stopped before recording it.
        values: The objective values told to Optuna, by objective name (empty when none).
        metrics: Final numbers of hpo's record (validation accuracy and loss, parameters, seconds, ...)
            with the ends of the accuracies' 95% intervals (``val_accuracy_lower``/``_upper``).
        stop_reason: Why it did not complete (``pruned``, ``oom``, ...), or ``""``.
        error: The one-sentence error of a failed trial, or None.
        checkpoint: A local copy of the trial's last checkpoint while ``on_trial_end`` runs, or None.
        trial: The stored ``optuna.trial.FrozenTrial``.
    """

    number: int
    state: str
    values: Mapping[str, float] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    stop_reason: str = ""
    error: str | None = None
    checkpoint: Path | None = None
    trial: Any = None


class Tracker:
    """Base class of trackers; every method is optional (the defaults do nothing).

    Attributes:
        name: Shown in warnings.
        wants_checkpoint: Whether :attr:`TrialEnd.checkpoint` should be fetched for this tracker.
    """

    name = "tracker"
    wants_checkpoint = False

    def on_trial_start(self, start: TrialStart) -> None:
        """A trial begins (see the module docstring)."""

    def on_epoch(self, metrics: EpochMetrics) -> None:
        """The running trial finished an epoch (``metrics.epoch`` is 1-based)."""

    def on_trial_end(self, end: TrialEnd) -> None:
        """The running trial's result is stored."""

    def close(self) -> None:
        """The worker is done (release connections, flush files)."""


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def final_metrics(record: TrialRecord) -> dict[str, float]:
    """The record's final numbers, with the Wilson interval ends of its accuracies where they exist."""
    from hpo.analysis.intervals import accuracy_interval, lower_key, upper_key

    metrics = {}
    for name in REPORTED_FIELDS:
        value = _finite(record.get(name))
        if value is not None:
            metrics[name] = value
    for accuracy, count in ((VAL_ACCURACY, N_VAL_IMAGES), (TEST_ACCURACY, N_TEST_IMAGES)):
        interval = accuracy_interval(record.get(accuracy), record.get(count))
        if interval is not None:
            metrics[lower_key(accuracy)], metrics[upper_key(accuracy)] = interval
    return metrics


def trial_end(trial: Any, objectives: Sequence[str], checkpoint: Path | None = None) -> TrialEnd:
    """What trackers are told about a stored trial (a ``FrozenTrial``)."""
    record = TrialRecord.of(trial)
    values = {}
    if trial.values is not None:
        values = {name: float(v) for name, v in zip(objectives, trial.values) if _finite(v) is not None}
    return TrialEnd(number=trial.number, state=trial.state.name, values=values, metrics=final_metrics(record),
                    stop_reason=record.stop_reason_text, error=record.error, checkpoint=checkpoint, trial=trial)


def epoch_values(metrics: EpochMetrics) -> dict[str, float]:
    """One epoch's curves (:data:`EPOCH_CURVES`), finite values only."""
    values = {name: _finite(getattr(metrics, name, None)) for name in EPOCH_CURVES}
    return {name: value for name, value in values.items() if value is not None}


STOP_REASON_TAG = STOP_REASON  # trackers tag a trial's stop reason under the record's own name

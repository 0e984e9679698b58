"""``mo_asha``: successive halving on the Pareto rank of the study's objectives.

Optuna refuses ``Trial.report`` on multi-objective studies, so this pruner reads the trials'
records (:class:`hpo.trials.TrialRecord`) instead of reported values; it works on
single-objective studies too, as successive halving on ``val_accuracy``. Non-dominated rank,
crowding distance and dominance come from :mod:`hpo.analysis.pareto`.

Epochs are counted from 1: ``epoch`` is the number of completed epochs.

Multi-objective successive halving
----------------------------------
Each trial keeps its own per-epoch record in user attributes:

- ``history``: a list of dicts, one per completed epoch, with at least ``epoch``,
  ``val_accuracy`` and ``epoch_seconds`` (that epoch's training + evaluation seconds);
- ``param_count`` (and ``macs`` when that is an objective), set before training.

Rungs are at epochs ``r_k = min_resource * eta**k`` (k = 0, 1, ...; defaults ``min_resource=1``,
``eta = reduction_factor = 3``: epochs 1, 3, 9, 27, ...), except the last epoch, after which
there is nothing left to save. When a trial finishes a rung epoch ``r``:

1. The rung's points are the objective vectors, measured at epoch ``r``, of every COMPLETE,
   PRUNED or RUNNING trial whose history reaches epoch ``r`` (the trial itself included):
   ``val_accuracy`` at ``r`` (maximise, always present, always the first column), then, for each
   other objective of the study, ``param_count`` and ``macs`` (minimise, fixed per trial) and
   ``train_seconds`` = the sum of ``epoch_seconds`` up to ``r``, the quantity a trial reports as
   its ``train_seconds`` when it ends (minimise). A point with a NaN value (a
   diverged trial) counts as worst in every objective.
2. With fewer than ``min_trials_at_rung`` points (default ``eta``) nobody is pruned there: too
   few trials to judge.
3. Otherwise the points are ordered by, in turn: non-dominated rank (0 = the Pareto front), then
   crowding distance within the rank, larger first (the NSGA-II tie-breaker: it keeps the spread of
   the front), then ``val_accuracy``, higher first.
4. The trial continues iff fewer than ``ceil(n / eta)`` points are strictly ahead of it in that
   order. Points that tie with the last survivor all continue, so the decision does not depend on
   trial numbers or on the order trials finished in.

Example, ``eta = 3`` and nine trials at rung epoch 1 with objectives (val_accuracy, param_count)::

    front 0: (0.60, 1e5)  (0.70, 1e6)  (0.80, 1e7)    <- ceil(9 / 3) = 3 continue
    front 1: (0.55, 2e5)  (0.65, 2e6)  (0.75, 2e7)    <- pruned
    front 2: (0.50, 3e5)  (0.60, 3e6)  (0.70, 3e7)    <- pruned

Had front 0 held four points, its two extremes (infinite crowding distance) would continue, and of
the two inner ones the one in the sparser part of the front.

Like ASHA, a decision is made with the trials that have reached the rung so far; early trials at
a rung therefore face fewer competitors than late ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.analysis.pareto import as_costs, crowding_distances, non_dominated_ranks
from hpo.errors import ConfigError
from hpo.pruners.base import BasePruner
from hpo.trials import (
    MACS, OBJECTIVES, PARAM_COUNT, PRIMARY_OBJECTIVE, RUNG_EPOCH, RUNG_SUM, TRAIN_SECONDS, VAL_ACCURACY, TrialRecord,
    direction_sign, history_entry,
)

if TYPE_CHECKING:
    import optuna

    from hpo.trials import EpochMetrics, Objective



def mo_successive_halving_keep(
    points: np.ndarray,
    directions: Sequence[str],
    index: int,
    eta: int,
    *,
    min_points: int | None = None,
) -> bool:
    """Whether the point at ``index`` survives a rung of multi-objective successive halving.

    The order is (non-dominated rank ascending, crowding distance within the rank descending,
    column 0 best first); the point survives iff fewer than ``ceil(n / eta)`` points are strictly
    ahead of it. See the module docstring for the full rule and an example.

    Args:
        points: ``(n, m)`` objective vectors at the rung; column 0 is the primary objective
            (``val_accuracy``). No NaN.
        directions: ``"maximize"`` or ``"minimize"`` per column.
        index: Row of the point being judged.
        eta: Reduction factor (>= 2): about ``1 / eta`` of the points survive.
        min_points: Below this many points everyone survives (default ``eta``).

    Returns:
        True if the trial continues, False if it should be pruned.
    """
    if eta < 2:
        raise ValueError(f"eta must be >= 2, got {eta}")
    points = np.asarray(points, dtype=float)
    n = len(points)
    if not 0 <= index < n:
        raise IndexError(f"index {index} out of range for {n} points")
    if n < (eta if min_points is None else min_points):
        return True
    ranks = non_dominated_ranks(points, directions)
    crowding = np.zeros(n)
    for rank in np.unique(ranks):
        members = ranks == rank
        crowding[members] = crowding_distances(points[members], directions)
    primary = as_costs(points[:, :1], directions[:1])[:, 0]  # lower is better

    me = index
    ahead = (
        (ranks < ranks[me])
        | ((ranks == ranks[me]) & (crowding > crowding[me]))
        | ((ranks == ranks[me]) & (crowding == crowding[me]) & (primary < primary[me]))
    )
    return int(ahead.sum()) < math.ceil(n / eta)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _is_count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


class MultiObjectiveSuccessiveHalving(BasePruner):
    """Successive halving on the Pareto rank of (val_accuracy, param_count, train_seconds, macs).

    The rule is in the module docstring. It reads every trial's record (its ``history`` and, for
    size objectives, ``param_count``/``macs``); it never calls ``trial.report``, which Optuna
    refuses on multi-objective studies.

    Args:
        min_resource: First rung, in epochs (>= 1).
        reduction_factor: ``eta`` (>= 2): rungs are ``min_resource * eta**k`` and about
            ``1 / eta`` of the trials at a rung continue.
        min_trials_at_rung: Below this many trials at a rung nobody is pruned there (default
            ``eta``).
        epochs: The study's epochs per trial; the last epoch is never a rung. ``None``: unknown.
        objectives: The study's objective names; ``None`` reads ``study.metric_names`` (or
            ``val_accuracy`` alone on a single-objective study without names).
    """

    def __init__(
        self,
        min_resource: int = 1,
        reduction_factor: int = 3,
        min_trials_at_rung: int | None = None,
        *,
        epochs: int | None = None,
        objectives: Sequence[str] | None = None,
    ) -> None:
        if not _is_count(min_resource, 1):
            raise ValueError(f"min_resource must be an integer >= 1, got {min_resource!r}")
        if not _is_count(reduction_factor, 2):
            raise ValueError(f"reduction_factor must be an integer >= 2, got {reduction_factor!r}")
        if min_trials_at_rung is not None and (
            not isinstance(min_trials_at_rung, int) or min_trials_at_rung < 1
        ):
            raise ValueError(
                f"min_trials_at_rung must be an integer >= 1, got {min_trials_at_rung!r}"
            )
        self.min_resource = min_resource
        self.reduction_factor = reduction_factor
        self.min_trials_at_rung = (
            reduction_factor if min_trials_at_rung is None else min_trials_at_rung
        )
        self.epochs = epochs
        self.objectives = list(objectives) if objectives is not None else None

    def is_rung(self, epoch: int) -> bool:
        """Whether a trial is judged after completing ``epoch`` (1-based).

        Args:
            epoch: Completed epochs.

        Returns:
            True for ``min_resource * eta**k`` below the study's last epoch.
        """
        if self.epochs is not None and epoch >= self.epochs:
            return False
        rung = self.min_resource
        while rung < epoch:
            rung *= self.reduction_factor
        return rung == epoch

    def rungs(self) -> list[int]:
        """The rung epochs below the last epoch (empty when ``epochs`` is unknown or too small)."""
        if self.epochs is None:
            return []
        return [e for e in range(1, self.epochs) if self.is_rung(e)]

    def check(self, objectives: Sequence[str]) -> None:
        """Refuse an objective that cannot be measured at a rung (see ``BasePruner.check``)."""
        unknown = _unmeasurable(objectives)
        if unknown is not None:
            raise ConfigError(
                f"pruner mo_asha cannot measure objective {unknown!r} at a rung; "
                f"use objectives among {', '.join(_MEASURABLE)} or pruner none"
            )

    def notes(self, epochs: int | None, n_objectives: int) -> list[str]:
        """Which epochs are rungs, and whether there are any (see ``BasePruner.notes``)."""
        notes: list[str] = []
        if n_objectives == 1:
            notes.append("mo_asha on a single objective is successive halving on val_accuracy")
        if epochs is not None and not self.rungs():
            notes.append(
                f"mo_asha never prunes with {epochs} epochs: its first rung is epoch "
                f"{self.min_resource}; lower min_resource or train longer"
            )
        elif epochs is not None:
            notes.append(f"mo_asha judges trials after epochs {', '.join(map(str, self.rungs()))}")
        return notes

    def rung_points(
        self, study: optuna.Study, epoch: int, objectives: Sequence[str]
    ) -> tuple[np.ndarray, list[str], list[int]]:
        """The objective vectors of every trial that reached ``epoch``.

        Args:
            study: The study.
            epoch: The rung epoch.
            objectives: The study's objective names (e.g. ``study.metric_names``).

        Returns:
            ``(points, directions, trial_numbers)``: an ``(n, m)`` array with ``val_accuracy``
            first and NaN rows replaced by the worst value, the direction of each column, and the
            trial number of each row. Trials lacking a needed value are left out.

        Raises:
            ConfigError: An objective that cannot be measured at a rung.
        """
        from optuna.trial import TrialState

        names = [PRIMARY_OBJECTIVE, *(o for o in dict.fromkeys(objectives) if o != PRIMARY_OBJECTIVE)]
        unknown = _unmeasurable(names)
        if unknown is not None:
            raise ConfigError(
                f"pruner mo_asha cannot measure objective {unknown!r} at a rung; it knows {', '.join(_MEASURABLE)}"
            )
        columns = [OBJECTIVES[name] for name in names]
        directions = [objective.direction for objective in columns]
        rows: list[list[float]] = []
        numbers: list[int] = []
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        for trial in study.get_trials(deepcopy=False, states=states):
            row = _trial_point(TrialRecord.of(trial), epoch, columns)
            if row is not None:
                rows.append(row)
                numbers.append(trial.number)
        points = np.asarray(rows, dtype=float).reshape(len(rows), len(columns))
        worst = np.inf * np.asarray([direction_sign(d) for d in directions])
        points[np.isnan(points).any(axis=1)] = worst  # a diverged trial is worst everywhere
        return points, directions, numbers

    def should_prune(
        self, study: optuna.Study, trial: optuna.Trial, epoch: int, metrics: EpochMetrics
    ) -> bool:
        """Apply the rung rule to the trial after it completed ``epoch``.

        Args:
            study: The study (its trials' records are read).
            trial: The trial being judged; its stored ``history`` must already hold ``epoch``.
            epoch: Completed epochs (1-based).
            metrics: The epoch's metrics (the rule reads the stored record, which holds them).

        Returns:
            True if the trial should stop now.

        Raises:
            ValueError: The trial's own record lacks ``epoch`` or a needed value (a caller bug),
                or a multi-objective study without objective names.
        """
        if not self.is_rung(epoch):
            return False
        objectives = self._objectives(study)
        points, directions, numbers = self.rung_points(study, epoch, objectives)
        if trial.number not in numbers:
            raise ValueError(
                f"trial {trial.number} has no history entry for epoch {epoch} with every "
                f"objective ({', '.join(objectives)}); store it before asking to prune"
            )
        return not mo_successive_halving_keep(
            points,
            directions,
            numbers.index(trial.number),
            self.reduction_factor,
            min_points=self.min_trials_at_rung,
        )

    def _objectives(self, study: optuna.Study) -> list[str]:
        if self.objectives is not None:
            return self.objectives
        if study.metric_names is not None:
            return list(study.metric_names)
        if len(study.directions) == 1:
            return [PRIMARY_OBJECTIVE]
        raise ValueError(
            "a multi-objective study needs objective names: call study.set_metric_names or pass "
            "objectives="
        )


def _trial_point(record: TrialRecord, epoch: int, columns: Sequence[Objective]) -> list[float] | None:
    entry = history_entry(record.epochs, epoch)
    if entry is None:
        return None
    row = []
    for objective in columns:
        if objective.rung_source == RUNG_EPOCH:
            if objective.rung_key not in entry:
                return None
            value = entry[objective.rung_key]  # a stored null counts as the worst value, like NaN
        elif objective.rung_source == RUNG_SUM:
            upto = [h for h in record.epochs if isinstance(h, Mapping) and h.get("epoch", epoch + 1) <= epoch]
            if any(objective.rung_key not in h for h in upto):
                return None
            value = sum(_number(h[objective.rung_key]) for h in upto)
        else:
            value = record.get(objective.rung_key)
            if value is None:  # not recorded yet (hpo records sizes before training, never as null)
                return None
        row.append(_number(value))
    return row


# The objectives a rung can measure, in the order messages list them.
_MEASURABLE = (VAL_ACCURACY, TRAIN_SECONDS, PARAM_COUNT, MACS)


def _unmeasurable(objectives: Sequence[str]) -> str | None:
    """The first objective mo_asha cannot measure at a rung, or None."""
    return next((name for name in objectives if name not in _MEASURABLE), None)

"""Pareto fronts, non-dominated sorting, crowding, hypervolume and knee point: pure numpy.

Every function here works on a plain ``(n, m)`` array of objective values, one row per trial and
one column per axis, so it can be tested against hand-computed sets. The plots and exports only
draw what :func:`front_info` computed (Optuna's two steps: compute the info, then draw it). Pareto
dominance is defined once, in :func:`dominates`; the front (:func:`pareto_mask`), the ranks and
crowding distances ``mo_asha`` orders a rung by (:func:`non_dominated_ranks`,
:func:`crowding_distances`) all go through it.

The axes a front can be built on are the study objectives of :data:`hpo.trials.OBJECTIVES`, with
their directions, labels, hypervolume reference keys and log scales; :data:`AXES` and
:data:`AXIS_LABELS` are views of that table.

Hypervolume and knee point use a fixed, study-wide reference (DECISIONS.md, "Analysis and
reports") so numbers and figures stay comparable across runs and methods. Each axis is turned into
a minimisation with the reference at 1 (see :func:`normalise`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpo.analysis.intervals import lower_key, tie, upper_key
from hpo.errors import ConfigError
from hpo.trials import (
    MACS,
    MINIMIZE,
    OBJECTIVES,
    PARAM_COUNT,
    TRAIN_SECONDS,
    VAL_ACCURACY,
    direction_sign,
)

# Every objective is an axis, with the direction hpo.trials gives it.
AXES: dict[str, str] = {name: objective.direction for name, objective in OBJECTIVES.items()}

# Short names accepted on the command line (`hpo export --axes acc,params`).
AXIS_ALIASES: dict[str, str] = {
    "acc": VAL_ACCURACY,
    "params": PARAM_COUNT,
    "time": TRAIN_SECONDS,
    MACS: MACS,  # already short
}

# Human labels with units, for figures and tables.
AXIS_LABELS: dict[str, str] = {name: objective.label for name, objective in OBJECTIVES.items()}

# Which `hypervolume_reference` key bounds which axis (accuracy, without one, is bounded by 0).
_REFERENCE_KEY: dict[str, str] = {
    name: objective.reference_key
    for name, objective in OBJECTIVES.items()
    if objective.reference_key is not None
}

# Default bound of each reference key. `macs` is not in DECISIONS.md; 1e10 MACs per image is above
# any CIFAR-sized model at 224 px (ResNet-152 ~ 1.2e10 is the only one near it), so it plays the
# role 1e8 plays for parameters.
DEFAULT_REFERENCE: dict[str, float] = {
    _REFERENCE_KEY[PARAM_COUNT]: 1e8,
    _REFERENCE_KEY[TRAIN_SECONDS]: 600.0,
    _REFERENCE_KEY[MACS]: 1e10,
}

# The objective each reference key bounds.
_BOUNDED_BY = {key: OBJECTIVES[name] for name, key in _REFERENCE_KEY.items()}


def resolve_axes(names: Sequence[str]) -> list[str]:
    """Turn axis names or their short forms into canonical axis names.

    Args:
        names: Axis names, full (``val_accuracy``) or short (``acc``, ``params``, ``time``,
            ``macs``); duplicates are refused.

    Returns:
        The canonical axis names, in the given order.

    Raises:
        ConfigError: For an unknown or repeated axis, or fewer than two axes.
    """
    resolved: list[str] = []
    for name in names:
        axis = AXIS_ALIASES.get(name, name)
        if axis not in AXES:
            known = ", ".join(list(AXIS_ALIASES) + list(AXES))
            raise ConfigError(f"unknown Pareto axis {name!r}: use one of {known}")
        if axis in resolved:
            raise ConfigError(f"Pareto axis {name!r} is given twice: list each axis once")
        resolved.append(axis)
    if len(resolved) < 2:
        raise ConfigError(
            f"a Pareto front needs at least two axes (got {list(names)}): e.g. acc,params"
        )
    return resolved


def resolve_reference(reference: Mapping[str, Any] | None) -> dict[str, float]:
    """Fill in the hypervolume reference from the study's ``hypervolume_reference`` block.

    Args:
        reference: Mapping with optional keys ``params`` (also ``param_count``),
            ``train_seconds`` and ``macs``; missing keys take :data:`DEFAULT_REFERENCE`.

    Returns:
        A dict with the three keys ``params``, ``train_seconds`` and ``macs``.

    Raises:
        ConfigError: If a value is not a number, or ``params``/``macs`` is not > 1, or
            ``train_seconds`` is not > 0.
    """
    resolved = dict(DEFAULT_REFERENCE)
    for key, value in (reference or {}).items():
        canonical = _REFERENCE_KEY.get(key, key)  # an objective's own name is accepted too
        if canonical not in resolved:
            *first, last = DEFAULT_REFERENCE
            raise ConfigError(
                f"hypervolume_reference.{key} is not a reference key: use {', '.join(first)} or {last}"
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"hypervolume_reference.{key} must be a number (got {value!r})"
            ) from None
        # A log-scale bound must have a positive logarithm; a linear one must be positive.
        lower = 1.0 if _BOUNDED_BY[canonical].log_scale else 0.0
        if not number > lower or not math.isfinite(number):
            raise ConfigError(
                f"hypervolume_reference.{key} must be a finite number > {lower:g} (got {value!r})"
            )
        resolved[canonical] = number
    return resolved


def _directions_of(axes: Sequence[str]) -> list[str]:
    unknown = [axis for axis in axes if axis not in AXES]
    if unknown:
        raise ConfigError(f"unknown Pareto axis {unknown[0]!r}: use one of {', '.join(AXES)}")
    return [AXES[axis] for axis in axes]


def _as_points(points: Any, n_columns: int) -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.size == 0:
        return array.reshape(0, n_columns)
    if array.ndim != 2:
        raise ValueError(f"points must be an (n, m) array, got shape {array.shape}")
    if array.shape[1] != n_columns:
        raise ValueError(f"{array.shape[1]} objectives but {n_columns} directions")
    return array


def as_costs(points: Any, directions: Sequence[Any]) -> np.ndarray:
    """Objective values turned into costs: every column minimised.

    Args:
        points: ``(n, m)`` objective values.
        directions: ``"maximize"`` or ``"minimize"`` (or an ``optuna.study.StudyDirection``) per
            column.

    Returns:
        A float ``(n, m)`` array; maximised columns are negated.

    Raises:
        ValueError: A bad shape, a direction count that does not match, or an unknown direction.
    """
    signs = np.asarray([direction_sign(direction) for direction in directions], dtype=float)
    return _as_points(points, len(directions)) * signs


def dominates(costs: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Pareto dominance between two sets of cost vectors: the one definition hpo uses.

    ``a`` dominates ``b`` when ``a`` is no worse on every axis and better on one. Equal points do
    not dominate each other, and a NaN coordinate neither dominates nor is dominated.

    Args:
        costs: ``(k, m)`` cost vectors (lower is better, see :func:`as_costs`).
        others: ``(l, m)`` cost vectors.

    Returns:
        ``(k, l)`` bool array: ``[i, j]`` is True when ``costs[i]`` dominates ``others[j]``.
    """
    no_worse = np.all(costs[:, None, :] <= others[None, :, :], axis=2)
    better = np.any(costs[:, None, :] < others[None, :, :], axis=2)
    return no_worse & better


def pareto_mask(points: Any, directions: Sequence[str]) -> np.ndarray:
    """Mark the non-dominated points.

    A point is dominated when another point is at least as good on every axis and strictly
    better on one. Equal points do not dominate each other, so every copy of a front point is on
    the front.

    Args:
        points: Array of shape ``(n, m)``: one row per trial, one column per objective.
        directions: ``"maximize"`` or ``"minimize"`` for each of the ``m`` columns.

    Returns:
        Boolean array of shape ``(n,)``, True for points on the front.
    """
    losses = as_costs(points, directions)
    n = losses.shape[0]
    mask = np.zeros(n, dtype=bool)
    # Visit the points in lexicographic order, a block at a time: whatever dominates a point comes
    # before it, and by transitivity some front point then dominates it too. So a block is compared
    # with the front found so far and with itself, never with every point: O(n x (front + block))
    # rather than O(n^2), as checkpoint retention runs this after every trial of long studies.
    order = np.lexsort(losses.T[::-1])
    front = losses[:0]
    for start in range(0, n, _BLOCK):
        index = order[start:start + _BLOCK]
        block = losses[index]
        candidates = np.concatenate([front, block])
        keep = ~dominates(candidates, block).any(axis=0)
        mask[index[keep]] = True
        front = np.concatenate([front, block[keep]])
    return mask


_BLOCK = 32  # points per block in pareto_mask (memory: block x (front + block) x objectives)


def _finite_costs(points: Any, directions: Sequence[Any]) -> np.ndarray:
    costs = as_costs(points, directions)
    if np.isnan(costs).any():
        raise ValueError("points contain NaN; map them to the worst value first")
    return costs


def non_dominated_ranks(points: Any, directions: Sequence[Any]) -> np.ndarray:
    """Non-dominated sorting: the Pareto-front index of every point.

    Rank 0 is the set of points nobody dominates (see :func:`dominates`), rank 1 those dominated
    only by rank 0, and so on. Equal points don't dominate each other, so duplicates share a rank.

    Args:
        points: ``(n, m)`` objective values, no NaN (``inf`` is fine).
        directions: ``"maximize"`` or ``"minimize"`` per column.

    Returns:
        ``(n,)`` int array of ranks.

    Raises:
        ValueError: NaN values, a bad shape or an unknown direction.
    """
    costs = _finite_costs(points, directions)
    n = len(costs)
    if n == 0:
        return np.zeros(0, dtype=int)
    # O(n^2 m) memory is fine for the few hundred trials a rung of mo_asha holds.
    beats = dominates(costs, costs)
    dominated_by = beats.sum(axis=0)
    ranks = np.full(n, -1, dtype=int)
    front = np.flatnonzero(dominated_by == 0)
    rank = 0
    while front.size:
        ranks[front] = rank
        dominated_by = dominated_by - beats[front].sum(axis=0)
        dominated_by[ranks >= 0] = -1  # already placed
        front = np.flatnonzero(dominated_by == 0)
        rank += 1
    return ranks


def crowding_distances(points: Any, directions: Sequence[Any]) -> np.ndarray:
    """NSGA-II crowding distance of each point within one front.

    For each objective with a finite, non-zero range, the extreme points get ``inf`` and an inner
    point adds the gap between its nearest distinct neighbours below and above, over the range.
    Ties are measured by value, not by position in a sort, so duplicates get equal distances and
    the result does not depend on the order of the points.

    Args:
        points: ``(n, m)`` objective values of one front, no NaN.
        directions: ``"maximize"`` or ``"minimize"`` per column.

    Returns:
        ``(n,)`` float array; larger means a sparser neighbourhood.
    """
    costs = _finite_costs(points, directions)
    n = len(costs)
    distances = np.zeros(n)
    if n == 0:
        return distances
    if len(np.unique(costs, axis=0)) == 1:
        distances[:] = np.inf  # one distinct point is its own extreme
        return distances
    with np.errstate(invalid="ignore"):
        for column in costs.T:
            values = np.unique(column)
            span = values[-1] - values[0]
            if not np.isfinite(span) or span == 0:
                continue
            position = np.searchsorted(values, column)
            extreme = (position == 0) | (position == len(values) - 1)
            inner = ~extreme
            gaps = np.zeros(n)
            gaps[inner] = (values[position[inner] + 1] - values[position[inner] - 1]) / span
            gaps[extreme] = np.inf
            distances += gaps
    return distances


def normalise(points: Any, axes: Sequence[str], reference: Mapping[str, Any] | None = None) -> np.ndarray:
    """Map objective values to minimisation units where the hypervolume reference sits at 1.

    - ``val_accuracy`` becomes ``1 - accuracy`` (reference: accuracy 0, best: accuracy 1 -> 0);
    - ``param_count`` becomes ``log10(params) / log10(reference params)`` (default 1e8), so one
      parameter is 0 and the reference is 1;
    - ``train_seconds`` becomes ``seconds / reference seconds`` (default 600);
    - ``macs`` becomes ``log10(macs) / log10(reference macs)`` (default 1e10).

    Args:
        points: Array of shape ``(n, len(axes))`` in natural units.
        axes: Axis names (see :data:`AXES`).
        reference: The study's ``hypervolume_reference`` (see :func:`resolve_reference`).

    Returns:
        Float array of the same shape; smaller is better on every column, and values above 1
        lie beyond the reference.
    """
    _directions_of(axes)
    ref = resolve_reference(reference)
    values = _as_points(points, len(axes))
    normalised = np.empty_like(values)
    for column, axis in enumerate(axes):
        x = values[:, column]
        objective = OBJECTIVES[axis]
        if objective.reference_key is None:
            normalised[:, column] = 1.0 - x  # an accuracy: bounded by 0 (the reference) and 1
        elif objective.log_scale:
            bound = ref[objective.reference_key]
            with np.errstate(divide="ignore", invalid="ignore"):
                normalised[:, column] = np.log10(np.maximum(x, 1.0)) / math.log10(bound)
        else:
            normalised[:, column] = x / ref[objective.reference_key]
    return normalised


def _hypervolume_minimisation(losses: np.ndarray, reference: np.ndarray) -> float:
    """Exact volume dominated by `losses` and bounded by `reference` (all points <= reference).

    Slices along the last axis (HSO): between consecutive last coordinates the dominated region
    is the (m-1)-dimensional hypervolume of the points already passed, times the slice thickness.
    O(n^(m-1) log n), fine for the fronts of a few hundred trials this project draws.
    """
    n, m = losses.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(reference[0] - losses[:, 0].min())
    if m == 2:
        order = np.argsort(losses[:, 0], kind="stable")
        volume, best_y = 0.0, reference[1]
        for x, y in losses[order]:
            if y < best_y:
                volume += (reference[0] - x) * (best_y - y)
                best_y = y
        return float(volume)
    order = np.argsort(losses[:, -1], kind="stable")
    ordered = losses[order]
    volume = 0.0
    for i in range(n):
        upper = ordered[i + 1, -1] if i + 1 < n else reference[-1]
        thickness = upper - ordered[i, -1]
        if thickness > 0:
            slab = ordered[: i + 1, :-1]
            slab = slab[pareto_mask(slab, [MINIMIZE] * (m - 1))]
            volume += thickness * _hypervolume_minimisation(slab, reference[:-1])
    return float(volume)


def hypervolume(points: Any, axes: Sequence[str], reference: Mapping[str, Any] | None = None) -> float:
    """Hypervolume of a set of trials in the normalised space of :func:`normalise`.

    The reference point is fixed by the study, not by the data: accuracy 0, ``log10`` of the
    reference parameter count (default 1e8), the reference training time (default 600 s) and the
    reference MACs (default 1e10). With every axis normalised to ``[0, 1]`` the result is the
    fraction of the unit box the trials dominate. A point beyond the reference on any axis
    contributes nothing; NaN rows are ignored.

    Args:
        points: Array of shape ``(n, len(axes))`` in natural units (any subset of trials;
            dominated points do not change the result).
        axes: Axis names (see :data:`AXES`).
        reference: The study's ``hypervolume_reference`` (see :func:`resolve_reference`).

    Returns:
        The hypervolume, 0.0 for an empty set.
    """
    losses = normalise(points, axes, reference)
    inside = np.all(np.isfinite(losses), axis=1) & np.all(losses < 1.0, axis=1)
    losses = losses[inside]
    if losses.shape[0] == 0:
        return 0.0
    losses = losses[pareto_mask(losses, [MINIMIZE] * len(axes))]
    return _hypervolume_minimisation(np.unique(losses, axis=0), np.ones(len(axes)))


def tied_costlier_mask(points: Any, axes: Sequence[str], intervals: Sequence[Any] | None) -> np.ndarray:
    """The points whose accuracy gain is noise: each ties in accuracy with a kept point no worse on every cost.

    Points are taken cheapest first (costs in lexicographic order, then the more accurate, then the
    first). Point ``i`` is marked when a point ``j`` taken before it and kept has an accuracy
    interval that overlaps ``i``'s (:func:`hpo.analysis.intervals.tie`) and is no worse than ``i``
    on every other axis (parameters, seconds, MACs): on a front ``j`` is then the cheaper model that
    the data cannot tell from ``i``. A point that ties only with points set aside stays: ties do not
    chain, so a model whose gain over every kept cheaper one the images confirm is never set aside
    because an intermediate model ties with both. The lexicographically cheapest point is never
    marked, so some point stays.

    Args:
        points: ``(n, len(axes))`` values in natural units, no NaN.
        axes: Axis names (see :data:`AXES`); without ``val_accuracy`` nothing is marked.
        intervals: ``(lower, upper)`` of each point's accuracy, or None where it is unknown (such
            a point neither is marked nor marks another); None: no intervals at all.

    Returns:
        ``(n,)`` bool array, True for the points to set aside.
    """
    values = _as_points(points, len(axes))
    marked = np.zeros(len(values), dtype=bool)
    if intervals is None or VAL_ACCURACY not in axes:
        return marked
    column = list(axes).index(VAL_ACCURACY)
    costs = np.delete(as_costs(values, _directions_of(axes)), column, axis=1)
    accuracy = values[:, column]
    # Cheapest first: a point no worse on every cost than another always comes before it.
    order = sorted(range(len(values)), key=lambda i: (*costs[i], -accuracy[i], i))
    kept: list[int] = []
    for i in order:
        if intervals[i] is not None and any(
            intervals[j] is not None and tie(intervals[i], intervals[j]) and np.all(costs[j] <= costs[i]) for j in kept
        ):
            marked[i] = True
        else:
            kept.append(i)
    return marked


def knee_point(points: Any, axes: Sequence[str], reference: Mapping[str, Any] | None = None,
               intervals: Sequence[Any] | None = None) -> int | None:
    """Index of the best compromise: the front point nearest the ideal point.

    Points are normalised with :func:`normalise` (the fixed study reference, so the knee does not
    move when unrelated trials are added), the ideal point takes the best value of each axis over
    the front, and the knee is the front point with the smallest Euclidean distance to it; ties
    go to the lowest index. (An alternative for 2-D fronts is the point farthest from the line
    between the two extremes; the distance to the ideal point works for any number of axes.)

    With accuracy ``intervals``, front points that tie in accuracy with another front point no
    worse on every cost axis are set aside first (:func:`tied_costlier_mask`): a more expensive
    model whose extra accuracy the validation set cannot confirm is not the compromise. The ideal
    point and the knee are then taken over the rest.

    Args:
        points: Array of shape ``(n, len(axes))`` in natural units; rows with NaN are skipped.
        axes: Axis names (see :data:`AXES`).
        reference: The study's ``hypervolume_reference`` (see :func:`resolve_reference`).
        intervals: ``(lower, upper)`` of each row's accuracy or None per row; None: no intervals.

    Returns:
        The row index of the knee in ``points``, or None when there is no usable point.
    """
    losses = normalise(points, axes, reference)
    usable = np.flatnonzero(np.all(np.isfinite(losses), axis=1))
    if usable.size == 0:
        return None
    on_front = usable[pareto_mask(losses[usable], [MINIMIZE] * len(axes))]
    if intervals is not None:
        values = _as_points(points, len(axes))[on_front]
        on_front = on_front[~tied_costlier_mask(values, axes, [intervals[i] for i in on_front])]
    front = losses[on_front]
    ideal = front.min(axis=0)
    distances = np.linalg.norm(front - ideal, axis=1)
    return int(on_front[int(np.argmin(distances))])


@dataclass
class FrontInfo:
    """Everything a front figure or table needs, computed once.

    Attributes:
        axes: Axis names, one per column of ``points``.
        points: ``(n, len(axes))`` values in natural units of the trials considered.
        trial_numbers: Optuna trial number of each row of ``points``.
        mask: True for the rows on the Pareto front.
        knee: Row index of the knee point (see :func:`knee_point`), None when empty.
        hypervolume: See :func:`hypervolume`.
        reference: The resolved hypervolume reference.
        intervals: The accuracy interval ``(lower, upper)`` of each row, or None where unknown
            (empty when the table had none).
    """

    axes: list[str]
    points: np.ndarray
    trial_numbers: list[int]
    mask: np.ndarray
    knee: int | None
    hypervolume: float
    reference: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REFERENCE))
    intervals: list = field(default_factory=list)

    @property
    def knee_trial(self) -> int | None:
        """Trial number of the knee point, or None."""
        return None if self.knee is None else self.trial_numbers[self.knee]

    def ties_knee(self, number: int) -> bool | None:
        """Whether trial ``number``'s accuracy interval overlaps the knee's (False for the knee
        itself; None when either interval is unknown or there is no knee)."""
        if self.knee is None:
            return None
        if number == self.knee_trial:
            return False
        if not self.intervals:
            return None
        mine = self.intervals[self.trial_numbers.index(number)]
        knee = self.intervals[self.knee]
        return None if mine is None or knee is None else tie(mine, knee)

    @property
    def front_trial_numbers(self) -> list[int]:
        """Trial numbers on the front, ordered by the first axis from best to worst."""
        rows = np.flatnonzero(self.mask)
        first = self.points[rows, 0] if rows.size else np.empty(0)
        first = first * direction_sign(AXES[self.axes[0]])  # best first
        return [self.trial_numbers[i] for i in rows[np.argsort(first, kind="stable")]]

    def front_points(self) -> np.ndarray:
        """The front's rows of ``points``, in the order of :attr:`front_trial_numbers`."""
        index = {number: row for row, number in enumerate(self.trial_numbers)}
        rows = [index[number] for number in self.front_trial_numbers]
        return self.points[rows] if rows else self.points[:0]


def front_info(
    trials_table: Sequence[Mapping[str, Any]],
    axes: Sequence[str],
    reference: Mapping[str, Any] | None = None,
) -> FrontInfo:
    """Compute the front, knee and hypervolume of a table of trials.

    Args:
        trials_table: One mapping per trial with a ``number`` key and one key per axis (e.g.
            the complete-trial rows of a ``StudyReport``). Rows missing an axis value, or with a
            non-finite one, are left out.
        axes: Axis names or short names (see :func:`resolve_axes`).
        reference: The study's ``hypervolume_reference`` (see :func:`resolve_reference`).

    Returns:
        The :class:`FrontInfo` of the usable rows.
    """
    axes = resolve_axes(axes)
    ref = resolve_reference(reference)
    numbers: list[int] = []
    rows: list[list[float]] = []
    intervals: list[tuple[float, float] | None] = []
    for trial in trials_table:
        values = [trial.get(axis) for axis in axes]
        if any(v is None for v in values):
            continue
        values = [float(v) for v in values]
        if not all(math.isfinite(v) for v in values):
            continue
        numbers.append(int(trial["number"]))
        rows.append(values)
        intervals.append(_accuracy_interval_of(trial))
    points = np.asarray(rows, dtype=float).reshape(len(rows), len(axes))
    directions = _directions_of(axes)
    known = intervals if any(i is not None for i in intervals) else None
    return FrontInfo(
        axes=list(axes),
        points=points,
        trial_numbers=numbers,
        mask=pareto_mask(points, directions),
        knee=knee_point(points, axes, ref, intervals=known),
        hypervolume=hypervolume(points, axes, ref),
        reference=ref,
        intervals=list(known or []),
    )


def _accuracy_interval_of(trial: Mapping[str, Any]) -> tuple[float, float] | None:
    """A row's validation-accuracy interval (its ``val_accuracy_lower``/``_upper``), or None."""
    lower, upper = trial.get(lower_key(VAL_ACCURACY)), trial.get(upper_key(VAL_ACCURACY))
    return None if lower is None or upper is None else (float(lower), float(upper))

"""Pruner registry and the project's multi-objective successive halving (``mo_asha``).

Single-objective studies can use Optuna's pruners (``median``, ``percentile``, ``asha``,
``hyperband``, ``wilcoxon``, ``none``) through ``trial.report``/``trial.should_prune``. Optuna
refuses ``Trial.report`` on multi-objective studies, so those take ``mo_asha`` (below) or ``none``.
The study layer doesn't branch on this: it wraps the registry's pruner in an ``EpochPruner`` and,
after each epoch, calls ``EpochPruner.should_prune(study, trial, epoch, val_accuracy)``.

Epochs are counted from 1: ``epoch`` is the number of completed epochs.

Multi-objective successive halving
----------------------------------
Each trial keeps its own per-epoch record in user attributes:

- ``history``: a list of dicts, one per completed epoch, with at least ``epoch``,
  ``val_accuracy`` and ``elapsed_seconds`` (training seconds so far);
- ``param_count`` (and ``macs`` when that is an objective), set before training.

Rungs are at epochs ``r_k = min_resource * eta**k`` (k = 0, 1, ...; defaults ``min_resource=1``,
``eta = reduction_factor = 3``: epochs 1, 3, 9, 27, ...), except the last epoch, after which
there is nothing left to save. When a trial finishes a rung epoch ``r``:

1. The rung's points are the objective vectors, measured at epoch ``r``, of every COMPLETE,
   PRUNED or RUNNING trial whose history reaches epoch ``r`` (the trial itself included):
   ``val_accuracy`` at ``r`` (maximise, always present, always the first column), then, for each
   other objective of the study, ``param_count`` and ``macs`` (minimise, fixed per trial) and
   ``train_seconds`` = ``elapsed_seconds`` at ``r`` (minimise). A point with a NaN value (a
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

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.errors import ConfigError, reject_unknown_args

if TYPE_CHECKING:
    import optuna

PrunerFactory = Callable[..., Any]

DEFAULT_PRUNER = "none"

MAXIMIZE = "maximize"
MINIMIZE = "minimize"

# How mo_asha reads each objective at a rung: ("epoch", key) from the history entry of that epoch,
# or ("trial", key) from the trial's user attributes; and the better direction.
RUNG_OBJECTIVES: dict[str, tuple[str, str, str]] = {
    "val_accuracy": ("epoch", "val_accuracy", MAXIMIZE),
    "train_seconds": ("epoch", "elapsed_seconds", MINIMIZE),
    "param_count": ("trial", "param_count", MINIMIZE),
    "macs": ("trial", "macs", MINIMIZE),
}


# --- Pure rules ---------------------------------------------------------------------------------


def _as_minimisation(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    if points.ndim != 2:
        raise ValueError(f"points must be an (n, m) array, got shape {points.shape}")
    if len(directions) != points.shape[1]:
        raise ValueError(f"{points.shape[1]} objectives but {len(directions)} directions")
    if np.isnan(points).any():
        raise ValueError("points contain NaN; map them to the worst value first")
    signs = []
    for direction in directions:
        direction = str(getattr(direction, "name", direction)).lower()
        if direction not in (MAXIMIZE, MINIMIZE):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
        signs.append(-1.0 if direction == MAXIMIZE else 1.0)
    return points * np.asarray(signs)


def non_dominated_ranks(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Non-dominated sorting: the Pareto-front index of every point.

    Point a dominates b when a is at least as good in every objective and better in one. Rank 0 is
    the set of points nobody dominates, rank 1 those dominated only by rank 0, and so on. Equal
    points don't dominate each other, so duplicates share a rank.

    Args:
        points: ``(n, m)`` objective values, no NaN (``inf`` is fine).
        directions: ``"maximize"`` or ``"minimize"`` per column.

    Returns:
        ``(n,)`` int array of ranks.
    """
    costs = _as_minimisation(points, directions)
    n = len(costs)
    if n == 0:
        return np.zeros(0, dtype=int)
    # dominates[i, j]: i dominates j. O(n^2 m) memory is fine for the few hundred trials a rung
    # holds.
    no_worse = (costs[:, None, :] <= costs[None, :, :]).all(axis=2)
    better = (costs[:, None, :] < costs[None, :, :]).any(axis=2)
    dominates = no_worse & better
    dominated_by = dominates.sum(axis=0)
    ranks = np.full(n, -1, dtype=int)
    front = np.flatnonzero(dominated_by == 0)
    rank = 0
    while front.size:
        ranks[front] = rank
        dominated_by = dominated_by - dominates[front].sum(axis=0)
        dominated_by[ranks >= 0] = -1  # already placed
        front = np.flatnonzero(dominated_by == 0)
        rank += 1
    return ranks


def crowding_distances(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """NSGA-II crowding distance of each point within one front.

    For each objective with a finite, non-zero range, the extreme points get ``inf`` and an inner
    point adds the gap between its nearest distinct neighbours below and above, over the range.
    Ties are measured by value, not by position in a sort, so duplicates get equal distances and
    the result does not depend on the order of the points.

    Args:
        points: ``(n, m)`` objective values of one front.
        directions: ``"maximize"`` or ``"minimize"`` per column.

    Returns:
        ``(n,)`` float array; larger means a sparser neighbourhood.
    """
    costs = _as_minimisation(points, directions)
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
    primary = _as_minimisation(points[:, :1], directions[:1])[:, 0]  # lower is better

    me = index
    ahead = (
        (ranks < ranks[me])
        | ((ranks == ranks[me]) & (crowding > crowding[me]))
        | ((ranks == ranks[me]) & (crowding == crowding[me]) & (primary < primary[me]))
    )
    return int(ahead.sum()) < math.ceil(n / eta)


# --- Multi-objective successive halving over a study -------------------------------------------


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


class MultiObjectiveSuccessiveHalving:
    """Successive halving on the Pareto rank of (val_accuracy, param_count, train_seconds, macs).

    The rule is in the module docstring. It reads every trial's ``history`` and ``param_count``
    user attributes; it never calls ``trial.report``, which Optuna refuses on multi-objective
    studies.

    Args:
        min_resource: First rung, in epochs (>= 1).
        reduction_factor: ``eta`` (>= 2): rungs are ``min_resource * eta**k`` and about
            ``1 / eta`` of the trials at a rung continue.
        min_trials_at_rung: Below this many trials at a rung nobody is pruned there (default
            ``eta``).
        epochs: The study's epochs per trial; the last epoch is never a rung. ``None``: unknown.
    """

    def __init__(
        self,
        min_resource: int = 1,
        reduction_factor: int = 3,
        min_trials_at_rung: int | None = None,
        *,
        epochs: int | None = None,
    ) -> None:
        if not isinstance(min_resource, int) or isinstance(min_resource, bool) or min_resource < 1:
            raise ValueError(f"min_resource must be an integer >= 1, got {min_resource!r}")
        if (
            not isinstance(reduction_factor, int)
            or isinstance(reduction_factor, bool)
            or reduction_factor < 2
        ):
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
        """
        from optuna.trial import TrialState

        columns = ["val_accuracy"] + [o for o in dict.fromkeys(objectives) if o != "val_accuracy"]
        for name in columns:
            if name not in RUNG_OBJECTIVES:
                raise ConfigError(
                    f"pruner mo_asha cannot measure objective {name!r} at a rung; it knows "
                    f"{', '.join(RUNG_OBJECTIVES)}"
                )
        directions = [RUNG_OBJECTIVES[name][2] for name in columns]
        rows: list[list[float]] = []
        numbers: list[int] = []
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        for trial in study.get_trials(deepcopy=False, states=states):
            row = self._trial_point(trial.user_attrs, epoch, columns)
            if row is not None:
                rows.append(row)
                numbers.append(trial.number)
        points = np.asarray(rows, dtype=float).reshape(len(rows), len(columns))
        worst = np.array([-np.inf if d == MAXIMIZE else np.inf for d in directions])
        diverged = np.isnan(points).any(axis=1)
        points[diverged] = worst
        return points, directions, numbers

    @staticmethod
    def _trial_point(
        user_attrs: Mapping[str, Any], epoch: int, columns: Sequence[str]
    ) -> list[float] | None:
        history = user_attrs.get("history")
        if not isinstance(history, list):
            return None
        entry = next(
            (h for h in history if isinstance(h, Mapping) and h.get("epoch") == epoch), None
        )
        if entry is None:
            return None
        row = []
        for name in columns:
            source, key, _ = RUNG_OBJECTIVES[name]
            holder = entry if source == "epoch" else user_attrs
            if key not in holder:
                return None
            row.append(_number(holder[key]))
        return row

    def should_prune(
        self, study: optuna.Study, trial_number: int, epoch: int, objectives: Sequence[str]
    ) -> bool:
        """Apply the rung rule to one trial after it completed ``epoch``.

        Args:
            study: The study (its trials' user attributes are read).
            trial_number: The trial being judged; its ``history`` must already hold ``epoch``.
            epoch: Completed epochs (1-based).
            objectives: The study's objective names, e.g. ``["val_accuracy", "param_count"]``.

        Returns:
            True if the trial should stop now.

        Raises:
            ValueError: The trial's own record lacks ``epoch`` or a needed value (a caller bug).
        """
        if not self.is_rung(epoch):
            return False
        points, directions, numbers = self.rung_points(study, epoch, objectives)
        if trial_number not in numbers:
            raise ValueError(
                f"trial {trial_number} has no history entry for epoch {epoch} with every "
                f"objective ({', '.join(objectives)}); store it before asking to prune"
            )
        return not mo_successive_halving_keep(
            points,
            directions,
            numbers.index(trial_number),
            self.reduction_factor,
            min_points=self.min_trials_at_rung,
        )


# --- One entry point for the study layer --------------------------------------------------------


class EpochPruner:
    """What the study layer calls after every epoch, whatever the pruner.

    Optuna pruners are asked through ``trial.report`` and ``trial.should_prune``, so the study must
    be created (or loaded) with ``pruner=epoch_pruner.study_pruner``. ``mo_asha`` reads the trials'
    user attributes instead, so the caller must store the epoch's ``history`` entry (and
    ``param_count``/``macs`` beforehand) on the trial *before* calling ``should_prune``.

    Args:
        pruner: What ``make_pruner`` returned.
        objectives: The study's objective names; ``None`` uses ``study.metric_names``, or
            ``["val_accuracy"]`` for a single-objective study without names.
    """

    def __init__(self, pruner: Any, *, objectives: Sequence[str] | None = None) -> None:
        self.pruner = pruner
        self.objectives = list(objectives) if objectives is not None else None

    @classmethod
    def for_study(cls, study: optuna.Study, config: Any) -> StudyEpochPruner:
        """The pruner a study definition names, bound to one study.

        Args:
            study: The loaded study (for Optuna pruners, loaded with ``pruner=study_pruner``).
            config: An ``hpo.config.StudyConfig`` (``pruner.name``, ``pruner.args``,
                ``objectives``, ``epochs``).

        Returns:
            A ``StudyEpochPruner``: ``should_prune(trial, epoch, val_accuracy)``.
        """
        objectives = list(config.objectives)
        pruner = make_pruner(
            config.pruner.name,
            config.pruner.args,
            n_objectives=len(objectives),
            epochs=config.epochs,
        )
        return StudyEpochPruner(cls(pruner, objectives=objectives), study)

    @property
    def study_pruner(self) -> optuna.pruners.BasePruner:
        """The pruner to give ``optuna.create_study``/``load_study``."""
        import optuna

        if isinstance(self.pruner, optuna.pruners.BasePruner):
            return self.pruner
        return optuna.pruners.NopPruner()

    def _objectives(self, study: optuna.Study) -> list[str]:
        if self.objectives is not None:
            return self.objectives
        if study.metric_names is not None:
            return list(study.metric_names)
        if len(study.directions) == 1:
            return ["val_accuracy"]
        raise ValueError(
            "a multi-objective study needs objective names: call study.set_metric_names or pass "
            "objectives="
        )

    def replay(
        self, study: optuna.Study, trial: optuna.Trial, epoch: int, val_accuracy: float
    ) -> None:
        """Record an epoch restored from a checkpoint, without a pruning decision.

        A retried trial is a new Optuna trial: its restored epochs are reported again (on
        single-objective studies) so its learning curve is whole. mo_asha needs nothing: it reads
        the ``history`` user attribute.

        Args:
            study: The trial's study.
            trial: The running (retried) trial.
            epoch: A completed epoch of the checkpoint (1-based).
            val_accuracy: Its validation accuracy.
        """
        if len(study.directions) == 1:
            trial.report(float(val_accuracy), int(epoch))

    def should_prune(
        self, study: optuna.Study, trial: optuna.Trial, epoch: int, val_accuracy: float
    ) -> bool:
        """Record the epoch's accuracy where Optuna allows it and decide whether to stop.

        Args:
            study: The trial's study.
            trial: The running trial.
            epoch: Completed epochs (1-based), the step of ``trial.report``.
            val_accuracy: Validation accuracy after ``epoch``.

        Returns:
            True if the trial should stop now (the caller raises ``optuna.TrialPruned`` after
            recording ``stop_reason=pruned``).
        """
        import optuna

        single_objective = len(study.directions) == 1
        if single_objective:
            # Intermediate values feed the dashboard and TPE's ranking of pruned trials, whatever
            # the pruner.
            trial.report(float(val_accuracy), int(epoch))
        if isinstance(self.pruner, MultiObjectiveSuccessiveHalving):
            objectives = self._objectives(study)
            return self.pruner.should_prune(study, trial.number, int(epoch), objectives)
        if isinstance(self.pruner, optuna.pruners.NopPruner) or not single_objective:
            return False
        return bool(trial.should_prune())  # some Optuna pruners answer with numpy bools


class StudyEpochPruner:
    """An ``EpochPruner`` bound to one study, as ``EpochPruner.for_study`` returns it.

    Args:
        epoch_pruner: The unbound pruner.
        study: The study its trials belong to.
    """

    def __init__(self, epoch_pruner: EpochPruner, study: optuna.Study) -> None:
        self.epoch_pruner = epoch_pruner
        self.study = study

    @property
    def study_pruner(self) -> optuna.pruners.BasePruner:
        """The pruner to give ``optuna.create_study``/``load_study``."""
        return self.epoch_pruner.study_pruner

    def replay(self, trial: optuna.Trial, epoch: int, val_accuracy: float) -> None:
        """``EpochPruner.replay`` on the bound study."""
        self.epoch_pruner.replay(self.study, trial, epoch, val_accuracy)

    def should_prune(self, trial: optuna.Trial, epoch: int, val_accuracy: float) -> bool:
        """``EpochPruner.should_prune`` on the bound study."""
        return self.epoch_pruner.should_prune(self.study, trial, epoch, val_accuracy)


# --- Registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrunerEntry:
    """One registered pruner.

    Attributes:
        name: Registry key, as written in a study file (``pruner: {name: asha}``).
        description: One line for help and docs.
        multi_objective: Whether multi-objective studies may use it.
        factory: ``(args, *, epochs) -> pruner``: an ``optuna.pruners.BasePruner`` or a
            ``MultiObjectiveSuccessiveHalving``.
        arg_names: The ``args`` keys a study file may set; ``None`` accepts any.
        aliases: Other registry keys for the same pruner.
    """

    name: str
    description: str
    multi_objective: bool
    factory: PrunerFactory = field(repr=False)
    arg_names: frozenset[str] | None = None
    aliases: tuple[str, ...] = ()


PRUNERS: dict[str, PrunerEntry] = {}


def _settable_args(cls: type, managed: Sequence[str] = ()) -> frozenset[str]:
    names = set()
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        names.add(param.name)
    return frozenset(names - set(managed))


def register_pruner(
    name: str,
    *,
    description: str,
    multi_objective: bool,
    pruner_class: type | None = None,
    arg_names: Sequence[str] | None = None,
    aliases: Sequence[str] = (),
    replace: bool = False,
) -> Callable[[PrunerFactory], PrunerFactory]:
    """Register a pruner factory under ``name`` (use as a decorator).

    Args:
        name: Registry key used in study files.
        description: One line describing the pruner.
        multi_objective: Whether multi-objective studies may use it (it must then be a
            ``MultiObjectiveSuccessiveHalving`` or something with the same ``should_prune``).
        pruner_class: The class the factory builds; its constructor arguments (less ``epochs``,
            which the study supplies) become the accepted ``args``.
        arg_names: Accepted ``args`` keys, overriding ``pruner_class``; with neither, any key is
            passed through unchecked.
        aliases: Other names for the same entry.
        replace: Allow replacing an existing entry.

    Returns:
        A decorator that registers the factory and returns it unchanged.
    """

    def decorator(factory: PrunerFactory) -> PrunerFactory:
        keys = (name, *aliases)
        taken = [key for key in keys if key in PRUNERS]
        if taken and not replace:
            raise ValueError(f"pruner {taken[0]!r} is already registered; pass replace=True")
        if arg_names is not None:
            accepted: frozenset[str] | None = frozenset(arg_names)
        elif pruner_class is not None:
            accepted = _settable_args(pruner_class, managed=("epochs",))
        else:
            accepted = None
        entry = PrunerEntry(
            name=name,
            description=description,
            multi_objective=multi_objective,
            factory=factory,
            arg_names=accepted,
            aliases=tuple(aliases),
        )
        for key in keys:
            PRUNERS[key] = entry
        return factory

    return decorator


def _entry(name: str, origin: str) -> PrunerEntry:
    try:
        return PRUNERS[name]
    except KeyError:
        valid = ", ".join(sorted(PRUNERS))
        raise ConfigError(f"{origin}: unknown pruner {name!r}; choose one of: {valid}") from None


def make_pruner(
    name: str, args: Mapping[str, Any] | None, *, n_objectives: int, epochs: int | None
) -> Any:
    """Build the pruner a study file names.

    Call ``check_pruner`` first for user-facing errors. Wrap the result in ``EpochPruner``.

    Args:
        name: Registry key (e.g. ``"asha"``).
        args: The study file's ``pruner.args`` (may be ``None``).
        n_objectives: Number of study objectives.
        epochs: Epochs per trial (sets Hyperband's ``max_resource`` and mo_asha's last rung).

    Returns:
        An ``optuna.pruners.BasePruner`` or a ``MultiObjectiveSuccessiveHalving``.

    Raises:
        ConfigError: A single-objective pruner for a multi-objective study.
    """
    entry = _entry(name, "pruner")
    if n_objectives > 1 and not entry.multi_objective:
        raise ConfigError(_single_objective_message("pruner", name))
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        # WilcoxonPruner is marked experimental; the user chose it by name, the note adds nothing.
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        return entry.factory(dict(args or {}), epochs=epochs)


def _single_objective_message(origin: str, name: str) -> str:
    return (
        f"{origin}: pruner {name!r} is single-objective; multi-objective studies take mo_asha "
        "or none"
    )


def check_pruner(
    name: str,
    args: Mapping[str, Any] | None,
    *,
    n_objectives: int,
    origin: str,
    epochs: int | None = None,
    objectives: Sequence[str] | None = None,
) -> list[str]:
    """Validate a study file's pruner before any worker starts.

    Args:
        name: Registry key from the study file.
        args: The study file's ``pruner.args``.
        n_objectives: Number of study objectives.
        origin: Where the setting came from, for messages (e.g. ``"studies/cpu-quick.yaml"``).
        epochs: Epochs per trial, when known (checks that mo_asha has a rung at all).
        objectives: The study's objective names, when known (checks mo_asha can measure them).

    Returns:
        Notes to show the user once; empty when there is nothing to say.

    Raises:
        ConfigError: Unknown pruner or argument, a single-objective pruner on a multi-objective
            study, an objective mo_asha cannot measure, or an argument value the pruner refuses.
    """
    entry = _entry(name, origin)
    args = dict(args or {})
    reject_unknown_args("pruner", name, args, entry.arg_names, origin)
    if n_objectives > 1 and not entry.multi_objective:
        raise ConfigError(_single_objective_message(origin, name))
    try:
        pruner = make_pruner(name, args, n_objectives=n_objectives, epochs=epochs)
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"{origin}: pruner {name!r} refuses its args ({str(error).rstrip('.')})"
        ) from None

    notes: list[str] = []
    if isinstance(pruner, MultiObjectiveSuccessiveHalving):
        for objective in objectives or ():
            if objective not in RUNG_OBJECTIVES:
                raise ConfigError(
                    f"{origin}: pruner mo_asha cannot measure objective {objective!r} at a rung; "
                    f"use objectives among {', '.join(RUNG_OBJECTIVES)} or pruner none"
                )
        if n_objectives == 1:
            notes.append("mo_asha on a single objective is successive halving on val_accuracy")
        if epochs is not None and not pruner.rungs():
            notes.append(
                f"mo_asha never prunes with {epochs} epochs: its first rung is epoch "
                f"{pruner.min_resource}; lower min_resource or train longer"
            )
        elif epochs is not None:
            rungs = ", ".join(map(str, pruner.rungs()))
            notes.append(f"mo_asha judges trials after epochs {rungs}")
    return notes


def _register_builtin() -> None:
    import optuna

    pruners = optuna.pruners

    @register_pruner(
        "none",
        description="No pruning: every trial trains all its epochs",
        multi_objective=True,
        pruner_class=pruners.NopPruner,
    )
    def _none(args, *, epochs):
        return pruners.NopPruner(**args)

    @register_pruner(
        "median",
        description="Stop a trial whose best accuracy so far is below the median of earlier "
        "trials at the same epoch",
        multi_objective=False,
        pruner_class=pruners.MedianPruner,
    )
    def _median(args, *, epochs):
        return pruners.MedianPruner(**args)

    @register_pruner(
        "percentile",
        description="Stop a trial in the bottom `percentile` % of earlier trials at the same epoch",
        multi_objective=False,
        pruner_class=pruners.PercentilePruner,
    )
    def _percentile(args, *, epochs):
        # Bottom quarter: gentler than the median rule, for noisy early epochs.
        return pruners.PercentilePruner(**{"percentile": 25.0, **args})

    @register_pruner(
        "asha",
        description="Asynchronous successive halving: rungs at 1, 3, 9, ... epochs, the best "
        "third continue",
        multi_objective=False,
        pruner_class=pruners.SuccessiveHalvingPruner,
        aliases=("successive_halving",),
    )
    def _asha(args, *, epochs):
        # Same rungs as mo_asha (min_resource 1, eta 3) so the two compare like for like;
        # Optuna's own defaults ("auto", 4) depend on the first finished trial.
        defaults = {"min_resource": 1, "reduction_factor": 3}
        return pruners.SuccessiveHalvingPruner(**{**defaults, **args})

    @register_pruner(
        "hyperband",
        description="Hyperband: several successive-halving brackets up to the study's epochs",
        multi_objective=False,
        pruner_class=pruners.HyperbandPruner,
    )
    def _hyperband(args, *, epochs):
        defaults = {"min_resource": 1, "max_resource": epochs or "auto", "reduction_factor": 3}
        return pruners.HyperbandPruner(**{**defaults, **args})

    @register_pruner(
        "wilcoxon",
        description="Stop a trial whose per-epoch accuracies are significantly below the best "
        "trial's (Wilcoxon signed-rank test)",
        multi_objective=False,
        pruner_class=pruners.WilcoxonPruner,
    )
    def _wilcoxon(args, *, epochs):
        return pruners.WilcoxonPruner(**args)

    @register_pruner(
        "mo_asha",
        description="The project's multi-objective successive halving on the Pareto rank of "
        "accuracy, size and time at rungs 1, 3, 9, ... epochs",
        multi_objective=True,
        pruner_class=MultiObjectiveSuccessiveHalving,
    )
    def _mo_asha(args, *, epochs):
        return MultiObjectiveSuccessiveHalving(**args, epochs=epochs)


_register_builtin()

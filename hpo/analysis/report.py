"""Collect an Optuna study into plain data: trial rows, counts, the front, importances.

`collect` is the only function here that reads Optuna; the figures and exports draw from the
`StudyReport` it returns, so they can be tested on any hand-built study.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import operator
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial

from hpo.analysis.intervals import CONFIDENCE, accuracy_interval, lower_key, measured_on, upper_key
from hpo.analysis.formatting import (  # noqa: F401  (re-exported)
    KNEE,
    TIES_KNEE,
    display_cell,
    format_cell,
    format_count,
    log_scale,
    shown_columns,
)
from hpo.analysis.pareto import AXES, FrontInfo, front_info, resolve_axes, resolve_reference
from hpo.analysis.refits import add_refit_columns, collect_refits, refit_rows
from hpo.data.sizes import SplitSizes, split_sizes_of
from hpo.trials import (
    BUDGET_KEY,
    INTEGER_FIELDS,
    MACS,
    MAXIMIZE,
    N_TEST_IMAGES,
    N_VAL_IMAGES,
    OBJECTIVES,
    PARAM_COUNT,
    REPORTED_FIELDS,
    SYS_WARM_FROM,
    TEST_ACCURACY,
    TEST_ACCURACY_PREFIX,
    TEST_IMAGES_PREFIX,
    TRAIN_SECONDS,
    VAL_ACCURACY,
    TrialRecord,
    finite_or_none,
    history_value,
)

DEFAULT_AXES = [VAL_ACCURACY, PARAM_COUNT, TRAIN_SECONDS]

# A row carries every field of the trial record: the reported ones first, then the rest
# (``history`` among them), each named by hpo.trials.
ROW_FIELDS: tuple[str, ...] = tuple(dict.fromkeys(
    [*REPORTED_FIELDS, *(f.name for f in dataclasses.fields(TrialRecord) if f.name != "extra")]
))

# Importance needs a few trials to fit a forest that means anything; below this it is noise.
MIN_TRIALS_FOR_IMPORTANCE = 5

# Importance of log-scale objectives (parameters, MACs) is computed on log10: a 10x change
# matters the same at any size.
_LOG_TARGETS = {name for name, objective in OBJECTIVES.items() if objective.log_scale}


@dataclass
class StudyReport:
    """A study, collected into plain data for figures and exports.

    Attributes:
        name: Study name.
        definition: The resolved study config (study user attr ``definition``); {} if absent.
        hardware: Study user attr ``hardware`` (e.g. "1x NVIDIA H100"), or None.
        hpo_version: Study user attr ``hpo_version``, or None.
        directions: "maximize"/"minimize" per objective value.
        metric_names: Names of the objective values (e.g. ["val_accuracy"]).
        trials: One dict per trial: ``number``, ``state`` (COMPLETE, PRUNED, FAIL, RUNNING,
            WAITING), ``values``, ``params``, ``datetime_start``/``datetime_complete``, ``warm_from``
            (``STUDY#N`` on a warm-start trial, see hpo.warm_start; else None) and every
            field in :data:`ROW_FIELDS` as stored (None when missing; ``history`` is the list of
            per-epoch dicts). Metrics come from the objective values when the study optimises
            them, else from the user attributes.
        state_counts: Number of trials per state name.
        stop_reason_counts: Number of trials per ``stop_reason``.
        compute_seconds: Sum of ``train_seconds`` over all trials (stopped ones included).
        axes: The front's axes.
        reference: The resolved hypervolume reference (see pareto.resolve_reference).
        front: The front over the COMPLETE trials on ``axes``.
        pair_fronts: 2-D fronts of accuracy against each other axis, keyed by that axis
            (for the accuracy-vs-params and accuracy-vs-time figures).
        pruned_numbers: Trial numbers of PRUNED trials; shown apart from the front since they
            ran a smaller budget.
        varying_params: Parameters that take more than one value among the trials.
        search_space: Parameter name -> human description of its range or choices.
        importances: Target axis -> {param: importance}, fANOVA, normalised to sum 1; a target
            is missing when its importance could not be computed.
        importance_notes: Why an importance is missing, one sentence per target.
        ped_anova_importances: The same targets by PED-ANOVA, the evaluator optuna-dashboard's
            importance panel uses (Optuna 5's default), computed as the dashboard does (lower is
            better: maximised targets negated); the deck shows them beside the fANOVA ones.
        n_trials: The study's trial budget (study user attr ``n_trials``, which ``--n-trials``
            updates; else the definition's), or None.
        created: When the report was collected (UTC).
    """

    name: str
    definition: dict[str, Any]
    hardware: str | None
    hpo_version: str | None
    directions: list[str]
    metric_names: list[str]
    trials: list[dict[str, Any]]
    state_counts: dict[str, int]
    stop_reason_counts: dict[str, int]
    compute_seconds: float
    axes: list[str]
    reference: dict[str, float]
    front: FrontInfo
    pair_fronts: dict[str, FrontInfo]
    pruned_numbers: list[int]
    varying_params: list[str]
    search_space: dict[str, str]
    importances: dict[str, dict[str, float]] = field(default_factory=dict)
    importance_notes: dict[str, str] = field(default_factory=dict)
    ped_anova_importances: dict[str, dict[str, float]] = field(default_factory=dict)
    n_trials: int | None = None
    time_budget: str | None = None  # the study's time budget as status lines name it (``4m``), or None
    created: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc))
    refits: dict[int, Any] = field(default_factory=dict)  # hpo.analysis.refits.RefitStats by search trial
    refit_front: FrontInfo | None = None  # the front of the refitted configurations on their refit means

    @property
    def knee_trial(self) -> int | None:
        """Trial number of the knee point: on the refit means where refits exist, else the front's; or None."""
        if self.refit_front is not None and self.refit_front.knee_trial is not None:
            return self.refit_front.knee_trial
        return self.front.knee_trial

    def ties_knee(self, number: int) -> bool | None:
        """Whether trial ``number`` ties the knee: its seed spread (mean ± std) overlaps the knee's
        where refits chose the knee, else its accuracy interval (see FrontInfo.ties_knee)."""
        if self.refit_front is not None and self.refit_front.knee_trial is not None:
            return self.refit_front.ties_knee(number) if number in self.refit_front.trial_numbers else None
        return self.front.ties_knee(number)

    @property
    def hypervolume(self) -> float:
        """Hypervolume of the front (see pareto.hypervolume)."""
        return self.front.hypervolume

    def trial(self, number: int) -> dict[str, Any]:
        """The row of trial ``number``.

        Args:
            number: Optuna trial number.

        Returns:
            The trial's row (see :attr:`trials`).
        """
        for row in self.trials:
            if row["number"] == number:
                return row
        raise KeyError(f"study {self.name!r} has no trial {number}")

    def rows(self, state: str) -> list[dict[str, Any]]:
        """Rows of the trials in ``state`` (e.g. "COMPLETE").

        Args:
            state: A trial state name.

        Returns:
            The matching rows, by trial number.
        """
        return [row for row in self.trials if row["state"] == state]

    def log_scale(self, axis: str) -> bool:
        """Whether charts draw cost ``axis`` on a log scale, judged on every complete and pruned
        trial's value (:func:`hpo.analysis.formatting.log_scale`), the same on every chart."""
        return log_scale(axis, [row.get(axis) for row in self.trials if row["state"] in ("COMPLETE", "PRUNED")])

    @property
    def front_rows(self) -> list[dict[str, Any]]:
        """Rows of the front trials, best accuracy first; then refitted trials off the front."""
        front = _by_accuracy(self, self.front.front_trial_numbers)
        refitted = [n for n in sorted(self.refits) if n not in front and any(r["number"] == n for r in self.trials)]
        return [self.trial(n) for n in front + refitted]


def _by_accuracy(report: StudyReport, numbers: Sequence[int]) -> list[int]:
    def key(number: int) -> tuple[float, int]:
        accuracy = report.trial(number).get(VAL_ACCURACY)
        return (-(accuracy if accuracy is not None else -math.inf), number)

    return sorted(numbers, key=key)


def _trial_row(trial: FrozenTrial, record: TrialRecord, metric_names: Sequence[str]) -> dict[str, Any]:
    # As stored: a stop reason this release does not know stays in the row as its text.
    attrs = record.to_attrs()
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "values": list(trial.values) if trial.values is not None else None,
        "params": dict(trial.params),
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
        WARM_FROM: trial.system_attrs.get(SYS_WARM_FROM),  # "STUDY#N" on a warm-start trial, else None
    }
    for name in ROW_FIELDS:
        row[name] = finite_or_none(attrs.get(name))
    # The objective values are what the sampler saw; prefer them over the attrs when present.
    if trial.values is not None:
        for name, value in zip(metric_names, trial.values):
            if name in AXES or name in REPORTED_FIELDS:
                value = finite_or_none(float(value))
                # Optuna stores every value as a float; counts read better as ints.
                if value is not None and name in INTEGER_FIELDS:
                    value = int(round(value))
                row[name] = value
    if row[VAL_ACCURACY] is None and record.epochs:
        row[VAL_ACCURACY] = finite_or_none(history_value(record.epochs[-1], VAL_ACCURACY))
    return row


# The accuracies a row carries, each with the count of images it was measured on.
ACCURACY_COUNTS = ((VAL_ACCURACY, N_VAL_IMAGES), (TEST_ACCURACY, N_TEST_IMAGES))


def _add_intervals(row: dict[str, Any], sizes: SplitSizes | None, study_attrs: Mapping[str, Any]) -> None:
    """Give a row its test accuracy (kept on the study), each accuracy's n and its interval's ends.

    ``hpo evaluate`` runs after trials finish, when Optuna no longer lets trial attributes change,
    so test accuracies and their counts live in the study's attributes as
    ``test_accuracy:<number>`` and ``test_images:<number>``. A count a trial did not store is
    derived from the dataset definition where it fits the accuracies (see intervals.measured_on).
    """
    number = row["number"]
    if row.get(TEST_ACCURACY) is None:
        row[TEST_ACCURACY] = finite_or_none(study_attrs.get(f"{TEST_ACCURACY_PREFIX}{number}"))
    if row.get(N_TEST_IMAGES) is None:
        row[N_TEST_IMAGES] = study_attrs.get(f"{TEST_IMAGES_PREFIX}{number}")
    epochs = TrialRecord.from_attrs(row).epochs
    seen = {VAL_ACCURACY: [row.get(VAL_ACCURACY), *(history_value(e, VAL_ACCURACY) for e in epochs)],
            TEST_ACCURACY: [row.get(TEST_ACCURACY)]}
    derived = {VAL_ACCURACY: sizes.val if sizes else None, TEST_ACCURACY: sizes.test if sizes else None}
    for name, count in ACCURACY_COUNTS:
        row[count] = measured_on(row.get(count), derived[name], seen[name])
        lower, upper = accuracy_interval(row.get(name), row[count]) or (None, None)
        row[lower_key(name)], row[upper_key(name)] = lower, upper


def describe_distribution(distribution: BaseDistribution) -> str:
    """A short human description of a parameter's range, e.g. ``[1e-4, 0.1] log``.

    Args:
        distribution: An Optuna distribution.

    Returns:
        The description.
    """
    if isinstance(distribution, CategoricalDistribution):
        return "{" + ", ".join(str(c) for c in distribution.choices) + "}"
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        text = f"[{distribution.low:g}, {distribution.high:g}]"
        if distribution.log:
            text += " log"
        if distribution.step is not None and not (
            isinstance(distribution, IntDistribution) and distribution.step == 1
        ):
            text += f" step {distribution.step:g}"
        return text
    return repr(distribution)


def _search_space(trials: Sequence[FrozenTrial], definition: Mapping[str, Any]) -> dict[str, str]:
    space: dict[str, str] = {}
    for trial in trials:
        for name, distribution in trial.distributions.items():
            space.setdefault(name, describe_distribution(distribution))
    # Fixed values in the definition never become Optuna params; show them so the slide is whole.
    declared = definition.get("space") or {}
    if isinstance(declared, Mapping):
        declared = declared.get("params", declared)
    if isinstance(declared, Mapping):
        for name, spec in declared.items():
            if name not in space and not isinstance(spec, (Mapping, list, tuple)):
                space[name] = f"fixed: {spec}"
    return dict(sorted(space.items()))


def _varying_params(trials: Sequence[FrozenTrial]) -> list[str]:
    seen: dict[str, set[str]] = {}
    for trial in trials:
        for name, value in trial.params.items():
            seen.setdefault(name, set()).add(repr(value))
    return sorted(name for name, values in seen.items() if len(values) > 1)


# Who made an importance: hpo's reports fit fANOVA; optuna-dashboard's panel shows PED-ANOVA.
FANOVA, PED_ANOVA = "fANOVA", "PED-ANOVA"


def _importance_target(axis: str, rows: Mapping[int, Mapping[str, Any]], sign: float = 1.0):
    def target(trial: FrozenTrial) -> float:
        value = rows[trial.number].get(axis)
        if value is None:
            return math.nan  # optuna's evaluators skip non-finite targets
        value = float(value)
        if axis in _LOG_TARGETS:
            return sign * math.log10(value) if value > 0 else math.nan
        return sign * value

    return target


def _importances(
    study: optuna.Study,
    targets: Sequence[str],
    rows: Mapping[int, Mapping[str, Any]],
    varying: Sequence[str],
    evaluator_name: str = FANOVA,
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    import warnings

    importances: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    complete = [r for r in rows.values() if r["state"] == "COMPLETE"]
    for axis in targets:
        usable = [r for r in complete if r.get(axis) is not None]
        if len(usable) < MIN_TRIALS_FOR_IMPORTANCE:
            notes[axis] = (
                f"importance for {axis} needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials "
                f"that record it (got {len(usable)})"
            )
            continue
        if len(varying) < 2:
            notes[axis] = (
                f"importance for {axis} needs at least two varying parameters (got {len(varying)})"
            )
            continue
        # PED-ANOVA ranks by low target values, so maximised axes are negated (as optuna-dashboard does).
        ped_anova = evaluator_name == PED_ANOVA
        evaluator = (optuna.importance.PedAnovaImportanceEvaluator() if ped_anova
                     else optuna.importance.FanovaImportanceEvaluator(seed=0))
        sign = -1.0 if ped_anova and OBJECTIVES[axis].direction == MAXIMIZE else 1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PED-ANOVA warns on every explicit target
                result = optuna.importance.get_param_importances(
                    study, evaluator=evaluator, target=_importance_target(axis, rows, sign)
                )
        # A report must not fail for want of an importance: conditional spaces, constant
        # targets or too few trials per parameter make fANOVA raise in many ways.
        except Exception as error:  # noqa: BLE001
            notes[axis] = f"importance for {axis} could not be computed: {error}"
            continue
        if not result or not all(math.isfinite(v) for v in result.values()):
            notes[axis] = f"importance for {axis} could not be computed: no parameter varies in every trial"
            continue
        importances[axis] = {name: float(v) for name, v in result.items()}
    return importances, notes


def collect(study: optuna.Study, axes: Sequence[str] = tuple(DEFAULT_AXES), *, importances: bool = True) -> StudyReport:
    """Collect a study into a :class:`StudyReport`.

    The front is built from COMPLETE trials only: pruned trials ran a smaller budget, so they
    are listed apart (``pruned_numbers``) and drawn with their own marker.

    Args:
        study: A loaded Optuna study written by ``hpo run``, or any study whose trials carry the
            user attributes of :class:`hpo.trials.TrialRecord`.
        axes: Front axes, full or short names (see pareto.resolve_axes).
        importances: Fit the parameter importances (fANOVA, the slow part); without it they are
            left empty, for callers that only read the trials or the front (``hpo.Study``).

    Returns:
        The report.

    Raises:
        ConfigError: For unknown axes or an invalid ``hypervolume_reference`` in the study.
    """
    axes = resolve_axes(axes)
    study_attrs = study.user_attrs
    definition = dict(study_attrs.get("definition") or {})
    reference = resolve_reference(definition.get("hypervolume_reference"))
    directions = [d.name.lower() for d in study.directions]
    metric_names = list(study.metric_names or [])
    if not metric_names:
        metric_names = [VAL_ACCURACY] if len(directions) == 1 else [f"value_{i}" for i in range(len(directions))]

    trials = study.get_trials(deepcopy=False)
    records = [TrialRecord.of(trial) for trial in trials]
    rows = [_trial_row(trial, record, metric_names) for trial, record in zip(trials, records)]
    sizes = split_sizes_of(definition.get("dataset"))
    for row in rows:
        _add_intervals(row, sizes, study_attrs)
    by_number = {row["number"]: row for row in rows}
    complete = [row for row in rows if row["state"] == "COMPLETE"]

    pair_fronts = {
        axis: front_info(complete, [VAL_ACCURACY, axis], reference)
        for axis in (PARAM_COUNT, TRAIN_SECONDS, MACS)
        if axis in axes or axis in (PARAM_COUNT, TRAIN_SECONDS)
    }
    varying = _varying_params(trials)
    targets = list(dict.fromkeys([VAL_ACCURACY, *axes]))
    importance, notes = _importances(study, targets, by_number, varying) if importances else ({}, {})
    ped_anova = _importances(study, targets, by_number, varying, PED_ANOVA)[0] if importances else {}
    refits = collect_refits(study)

    return StudyReport(
        name=study.study_name,
        definition=definition,
        hardware=study_attrs.get("hardware"),
        hpo_version=study_attrs.get("hpo_version"),
        directions=directions,
        metric_names=metric_names,
        trials=rows,
        state_counts=dict(Counter(row["state"] for row in rows)),
        stop_reason_counts=dict(Counter(r.stop_reason_text for r in records if r.stop_reason_text)),
        compute_seconds=float(sum(row[TRAIN_SECONDS] or 0.0 for row in rows)),
        axes=axes,
        reference=reference,
        front=front_info(complete, axes, reference),
        pair_fronts=pair_fronts,
        pruned_numbers=[row["number"] for row in rows if row["state"] == "PRUNED"],
        varying_params=varying,
        search_space=_search_space(trials, definition),
        importances=importance,
        importance_notes=notes,
        ped_anova_importances=ped_anova,
        n_trials=study_attrs.get("n_trials", definition.get("n_trials")),
        time_budget=_time_budget(study_attrs.get(BUDGET_KEY, definition.get(BUDGET_KEY))),
        refits=refits,
        refit_front=front_info(refit_rows(complete, refits), axes, reference) if refits else None,
    )


def _time_budget(stored: Any) -> str | None:
    from hpo.budget import stored_budget

    budget = stored_budget(stored)
    return None if budget is None else budget.describe()


# The metric columns of the front table, after ``trial``.
FRONT_TABLE_METRICS = (VAL_ACCURACY, PARAM_COUNT, MACS, TRAIN_SECONDS)
WARM_FROM = "warm_from"  # row field and front-table column: the "STUDY#N" a warm-start trial came from


def _with_interval(entry: dict[str, Any], row: Mapping[str, Any], name: str) -> None:
    entry[name] = row.get(name)
    entry[lower_key(name)] = row.get(lower_key(name))
    entry[upper_key(name)] = row.get(upper_key(name))


def front_table(report: StudyReport) -> list[dict[str, Any]]:
    """The front trials as table rows, best validation accuracy first.

    Columns: ``trial``, ``val_accuracy`` and its 95% interval's ``val_accuracy_lower`` and
    ``val_accuracy_upper``, ``param_count``, ``macs``, ``train_seconds``, ``test_accuracy`` with
    ``test_accuracy_lower``/``_upper`` (only when some front trial was evaluated with ``hpo
    evaluate``), ``knee`` (True on the knee trial), ``ties_knee`` (True where the accuracy interval
    overlaps the knee's, False on the knee and elsewhere, None where an interval is unknown),
    ``warm_from`` (only when a front trial is a warm-start trial: ``STUDY#N``, else None), then
    one column per varying parameter (None when the trial does not use it, e.g. ``resnet.depth`` on
    a DenseNet trial). Interval ends are None where the number of images is not known.

    Args:
        report: A collected study.

    Returns:
        One dict per front trial, with the same keys in the same order in every row.
    """
    front = report.front_rows
    evaluated = any(row.get(TEST_ACCURACY) is not None for row in front)
    warm = any(row.get(WARM_FROM) for row in front)
    table = []
    for row in front:
        entry: dict[str, Any] = {"trial": row["number"]}
        for name in FRONT_TABLE_METRICS:
            if name == VAL_ACCURACY:
                _with_interval(entry, row, name)
            else:
                entry[name] = row.get(name)
        if evaluated:
            _with_interval(entry, row, TEST_ACCURACY)
        entry[KNEE] = row["number"] == report.knee_trial
        entry[TIES_KNEE] = report.ties_knee(row["number"])
        if warm:
            entry[WARM_FROM] = row.get(WARM_FROM)
        if report.refits:
            add_refit_columns(entry, report.refits.get(row["number"]))
        for name in report.varying_params:
            entry[name] = row["params"].get(name)
        table.append(entry)
    return table


def history_arrays(row: Mapping[str, Any], metric: str | Callable[[Any], Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch values of one metric from a trial row's history.

    Args:
        row: A trial row of a :class:`StudyReport`.
        metric: An :class:`hpo.trials.EpochMetrics` field name (e.g. ``val_accuracy``), or a
            function reading it from one epoch's metrics (e.g. ``lambda m: m.train_accuracy``).

    Returns:
        (epochs, values) as float arrays; epochs that did not record the metric are skipped.
    """
    read = metric if callable(metric) else operator.attrgetter(metric)
    epochs, values = [], []
    for position, entry in enumerate(TrialRecord.from_attrs(row).epochs):
        # Entries are read as stored: older or partial ones may lack fields EpochMetrics requires.
        metrics = SimpleNamespace(**entry)
        try:
            value = read(metrics)
        except AttributeError:  # not recorded in this epoch
            continue
        if value is None:
            continue
        epochs.append(float(getattr(metrics, "epoch", position + 1)))
        values.append(float(value))
    return np.asarray(epochs), np.asarray(values)


__all__ = [
    "ACCURACY_COUNTS",
    "CONFIDENCE",
    "DEFAULT_AXES",
    "FANOVA",
    "FRONT_TABLE_METRICS",
    "KNEE",
    "PED_ANOVA",
    "ROW_FIELDS",
    "TIES_KNEE",
    "WARM_FROM",
    "StudyReport",
    "collect",
    "describe_distribution",
    "display_cell",
    "format_cell",
    "format_count",
    "front_table",
    "history_arrays",
    "shown_columns",
]

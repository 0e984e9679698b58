"""The pruner registry: a study YAML's ``pruner: {name, args}`` -> a :class:`BasePruner`.

Every pruner the project offers is registered here through :func:`register_pruner`, the same
extension point a plug-in uses. An entry states whether multi-objective studies may use it; the
pruner it builds answers the rest (which objectives it can judge, what to tell the user) through
the :class:`~hpo.pruners.base.BasePruner` hooks, so a plug-in goes through exactly the checks and
the per-epoch path the built-in pruners go through.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpo.errors import (ConfigError, annotations_of, check_arg_values, constructor_args, registry_entry,
                        reject_unknown_args)
from hpo.pruners.base import BasePruner, NoPruning
from hpo.pruners.mo_asha import MultiObjectiveSuccessiveHalving
from hpo.pruners.optuna import OptunaPruner

PrunerFactory = Callable[..., BasePruner]

# Arguments the study itself supplies to every factory; a study file cannot set them.
_STUDY_ARGS = ("epochs", "objectives")


@dataclass(frozen=True)
class PrunerEntry:
    """One registered pruner.

    Attributes:
        name: Registry key, as written in a study file (``pruner: {name: asha}``).
        description: One line for help and docs.
        multi_objective: Whether multi-objective studies may use it.
        factory: ``(args, *, objectives, epochs) -> BasePruner``; ``objectives`` is the study's
            objective names (``None`` when a check does not know them), ``epochs`` its epochs per
            trial (``None``: unknown).
        arg_names: The ``args`` keys a study file may set; ``None`` accepts any.
        aliases: Other registry keys for the same pruner.
    """

    name: str
    description: str
    multi_objective: bool
    factory: PrunerFactory = field(repr=False)
    arg_names: frozenset[str] | None = None
    aliases: tuple[str, ...] = ()
    arg_types: Mapping[str, str] = field(default_factory=dict, repr=False)  # annotations of pruner_class's arguments


PRUNERS: dict[str, PrunerEntry] = {}


def _settable_args(cls: type) -> frozenset[str]:
    return constructor_args(cls, exclude=_STUDY_ARGS)


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

    Example::

        @register_pruner("floor", description="stop below 0.2", multi_objective=False,
                         pruner_class=optuna.pruners.ThresholdPruner)
        def _floor(args, *, objectives, epochs):
            return OptunaPruner(optuna.pruners.ThresholdPruner(**{"lower": 0.2, **args}))

    Args:
        name: Registry key used in study files.
        description: One line describing the pruner.
        multi_objective: Whether multi-objective studies may use it; its pruner's ``should_prune``
            must then judge them from the trials' records (Optuna refuses ``trial.report`` there).
        pruner_class: The class whose constructor takes the study file's ``args``; its arguments
            (less ``epochs`` and ``objectives``, which the study supplies) become the accepted
            ``args``.
        arg_names: Accepted ``args`` keys, overriding ``pruner_class``; with neither, any key is
            passed through unchecked.
        aliases: Other names for the same entry.
        replace: Allow replacing an existing entry.

    Returns:
        A decorator that registers the factory and returns it unchanged. The factory is called as
        ``factory(args, objectives=..., epochs=...)`` and returns a :class:`BasePruner`.
    """

    def decorator(factory: PrunerFactory) -> PrunerFactory:
        keys = (name, *aliases)
        taken = [key for key in keys if key in PRUNERS]
        if taken and not replace:
            raise ValueError(f"pruner {taken[0]!r} is already registered; pass replace=True")
        if arg_names is not None:
            accepted: frozenset[str] | None = frozenset(arg_names)
        elif pruner_class is not None:
            accepted = _settable_args(pruner_class)
        else:
            accepted = None
        entry = PrunerEntry(
            name=name,
            description=description,
            multi_objective=multi_objective,
            factory=factory,
            arg_names=accepted,
            aliases=tuple(aliases),
            arg_types=annotations_of(pruner_class) if pruner_class is not None else {},
        )
        for key in keys:
            PRUNERS[key] = entry
        return factory

    return decorator


def _entry(name: str, origin: str) -> PrunerEntry:
    return registry_entry(PRUNERS, "pruner", name, origin)


def _build(
    entry: PrunerEntry,
    args: Mapping[str, Any] | None,
    objectives: Sequence[str] | None,
    epochs: int | None,
) -> BasePruner:
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        # WilcoxonPruner is marked experimental; the user chose it by name, the note adds nothing.
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        return entry.factory(
            dict(args or {}),
            objectives=list(objectives) if objectives is not None else None,
            epochs=epochs,
        )


def create_pruner(
    name: str, args: Mapping[str, Any] | None, *, objectives: Sequence[str], epochs: int | None
) -> BasePruner:
    """Build the pruner a study file names.

    Call :func:`check_pruner` first for user-facing errors; this builds without re-checking args.

    Args:
        name: Registry key (e.g. ``"asha"``).
        args: The study file's ``pruner.args`` (may be ``None``).
        objectives: The study's objective names (``StudyConfig.objectives``).
        epochs: Epochs per trial (sets Hyperband's ``max_resource`` and mo_asha's last rung).

    Returns:
        The pruner; load the study with its ``optuna_pruner`` and call its ``should_prune``
        after every epoch.

    Raises:
        ConfigError: Unknown pruner, or a single-objective pruner for a multi-objective study.
    """
    entry = _entry(name, "pruner")
    if len(objectives) > 1 and not entry.multi_objective:
        raise ConfigError(_single_objective_message("pruner", name))
    return _build(entry, args, objectives, epochs)


def _single_objective_message(origin: str, name: str) -> str:
    multi = sorted({entry.name for entry in PRUNERS.values() if entry.multi_objective})
    choices = " or ".join(multi) if len(multi) <= 2 else f"{', '.join(multi[:-1])} or {multi[-1]}"
    return f"{origin}: pruner {name!r} is single-objective; multi-objective studies take {choices}"


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
        epochs: Epochs per trial, when known (e.g. checks that mo_asha has a rung at all).
        objectives: The study's objective names, when known (checks the pruner can judge them).

    Returns:
        Notes to show the user once; empty when there is nothing to say.

    Raises:
        ConfigError: Unknown pruner or argument, a single-objective pruner on a multi-objective
            study, an objective the pruner cannot judge, or an argument value the pruner refuses.
    """
    entry = _entry(name, origin)
    args = dict(args or {})
    reject_unknown_args("pruner", name, args, entry.arg_names, origin)
    check_arg_values("pruner", name, args, entry.arg_types, origin)
    _check_arg_ranges(name, args, origin)
    if n_objectives > 1 and not entry.multi_objective:
        raise ConfigError(_single_objective_message(origin, name))
    try:
        pruner = _build(entry, args, objectives, epochs)
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"{origin}: pruner {name!r} refuses its args ({str(error).rstrip('.')})"
        ) from None
    try:
        pruner.check(list(objectives or ()))
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None
    return pruner.notes(epochs, n_objectives)


# Ranges of the pruner arguments that share a name across pruners (Optuna checks some of them, not all,
# and in its own words): integers at least this, or numbers within these bounds. "auto" stays allowed
# where the annotation takes a string (Optuna's min_resource / max_resource).
_INT_AT_LEAST = {"min_resource": 1, "max_resource": 1, "reduction_factor": 2, "interval_steps": 1, "n_min_trials": 1,
                 "min_trials_at_rung": 1, "n_warmup_steps": 0, "n_startup_trials": 0, "n_startup_steps": 0,
                 "bootstrap_count": 0, "min_early_stopping_rate": 0}
_NUMBER_WITHIN = {"percentile": (0.0, 100.0), "p_threshold": (0.0, 1.0)}


def _check_arg_ranges(name: str, args: Mapping[str, Any], origin: str) -> None:
    for key, value in args.items():
        problem = None
        if key in _INT_AT_LEAST and value is not None and value != "auto":
            low = _INT_AT_LEAST[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problem = f"must be an integer >= {low}"
        elif key in _NUMBER_WITHIN:
            low, high = _NUMBER_WITHIN[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                problem = f"must be a number from {low:g} to {high:g}"
        if problem:
            raise ConfigError(f"{origin}: pruner.args.{key} is {value!r}, but for pruner {name!r} it {problem}")


# --- The project's pruners --------------------------------------------------------------------


def _register_builtin() -> None:
    import optuna

    pruners = optuna.pruners

    @register_pruner(
        "none",
        description="No pruning: every trial trains all its epochs",
        multi_objective=True,
        pruner_class=NoPruning,
    )
    def _none(args, *, objectives, epochs):
        return NoPruning(**args)

    @register_pruner(
        "median",
        description="Stop a trial whose best accuracy so far is below the median of earlier "
        "trials at the same epoch",
        multi_objective=False,
        pruner_class=pruners.MedianPruner,
    )
    def _median(args, *, objectives, epochs):
        return OptunaPruner(pruners.MedianPruner(**args))

    @register_pruner(
        "percentile",
        description="Stop a trial in the bottom `percentile` % of earlier trials at the same epoch",
        multi_objective=False,
        pruner_class=pruners.PercentilePruner,
    )
    def _percentile(args, *, objectives, epochs):
        # Bottom quarter: gentler than the median rule, for noisy early epochs.
        return OptunaPruner(pruners.PercentilePruner(**{"percentile": 25.0, **args}))

    @register_pruner(
        "asha",
        description="Asynchronous successive halving: rungs at 1, 3, 9, ... epochs, the best "
        "third continue",
        multi_objective=False,
        pruner_class=pruners.SuccessiveHalvingPruner,
        aliases=("successive_halving",),
    )
    def _asha(args, *, objectives, epochs):
        # Same rungs as mo_asha (min_resource 1, eta 3) so the two compare like for like;
        # Optuna's own defaults ("auto", 4) depend on the first finished trial.
        defaults = {"min_resource": 1, "reduction_factor": 3}
        return OptunaPruner(pruners.SuccessiveHalvingPruner(**{**defaults, **args}))

    @register_pruner(
        "hyperband",
        description="Hyperband: several successive-halving brackets up to the study's epochs",
        multi_objective=False,
        pruner_class=pruners.HyperbandPruner,
    )
    def _hyperband(args, *, objectives, epochs):
        defaults = {"min_resource": 1, "max_resource": epochs or "auto", "reduction_factor": 3}
        return OptunaPruner(pruners.HyperbandPruner(**{**defaults, **args}))

    @register_pruner(
        "wilcoxon",
        description="Stop a trial whose per-epoch accuracies are significantly below the best "
        "trial's (Wilcoxon signed-rank test)",
        multi_objective=False,
        pruner_class=pruners.WilcoxonPruner,
    )
    def _wilcoxon(args, *, objectives, epochs):
        return OptunaPruner(pruners.WilcoxonPruner(**args))

    @register_pruner(
        "mo_asha",
        description="The project's multi-objective successive halving on the Pareto rank of "
        "accuracy, size and time at rungs 1, 3, 9, ... epochs",
        multi_objective=True,
        pruner_class=MultiObjectiveSuccessiveHalving,
    )
    def _mo_asha(args, *, objectives, epochs):
        return MultiObjectiveSuccessiveHalving(**args, epochs=epochs, objectives=objectives)


_register_builtin()

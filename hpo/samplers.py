"""Sampler registry: a study YAML's ``sampler: {name, args}`` -> an Optuna sampler.

Every sampler the project offers is registered here through ``register_sampler``, the same
extension point a plug-in uses (``@register_sampler("mine", ...)``). An entry states what the
sampler can do (several objectives, constraints, categorical and conditional parameters), so
``check_sampler`` can refuse a bad study file before any worker starts and tell the user, once,
where a sampler falls back to independent sampling.

Seeds: the study ``seed`` seeds training. Each worker's sampler gets
``worker_seed(seed, worker_id)``, so that concurrent workers don't propose identical
configurations. ``args: {seed: N}`` overrides it (every worker then shares N, which scrambled QMC
needs to draw one common sequence). ``grid`` always shuffles its points alike on every worker.

Constraints: ``constraints_func`` (a ``FrozenTrial -> [violation, ...]`` function, feasible when
every value is <= 0) is passed to the samplers that take one (TPE, GP, NSGA-II, NSGA-III).
Optuna 5 deprecates that argument in favour of ``Trial.set_constraint(key, value)``, which the same
samplers read from the trial's system attributes; either way Optuna evaluates constraints only for
COMPLETE and PRUNED trials, so a FAIL trial never informs a sampler.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import ExperimentalWarning

from hpo.compat import grid_unvisited_ids, reseed_grid_sampler, storage_of, trial_id
from hpo.errors import (ConfigError, annotations_of, check_arg_values, constructor_args, registry_entry,
                        reject_unknown_args)
from hpo.trials import SYS_GRID_ID

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, TrialState

    from hpo.space import SearchSpace

ConstraintsFunc = Callable[["FrozenTrial"], Sequence[float]]
SamplerFactory = Callable[..., "optuna.samplers.BaseSampler"]

DEFAULT_SAMPLER = "tpe"

# Arguments the project itself supplies to every sampler; a study file cannot set them.
_PROJECT_ARGS = frozenset({"constraints_func", "search_space"})
# Constructor arguments whose types a YAML file cannot express (callables, sampler objects,
# trials, arrays): not offered as `args`.
_UNEXPRESSIBLE_ANNOTATIONS = ("Callable", "Base", "FrozenTrial", "ndarray")


@dataclass(frozen=True)
class SamplerEntry:
    """One registered sampler and what it can do.

    Attributes:
        name: Registry key, as written in a study file (``sampler: {name: tpe}``).
        description: One line for ``hpo`` help and docs.
        multi_objective: Whether it accepts studies with several objectives.
        constraints: Whether it uses constraint values (``constraints_func``) to avoid infeasible
            regions.
        native_categorical: Whether it models categorical parameters itself rather than sampling
            them independently at random.
        native_conditional: Whether it models conditional parameters (``when:``) itself.
        factory: ``(args, *, space, n_objectives, seed, constraints_func) -> BaseSampler``.
        arg_names: The ``args`` keys a study file may set; ``None`` accepts any.
        needs_finite_choices: Whether it enumerates a grid, so every parameter needs finite
            choices (``hpo.space.grid_values``); the study ends once every point is tried.
        per_worker_unless_seeded: ``args`` that, when true, make each worker draw a different
            sequence unless ``args.seed`` gives them a common one (QMC's ``scramble``).
    """

    name: str
    description: str
    multi_objective: bool
    constraints: bool
    native_categorical: bool
    native_conditional: bool
    factory: SamplerFactory = field(repr=False)
    arg_names: frozenset[str] | None = None
    needs_finite_choices: bool = False
    per_worker_unless_seeded: tuple[str, ...] = ()
    arg_types: Mapping[str, str] = field(default_factory=dict, repr=False)


SAMPLERS: dict[str, SamplerEntry] = {}


def _settable_args(cls: type) -> frozenset[str]:
    return constructor_args(cls, unexpressible=_UNEXPRESSIBLE_ANNOTATIONS)


def register_sampler(
    name: str,
    *,
    description: str,
    multi_objective: bool,
    constraints: bool,
    native_categorical: bool,
    native_conditional: bool,
    optuna_class: type | None = None,
    arg_names: Sequence[str] | None = None,
    needs_finite_choices: bool = False,
    per_worker_unless_seeded: Sequence[str] = (),
    replace: bool = False,
) -> Callable[[SamplerFactory], SamplerFactory]:
    """Register a sampler factory under ``name`` (use as a decorator).

    Args:
        name: Registry key used in study files.
        description: One line describing the sampler.
        multi_objective: Whether the sampler handles several objectives.
        constraints: Whether the factory passes ``constraints_func`` on to the sampler.
        native_categorical: Whether categorical parameters are modelled, not sampled at random.
        native_conditional: Whether conditional parameters are modelled, not sampled at random.
        optuna_class: The sampler class the factory builds; its keyword arguments (less those the
            project sets and those YAML cannot express) become the accepted ``args``.
        arg_names: Accepted ``args`` keys, overriding ``optuna_class``; with neither, any key is
            passed through unchecked.
        needs_finite_choices: Whether the sampler enumerates a grid of the parameters' finite
            choices (``check_sampler`` then refuses an infinite space and counts the points).
        per_worker_unless_seeded: ``args`` that make each worker draw differently unless
            ``args.seed`` is set (``check_sampler`` says so once).
        replace: Allow replacing an existing entry (otherwise a duplicate name is an error).

    Returns:
        A decorator that registers the factory and returns it unchanged.
    """

    def decorator(factory: SamplerFactory) -> SamplerFactory:
        if name in SAMPLERS and not replace:
            raise ValueError(f"sampler {name!r} is already registered; pass replace=True")
        if arg_names is not None:
            accepted: frozenset[str] | None = frozenset(arg_names)
        elif optuna_class is not None:
            accepted = _settable_args(optuna_class) - _PROJECT_ARGS
        else:
            accepted = None
        SAMPLERS[name] = SamplerEntry(
            name=name,
            description=description,
            multi_objective=multi_objective,
            constraints=constraints,
            native_categorical=native_categorical,
            native_conditional=native_conditional,
            factory=factory,
            arg_names=accepted,
            needs_finite_choices=needs_finite_choices,
            per_worker_unless_seeded=tuple(per_worker_unless_seeded),
            arg_types=annotations_of(optuna_class) if optuna_class is not None else {},
        )
        return factory

    return decorator


def worker_seed(study_seed: int, worker_id: str) -> int:
    """Derive a worker's sampler seed from the study seed and the worker's identity.

    The same (study, worker) pair always gets the same seed, so a rerun is reproducible, and two
    workers get different seeds, so they don't propose the same configurations.

    Args:
        study_seed: The study's ``seed``.
        worker_id: A stable identity of the worker (e.g. ``"host:cuda:0:1"``).

    Returns:
        A seed in ``[0, 2**32)``, accepted by numpy and every Optuna sampler.
    """
    digest = hashlib.sha256(f"{int(study_seed)}\x00{worker_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _entry(name: str, origin: str) -> SamplerEntry:
    return registry_entry(SAMPLERS, "sampler", name, origin)


def make_sampler(
    name: str,
    args: Mapping[str, Any] | None,
    *,
    space: SearchSpace,
    n_objectives: int,
    seed: int | None,
    constraints_func: ConstraintsFunc | None = None,
) -> optuna.samplers.BaseSampler:
    """Build the sampler a study file names.

    Call ``check_sampler`` first for user-facing errors; this builds without re-checking args.

    Args:
        name: Registry key (e.g. ``"tpe"``).
        args: The study file's ``sampler.args`` (may be ``None``).
        space: The study's search space.
        n_objectives: Number of study objectives.
        seed: This worker's sampler seed (see ``worker_seed``); ``args.seed`` overrides it.
        constraints_func: Passed to samplers that support constraints; ignored by the others.

    Returns:
        A fresh Optuna sampler.

    Raises:
        ConfigError: Unknown sampler, or a single-objective sampler for several objectives.
    """
    entry = _entry(name, "sampler")
    if n_objectives > 1 and not entry.multi_objective:
        raise ConfigError(_single_objective_message("sampler", name, n_objectives))
    args = dict(args or {})
    if "seed" in args:
        seed = args.pop("seed")
    if not entry.constraints:
        constraints_func = None
    with warnings.catch_warnings():
        # The project chose these arguments, not the user: Optuna's notes that `group` is
        # experimental and that `constraints_func` is deprecated in 5.0 would only confuse.
        warnings.filterwarnings("ignore", message=r".*constraints_func.*", category=FutureWarning)
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        return entry.factory(
            args,
            space=space,
            n_objectives=n_objectives,
            seed=seed,
            constraints_func=constraints_func,
        )


def sampler_exhausted(sampler: optuna.samplers.BaseSampler, study: optuna.Study) -> bool:
    """Whether the sampler has nothing new to propose (only a finished grid), checked before ask.

    Args:
        sampler: What ``make_sampler`` returned.
        study: The study it samples for.

    Returns:
        True when a worker should stop asking for trials.
    """
    is_exhausted = getattr(sampler, "is_exhausted", None)
    return bool(is_exhausted(study)) if callable(is_exhausted) else False


class GridSearchSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, made safe for ask-and-tell workers.

    - The grid is shuffled with a fixed seed: GridSampler gives trial number i the i-th point of its
      shuffle, so every worker must shuffle alike, or some points repeat and others are skipped.
      ``seed`` (the worker's) only picks among unvisited points once the numbering runs past the
      grid (retries, concurrent workers), making collisions between workers less likely.
    - Optuna's ``after_trial`` calls ``study.stop()`` when the grid is done, which raises outside
      ``study.optimize``; here the stop is only requested inside ``optimize``. Ask-and-tell workers
      check ``sampler_exhausted`` before asking instead.

    Args:
        search_space: Parameter name -> the finite list of values (``hpo.space.grid_values``).
        seed: The worker's sampler seed.
    """

    def __init__(self, search_space: Mapping[str, Sequence[Any]], seed: int | None = None) -> None:
        super().__init__(search_space, seed=0)
        if seed is not None:
            reseed_grid_sampler(self, seed)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        # `trial` is not stored as finished yet, so it still counts as unvisited here.
        unvisited = grid_unvisited_ids(self, study)
        own = storage_of(study).get_trial_system_attrs(trial_id(trial)).get(SYS_GRID_ID)
        if not unvisited or unvisited == [own]:
            try:
                study.stop()
            except RuntimeError:
                pass  # ask-and-tell: no optimize loop to stop


def _single_objective_message(origin: str, name: str, n_objectives: int) -> str:
    multi = ", ".join(sorted(n for n, e in SAMPLERS.items() if e.multi_objective))
    return (
        f"{origin}: sampler {name!r} is single-objective but the study has {n_objectives} "
        f"objectives; use one of: {multi}"
    )


def _fallback_params(entry: SamplerEntry, space: SearchSpace) -> tuple[list[str], list[str]]:
    """Names of the categorical and the conditional params this sampler samples independently."""
    # A `<family>.<knob>` param is sampled only when `model` picks its family, so it is
    # conditional as soon as the space offers several families.
    several_families = len(space.families()) > 1
    categorical: list[str] = []
    conditional: list[str] = []
    for param in space.params:
        if param.kind == "fixed":
            continue
        if (param.when or (several_families and param.family)) and not entry.native_conditional:
            conditional.append(param.name)
        elif param.kind == "categorical" and not entry.native_categorical:
            categorical.append(param.name)
    return categorical, conditional


def _grid_note(space: SearchSpace, origin: str) -> str:
    """The size of the grid a grid sampler enumerates (refusing a space without finite choices)."""
    from hpo.space import grid_values

    try:
        grid = grid_values(space)
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None
    n_points = math.prod(len(values) for values in grid.values())
    return f"grid has {n_points} points; the study stops once every point is tried"


def check_sampler(
    name: str,
    args: Mapping[str, Any] | None,
    *,
    n_objectives: int,
    space: SearchSpace,
    origin: str,
    constrained: bool = False,
) -> list[str]:
    """Validate a study file's sampler before any worker starts.

    Args:
        name: Registry key from the study file.
        args: The study file's ``sampler.args``.
        n_objectives: Number of study objectives.
        space: The study's search space.
        origin: Where the setting came from, for messages (e.g. ``"studies/cpu-quick.yaml"``).
        constrained: Whether the study has constraints (e.g. ``max_params``).

    Returns:
        Notes to show the user once (independent-sampling fallbacks, grid size, ignored
        constraints); empty when there is nothing to say.

    Raises:
        ConfigError: Unknown sampler or argument, a single-objective sampler on a multi-objective
            study, ``grid`` over an infinite space, or an argument value the sampler refuses.
    """
    entry = _entry(name, origin)
    args = dict(args or {})
    reject_unknown_args("sampler", name, args, entry.arg_names, origin)
    check_arg_values("sampler", name, args, entry.arg_types, origin)
    if n_objectives > 1 and not entry.multi_objective:
        raise ConfigError(_single_objective_message(origin, name, n_objectives))

    notes: list[str] = []
    if entry.needs_finite_choices:
        notes.append(_grid_note(space, origin))

    categorical, conditional = _fallback_params(entry, space)
    if entry.needs_finite_choices and conditional:
        notes.append(
            f"{name} enumerates the conditional parameters ({', '.join(conditional)}) in every "
            "combination, so some points repeat a configuration"
        )
    elif categorical or conditional:
        parts = []
        if categorical:
            parts.append(f"categorical parameters ({', '.join(categorical)})")
        if conditional:
            parts.append(f"conditional parameters ({', '.join(conditional)})")
        notes.append(
            f"{name} samples {' and '.join(parts)} independently at random, as Optuna does"
        )
    if constrained and not entry.constraints:
        notes.append(f"{name} does not use constraints; infeasible trials only count as failures")
    for arg in entry.per_worker_unless_seeded:
        if args.get(arg) and "seed" not in args:
            notes.append(
                f"{name} with {arg}: true draws a different sequence on each worker unless "
                "sampler.args.seed is set"
            )

    # Build once so that values the sampler refuses (e.g. population_size: 1) fail here, with the
    # file named, rather than in every worker.
    try:
        make_sampler(name, args, space=space, n_objectives=n_objectives, seed=0)
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"{origin}: sampler {name!r} refuses its args ({str(error).rstrip('.')})"
        ) from None
    return notes


# --- The project's samplers -------------------------------------------------------------------


def _with_defaults(defaults: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    return {**defaults, **args}


def _register_builtin() -> None:
    samplers = optuna.samplers

    @register_sampler(
        "tpe",
        description="Tree-structured Parzen estimator, multivariate, grouped for conditional "
        "spaces, with constant liar for parallel workers (default)",
        multi_objective=True,
        constraints=True,
        native_categorical=True,
        native_conditional=True,
        optuna_class=samplers.TPESampler,
    )
    def _tpe(args, *, space, n_objectives, seed, constraints_func):
        from hpo.space import is_conditional

        defaults = {
            "multivariate": True,
            # `group` splits a conditional space into sub-spaces that TPE models jointly;
            # without it, conditional params would fall back to independent sampling.
            "group": is_conditional(space),
            # Running trials count as bad points, so concurrent workers spread out.
            "constant_liar": True,
        }
        return samplers.TPESampler(
            **_with_defaults(defaults, args), seed=seed, constraints_func=constraints_func
        )

    @register_sampler(
        "random",
        description="Independent uniform sampling; the baseline every method must beat",
        multi_objective=True,
        constraints=False,
        native_categorical=True,
        native_conditional=True,
        optuna_class=samplers.RandomSampler,
    )
    def _random(args, *, space, n_objectives, seed, constraints_func):
        return samplers.RandomSampler(seed=seed, **args)

    @register_sampler(
        "cmaes",
        description="CMA-ES over the numeric parameters (single objective)",
        multi_objective=False,
        constraints=False,
        native_categorical=False,
        native_conditional=False,
        optuna_class=samplers.CmaEsSampler,
    )
    def _cmaes(args, *, space, n_objectives, seed, constraints_func):
        # check_sampler names the independently sampled params once; Optuna would warn per trial.
        defaults = {"warn_independent_sampling": False}
        return samplers.CmaEsSampler(**_with_defaults(defaults, args), seed=seed)

    @register_sampler(
        "gp",
        description="Gaussian-process Bayesian optimisation (logEI / logEHVI), good for small "
        "budgets",
        multi_objective=True,
        constraints=True,
        native_categorical=True,
        native_conditional=False,
        optuna_class=samplers.GPSampler,
    )
    def _gp(args, *, space, n_objectives, seed, constraints_func):
        defaults = {"warn_independent_sampling": False}
        return samplers.GPSampler(
            **_with_defaults(defaults, args), seed=seed, constraints_func=constraints_func
        )

    @register_sampler(
        "nsga2",
        description="NSGA-II genetic algorithm for multi-objective studies",
        multi_objective=True,
        constraints=True,
        native_categorical=True,
        native_conditional=False,
        optuna_class=samplers.NSGAIISampler,
    )
    def _nsga2(args, *, space, n_objectives, seed, constraints_func):
        return samplers.NSGAIISampler(**args, seed=seed, constraints_func=constraints_func)

    @register_sampler(
        "nsga3",
        description="NSGA-III genetic algorithm, reference-point based, for 3+ objectives",
        multi_objective=True,
        constraints=True,
        native_categorical=True,
        native_conditional=False,
        optuna_class=samplers.NSGAIIISampler,
    )
    def _nsga3(args, *, space, n_objectives, seed, constraints_func):
        return samplers.NSGAIIISampler(**args, seed=seed, constraints_func=constraints_func)

    @register_sampler(
        "qmc",
        description="Quasi-Monte Carlo (Sobol or Halton) low-discrepancy space filling",
        multi_objective=True,
        constraints=False,
        native_categorical=True,
        native_conditional=False,
        optuna_class=samplers.QMCSampler,
        per_worker_unless_seeded=("scramble",),
    )
    def _qmc(args, *, space, n_objectives, seed, constraints_func):
        defaults = {"warn_independent_sampling": False}
        return samplers.QMCSampler(**_with_defaults(defaults, args), seed=seed)

    @register_sampler(
        "grid",
        description="Every combination of the finite parameter values, in shuffled order",
        multi_objective=True,
        constraints=False,
        native_categorical=True,
        native_conditional=False,
        # No args: the grid comes from the search space, and its shuffle must not vary by worker.
        arg_names=(),
        needs_finite_choices=True,
    )
    def _grid(args, *, space, n_objectives, seed, constraints_func):
        from hpo.space import grid_values

        return GridSearchSampler(grid_values(space), seed=seed)


_register_builtin()

"""Sampler registry: every sampler through one contract, the checks a study file goes through,
and per-worker seeds."""

from __future__ import annotations

import itertools
import warnings

import optuna
import pytest

from hpo.errors import ConfigError
from hpo.samplers import (
    SAMPLERS,
    check_sampler,
    make_sampler,
    register_sampler,
    sampler_exhausted,
    worker_seed,
)
from hpo.space import Param, SearchSpace, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)

ORIGIN = "studies/test.yaml"

# lr (log float), optimizer (categorical) and momentum (only when optimizer is sgd).
MIXED_SPACE = SearchSpace(
    params=(
        Param("model", "fixed", value="cnn"),
        Param("lr", "float", low=1e-3, high=1.0, log=True),
        Param("optimizer", "categorical", choices=("sgd", "adamw")),
        Param("momentum", "float", low=0.8, high=0.99, when={"optimizer": ("sgd",)}),
    )
)
NUMERIC_SPACE = SearchSpace(
    params=(
        Param("lr", "float", low=1e-3, high=1.0, log=True),
        Param("batch_size", "int", low=32, high=256, step=32),
    )
)
# 3 x 2 = 6 points.
GRID_SPACE = SearchSpace(
    params=(
        Param("model", "fixed", value="cnn"),
        Param("optimizer", "categorical", choices=("sgd", "adam", "adamw")),
        Param("batch_size", "int", low=64, high=128, step=64),
    )
)

# Small budgets so that the model-based samplers get past their random start within 6 trials.
CONTRACT_ARGS = {
    "tpe": {"n_startup_trials": 3},
    "gp": {"n_startup_trials": 5},  # one model-based trial: GP fitting is the slow part
    "cmaes": {"n_startup_trials": 2},
    "nsga2": {"population_size": 3},
    "nsga3": {"population_size": 3},
}


def _objective_values(params: dict) -> tuple[float, float]:
    """A cheap two-objective stand-in: 'accuracy' peaks at lr=0.1, 'size' grows with batch."""
    import math

    accuracy = 1.0 - abs(math.log10(params.get("lr", 0.1)) + 1.0) / 3.0
    if params.get("optimizer") == "sgd":
        accuracy += 0.1 * params.get("momentum", 0.9)
    size = float(params.get("batch_size", 64))
    if params.get("optimizer") == "adamw":
        size += 10.0
    return accuracy, size


def _space_for(name: str) -> SearchSpace:
    if name == "grid":
        return GRID_SPACE
    if name == "cmaes":
        return NUMERIC_SPACE
    return MIXED_SPACE


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_runs_a_study(name: str) -> None:
    entry = SAMPLERS[name]
    n_objectives = 2 if entry.multi_objective else 1
    space = _space_for(name)
    args = CONTRACT_ARGS.get(name, {})
    check_sampler(name, args, n_objectives=n_objectives, space=space, origin=ORIGIN)
    sampler = make_sampler(
        name, args, space=space, n_objectives=n_objectives, seed=worker_seed(7, "w0")
    )
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    directions = ["maximize", "minimize"][:n_objectives]
    study = optuna.create_study(directions=directions, sampler=sampler)

    def objective(trial: optuna.Trial):
        values = _objective_values(suggest(trial, space))
        return values[:n_objectives] if n_objectives > 1 else values[0]

    study.optimize(objective, n_trials=6)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for trial in trials:
        for param_name, value in trial.params.items():
            assert space[param_name].contains(value), (param_name, value)


def test_single_objective_samplers_also_run_single_objective_studies() -> None:
    # The contract above runs multi-objective samplers on two objectives; the single-objective
    # case is the common one and must work for them too.
    for name in ("tpe", "gp", "nsga2"):
        sampler = make_sampler(
            name, CONTRACT_ARGS.get(name), space=MIXED_SPACE, n_objectives=1, seed=3
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(lambda t: _objective_values(suggest(t, MIXED_SPACE))[0], n_trials=5)
        assert len(study.trials) == 5


def test_tpe_defaults_follow_the_space() -> None:
    conditional = make_sampler("tpe", {}, space=MIXED_SPACE, n_objectives=1, seed=0)
    flat = make_sampler("tpe", {}, space=NUMERIC_SPACE, n_objectives=1, seed=0)
    assert conditional._multivariate is True and flat._multivariate is True
    assert conditional._constant_liar is True
    assert conditional._group is True
    assert flat._group is False
    overridden = make_sampler(
        "tpe", {"constant_liar": False}, space=NUMERIC_SPACE, n_objectives=1, seed=0
    )
    assert overridden._constant_liar is False


def test_building_the_default_samplers_raises_no_optuna_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("tpe", "gp", "nsga2", "nsga3"):
            make_sampler(
                name,
                {},
                space=MIXED_SPACE,
                n_objectives=2,
                seed=0,
                constraints_func=lambda t: [0.0],
            )


def test_constraints_func_reaches_constraint_aware_samplers() -> None:
    def constraints_func(trial: optuna.trial.FrozenTrial) -> list[float]:
        return [trial.params["lr"] - 0.1]  # feasible when lr <= 0.1

    for name in ("tpe", "nsga2", "gp"):
        sampler = make_sampler(
            name, {}, space=NUMERIC_SPACE, n_objectives=1, seed=0, constraints_func=constraints_func
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(lambda t: _objective_values(suggest(t, NUMERIC_SPACE))[0], n_trials=3)
        for trial in study.trials:
            assert list(trial.constraints.values()) == [pytest.approx(trial.params["lr"] - 0.1)]


def test_constraints_func_is_ignored_by_samplers_without_constraints() -> None:
    sampler = make_sampler(
        "cmaes", {}, space=NUMERIC_SPACE, n_objectives=1, seed=0, constraints_func=lambda t: [1.0]
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: _objective_values(suggest(t, NUMERIC_SPACE))[1], n_trials=3)
    assert all(t.constraints == {} for t in study.trials)


# --- Seeds -----------------------------------------------------------------------------------


def test_worker_seed_is_stable_and_differs_between_workers_and_studies() -> None:
    seeds = {worker_seed(0, f"host:cuda:{i}") for i in range(50)}
    assert len(seeds) == 50
    assert worker_seed(0, "host:cuda:1") == worker_seed(0, "host:cuda:1")
    assert worker_seed(0, "host:cuda:1") != worker_seed(1, "host:cuda:1")
    assert all(0 <= s < 2**32 for s in seeds)


def _first_params(sampler: optuna.samplers.BaseSampler) -> dict:
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: _objective_values(suggest(t, NUMERIC_SPACE))[0], n_trials=2)
    return [t.params for t in study.trials]


def test_workers_with_derived_seeds_propose_different_configurations() -> None:
    def build(worker: str, args: dict | None = None):
        return make_sampler(
            "random", args, space=NUMERIC_SPACE, n_objectives=1, seed=worker_seed(5, worker)
        )

    assert _first_params(build("a")) == _first_params(build("a"))
    assert _first_params(build("a")) != _first_params(build("b"))
    # An explicit args.seed overrides the derived one: every worker then shares it.
    assert _first_params(build("a", {"seed": 11})) == _first_params(build("b", {"seed": 11}))


def test_grid_workers_share_one_order_and_cover_every_point_once() -> None:
    # Two workers with different seeds interleave on one study: GridSampler hands trial i the
    # i-th point of its shuffle, so differing shuffles would repeat some points and skip others.
    study = optuna.create_study()
    workers = [
        make_sampler("grid", {}, space=GRID_SPACE, n_objectives=1, seed=worker_seed(0, w))
        for w in ("a", "b")
    ]
    for _, sampler in zip(range(6), itertools.cycle(workers)):
        assert not sampler_exhausted(sampler, study)
        study.sampler = sampler
        trial = study.ask()
        # Optuna's GridSampler would raise from tell here once the grid is done (study.stop()
        # outside optimize).
        study.tell(trial, _objective_values(suggest(trial, GRID_SPACE))[1])
    assert all(sampler_exhausted(sampler, study) for sampler in workers)
    visited = sorted((t.params["optimizer"], t.params["batch_size"]) for t in study.trials)
    assert visited == sorted(itertools.product(("sgd", "adam", "adamw"), (64, 128)))


def test_grid_stops_optimize_when_every_point_is_tried() -> None:
    sampler = make_sampler("grid", {}, space=GRID_SPACE, n_objectives=1, seed=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: _objective_values(suggest(t, GRID_SPACE))[1], n_trials=20)
    assert len(study.trials) == 6


def test_only_grid_gets_exhausted() -> None:
    sampler = make_sampler("random", {}, space=NUMERIC_SPACE, n_objectives=1, seed=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: _objective_values(suggest(t, NUMERIC_SPACE))[1], n_trials=3)
    assert not sampler_exhausted(sampler, study)


# --- check_sampler -------------------------------------------------------------------------------


def test_unknown_sampler_is_refused_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as error:
        check_sampler("tpee", {}, n_objectives=1, space=MIXED_SPACE, origin=ORIGIN)
    message = str(error.value)
    assert message.startswith(ORIGIN) and "'tpee'" in message
    assert all(name in message for name in SAMPLERS)


def test_unknown_sampler_arg_is_refused_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as error:
        check_sampler(
            "tpe", {"n_startup": 5}, n_objectives=1, space=MIXED_SPACE, origin=ORIGIN
        )
    message = str(error.value)
    assert "sampler.args.n_startup" in message
    assert "n_startup_trials" in message and "multivariate" in message
    # Project-managed arguments are not offered to the study file.
    assert "constraints_func" not in message


def test_single_objective_sampler_is_refused_for_several_objectives() -> None:
    with pytest.raises(ConfigError) as error:
        check_sampler("cmaes", {}, n_objectives=2, space=NUMERIC_SPACE, origin=ORIGIN)
    message = str(error.value)
    assert "'cmaes' is single-objective" in message and "nsga2" in message
    with pytest.raises(ConfigError, match="single-objective"):
        make_sampler("cmaes", {}, space=NUMERIC_SPACE, n_objectives=2, seed=0)
    # GP handles several objectives in Optuna 5 (logEHVI).
    check_sampler("gp", {}, n_objectives=3, space=NUMERIC_SPACE, origin=ORIGIN)


def test_grid_over_a_continuous_param_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError) as error:
        check_sampler("grid", {}, n_objectives=1, space=MIXED_SPACE, origin=ORIGIN)
    message = str(error.value)
    assert message.startswith(ORIGIN) and "lr" in message


def test_grid_takes_no_args() -> None:
    with pytest.raises(ConfigError, match="sampler.args.seed"):
        check_sampler("grid", {"seed": 3}, n_objectives=1, space=GRID_SPACE, origin=ORIGIN)


def test_bad_arg_value_is_refused_with_the_file_named() -> None:
    with pytest.raises(ConfigError) as error:
        check_sampler(
            "nsga2", {"population_size": 1}, n_objectives=2, space=MIXED_SPACE, origin=ORIGIN
        )
    assert str(error.value).startswith(f"{ORIGIN}: sampler 'nsga2' refuses its args")


def test_notes_name_the_independently_sampled_params_once() -> None:
    cma_notes = check_sampler("cmaes", {}, n_objectives=1, space=MIXED_SPACE, origin=ORIGIN)
    assert len(cma_notes) == 1
    assert "optimizer" in cma_notes[0] and "momentum" in cma_notes[0]
    assert "lr" not in cma_notes[0]
    # GP models categorical params itself, so only the conditional one is mentioned.
    (gp_note,) = check_sampler("gp", {}, n_objectives=1, space=MIXED_SPACE, origin=ORIGIN)
    assert "momentum" in gp_note and "optimizer" not in gp_note
    assert check_sampler("tpe", {}, n_objectives=1, space=MIXED_SPACE, origin=ORIGIN) == []
    assert check_sampler("cmaes", {}, n_objectives=1, space=NUMERIC_SPACE, origin=ORIGIN) == []


def test_grid_note_gives_the_number_of_points() -> None:
    (note,) = check_sampler("grid", {}, n_objectives=1, space=GRID_SPACE, origin=ORIGIN)
    assert "6 points" in note


def test_constrained_study_notes_samplers_that_ignore_constraints() -> None:
    notes = check_sampler(
        "random", {}, n_objectives=1, space=NUMERIC_SPACE, origin=ORIGIN, constrained=True
    )
    assert any("does not use constraints" in note for note in notes)
    assert check_sampler(
        "tpe", {}, n_objectives=1, space=NUMERIC_SPACE, origin=ORIGIN, constrained=True
    ) == []


# --- Extension point -----------------------------------------------------------------------------


def test_register_sampler_adds_a_plugin_through_the_same_path() -> None:
    @register_sampler(
        "test_plugin_random",
        description="random, registered by a plug-in",
        multi_objective=False,
        constraints=False,
        native_categorical=True,
        native_conditional=True,
        arg_names=("seed",),
    )
    def _plugin(args, *, space, n_objectives, seed, constraints_func):
        return optuna.samplers.RandomSampler(seed=seed)

    try:
        assert check_sampler(
            "test_plugin_random", {}, n_objectives=1, space=NUMERIC_SPACE, origin=ORIGIN
        ) == []
        with pytest.raises(ConfigError, match="single-objective"):
            check_sampler(
                "test_plugin_random", {}, n_objectives=2, space=NUMERIC_SPACE, origin=ORIGIN
            )
        sampler = make_sampler(
            "test_plugin_random", {}, space=NUMERIC_SPACE, n_objectives=1, seed=1
        )
        assert isinstance(sampler, optuna.samplers.RandomSampler)
        with pytest.raises(ValueError, match="already registered"):
            register_sampler(
                "test_plugin_random",
                description="again",
                multi_objective=False,
                constraints=False,
                native_categorical=True,
                native_conditional=True,
            )(_plugin)
    finally:
        SAMPLERS.pop("test_plugin_random", None)


def test_sampler_rules_are_fields_of_the_entry() -> None:
    # The built-ins state their rules as entry fields, which check_sampler reads (not their names).
    assert SAMPLERS["grid"].needs_finite_choices
    assert SAMPLERS["qmc"].per_worker_unless_seeded == ("scramble",)
    (note,) = check_sampler("qmc", {"scramble": True}, n_objectives=1, space=NUMERIC_SPACE, origin=ORIGIN)
    assert note == (
        "qmc with scramble: true draws a different sequence on each worker unless sampler.args.seed is set"
    )
    assert check_sampler("qmc", {"scramble": True, "seed": 3}, n_objectives=1, space=NUMERIC_SPACE,
                         origin=ORIGIN) == []

    @register_sampler(
        "test_plugin_grid",
        description="a grid, registered by a plug-in",
        multi_objective=True,
        constraints=False,
        native_categorical=True,
        native_conditional=False,
        arg_names=(),
        needs_finite_choices=True,
    )
    def _plugin(args, *, space, n_objectives, seed, constraints_func):
        return optuna.samplers.RandomSampler(seed=seed)

    try:
        (note,) = check_sampler("test_plugin_grid", {}, n_objectives=1, space=GRID_SPACE, origin=ORIGIN)
        assert "6 points" in note
        with pytest.raises(ConfigError, match=f"^{ORIGIN}: grid sampler needs finite choices: params.lr"):
            check_sampler("test_plugin_grid", {}, n_objectives=1, space=NUMERIC_SPACE, origin=ORIGIN)
    finally:
        SAMPLERS.pop("test_plugin_grid", None)

"""Pruners: the pure multi-objective successive-halving rule on hand-made rungs, the same rule over
a real Optuna study, the per-epoch contract the trial loop calls, and the registry contract.

Non-dominated ranks and crowding distances are tested with the Pareto analysis
(tests/analysis/test_pareto.py), which owns them."""

from __future__ import annotations

import itertools
import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpo.analysis.pareto import non_dominated_ranks
from hpo.errors import ConfigError
from hpo.pruners import (
    PRUNERS,
    BasePruner,
    MultiObjectiveSuccessiveHalving,
    OptunaPruner,
    check_pruner,
    create_pruner,
    mo_successive_halving_keep,
    register_pruner,
)
from hpo.trials import EpochMetrics

optuna.logging.set_verbosity(optuna.logging.WARNING)

ORIGIN = "studies/test.yaml"
ACC_PARAMS = ["maximize", "minimize"]


# --- mo_successive_halving_keep ------------------------------------------------------------------

# The module docstring's example: three fronts of three.
NINE = np.array(
    [
        [0.60, 1e5],
        [0.70, 1e6],
        [0.80, 1e7],
        [0.55, 2e5],
        [0.65, 2e6],
        [0.75, 2e7],
        [0.50, 3e5],
        [0.60, 3e6],
        [0.70, 3e7],
    ]
)


def _survivors(points: np.ndarray, directions: list[str], eta: int, **kw) -> list[int]:
    return [
        i
        for i in range(len(points))
        if mo_successive_halving_keep(points, directions, i, eta, **kw)
    ]


def test_nine_points_eta_three_keep_the_front() -> None:
    assert _survivors(NINE, ACC_PARAMS, 3) == [0, 1, 2]


def test_survivors_do_not_depend_on_point_order() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        order = rng.permutation(len(NINE))
        kept = {order[i] for i in _survivors(NINE[order], ACC_PARAMS, 3)}
        assert kept == {0, 1, 2}


def test_eta_two_keeps_half_rounded_up() -> None:
    # ceil(9 / 2) = 5: front 0 (3 points) then the two extremes of front 1 (infinite crowding).
    assert _survivors(NINE, ACC_PARAMS, 2) == [0, 1, 2, 3, 5]


def test_fewer_than_eta_points_all_continue() -> None:
    worst_and_best = np.array([[0.1, 1e9], [0.9, 1e3]])
    assert _survivors(worst_and_best, ACC_PARAMS, 3) == [0, 1]
    # min_points lowers the bar: with 2, the dominated point is judged and pruned.
    assert _survivors(worst_and_best, ACC_PARAMS, 3, min_points=2) == [1]


def test_crowding_breaks_ties_within_the_cut_front() -> None:
    # Front 0 has four points for three places: the extremes stay, and of the inner two the one
    # in the sparser region (index 2, see the crowding test above) wins.
    front = [[0.5, 1.0], [0.6, 2.0], [0.61, 3.0], [0.9, 10.0]]
    dominated = [[0.4, 5.0], [0.3, 6.0], [0.2, 7.0], [0.1, 8.0], [0.05, 9.0]]
    points = np.array(front + dominated)
    assert _survivors(points, ACC_PARAMS, 3) == [0, 2, 3]


def test_accuracy_breaks_remaining_ties_and_exact_ties_all_continue() -> None:
    # Single objective: rank is accuracy order, crowding is infinite for every distinct value,
    # so accuracy decides. Two trials tie at the cut (0.7): both continue.
    points = np.array([[0.9], [0.7], [0.7], [0.5], [0.4], [0.3]])
    assert _survivors(points, ["maximize"], 3) == [0, 1, 2]
    points = np.array([[0.9], [0.8], [0.7], [0.5], [0.4], [0.3]])
    assert _survivors(points, ["maximize"], 3) == [0, 1]


def test_keep_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="eta"):
        mo_successive_halving_keep(NINE, ACC_PARAMS, 0, 1)
    with pytest.raises(IndexError):
        mo_successive_halving_keep(NINE, ACC_PARAMS, 9, 3)


# --- MultiObjectiveSuccessiveHalving over a study -------------------------------------------------

OBJECTIVES = ["val_accuracy", "param_count", "train_seconds"]
DIRECTIONS = ["maximize", "minimize", "minimize"]


def _metrics(epoch: int, val_accuracy: float, elapsed_seconds: float) -> EpochMetrics:
    return EpochMetrics(
        epoch=epoch, train_loss=0.0, train_accuracy=0.0, val_loss=0.0, val_accuracy=val_accuracy,
        epoch_seconds=1.0, images_per_second=1.0, lr=0.1, elapsed_seconds=elapsed_seconds,
    )


def _history(accuracies: list[float], seconds_per_epoch: float) -> list[dict]:
    return [
        {"epoch": e + 1, "val_accuracy": a, "epoch_seconds": seconds_per_epoch,
         "elapsed_seconds": seconds_per_epoch * (e + 1)}
        for e, a in enumerate(accuracies)
    ]


def _add(study, state, accuracies, param_count, seconds_per_epoch, **extra_attrs):
    history = _history(accuracies, seconds_per_epoch)
    values = None
    if state == TrialState.COMPLETE:
        values = [accuracies[-1], param_count, history[-1]["elapsed_seconds"]]
    study.add_trial(
        create_trial(
            state=state,
            values=values,
            user_attrs={"history": history, "param_count": param_count, **extra_attrs},
        )
    )
    return study.trials[-1].number


def _judge(pruner: BasePruner, study: optuna.Study, number: int, epoch: int) -> bool:
    """The pruner's decision on a stored trial after ``epoch``, as the trial loop asks it."""
    trial = study.trials[number]
    entry = next(h for h in trial.user_attrs["history"] if h["epoch"] == epoch)
    return pruner.should_prune(study, trial, epoch, _metrics(epoch, entry["val_accuracy"],
                                                             entry["elapsed_seconds"]))


def _mo_study() -> optuna.Study:
    study = optuna.create_study(directions=DIRECTIONS)
    study.set_metric_names(OBJECTIVES)
    return study


def test_dominated_big_slow_trial_is_pruned_and_front_trial_kept() -> None:
    study = _mo_study()
    # Five finished trials that trained to epoch 9; each is on the trade-off curve.
    finished = [(0.80, 1e6, 10), (0.70, 2e5, 5), (0.85, 5e6, 20), (0.60, 5e4, 3), (0.75, 5e5, 8)]
    for acc, params, secs in finished:
        _add(study, TrialState.COMPLETE, [acc - 0.2, acc - 0.1, acc] + [acc] * 6, params, secs)
    # Running: a big, slow, inaccurate trial and a small, fast, accurate one, both at epoch 1.
    bad = _add(study, TrialState.RUNNING, [0.40], 2e7, 60)
    good = _add(study, TrialState.RUNNING, [0.70], 1e5, 2)
    pruner = MultiObjectiveSuccessiveHalving(epochs=20, objectives=OBJECTIVES)
    assert _judge(pruner, study, bad, 1) is True
    assert _judge(pruner, study, good, 1) is False


def test_only_rung_epochs_below_the_last_are_judged() -> None:
    pruner = MultiObjectiveSuccessiveHalving(min_resource=1, reduction_factor=3, epochs=9)
    assert pruner.rungs() == [1, 3]
    assert [e for e in range(1, 30) if pruner.is_rung(e)] == [1, 3]
    assert MultiObjectiveSuccessiveHalving(min_resource=2, reduction_factor=2).is_rung(8)
    assert not MultiObjectiveSuccessiveHalving(min_resource=2, reduction_factor=2).is_rung(6)

    study = _mo_study()
    for _ in range(5):
        _add(study, TrialState.COMPLETE, [0.9] * 9, 1e4, 1)
    bad = _add(study, TrialState.RUNNING, [0.1, 0.1], 1e8, 100)
    assert _judge(pruner, study, bad, 1) is True  # objectives from study.metric_names
    assert _judge(pruner, study, bad, 2) is False  # not a rung


def test_trials_that_stopped_before_the_rung_and_failed_trials_do_not_count() -> None:
    study = _mo_study()
    # Two strong trials reached epoch 3; three strong FAIL trials and two pruned at epoch 1 did not
    # count at rung 3. With only three trials at the rung, the third is judged against two.
    for _ in range(2):
        _add(study, TrialState.COMPLETE, [0.9, 0.9, 0.9], 1e4, 1)
    for _ in range(3):
        _add(study, TrialState.FAIL, [0.95, 0.95, 0.95], 1e3, 1)
    for _ in range(2):
        _add(study, TrialState.PRUNED, [0.95], 1e3, 1)
    me = _add(study, TrialState.RUNNING, [0.5, 0.5, 0.5], 1e6, 10)
    pruner = MultiObjectiveSuccessiveHalving(epochs=27, objectives=OBJECTIVES)
    points, _, numbers = pruner.rung_points(study, 3, OBJECTIVES)
    assert len(numbers) == 3 and me in numbers
    # ceil(3 / 3) = 1 survivor and two trials dominate `me`.
    assert _judge(pruner, study, me, 3) is True
    # At rung 1 the two trials pruned there count too: 2 complete + 2 pruned + me.
    _, _, numbers_at_1 = pruner.rung_points(study, 1, OBJECTIVES)
    assert len(numbers_at_1) == 5


def test_diverged_trial_counts_as_worst() -> None:
    study = _mo_study()
    nan_trial = _add(study, TrialState.PRUNED, [float("nan")], 1e3, 0.5, stop_reason="diverged")
    for acc in (0.3, 0.4):
        _add(study, TrialState.COMPLETE, [acc, acc], 1e6, 10)
    pruner = MultiObjectiveSuccessiveHalving(epochs=3)
    points, directions, numbers = pruner.rung_points(study, 1, OBJECTIVES)
    row = points[numbers.index(nan_trial)]
    assert row.tolist() == [-math.inf, math.inf, math.inf]
    # Dominated by both finished trials, even though it was the smallest and fastest.
    ranks = non_dominated_ranks(points, directions)
    assert ranks[numbers.index(nan_trial)] == ranks.max() == 2


def test_objectives_select_the_columns() -> None:
    study = _mo_study()
    for acc in (0.6, 0.58, 0.4, 0.3, 0.2):
        _add(study, TrialState.COMPLETE, [acc], 1e5, 1)
    # Smallest but very slow: on the (accuracy, size) front beside the 0.6 trial, so among the
    # ceil(6 / 3) = 2 survivors; on (accuracy, time) the 0.6 and 0.58 trials dominate it.
    slow = _add(study, TrialState.RUNNING, [0.55], 1e4, 1000)
    by_size = MultiObjectiveSuccessiveHalving(epochs=3, objectives=["val_accuracy", "param_count"])
    by_time = MultiObjectiveSuccessiveHalving(epochs=3, objectives=["val_accuracy", "train_seconds"])
    assert not _judge(by_size, study, slow, 1)
    assert _judge(by_time, study, slow, 1)
    points, directions, _ = by_size.rung_points(study, 1, ["param_count"])
    assert directions == ["maximize", "minimize"] and points.shape == (6, 2)


def test_macs_are_read_from_user_attrs() -> None:
    study = _mo_study()
    _add(study, TrialState.COMPLETE, [0.5], 1e5, 1, macs=1e6)
    _add(study, TrialState.COMPLETE, [0.5], 1e5, 1)  # no macs: left out
    points, directions, numbers = MultiObjectiveSuccessiveHalving().rung_points(
        study, 1, ["val_accuracy", "macs"]
    )
    assert numbers == [0] and points.tolist() == [[0.5, 1e6]]


def test_missing_own_history_is_a_caller_bug() -> None:
    study = _mo_study()
    me = _add(study, TrialState.RUNNING, [0.5], 1e5, 1)
    pruner = MultiObjectiveSuccessiveHalving(epochs=9)
    with pytest.raises(ValueError, match="no history entry for epoch 3"):
        pruner.should_prune(study, study.trials[me], 3, _metrics(3, 0.5, 3.0))


def test_unknown_objective_is_refused() -> None:
    with pytest.raises(ConfigError, match="'test_accuracy'"):
        MultiObjectiveSuccessiveHalving().rung_points(_mo_study(), 1, ["test_accuracy"])


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="reduction_factor"):
        MultiObjectiveSuccessiveHalving(reduction_factor=1)
    with pytest.raises(ValueError, match="min_resource"):
        MultiObjectiveSuccessiveHalving(min_resource=0)


# --- The per-epoch contract, driven the way the trial loop drives it ---------------------------


def _train(study: optuna.Study, pruner: BasePruner, curve: list[float], param_count: float):
    """What the trial loop does per trial: store the history, report on single-objective studies,
    ask the pruner, stop when told."""
    trial = study.ask()
    trial.set_user_attr("param_count", param_count)
    history: list[dict] = []
    for epoch, accuracy in enumerate(curve, start=1):
        metrics = _metrics(epoch, accuracy, float(epoch))
        history.append(metrics.to_dict())
        trial.set_user_attr("history", history)
        if len(study.directions) == 1:
            trial.report(accuracy, epoch)
        if pruner.should_prune(study, trial, epoch, metrics):
            study.tell(trial, state=TrialState.PRUNED)
            return trial.number, "pruned"
    values = [curve[-1], param_count] if len(study.directions) > 1 else curve[-1]
    study.tell(trial, values)
    return trial.number, "complete"


def _objectives(n: int) -> list[str]:
    return OBJECTIVES[:n]


def test_mo_asha_prunes_a_multi_objective_study_without_report() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "param_count"])
    pruner = create_pruner("mo_asha", {}, objectives=_objectives(2), epochs=5)
    assert isinstance(pruner.optuna_pruner, optuna.pruners.NopPruner)
    for _ in range(4):
        _train(study, pruner, [0.8] * 5, 1e5)
    number, outcome = _train(study, pruner, [0.2] * 5, 1e7)
    assert outcome == "pruned"
    trial = study.trials[number]
    assert trial.intermediate_values == {}  # Optuna refuses report on multi-objective studies
    assert [h["epoch"] for h in trial.user_attrs["history"]] == [1]


def test_optuna_pruners_decide_from_the_reported_values() -> None:
    pruner = create_pruner("median", {"n_startup_trials": 2}, objectives=_objectives(1), epochs=4)
    assert isinstance(pruner, OptunaPruner)
    study = optuna.create_study(direction="maximize", pruner=pruner.optuna_pruner)
    for _ in range(3):
        _train(study, pruner, [0.5, 0.6, 0.7, 0.8], 1e5)
    number, outcome = _train(study, pruner, [0.1, 0.1, 0.1, 0.1], 1e5)
    assert outcome == "pruned"
    assert study.trials[number].intermediate_values == {1: 0.1}
    assert study.trials[0].intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7, 4: 0.8}


def test_optuna_pruner_never_prunes_a_multi_objective_study() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    pruner = OptunaPruner(optuna.pruners.ThresholdPruner(lower=0.5))
    assert pruner.should_prune(study, trial, 1, _metrics(1, 0.1, 1.0)) is False


def test_none_never_prunes() -> None:
    pruner = create_pruner("none", {}, objectives=_objectives(1), epochs=3)
    assert isinstance(pruner.optuna_pruner, optuna.pruners.NopPruner)
    study = optuna.create_study(direction="maximize", pruner=pruner.optuna_pruner)
    outcomes = [_train(study, pruner, curve, 1e5)[1] for curve in ([0.9] * 3, [0.1] * 3)]
    assert outcomes == ["complete", "complete"]
    assert study.trials[1].intermediate_values == {1: 0.1, 2: 0.1, 3: 0.1}


def test_mo_asha_on_a_single_objective_study_is_asha_on_accuracy() -> None:
    pruner = create_pruner("mo_asha", {}, objectives=_objectives(1), epochs=4)
    study = optuna.create_study(direction="maximize", pruner=pruner.optuna_pruner)
    for _ in range(3):
        _train(study, pruner, [0.8] * 4, 1e5)
    # Big but accurate: param_count is not an objective here, so it survives.
    assert _train(study, pruner, [0.9] * 4, 1e9)[1] == "complete"
    assert _train(study, pruner, [0.1] * 4, 1e3)[1] == "pruned"


def test_mo_asha_needs_objective_names_on_multi_objective_studies() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    trial.set_user_attr("history", _history([0.5], 1.0))
    with pytest.raises(ValueError, match="set_metric_names"):
        MultiObjectiveSuccessiveHalving().should_prune(study, trial, 1, _metrics(1, 0.5, 1.0))
    named = MultiObjectiveSuccessiveHalving(objectives=["val_accuracy"])
    assert named.should_prune(study, trial, 1, _metrics(1, 0.5, 1.0)) is False  # alone at the rung


def test_create_pruner_builds_the_configured_pruner_for_the_study() -> None:
    study = optuna.create_study(directions=DIRECTIONS)
    pruner = create_pruner("mo_asha", {}, objectives=OBJECTIVES, epochs=5)
    assert isinstance(pruner, MultiObjectiveSuccessiveHalving)
    for _ in range(3):
        _add(study, TrialState.COMPLETE, [0.9], 1e4, 1)
    trial = study.ask()
    trial.set_user_attr("param_count", 1e7)
    trial.set_user_attr("history", _history([0.1], 1.0))
    assert pruner.should_prune(study, trial, 1, _metrics(1, 0.1, 1.0)) is True
    with pytest.raises(ConfigError, match="single-objective"):
        create_pruner("median", {}, objectives=OBJECTIVES, epochs=5)


def test_restored_epochs_are_reported_and_the_next_live_epoch_is_judged() -> None:
    # As the workers do: the study is loaded with the configured pruner's optuna_pruner.
    pruner = create_pruner("median", {"n_startup_trials": 0}, objectives=_objectives(1), epochs=4)
    study = optuna.create_study(direction="maximize", pruner=pruner.optuna_pruner)
    _train(study, pruner, [0.9] * 4, 1e5)
    retried = study.ask()
    # Epochs 1-2 of a weak curve come back from a checkpoint: the loop reports them, no decision...
    retried.report(0.1, 1)
    retried.report(0.1, 2)
    assert study.trials[-1].intermediate_values == {1: 0.1, 2: 0.1}
    # ...while the next live epoch is judged.
    retried.report(0.1, 3)
    assert pruner.should_prune(study, retried, 3, _metrics(3, 0.1, 3.0)) is True
    mo_study = optuna.create_study(directions=["maximize", "minimize"])
    mo_pruner = create_pruner("mo_asha", {}, objectives=OBJECTIVES[:2], epochs=4)
    mo_trial = mo_study.ask()
    mo_trial.set_user_attr("param_count", 1e5)
    mo_trial.set_user_attr("history", _history([0.5], 1.0))
    assert mo_pruner.should_prune(mo_study, mo_trial, 1, _metrics(1, 0.5, 1.0)) is False
    assert mo_study.trials[-1].intermediate_values == {}  # mo_asha never reports


# --- Registry contract ---------------------------------------------------------------------------


def _curves(n_trials: int, epochs: int) -> list[list[float]]:
    # Alternating strong and weak learners, so pruners have something to prune.
    return [
        [(0.9 if i % 2 == 0 else 0.3) * (e + 1) / epochs + 0.01 * i for e in range(epochs)]
        for i in range(n_trials)
    ]


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_every_pruner_runs_a_study(name: str) -> None:
    entry = PRUNERS[name]
    cases = [1, 2] if entry.multi_objective else [1]
    for n_objectives in cases:
        objectives = ["val_accuracy", "param_count"][:n_objectives]
        check_pruner(name, {}, n_objectives=n_objectives, origin=ORIGIN, epochs=9)
        pruner = create_pruner(name, {}, objectives=objectives, epochs=9)
        assert isinstance(pruner, BasePruner)
        study = optuna.create_study(
            directions=["maximize", "minimize"][:n_objectives],
            pruner=pruner.optuna_pruner,
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        study.set_metric_names(objectives)
        outcomes = [
            _train(study, pruner, curve, 1e5 * (i + 1))[1]
            for i, curve in enumerate(_curves(8, 9))
        ]
        assert len(study.trials) == 8
        assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
        assert outcomes.count("complete") >= 1
        if name == "none":
            assert outcomes == ["complete"] * 8


def test_successive_halving_pruners_prune_weak_learners() -> None:
    # Not every pruner must prune in 8 trials, but these two rung-based ones must.
    for name in ("asha", "mo_asha"):
        pruner = create_pruner(name, {}, objectives=_objectives(1), epochs=9)
        study = optuna.create_study(direction="maximize", pruner=pruner.optuna_pruner)
        outcomes = [_train(study, pruner, curve, 1e5)[1] for curve in _curves(8, 9)]
        assert "pruned" in outcomes, name
        assert outcomes[0] == "complete", name


def test_registry_defaults_follow_the_study() -> None:
    hyperband = create_pruner("hyperband", {}, objectives=_objectives(1), epochs=27).optuna_pruner
    assert hyperband._max_resource == 27 and hyperband._reduction_factor == 3
    asha = create_pruner("successive_halving", {}, objectives=_objectives(1), epochs=27)
    assert isinstance(asha.optuna_pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert PRUNERS["asha"] is PRUNERS["successive_halving"]
    mo = create_pruner("mo_asha", {"reduction_factor": 2}, objectives=_objectives(3), epochs=8)
    assert mo.rungs() == [1, 2, 4] and mo.min_trials_at_rung == 2


# --- check_pruner --------------------------------------------------------------------------------


def test_unknown_pruner_is_refused_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as error:
        check_pruner("medain", {}, n_objectives=1, origin=ORIGIN)
    message = str(error.value)
    assert message.startswith(ORIGIN) and "'medain'" in message
    assert all(name in message for name in PRUNERS)


def test_unknown_pruner_arg_is_refused_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as error:
        check_pruner("asha", {"eta": 3}, n_objectives=1, origin=ORIGIN)
    message = str(error.value)
    assert "pruner.args.eta" in message and "reduction_factor" in message
    with pytest.raises(ConfigError, match="pruner.args.epochs"):
        check_pruner("mo_asha", {"epochs": 3}, n_objectives=2, origin=ORIGIN)
    with pytest.raises(ConfigError, match="pruner.args.objectives"):
        check_pruner("mo_asha", {"objectives": ["val_accuracy"]}, n_objectives=2, origin=ORIGIN)


@pytest.mark.parametrize("name", sorted(n for n, e in PRUNERS.items() if not e.multi_objective))
def test_single_objective_pruners_are_refused_for_multi_objective_studies(name: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_pruner(name, {}, n_objectives=2, origin=ORIGIN)
    assert str(error.value) == (
        f"{ORIGIN}: pruner {name!r} is single-objective; "
        "multi-objective studies take mo_asha or none"
    )
    with pytest.raises(ConfigError):
        create_pruner(name, {}, objectives=_objectives(2), epochs=9)


def test_multi_objective_studies_accept_mo_asha_and_none() -> None:
    assert check_pruner("none", {}, n_objectives=3, origin=ORIGIN) == []
    notes = check_pruner(
        "mo_asha", {}, n_objectives=3, origin=ORIGIN, epochs=10, objectives=OBJECTIVES
    )
    assert notes == ["mo_asha judges trials after epochs 1, 3, 9"]


def test_bad_pruner_arg_value_is_refused_with_the_file_named() -> None:
    with pytest.raises(ConfigError, match=f"^{ORIGIN}: pruner.args.percentile is 150, but for pruner 'percentile' it "
                                          "must be a number from 0 to 100"):
        check_pruner("percentile", {"percentile": 150}, n_objectives=1, origin=ORIGIN)
    with pytest.raises(ConfigError, match="reduction_factor"):
        check_pruner("mo_asha", {"reduction_factor": 1}, n_objectives=2, origin=ORIGIN)


def test_mo_asha_checks_objectives_and_rungs() -> None:
    with pytest.raises(ConfigError, match=f"^{ORIGIN}: pruner mo_asha cannot measure objective 'test_accuracy'"):
        check_pruner(
            "mo_asha",
            {},
            n_objectives=2,
            origin=ORIGIN,
            objectives=["val_accuracy", "test_accuracy"],
        )
    notes = check_pruner("mo_asha", {"min_resource": 5}, n_objectives=2, origin=ORIGIN, epochs=5)
    assert notes == [
        "mo_asha never prunes with 5 epochs: its first rung is epoch 5; "
        "lower min_resource or train longer"
    ]
    (note, _) = check_pruner("mo_asha", {}, n_objectives=1, origin=ORIGIN, epochs=4)
    assert "single objective" in note


def test_register_pruner_adds_a_plugin_through_the_same_path() -> None:
    @register_pruner(
        "test_plugin_threshold",
        description="stop below a floor",
        multi_objective=False,
        pruner_class=optuna.pruners.ThresholdPruner,
        aliases=("test_plugin_floor",),
    )
    def _plugin(args, *, objectives, epochs):
        return OptunaPruner(optuna.pruners.ThresholdPruner(**args))

    try:
        check_pruner("test_plugin_floor", {"lower": 0.2}, n_objectives=1, origin=ORIGIN)
        pruner = create_pruner("test_plugin_threshold", {"lower": 0.2}, objectives=_objectives(1), epochs=3)
        study = optuna.create_study(direction="maximize", pruner=pruner.optuna_pruner)
        assert _train(study, pruner, [0.1, 0.5, 0.5], 1e5)[1] == "pruned"
        with pytest.raises(ConfigError, match="multi-objective studies take mo_asha or none"):
            check_pruner("test_plugin_threshold", {}, n_objectives=2, origin=ORIGIN)
    finally:
        PRUNERS.pop("test_plugin_threshold", None)
        PRUNERS.pop("test_plugin_floor", None)


class _StopAtEpoch(BasePruner):
    """A plug-in multi-objective pruner: stops every trial after ``stop_at`` epochs."""

    def __init__(self, stop_at: int = 2, *, objectives=None, epochs=None) -> None:
        self.stop_at = stop_at
        self.objectives = objectives
        self.calls: list[tuple[int, int, float]] = []

    def should_prune(self, study, trial, epoch, metrics) -> bool:
        self.calls.append((trial.number, epoch, metrics.val_accuracy))
        return epoch >= self.stop_at

    def check(self, objectives) -> None:
        if "macs" in objectives:
            raise ConfigError("pruner test_plugin_stop cannot judge 'macs'")

    def notes(self, epochs, n_objectives) -> list[str]:
        return [f"test_plugin_stop stops every trial at epoch {self.stop_at} of {epochs}"]


def test_a_multi_objective_plugin_pruner_is_accepted_and_its_should_prune_decides() -> None:
    register_pruner(
        "test_plugin_stop",
        description="stop every trial early",
        multi_objective=True,
        pruner_class=_StopAtEpoch,
    )(lambda args, *, objectives, epochs: _StopAtEpoch(**args, objectives=objectives, epochs=epochs))
    two = OBJECTIVES[:2]
    try:
        notes = check_pruner("test_plugin_stop", {"stop_at": 2}, n_objectives=2, origin=ORIGIN,
                             epochs=5, objectives=two)
        assert notes == ["test_plugin_stop stops every trial at epoch 2 of 5"]
        with pytest.raises(ConfigError, match=f"^{ORIGIN}: pruner test_plugin_stop cannot judge 'macs'"):
            check_pruner("test_plugin_stop", {}, n_objectives=2, origin=ORIGIN, objectives=["val_accuracy", "macs"])
        with pytest.raises(ConfigError, match="pruner.args.epochs"):
            check_pruner("test_plugin_stop", {"epochs": 3}, n_objectives=2, origin=ORIGIN)

        pruner = create_pruner("test_plugin_stop", {"stop_at": 2}, objectives=two, epochs=5)
        assert isinstance(pruner, _StopAtEpoch) and pruner.objectives == two
        assert isinstance(pruner.optuna_pruner, optuna.pruners.NopPruner)  # the BasePruner default
        study = optuna.create_study(directions=DIRECTIONS[:2], pruner=pruner.optuna_pruner)
        study.set_metric_names(two)
        number, outcome = _train(study, pruner, [0.3, 0.4, 0.5, 0.6, 0.7], 1e5)
        assert outcome == "pruned"
        assert pruner.calls == [(number, 1, 0.3), (number, 2, 0.4)]
        assert study.trials[number].intermediate_values == {}
    finally:
        PRUNERS.pop("test_plugin_stop", None)


def test_every_registered_name_has_a_description() -> None:
    for name, entry in PRUNERS.items():
        assert entry.description and (name == entry.name or name in entry.aliases)
    names = itertools.chain.from_iterable((e.name, *e.aliases) for e in PRUNERS.values())
    assert set(names) == set(PRUNERS)


def test_mo_asha_time_at_a_rung_is_the_reported_train_seconds():
    """The rung compares the sum of epoch seconds (what train_seconds reports), not the wall clock.

    Trial b's epochs are faster, but its wall clock is the longest (slow checkpoint writes and
    storage calls between epochs): judged on train_seconds it is ahead of a and c.
    """
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "train_seconds"])
    rows = {"a": (0.5, 2.0, 2.5), "b": (0.5, 1.0, 9.0), "c": (0.5, 3.0, 3.5)}  # accuracy, epoch s, elapsed s
    for accuracy, seconds, elapsed in rows.values():
        history = [{"epoch": 1, "val_accuracy": accuracy, "epoch_seconds": seconds, "elapsed_seconds": elapsed}]
        study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"history": history, "param_count": 10}))
    pruner = MultiObjectiveSuccessiveHalving(epochs=3, objectives=["val_accuracy", "train_seconds"])
    points, _, numbers = pruner.rung_points(study, 1, ["val_accuracy", "train_seconds"])
    assert points[:, 1].tolist() == [2.0, 1.0, 3.0]
    assert [_judge(pruner, study, n, 1) for n in numbers] == [True, False, True]

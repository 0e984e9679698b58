"""Pruners: the pure multi-objective successive-halving rule on hand-made rungs, the same rule over
a real Optuna study, the one entry point the study layer calls, and the registry contract."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpo.errors import ConfigError
from hpo.pruning import (
    PRUNERS,
    EpochPruner,
    MultiObjectiveSuccessiveHalving,
    check_pruner,
    crowding_distances,
    make_pruner,
    mo_successive_halving_keep,
    non_dominated_ranks,
    register_pruner,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

ORIGIN = "studies/test.yaml"
ACC_PARAMS = ["maximize", "minimize"]


def _brute_force_ranks(points: np.ndarray, directions: list[str]) -> list[int]:
    """Reference: peel Pareto fronts by the definition, one point at a time."""
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    costs = np.asarray(points, dtype=float) * signs
    remaining = set(range(len(costs)))
    ranks = [0] * len(costs)
    rank = 0
    while remaining:
        front = {
            i
            for i in remaining
            if not any(
                np.all(costs[j] <= costs[i]) and np.any(costs[j] < costs[i]) for j in remaining
            )
        }
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


# --- non_dominated_ranks -----------------------------------------------------------------------


def test_ranks_2d_accuracy_vs_params() -> None:
    points = np.array(
        [
            [0.90, 5e6],  # front: most accurate
            [0.80, 1e6],  # front
            [0.70, 1e5],  # front: smallest
            [0.85, 5e6],  # dominated by 0 only -> 1
            [0.75, 2e6],  # dominated by 1 -> 1
            [0.70, 6e6],  # dominated by 3 (and 0, 1) -> 2
        ]
    )
    assert non_dominated_ranks(points, ACC_PARAMS).tolist() == [0, 0, 0, 1, 1, 2]


def test_ranks_3d_with_time() -> None:
    directions = ["maximize", "minimize", "minimize"]
    points = np.array(
        [
            [0.9, 1e6, 100.0],  # front
            [0.9, 1e6, 50.0],  # front, and dominates 0 -> 0 moves down
            [0.5, 1e4, 500.0],  # front: smallest
            [0.6, 1e7, 10.0],  # front: fastest
            [0.5, 1e7, 20.0],  # dominated by 3 -> 1
        ]
    )
    assert non_dominated_ranks(points, directions).tolist() == [1, 0, 0, 0, 1]


def test_duplicates_share_a_rank() -> None:
    points = np.array([[0.8, 1e6], [0.8, 1e6], [0.7, 2e6], [0.7, 2e6]])
    assert non_dominated_ranks(points, ACC_PARAMS).tolist() == [0, 0, 1, 1]


def test_single_point_is_the_front() -> None:
    assert non_dominated_ranks(np.array([[0.5, 10.0]]), ACC_PARAMS).tolist() == [0]
    assert non_dominated_ranks(np.zeros((0, 2)), ACC_PARAMS).tolist() == []


def test_all_on_the_front() -> None:
    # Accuracy rises with size: every trade-off is Pareto-optimal.
    points = np.array([[0.5 + 0.1 * i, 10.0**i] for i in range(5)])
    assert non_dominated_ranks(points, ACC_PARAMS).tolist() == [0] * 5


def test_dominated_chain_gets_one_rank_each() -> None:
    # Each point is better than the next in both objectives; shuffled so order can't help.
    chain = np.array([[0.9 - 0.1 * i, 1.0 + i] for i in range(6)])
    order = [3, 0, 5, 1, 4, 2]
    ranks = non_dominated_ranks(chain[order], ACC_PARAMS)
    assert ranks.tolist() == order


def test_infinite_worst_values_rank_last() -> None:
    points = np.array([[-np.inf, np.inf], [0.1, 1e9], [0.9, 1e3]])
    assert non_dominated_ranks(points, ACC_PARAMS).tolist() == [2, 1, 0]


def test_ranks_match_the_definition_on_random_sets() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, m = int(rng.integers(1, 25)), int(rng.integers(1, 4))
        points = rng.integers(0, 4, size=(n, m)).astype(float)  # small ints: many ties
        directions = [("maximize", "minimize")[int(b)] for b in rng.integers(0, 2, size=m)]
        assert non_dominated_ranks(points, directions).tolist() == _brute_force_ranks(
            points, directions
        )


def test_ranks_refuse_nan_and_bad_directions() -> None:
    with pytest.raises(ValueError, match="NaN"):
        non_dominated_ranks(np.array([[np.nan, 1.0]]), ACC_PARAMS)
    with pytest.raises(ValueError, match="direction"):
        non_dominated_ranks(np.array([[0.5, 1.0]]), ["maximize", "smaller"])
    with pytest.raises(ValueError, match="directions"):
        non_dominated_ranks(np.array([[0.5, 1.0]]), ["maximize"])


# --- crowding_distances ------------------------------------------------------------------------


def test_crowding_extremes_are_infinite_and_inner_points_measure_the_gap() -> None:
    front = np.array([[0.5, 1.0], [0.6, 2.0], [0.61, 3.0], [0.9, 10.0]])
    distances = crowding_distances(front, ACC_PARAMS)
    assert np.isinf(distances[0]) and np.isinf(distances[3])
    # Gaps over the front's range per objective: accuracy range 0.4, params range 9.
    assert distances[1] == pytest.approx((0.61 - 0.5) / 0.4 + (3.0 - 1.0) / 9.0)
    assert distances[2] == pytest.approx((0.9 - 0.6) / 0.4 + (10.0 - 2.0) / 9.0)


def test_crowding_is_order_independent_and_equal_for_duplicates() -> None:
    front = np.array([[0.5, 1.0], [0.7, 3.0], [0.7, 3.0], [0.8, 4.0], [0.9, 10.0]])
    distances = crowding_distances(front, ACC_PARAMS)
    assert distances[1] == distances[2]
    for order in ([4, 2, 0, 3, 1], [1, 2, 3, 4, 0]):
        assert crowding_distances(front[order], ACC_PARAMS).tolist() == distances[order].tolist()


def test_crowding_of_one_distinct_point_is_infinite() -> None:
    assert np.isinf(crowding_distances(np.array([[0.5, 1.0], [0.5, 1.0]]), ACC_PARAMS)).all()


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


def _history(accuracies: list[float], seconds_per_epoch: float) -> list[dict]:
    return [
        {"epoch": e + 1, "val_accuracy": a, "elapsed_seconds": seconds_per_epoch * (e + 1)}
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
    pruner = MultiObjectiveSuccessiveHalving(epochs=20)
    assert pruner.should_prune(study, bad, 1, OBJECTIVES) is True
    assert pruner.should_prune(study, good, 1, OBJECTIVES) is False


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
    assert pruner.should_prune(study, bad, 1, OBJECTIVES) is True
    assert pruner.should_prune(study, bad, 2, OBJECTIVES) is False  # not a rung


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
    pruner = MultiObjectiveSuccessiveHalving(epochs=27)
    points, _, numbers = pruner.rung_points(study, 3, OBJECTIVES)
    assert len(numbers) == 3 and me in numbers
    # ceil(3 / 3) = 1 survivor and two trials dominate `me`.
    assert pruner.should_prune(study, me, 3, OBJECTIVES) is True
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
    pruner = MultiObjectiveSuccessiveHalving(epochs=3)
    assert not pruner.should_prune(study, slow, 1, ["val_accuracy", "param_count"])
    assert pruner.should_prune(study, slow, 1, ["val_accuracy", "train_seconds"])
    points, directions, _ = pruner.rung_points(study, 1, ["param_count"])
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
    with pytest.raises(ValueError, match="no history entry for epoch 3"):
        MultiObjectiveSuccessiveHalving(epochs=9).should_prune(study, me, 3, OBJECTIVES)


def test_unknown_objective_is_refused() -> None:
    with pytest.raises(ConfigError, match="'test_accuracy'"):
        MultiObjectiveSuccessiveHalving().rung_points(_mo_study(), 1, ["test_accuracy"])


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="reduction_factor"):
        MultiObjectiveSuccessiveHalving(reduction_factor=1)
    with pytest.raises(ValueError, match="min_resource"):
        MultiObjectiveSuccessiveHalving(min_resource=0)


# --- EpochPruner: the study layer's one entry point ---------------------------------------------


def _train(study: optuna.Study, epoch_pruner: EpochPruner, curve: list[float], param_count: float):
    """What the study layer does per trial: store history, ask the pruner, stop when told."""
    trial = study.ask()
    trial.set_user_attr("param_count", param_count)
    history: list[dict] = []
    for epoch, accuracy in enumerate(curve, start=1):
        history.append({"epoch": epoch, "val_accuracy": accuracy, "elapsed_seconds": float(epoch)})
        trial.set_user_attr("history", history)
        if epoch_pruner.should_prune(study, trial, epoch, accuracy):
            study.tell(trial, state=TrialState.PRUNED)
            return trial.number, "pruned"
    values = [curve[-1], param_count] if len(study.directions) > 1 else curve[-1]
    study.tell(trial, values)
    return trial.number, "complete"


def test_epoch_pruner_runs_mo_asha_on_a_multi_objective_study_without_report() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "param_count"])
    epoch_pruner = EpochPruner(make_pruner("mo_asha", {}, n_objectives=2, epochs=5))
    assert isinstance(epoch_pruner.study_pruner, optuna.pruners.NopPruner)
    for _ in range(4):
        _train(study, epoch_pruner, [0.8] * 5, 1e5)
    number, outcome = _train(study, epoch_pruner, [0.2] * 5, 1e7)
    assert outcome == "pruned"
    trial = study.trials[number]
    assert trial.intermediate_values == {}  # Optuna refuses report on multi-objective studies
    assert [h["epoch"] for h in trial.user_attrs["history"]] == [1]


def test_epoch_pruner_reports_and_asks_optuna_on_single_objective_studies() -> None:
    epoch_pruner = EpochPruner(
        make_pruner("median", {"n_startup_trials": 2}, n_objectives=1, epochs=4)
    )
    study = optuna.create_study(direction="maximize", pruner=epoch_pruner.study_pruner)
    for _ in range(3):
        _train(study, epoch_pruner, [0.5, 0.6, 0.7, 0.8], 1e5)
    number, outcome = _train(study, epoch_pruner, [0.1, 0.1, 0.1, 0.1], 1e5)
    assert outcome == "pruned"
    assert study.trials[number].intermediate_values == {1: 0.1}
    assert study.trials[0].intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7, 4: 0.8}


def test_epoch_pruner_none_reports_but_never_prunes() -> None:
    epoch_pruner = EpochPruner(make_pruner("none", {}, n_objectives=1, epochs=3))
    study = optuna.create_study(direction="maximize", pruner=epoch_pruner.study_pruner)
    outcomes = [_train(study, epoch_pruner, curve, 1e5)[1] for curve in ([0.9] * 3, [0.1] * 3)]
    assert outcomes == ["complete", "complete"]
    assert study.trials[1].intermediate_values == {1: 0.1, 2: 0.1, 3: 0.1}


def test_mo_asha_on_a_single_objective_study_is_asha_on_accuracy() -> None:
    epoch_pruner = EpochPruner(make_pruner("mo_asha", {}, n_objectives=1, epochs=4))
    study = optuna.create_study(direction="maximize", pruner=epoch_pruner.study_pruner)
    for _ in range(3):
        _train(study, epoch_pruner, [0.8] * 4, 1e5)
    # Big but accurate: param_count is not an objective here, so it survives.
    assert _train(study, epoch_pruner, [0.9] * 4, 1e9)[1] == "complete"
    assert _train(study, epoch_pruner, [0.1] * 4, 1e3)[1] == "pruned"


def test_epoch_pruner_needs_objective_names_on_multi_objective_studies() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    trial.set_user_attr("history", _history([0.5], 1.0))
    epoch_pruner = EpochPruner(MultiObjectiveSuccessiveHalving())
    with pytest.raises(ValueError, match="set_metric_names"):
        epoch_pruner.should_prune(study, trial, 1, 0.5)
    named = EpochPruner(MultiObjectiveSuccessiveHalving(), objectives=["val_accuracy"])
    assert named.should_prune(study, trial, 1, 0.5) is False  # alone at the rung


def _study_config(pruner: str, objectives: list[str], epochs: int, **args):
    # Only the fields for_study reads; the real StudyConfig is tested with hpo.config.
    return SimpleNamespace(
        pruner=SimpleNamespace(name=pruner, args=args), objectives=tuple(objectives), epochs=epochs
    )


def test_for_study_binds_the_configured_pruner_to_the_study() -> None:
    study = optuna.create_study(directions=DIRECTIONS)
    bound = EpochPruner.for_study(study, _study_config("mo_asha", OBJECTIVES, 5))
    assert isinstance(bound.epoch_pruner.pruner, MultiObjectiveSuccessiveHalving)
    for _ in range(3):
        _add(study, TrialState.COMPLETE, [0.9], 1e4, 1)
    trial = study.ask()
    trial.set_user_attr("param_count", 1e7)
    trial.set_user_attr("history", _history([0.1], 1.0))
    assert bound.should_prune(trial, 1, 0.1) is True
    with pytest.raises(ConfigError, match="single-objective"):
        EpochPruner.for_study(study, _study_config("median", OBJECTIVES, 5))


def test_replay_restores_the_curve_without_deciding() -> None:
    config = _study_config("median", ["val_accuracy"], 4, n_startup_trials=0)
    # As the workers do: the study is loaded with the configured Optuna pruner.
    study = optuna.create_study(
        direction="maximize",
        pruner=make_pruner("median", {"n_startup_trials": 0}, n_objectives=1, epochs=4),
    )
    bound = EpochPruner.for_study(study, config)
    _train(study, bound.epoch_pruner, [0.9] * 4, 1e5)
    retried = study.ask()
    # Epochs 1-2 of a weak curve come back from a checkpoint: recorded, never pruned...
    bound.replay(retried, 1, 0.1)
    bound.replay(retried, 2, 0.1)
    assert study.trials[-1].intermediate_values == {1: 0.1, 2: 0.1}
    # ...while the next live epoch is judged.
    assert bound.should_prune(retried, 3, 0.1) is True
    mo_study = optuna.create_study(directions=["maximize", "minimize"])
    mo_bound = EpochPruner.for_study(mo_study, _study_config("mo_asha", OBJECTIVES[:2], 4))
    mo_trial = mo_study.ask()
    mo_bound.replay(mo_trial, 1, 0.5)  # Optuna refuses report here; replay must not call it
    assert mo_study.trials[-1].intermediate_values == {}


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
        check_pruner(name, {}, n_objectives=n_objectives, origin=ORIGIN, epochs=9)
        epoch_pruner = EpochPruner(make_pruner(name, {}, n_objectives=n_objectives, epochs=9))
        study = optuna.create_study(
            directions=["maximize", "minimize"][:n_objectives],
            pruner=epoch_pruner.study_pruner,
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        study.set_metric_names(["val_accuracy", "param_count"][:n_objectives])
        outcomes = [
            _train(study, epoch_pruner, curve, 1e5 * (i + 1))[1]
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
        epoch_pruner = EpochPruner(make_pruner(name, {}, n_objectives=1, epochs=9))
        study = optuna.create_study(direction="maximize", pruner=epoch_pruner.study_pruner)
        outcomes = [_train(study, epoch_pruner, curve, 1e5)[1] for curve in _curves(8, 9)]
        assert "pruned" in outcomes, name
        assert outcomes[0] == "complete", name


def test_registry_defaults_follow_the_study() -> None:
    hyperband = make_pruner("hyperband", {}, n_objectives=1, epochs=27)
    assert hyperband._max_resource == 27 and hyperband._reduction_factor == 3
    asha = make_pruner("successive_halving", {}, n_objectives=1, epochs=27)
    assert isinstance(asha, optuna.pruners.SuccessiveHalvingPruner)
    assert PRUNERS["asha"] is PRUNERS["successive_halving"]
    mo = make_pruner("mo_asha", {"reduction_factor": 2}, n_objectives=3, epochs=8)
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


@pytest.mark.parametrize("name", sorted(n for n, e in PRUNERS.items() if not e.multi_objective))
def test_single_objective_pruners_are_refused_for_multi_objective_studies(name: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_pruner(name, {}, n_objectives=2, origin=ORIGIN)
    assert str(error.value) == (
        f"{ORIGIN}: pruner {name!r} is single-objective; "
        "multi-objective studies take mo_asha or none"
    )
    with pytest.raises(ConfigError):
        make_pruner(name, {}, n_objectives=2, epochs=9)


def test_multi_objective_studies_accept_mo_asha_and_none() -> None:
    assert check_pruner("none", {}, n_objectives=3, origin=ORIGIN) == []
    notes = check_pruner(
        "mo_asha", {}, n_objectives=3, origin=ORIGIN, epochs=10, objectives=OBJECTIVES
    )
    assert notes == ["mo_asha judges trials after epochs 1, 3, 9"]


def test_bad_pruner_arg_value_is_refused_with_the_file_named() -> None:
    with pytest.raises(ConfigError, match=f"^{ORIGIN}: pruner 'percentile' refuses its args"):
        check_pruner("percentile", {"percentile": 150}, n_objectives=1, origin=ORIGIN)
    with pytest.raises(ConfigError, match="reduction_factor"):
        check_pruner("mo_asha", {"reduction_factor": 1}, n_objectives=2, origin=ORIGIN)


def test_mo_asha_checks_objectives_and_rungs() -> None:
    with pytest.raises(ConfigError, match="'test_accuracy'"):
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
    def _plugin(args, *, epochs):
        return optuna.pruners.ThresholdPruner(**args)

    try:
        check_pruner("test_plugin_floor", {"lower": 0.2}, n_objectives=1, origin=ORIGIN)
        pruner = make_pruner("test_plugin_threshold", {"lower": 0.2}, n_objectives=1, epochs=3)
        epoch_pruner = EpochPruner(pruner)
        study = optuna.create_study(direction="maximize", pruner=epoch_pruner.study_pruner)
        assert _train(study, epoch_pruner, [0.1, 0.5, 0.5], 1e5)[1] == "pruned"
        with pytest.raises(ConfigError, match="multi-objective studies take mo_asha or none"):
            check_pruner("test_plugin_threshold", {}, n_objectives=2, origin=ORIGIN)
    finally:
        PRUNERS.pop("test_plugin_threshold", None)
        PRUNERS.pop("test_plugin_floor", None)


def test_every_registered_name_has_a_description() -> None:
    for name, entry in PRUNERS.items():
        assert entry.description and (name == entry.name or name in entry.aliases)
    names = itertools.chain.from_iterable((e.name, *e.aliases) for e in PRUNERS.values())
    assert set(names) == set(PRUNERS)

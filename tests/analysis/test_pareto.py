"""Fronts, hypervolume and knee against hand-computed sets, and against Optuna's own answers."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume

from hpo.analysis.pareto import (
    crowding_distances,
    dominates,
    front_info,
    hypervolume,
    knee_point,
    non_dominated_ranks,
    normalise,
    pareto_mask,
    resolve_axes,
    resolve_reference,
)
from hpo.errors import ConfigError

MAX_MIN = ["maximize", "minimize"]
ACC_PARAMS = MAX_MIN


# --- pareto_mask -------------------------------------------------------------------------------


def _brute_force_mask(losses: np.ndarray) -> list[bool]:
    # The definition, pair by pair: i is dominated if some j is <= everywhere and < somewhere.
    return [not any(np.all(losses[j] <= losses[i]) and np.any(losses[j] < losses[i]) for j in range(len(losses)))
            for i in range(len(losses))]


@pytest.mark.parametrize("seed", range(20))
def test_front_matches_the_pairwise_definition_with_ties_and_nan(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 60)), int(rng.integers(1, 4))
    points = rng.integers(0, 6, size=(n, m)).astype(float)  # few distinct values: many ties and duplicates
    points[rng.random((n, m)) < 0.05] = np.nan
    directions = [["maximize", "minimize"][int(b)] for b in rng.integers(0, 2, size=m)]
    losses = points * np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    assert pareto_mask(points, directions).tolist() == _brute_force_mask(losses)


def test_dominated_chain_keeps_only_the_best():
    # Each point is better than the next on both axes (higher accuracy, fewer seconds).
    points = [[0.9, 10], [0.8, 20], [0.7, 30], [0.6, 40]]
    assert pareto_mask(points, MAX_MIN).tolist() == [True, False, False, False]


def test_trade_off_puts_every_point_on_the_front():
    points = [[0.6, 10], [0.7, 20], [0.8, 30], [0.9, 40]]
    assert pareto_mask(points, MAX_MIN).all()


def test_duplicates_of_a_front_point_are_all_on_the_front():
    points = [[0.9, 10], [0.9, 10], [0.8, 30], [0.5, 5]]
    assert pareto_mask(points, MAX_MIN).tolist() == [True, True, False, True]


def test_a_tie_on_one_axis_is_dominated_by_the_better_other_axis():
    # Same accuracy, more seconds: dominated. Same seconds, less accuracy: dominated.
    points = [[0.9, 10], [0.9, 11], [0.8, 10]]
    assert pareto_mask(points, MAX_MIN).tolist() == [True, False, False]


def test_one_point_and_empty_set():
    assert pareto_mask([[0.5, 3]], MAX_MIN).tolist() == [True]
    assert pareto_mask(np.empty((0, 2)), MAX_MIN).tolist() == []


def test_three_objectives_mixed_directions():
    points = [
        [0.9, 1e6, 100],  # front: best accuracy
        [0.8, 1e5, 100],  # front: fewest params
        [0.8, 1e6, 50],  # front: fastest
        [0.8, 1e6, 100],  # dominated by each of the three above
    ]
    assert pareto_mask(points, ["maximize", "minimize", "minimize"]).tolist() == [True, True, True, False]


def test_direction_is_checked():
    with pytest.raises(ValueError, match="direction"):
        pareto_mask([[1, 2]], ["max", "minimize"])


def test_dominance_is_strict_and_nan_neither_dominates_nor_is_dominated():
    costs = np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 1.0], [np.nan, 0.0]])
    assert dominates(costs, costs).tolist() == [
        [False, True, False, False],
        [False, False, False, False],
        [False, True, False, False],
        [False, False, False, False],
    ]


# --- non_dominated_ranks -----------------------------------------------------------------------


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


# --- normalise / hypervolume -------------------------------------------------------------------


def test_normalise_maps_the_reference_to_one():
    points = [[0.0, 1e8, 600.0, 1e10], [1.0, 1.0, 0.0, 1.0], [0.25, 1e4, 150.0, 1e5]]
    axes = ["val_accuracy", "param_count", "train_seconds", "macs"]
    np.testing.assert_allclose(
        normalise(points, axes),
        [[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.75, 0.5, 0.25, 0.5]],
    )


def test_hypervolume_2d_is_the_union_of_two_boxes():
    axes = ["val_accuracy", "train_seconds"]
    # Boxes in (accuracy gained) x (fraction of 600 s left): 0.5 x 0.5 and 0.8 x 0.2,
    # overlapping in 0.5 x 0.2.
    points = [[0.5, 300.0], [0.8, 480.0]]
    assert hypervolume(points, axes) == pytest.approx(0.25 + 0.16 - 0.10)


def test_hypervolume_of_params_uses_log10_up_to_the_reference():
    axes = ["val_accuracy", "param_count"]
    assert hypervolume([[0.5, 1e4]], axes) == pytest.approx(0.5 * 0.5)
    assert hypervolume([[0.5, 1e4]], axes, {"params": 1e6}) == pytest.approx(0.5 * (1 - 4 / 6))


def test_hypervolume_3d_by_hand():
    axes = ["val_accuracy", "param_count", "train_seconds"]
    # Normalised: (0.5, 0.5, 0.5) and (0.2, 0.75, 0.2): boxes 0.5^3 and 0.8*0.25*0.8,
    # intersection min-per-axis of the gains 0.5*0.25*0.5.
    points = [[0.5, 1e4, 300.0], [0.8, 1e6, 120.0]]
    assert hypervolume(points, axes) == pytest.approx(0.125 + 0.16 - 0.0625)


def test_a_point_beyond_the_reference_contributes_nothing():
    axes = ["val_accuracy", "train_seconds"]
    base = [[0.5, 300.0]]
    assert hypervolume(base + [[0.99, 700.0]], axes) == pytest.approx(hypervolume(base, axes))
    assert hypervolume([[0.99, 700.0]], axes) == 0.0
    assert hypervolume([[0.99, 10.0]], axes, {"train_seconds": 5}) == 0.0


def test_dominated_points_and_duplicates_do_not_change_hypervolume():
    axes = ["val_accuracy", "train_seconds"]
    front = [[0.5, 300.0], [0.8, 480.0]]
    assert hypervolume(front + front + [[0.4, 400.0]], axes) == pytest.approx(hypervolume(front, axes))


def test_hypervolume_of_nothing_is_zero():
    assert hypervolume(np.empty((0, 2)), ["val_accuracy", "param_count"]) == 0.0


@pytest.mark.parametrize("n_axes", [2, 3, 4])
def test_hypervolume_agrees_with_optuna_wfg(n_axes):
    rng = np.random.default_rng(n_axes)
    axes = ["val_accuracy", "train_seconds", "param_count", "macs"][:n_axes]
    for _ in range(5):
        points = np.column_stack(
            [
                rng.uniform(0.1, 0.95, 25),
                rng.uniform(1, 590, 25),
                10 ** rng.uniform(3, 7.9, 25),
                10 ** rng.uniform(5, 9.9, 25),
            ]
        )[:, :n_axes]
        expected = compute_hypervolume(normalise(points, axes), np.ones(n_axes))
        assert hypervolume(points, axes) == pytest.approx(expected, rel=1e-12)


# --- knee ----------------------------------------------------------------------------------------


def test_knee_is_the_front_point_nearest_the_ideal():
    axes = ["val_accuracy", "train_seconds"]
    # Normalised losses: A (0.05, 0.9), B (0.2, 0.2), C (0.9, 0.05), D dominated by B.
    # Ideal over the front: (0.05, 0.05); B is 0.21 from it, A and C 0.85.
    points = [[0.95, 540.0], [0.10, 30.0], [0.79, 130.0], [0.80, 120.0]]
    assert knee_point(points, axes) == 3


def test_knee_of_one_point_and_of_nothing():
    axes = ["val_accuracy", "param_count"]
    assert knee_point([[0.5, 1000]], axes) == 0
    assert knee_point(np.empty((0, 2)), axes) is None
    assert knee_point([[math.nan, 1000]], axes) is None


# --- front_info ----------------------------------------------------------------------------------


def test_front_info_skips_rows_without_the_axis_values():
    rows = [
        {"number": 3, "val_accuracy": 0.9, "param_count": 1e6},
        {"number": 4, "val_accuracy": 0.8, "param_count": 1e5},
        {"number": 5, "val_accuracy": 0.7, "param_count": 1e6},
        {"number": 6, "val_accuracy": None, "param_count": 10},
        {"number": 7, "val_accuracy": math.nan, "param_count": 10},
    ]
    info = front_info(rows, ["acc", "params"])
    assert info.axes == ["val_accuracy", "param_count"]
    assert info.trial_numbers == [3, 4, 5]
    assert info.front_trial_numbers == [3, 4]  # best accuracy first
    assert info.knee_trial in (3, 4)
    assert info.hypervolume == pytest.approx(hypervolume([[0.9, 1e6], [0.8, 1e5]], info.axes))
    np.testing.assert_allclose(info.front_points(), [[0.9, 1e6], [0.8, 1e5]])


def test_front_info_of_no_rows():
    info = front_info([], ["acc", "time"])
    assert info.front_trial_numbers == []
    assert info.knee_trial is None
    assert info.hypervolume == 0.0


def test_front_agrees_with_optuna_best_trials():
    rng = np.random.default_rng(7)
    directions = ["maximize", "minimize", "minimize"]
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), directions=directions)
    rows = []
    for _ in range(30):
        values = [float(rng.uniform(0.1, 0.95)), float(10 ** rng.uniform(4, 7)), float(rng.uniform(5, 500))]
        study.add_trial(optuna.trial.create_trial(values=values))
    for trial in study.trials:
        rows.append(dict(number=trial.number, **dict(zip(["val_accuracy", "param_count", "train_seconds"], trial.values))))
    info = front_info(rows, ["val_accuracy", "param_count", "train_seconds"])
    assert sorted(info.front_trial_numbers) == sorted(t.number for t in study.best_trials)
    assert 0 < len(info.front_trial_numbers) < 30


# --- axes and reference --------------------------------------------------------------------------


def test_resolve_axes_accepts_short_names_and_refuses_unknown_ones():
    assert resolve_axes(["acc", "params", "time", "macs"]) == [
        "val_accuracy",
        "param_count",
        "train_seconds",
        "macs",
    ]
    with pytest.raises(ConfigError, match="unknown Pareto axis 'loss'"):
        resolve_axes(["acc", "loss"])
    with pytest.raises(ConfigError, match="twice"):
        resolve_axes(["acc", "val_accuracy"])
    with pytest.raises(ConfigError, match="at least two axes"):
        resolve_axes(["acc"])


def test_resolve_reference_defaults_and_checks():
    assert resolve_reference(None) == {"params": 1e8, "train_seconds": 600.0, "macs": 1e10}
    assert resolve_reference({"params": 1e6})["params"] == 1e6
    with pytest.raises(ConfigError, match=r"hypervolume_reference.train_seconds must be a finite number > 0"):
        resolve_reference({"train_seconds": 0})
    with pytest.raises(ConfigError, match="hypervolume_reference.params must be a number"):
        resolve_reference({"params": "many"})
    with pytest.raises(ConfigError, match="hypervolume_reference.flops is not a reference key"):
        resolve_reference({"flops": 1e9})

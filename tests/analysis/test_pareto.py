"""Fronts, hypervolume and knee against hand-computed sets, and against Optuna's own answers."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume

from hpo.analysis.pareto import (
    front_info,
    hypervolume,
    knee_point,
    normalise,
    pareto_mask,
    resolve_axes,
    resolve_reference,
)
from hpo.errors import ConfigError

MAX_MIN = ["maximize", "minimize"]


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

"""The study-level benchmarks (bench/search.py, multiobjective.py, overhead.py, scaling.py).

The curve arithmetic is checked against hand-computed values; the overhead loop runs the service's
real ask/tell/storage path on small SQLite and journal studies. Whole benchmark runs (minutes of
training) are left to the documented commands.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH_DIR))  # the scripts import their helpers as `_study_utils`

import _study_utils as utils  # noqa: E402
import multiobjective  # noqa: E402
import overhead  # noqa: E402
import scaling  # noqa: E402
import search  # noqa: E402

from hpo.analysis.pareto import hypervolume  # noqa: E402
from hpo.config import load_study  # noqa: E402

nan = math.nan


def _same(a, b):
    return all((math.isnan(x) and math.isnan(y)) or x == pytest.approx(y) for x, y in zip(a, b, strict=True))


def test_best_so_far_is_the_running_maximum_on_the_grid():
    events = [(5.0, 0.4), (2.0, 0.5), (7.0, 0.45), (9.0, 0.6)]
    assert _same(utils.best_so_far(events, [0, 2, 4, 6, 8, 10]), [nan, 0.5, 0.5, 0.5, 0.5, 0.6])
    assert _same(utils.best_so_far([], [0, 1]), [nan, nan])


def test_step_curve_holds_the_last_value():
    assert _same(utils.step_curve([1.0, 3.0], [0.2, 0.7], [0, 1, 2, 3, 4]), [nan, 0.2, 0.2, 0.7, 0.7])


def test_median_counts_a_run_without_value_as_worst():
    band = utils.median_and_spread([[nan, 0.5, 0.6], [nan, nan, 0.4], [0.3, 0.3, 0.9]])
    assert _same(band["median"], [nan, 0.3, 0.6])
    assert _same(band["low"], [nan, nan, 0.4])
    assert _same(band["high"], [0.3, 0.5, 0.9])


def test_time_to_reach_and_grid():
    grid = utils.time_grid(4, 1)
    assert grid == [0, 1, 2, 3, 4]
    assert utils.time_to_reach(grid, [nan, 0.2, 0.5, 0.5, 0.7], 0.5) == 2
    assert utils.time_to_reach(grid, [nan, 0.2, 0.5, 0.5, 0.7], 0.8) is None


def _run(events):
    return {"trials": [{"finished_seconds": t, "state": state, "values": [v] if state == "COMPLETE" else None}
                       for t, v, state in events]}


def test_search_summary_ratio_uses_median_curves_and_ignores_pruned_trials():
    runs = {
        # default: reaches 0.6 at 3 s on two of three seeds; its pruned 0.9 is not a candidate
        "default": [_run([(3, 0.6, "COMPLETE"), (4, 0.9, "PRUNED")]), _run([(2, 0.5, "COMPLETE"), (3, 0.7, "COMPLETE")]),
                    _run([(9, 0.2, "COMPLETE")])],
        # random: final bests 0.6, 0.6, 0.5 -> median curve reaches 0.6 at 8 s
        "random": [_run([(6, 0.6, "COMPLETE")]), _run([(8, 0.6, "COMPLETE")]), _run([(1, 0.5, "COMPLETE")])],
    }
    summary = search.summarise(runs, budget=10)
    assert summary["target"] == pytest.approx(0.6)
    assert summary["methods"]["default"]["final_best"] == [0.6, 0.7, 0.2]
    assert summary["methods"]["default"]["time_to_target"] == 3
    assert summary["methods"]["random"]["time_to_target"] == 8
    assert summary["ratio"] == pytest.approx(3 / 8)
    assert summary["methods"]["random"]["time_to_target_per_seed"] == [6, 8, None]


def test_hypervolume_events_grow_and_end_at_the_hypervolume_of_all_complete_trials():
    reference = {"params": 1e8, "train_seconds": 600.0}
    trials = [
        {"finished_seconds": 1, "state": "COMPLETE", "values": [0.5, 1e5, 60.0]},
        {"finished_seconds": 2, "state": "PRUNED", "values": None},
        {"finished_seconds": 3, "state": "COMPLETE", "values": [0.7, 1e6, 120.0]},
        {"finished_seconds": 4, "state": "COMPLETE", "values": [0.4, 1e6, 300.0]},  # dominated
    ]
    times, volumes = multiobjective.hypervolume_events(trials, reference)
    assert times == [1, 3, 4]
    assert volumes[0] < volumes[1] == pytest.approx(volumes[2])
    all_points = [t["values"] for t in trials if t["values"]]
    assert volumes[-1] == pytest.approx(hypervolume(all_points, list(multiobjective.OBJECTIVES), reference))
    summary = multiobjective.summarise({"random": [{"trials": trials}], "nsga2": [{"trials": trials[:1]}]}, 5, reference)
    assert summary["methods"]["random"]["ratio_to_random"] == pytest.approx(1.0)
    assert summary["methods"]["nsga2"]["ratio_to_random"] == pytest.approx(volumes[0] / volumes[-1])
    assert summary["methods"]["nsga2"]["time_to_target"] is None


def test_study_definition_keeps_the_space_and_drops_the_head_start():
    base = load_study(utils.BASE_STUDY)
    config = utils.study_definition("bench-x", sampler={"name": "random", "args": {}}, pruner="none", epochs=2, R=20,
                                    seed=3)
    assert base.enqueue and not config.enqueue
    assert config.space.to_dict() == base.space.to_dict()
    assert (config.sampler.name, config.pruner.name, config.epochs, config.seed) == ("random", "none", 2, 3)
    assert config.dataset.R == 20
    mo = utils.study_definition("bench-mo", sampler={"name": "nsga2", "args": {"population_size": 8}},
                                pruner={"name": "mo_asha", "args": {}}, epochs=4, R=20,
                                objectives=multiobjective.OBJECTIVES)
    assert mo.objectives == multiobjective.OBJECTIVES


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_overhead_loop_runs_the_worker_path_and_fills_the_study(tmp_path, kind):
    import optuna

    url = f"sqlite:///{tmp_path / 'o.db'}" if kind == "sqlite" else f"journal:///{tmp_path / 'o.log'}"
    base = utils.study_definition("base", sampler={"name": "tpe", "args": {"multivariate": True}},
                                  pruner={"name": "asha", "args": {}}, epochs=3, R=20)
    worker = overhead.open_study(base, url, "bench-overhead-test", seed=0, work_dir=tmp_path)
    rng = random.Random(0)
    seconds = [overhead.service_trial(worker, rng) for _ in range(3)]
    assert all(s > 0 for s in seconds)
    trials = worker.study.get_trials()
    assert len(trials) == 3 and all(t.state.is_finished() for t in trials)
    # The worker's own code ran: history per epoch, heartbeats (3 per nominal 30 s trial), checkpoints, results.
    assert all(t.user_attrs["history"] and "hpo:heartbeat" in t.system_attrs for t in trials)
    assert all(t.system_attrs["hpo:worker"] == "bench-overhead" and "checkpoint" in t.user_attrs for t in trials)
    assert all(t.user_attrs["epochs_run"] == len(t.user_attrs["history"]) for t in trials)
    assert all(set(t.params) >= {"model", "lr"} for t in trials)
    overhead.fill(url, "bench-overhead-test", trials, 10, rng)
    filled = worker.study.get_trials()
    assert len(filled) == 13
    removed = worker.storage.get_study_system_attrs(worker.study._study_id)
    assert all(f"hpo:checkpoint_removed:{n}" in removed for n in range(3, 13))
    overhead.service_trial(worker, rng)
    assert optuna.load_study(study_name="bench-overhead-test", storage=worker.storage).trials[-1].state.is_finished()


def test_scaling_study_is_valid_and_throughput_counts_the_window(tmp_path):
    path = tmp_path / f"{scaling.STUDY_NAME}.yaml"
    path.write_text(scaling.study_yaml(epochs=2, R=10))
    config = load_study(path)
    assert [p.name for p in config.space.params if p.kind != "fixed"] == ["lr"]
    trials = [{"start": 100.0, "complete": 110.0, "state": "COMPLETE"},
              {"start": 110.0, "complete": 150.0, "state": "COMPLETE"},
              {"start": 150.0, "complete": 170.0, "state": "COMPLETE"},  # after the 60 s window
              {"start": 150.0, "complete": 155.0, "state": "FAIL"}]
    result = scaling.throughput(trials, budget=60)
    assert result["finished"] == 2
    assert result["trials_per_hour"] == pytest.approx(2 / 60 * 3600)
    assert scaling.throughput([], 60)["trials_per_hour"] == 0


def test_scaling_compares_worker_counts_or_workers_per_device():
    assert scaling.settings_of(scaling.parse_args([])) == [("--workers", 1), ("--workers", 2)]
    gpu = scaling.parse_args(["--device", "cuda:0", "--per-device", "1,2,4"])
    assert scaling.settings_of(gpu) == [("--per-device", 1), ("--per-device", 2), ("--per-device", 4)]
    with pytest.raises(SystemExit, match="at least 1"):
        scaling.settings_of(scaling.parse_args(["--per-device", "0"]))


def test_spearman_uses_average_ranks_for_ties():
    assert search.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert search.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Ranks with ties averaged: x -> 1, 2.5, 2.5, 4 and y -> 1, 2, 3, 4: Pearson of the ranks.
    assert search.spearman([0.1, 0.2, 0.2, 0.3], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    assert math.isnan(search.spearman([1, 2], [1, 2]))


def test_asha_rungs_stop_before_the_last_epoch():
    assert search.asha_rungs(1, 3, 4) == [1, 3]
    assert search.asha_rungs(2, 3, 4) == [2]
    assert search.asha_rungs(1, 2, 8) == [1, 2, 4]
    assert search.asha_rungs(4, 3, 4) == []


def test_replay_prunes_below_the_best_third_at_each_rung():
    def history(*accuracies):
        return [{"epoch": e, "val_accuracy": a, "epoch_seconds": 1.0} for e, a in enumerate(accuracies, start=1)]

    trials = [history(0.5, 0.6), history(0.6, 0.7), history(0.4, 0.9), history(0.7, 0.65)]
    # Rung at epoch 1, eta 2: trial 1 alone (kept, t=2), trial 2 is the best of two (kept, t=4),
    # trial 3 is below the best half of three (pruned at t=5), trial 4 is the best of four (kept, t=7).
    assert search.replay_successive_halving(trials, [1], 2) == [(2.0, 0.6), (4.0, 0.7), (7.0, 0.7)]
    # Without rungs every trial runs to the end: the slow starter's 0.9 counts.
    assert search.replay_successive_halving(trials, [], 2)[-1] == (8.0, 0.9)

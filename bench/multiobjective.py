"""Multi-objective search: hypervolume over time for NSGA-II with and without the project's pruning.

Three methods search the quickstart's CPU-sized space (``search_spaces/small.yaml``) for the
trade-off between ``val_accuracy``, ``param_count`` and ``train_seconds`` on MINICIFAR, with the
same wall-clock budget, for several seeds:

- ``nsga2+mo_asha``: NSGA-II with the project's multi-objective successive halving (rungs at
  epochs 1 and 3; a trial continues if it ranks in the best third by Pareto rank, crowding
  distance, then accuracy);
- ``nsga2``: NSGA-II, no pruning;
- ``random``: random search, no pruning.

For each seed the three runs start side by side (each in its own worker process on a fresh SQLite
file, sharing the machine's cores and load alike) with the same sampler seed. Hypervolume is
``hpo.analysis.pareto.hypervolume`` over the COMPLETE trials finished by time t, with the study's
fixed reference (accuracy 0, 1e8 parameters, 600 training seconds; DECISIONS.md), so the numbers of
the three methods, and of other runs, compare directly. The figure shows the median over seeds and
the min-max band; the printed ratios are each method's final median hypervolume over random
search's, and the time each median curve needs to reach random search's final median.

Example (the documented command, about 6 minutes on two cores)::

    python bench/multiobjective.py --data-dir data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hpo.trials import PARAM_COUNT, TRAIN_SECONDS, VAL_ACCURACY

try:
    from bench import _study_utils as utils  # python -m bench.multiobjective, or the tests
except ImportError:
    import _study_utils as utils  # python bench/multiobjective.py

OBJECTIVES = (VAL_ACCURACY, PARAM_COUNT, TRAIN_SECONDS)


def methods(population_size: int) -> dict[str, tuple[dict, dict | str]]:
    """The compared methods: ``{name: (sampler, pruner)}`` as in a study file."""
    nsga2 = {"name": "nsga2", "args": {"population_size": population_size}}
    return {
        "nsga2+mo_asha": (nsga2, {"name": "mo_asha", "args": {"min_resource": 1, "reduction_factor": 3}}),
        "nsga2": (nsga2, "none"),
        "random": ({"name": "random", "args": {}}, "none"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (defaults are the documented benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding the CIFAR-10 images (default $HPO_DATA_DIR or ./data)")
    parser.add_argument("--out-dir", type=Path, default=utils.DEFAULT_OUT_DIR, help="JSON, HTML and PNG go here")
    parser.add_argument("--budget", type=float, default=120.0, help="wall-clock seconds per run")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per method (0, 1, ...)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial (mo_asha rungs at 1 and 3)")
    parser.add_argument("--R", type=int, default=20, help="MINICIFAR: keep 1/R of the images")
    parser.add_argument("--n-classes", type=int, default=4, help="MINICIFAR classes")
    parser.add_argument("--population-size", type=int, default=8,
                        help="NSGA-II population (small, so that a CPU budget sees more than one generation)")
    parser.add_argument("--base", default=utils.BASE_STUDY, help="shipped study whose search space is used")
    parser.add_argument("--device", default="cpu", help="device of every run")
    parser.add_argument("--replot", action="store_true", help="redraw the plots from OUT_DIR/multiobjective.json without running")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per run (three runs share the cores; 1 keeps them from oversubscribing)")
    return parser.parse_args(argv)


def hypervolume_events(trials: list[dict], reference: dict) -> tuple[list[float], list[float]]:
    """The hypervolume of a run's COMPLETE trials after each one finished.

    Args:
        trials: ``trial_records`` of the run, ordered by ``finished_seconds``.
        reference: The study's ``hypervolume_reference``.

    Returns:
        ``(times, hypervolumes)``: one entry per COMPLETE trial, non-decreasing.
    """
    from hpo.analysis.pareto import hypervolume

    points, times, volumes = [], [], []
    for trial in sorted(trials, key=lambda t: t["finished_seconds"]):
        if trial["state"] != "COMPLETE" or not trial["values"]:
            continue
        points.append(trial["values"])
        times.append(trial["finished_seconds"])
        volumes.append(hypervolume(points, list(OBJECTIVES), reference))
    return times, volumes


def summarise(runs: dict[str, list[dict]], budget: float, reference: dict, step: float = 1.0) -> dict:
    """Hypervolume curves, their median and spread, and the ratios against random search.

    Args:
        runs: ``{method: [run, ...]}`` as returned by ``utils.run_side_by_side``; must hold ``random``.
        budget: Wall-clock seconds per run.
        reference: The hypervolume reference.
        step: Grid step, seconds.

    Returns:
        A JSON-ready dict: ``grid``, per method ``curves``/``median``/``low``/``high``,
        ``final_median``, ``ratio_to_random`` and ``time_to_target``; and ``target`` (random
        search's final median hypervolume).
    """
    grid = utils.time_grid(budget, step)
    summary: dict = {"grid": grid, "reference": dict(reference), "methods": {}}
    for method, method_runs in runs.items():
        curves = []
        for run in method_runs:
            times, volumes = hypervolume_events(run["trials"], reference)
            curves.append(utils.step_curve(times, volumes, grid))
        band = utils.median_and_spread(curves)
        summary["methods"][method] = {
            "curves": curves,
            **band,
            "final_median": band["median"][-1],
            "trials": [{state: sum(t["state"] == state for t in run["trials"]) for state in ("COMPLETE", "PRUNED", "FAIL")}
                       for run in method_runs],
        }
    target = summary["methods"]["random"]["final_median"]
    summary["target"] = target
    for figures in summary["methods"].values():
        final = figures["final_median"]
        figures["ratio_to_random"] = final / target if target and target == target and final == final else None
        figures["time_to_target"] = utils.time_to_reach(grid, figures["median"], target) if target == target else None
    return summary


def figure(summary: dict):
    """Hypervolume over time: median line and min-max band per method."""
    import plotly.graph_objects as go

    colours = {"nsga2+mo_asha": "rgb(31,119,180)", "nsga2": "rgb(44,160,44)", "random": "rgb(214,39,40)"}
    labels = {"nsga2+mo_asha": "NSGA-II + multi-objective successive halving", "nsga2": "NSGA-II, no pruning",
              "random": "random search, no pruning"}
    fig = go.Figure()
    grid = summary["grid"]
    for method, figures in summary["methods"].items():
        colour = colours.get(method, "gray")
        band = [(t, lo, hi) for t, lo, hi in zip(grid, figures["low"], figures["high"]) if lo == lo and hi == hi]
        xs, lows, highs = [b[0] for b in band], [b[1] for b in band], [b[2] for b in band]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=highs + lows[::-1], fill="toself",
                                 fillcolor=colour.replace("rgb", "rgba").replace(")", ",0.12)"), line={"width": 0},
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=grid, y=figures["median"], mode="lines", name=labels.get(method, method),
                                 line={"color": colour, "shape": "hv"}))
    reference = summary["reference"]
    fig.update_layout(
        title=("Hypervolume over time (median, min-max over seeds); reference: accuracy 0, "
               f"{reference['params']:.0e} params, {reference['train_seconds']:.0f} s"),
        xaxis_title="wall-clock seconds", yaxis_title="hypervolume (val_accuracy, param_count, train_seconds)",
        template="plotly_white")
    return fig


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print its figures and ratios, write JSON and plots.

    Returns:
        The summary written to ``multiobjective.json``.
    """
    from hpo.analysis.pareto import resolve_reference

    args = parse_args(argv)
    if args.replot:
        summary = json.loads((args.out_dir / "multiobjective.json").read_text())
        utils.write_figure(figure(summary), args.out_dir, "multiobjective")
        return summary
    machine = utils.machine_info()
    print(f"machine: {utils.describe_machine(machine)}")
    compared = methods(args.population_size)
    runs: dict[str, list[dict]] = {m: [] for m in compared}
    reference = None
    work = args.out_dir / "multiobjective-runs"
    for seed in range(args.seeds):
        specs = []
        for method, (sampler, pruner) in compared.items():
            config = utils.study_definition(
                f"bench-mo-{method.replace('+', '-')}-{seed}", sampler=sampler, pruner=pruner, epochs=args.epochs,
                R=args.R, n_classes=args.n_classes, seed=seed, objectives=OBJECTIVES, base=args.base)
            reference = resolve_reference(config.hypervolume_reference)
            specs.append((config, work / f"{method.replace('+', '-')}-{seed}", f"bench-seed-{seed}"))
        results = utils.run_side_by_side(specs, budget=args.budget, data_dir=args.data_dir, threads=args.threads,
                                         device=args.device)
        for method, result in zip(compared, results):
            runs[method].append(result)
            _times, volumes = hypervolume_events(result["trials"], reference)
            counts = {s: sum(t["state"] == s for t in result["trials"]) for s in ("COMPLETE", "PRUNED")}
            print(f"seed {seed} {method:14s}: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
                  f"hypervolume {volumes[-1] if volumes else 0.0:.4f}")
    summary = summarise(runs, args.budget, reference)
    summary.update(machine=machine,
                   command="python bench/multiobjective.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                   settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, runs=runs)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "multiobjective.json").write_text(json.dumps(summary, indent=1))
    utils.write_figure(figure(summary), args.out_dir, "multiobjective")
    for method, figures in summary["methods"].items():
        ratio = figures["ratio_to_random"]
        print(f"{method:14s}: final median hypervolume {figures['final_median']:.4f}; over random "
              f"{'n/a' if ratio is None else f'{ratio:.2f}'}; reaches random's final median at "
              f"{utils.fmt_seconds(figures['time_to_target'])}")
    return summary


if __name__ == "__main__":
    main()

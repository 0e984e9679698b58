"""Search efficiency: the service's default (TPE + successive halving) against random search.

Both methods search the quickstart's CPU-sized space (``search_spaces/small.yaml``, via
``studies/cpu-quick.yaml``) over MINICIFAR with the same wall-clock budget, for several seeds.
Every run is a real study: ``hpo.workers.run_worker`` in its own process on a fresh SQLite file.
For each seed the two methods run side by side (one core each on a two-core machine), so they
share the machine's load; both get the same sampler seed, so TPE's random start-up trials are the
very configurations random search tries first (a paired comparison: the difference is what
pruning and TPE's model add).

- ``default``: the sampler and pruner of ``cpu-quick`` (TPE, multivariate; ASHA, rungs at epochs 1
  and 3, the best third continue).
- ``random``: ``RandomSampler``, no pruning: every trial trains all its epochs.

The best validation accuracy of a run at time t is the best ``val_accuracy`` of its COMPLETE
trials finished by t (pruned trials are not candidates: the service's best trial is a complete
one). The figure shows the median over seeds and the min-max band. The target is the final value
of random search's median curve; the ratio printed is the time the default's median curve needs to
reach it over the time random search's median curve needs (the issue asks for <= 0.5).

Example (the documented command, about 16 minutes on two cores)::

    python bench/search.py --data-dir data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:
    from bench import _study_utils as utils  # python -m bench.search, or the tests
except ImportError:
    import _study_utils as utils  # python bench/search.py

METHODS = {
    # name: (sampler, pruner); None takes the base study's own.
    "default": (None, None),
    "random": ({"name": "random", "args": {}}, "none"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (defaults are the documented benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding the CIFAR-10 images (default $HPO_DATA_DIR or ./data)")
    parser.add_argument("--out-dir", type=Path, default=utils.DEFAULT_OUT_DIR, help="JSON, HTML and PNG go here")
    parser.add_argument("--budget", type=float, default=300.0, help="wall-clock seconds per run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method (0, 1, ...)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial (ASHA rungs at 1 and 3)")
    parser.add_argument("--R", type=int, default=20, help="MINICIFAR: keep 1/R of the images (20: 800 train / 200 val)")
    parser.add_argument("--n-classes", type=int, default=4, help="MINICIFAR classes")
    parser.add_argument("--base", default=utils.BASE_STUDY, help="shipped study whose space, sampler and pruner are the default")
    parser.add_argument("--device", default="cpu", help="device of every run")
    parser.add_argument("--replot", action="store_true", help="redraw the plots from OUT_DIR/search.json without running")
    parser.add_argument("--analyse", action="store_true",
                        help="only redo the short-horizon analysis from the runs kept in OUT_DIR/search-runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores / 2)")
    return parser.parse_args(argv)


def method_definition(method: str, seed: int, args: argparse.Namespace):
    """The study definition of one method and seed."""
    from hpo.config import load_study

    base = load_study(args.base)
    sampler, pruner = METHODS[method]
    return utils.study_definition(
        f"bench-search-{method}-{seed}",
        sampler=sampler or {"name": base.sampler.name, "args": dict(base.sampler.args)},
        pruner=pruner or {"name": base.pruner.name, "args": dict(base.pruner.args)},
        epochs=args.epochs, R=args.R, n_classes=args.n_classes, seed=seed, base=args.base,
    )


def best_accuracy_events(trials: list[dict]) -> list[tuple[float, float]]:
    """``(finished_seconds, val_accuracy)`` of a run's COMPLETE trials."""
    return [(t["finished_seconds"], t["values"][0]) for t in trials if t["state"] == "COMPLETE" and t["values"]]


def summarise(runs: dict[str, list[dict]], budget: float, step: float = 1.0) -> dict:
    """Curves, their median and spread, and the time each method needs to reach random's final best.

    Args:
        runs: ``{method: [run, ...]}``, each run as returned by ``utils.run_side_by_side``.
        budget: Wall-clock seconds per run.
        step: Grid step of the curves, seconds.

    Returns:
        A JSON-ready dict: ``grid``, per method ``curves``/``median``/``low``/``high``,
        ``final_best`` per seed, trial counts, ``target``, ``time_to_target`` per method (median
        curve, and per seed) and ``ratio`` (default over random, None when either never reaches it).
    """
    grid = utils.time_grid(budget, step)
    summary: dict = {"grid": grid, "methods": {}}
    for method, method_runs in runs.items():
        curves = [utils.best_so_far(best_accuracy_events(run["trials"]), grid) for run in method_runs]
        band = utils.median_and_spread(curves)
        summary["methods"][method] = {
            "curves": curves,
            **band,
            "final_best": [c[-1] for c in curves],
            "trials": [{state: sum(t["state"] == state for t in run["trials"]) for state in ("COMPLETE", "PRUNED", "FAIL")}
                       for run in method_runs],
        }
    target = summary["methods"]["random"]["median"][-1]
    summary["target"] = target
    for method, figures in summary["methods"].items():
        figures["time_to_target"] = utils.time_to_reach(grid, figures["median"], target)
        figures["time_to_target_per_seed"] = [utils.time_to_reach(grid, c, target) for c in figures["curves"]]
    t_default = summary["methods"]["default"]["time_to_target"]
    t_random = summary["methods"]["random"]["time_to_target"]
    summary["ratio"] = t_default / t_random if t_default is not None and t_random else None
    return summary


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (ties get their average rank); NaN below three pairs."""
    import numpy as np

    def ranks(values):
        values = np.asarray(values, dtype=float)
        order = np.argsort(values, kind="stable")
        rank = np.empty(len(values))
        rank[order] = np.arange(len(values), dtype=float)
        _, inverse = np.unique(values, return_inverse=True)
        sums = np.bincount(inverse, weights=rank)
        return sums[inverse] / np.bincount(inverse)[inverse]

    if len(xs) < 3:
        return float("nan")
    rx, ry = ranks(xs), ranks(ys)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def asha_rungs(min_resource: int, reduction_factor: int, epochs: int) -> list[int]:
    """The epochs at which successive halving decides: min_resource x factor^k, before the last epoch."""
    rungs, rung = [], max(1, int(min_resource))
    while rung < epochs:
        rungs.append(rung)
        rung *= max(2, int(reduction_factor))
    return rungs


def replay_successive_halving(histories: list[list[dict]], rungs: list[int], reduction_factor: int,
                              start_seconds: float = 0.0) -> list[tuple[float, float]]:
    """Replay one worker's trials, in their order, through asynchronous successive halving.

    Each trial costs its recorded ``epoch_seconds`` up to the epoch where it stops: at a rung it
    continues if its accuracy there is within the best ``1/reduction_factor`` of the trials that
    reached the rung so far (itself included), as Optuna's ASHA decides.

    Args:
        histories: Per trial, the per-epoch records (``val_accuracy``, ``epoch_seconds``), all epochs.
        rungs: Epochs at which to decide.
        reduction_factor: ASHA's eta.
        start_seconds: Per-trial cost outside training (sampling, storage).

    Returns:
        ``(seconds, best final val_accuracy so far)`` after each trial that ran all its epochs.
    """
    seen: dict[int, list[float]] = {}
    clock, best, curve = 0.0, float("-inf"), []
    for history in histories:
        clock += start_seconds
        stopped = False
        for record in history:
            clock += record["epoch_seconds"]
            epoch = record["epoch"]
            if epoch in rungs:
                values = seen.setdefault(epoch, [])
                values.append(record["val_accuracy"])
                keep = max(1, len(values) // reduction_factor)
                if record["val_accuracy"] < sorted(values, reverse=True)[keep - 1]:
                    stopped = True
                    break
        if not stopped:
            best = max(best, history[-1]["val_accuracy"])
            curve.append((clock, best))
    return curve


def full_histories(study_db: Path, epochs: int) -> list[list[dict]]:
    """The per-epoch histories of a run's trials that ran every epoch, in trial order."""
    import optuna

    from hpo.storage import open_storage
    from hpo.trials import TrialRecord

    storage = open_storage(f"sqlite:///{study_db.resolve()}")
    name = optuna.get_all_study_summaries(storage)[0].study_name
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    histories = [TrialRecord.of(t).epochs for t in sorted(trials, key=lambda t: t.number)]
    return [history for history in histories if len(history) == epochs]


def short_horizon(work: Path, seeds: int, epochs: int, target: float, base_pruner: dict) -> dict:
    """How well early epochs predict the last one, from the random runs (no pruning, every epoch run).

    For each seed: Spearman correlation of each epoch's accuracy with the last epoch's, and the
    time at which random search's own trials, replayed through successive halving with the
    default's rungs and with a single rung at epoch 2, first reach ``target``.
    """
    args = base_pruner.get("args", {})
    eta = int(args.get("reduction_factor", 3))
    rules = {"default rungs": asha_rungs(int(args.get("min_resource", 1)), eta, epochs),
             "rung at epoch 2": asha_rungs(2, eta, epochs), "no pruning": []}
    result: dict = {"target": target, "rules": rules, "seeds": []}
    for seed in range(seeds):
        db = work / f"random-{seed}" / "study.db"
        if not db.exists():
            continue
        histories = full_histories(db, epochs)
        finals = [h[-1]["val_accuracy"] for h in histories]
        entry = {"seed": seed, "trials": len(histories),
                 "spearman": {e: spearman([h[e - 1]["val_accuracy"] for h in histories], finals)
                              for e in range(1, epochs)},
                 "reach": {}}
        for name, rungs in rules.items():
            curve = replay_successive_halving(histories, rungs, eta)
            entry["reach"][name] = next((t for t, best in curve if best >= target), None)
        result["seeds"].append(entry)
    return result


def figure(summary: dict):
    """Best validation accuracy over time: median line and min-max band per method."""
    import plotly.graph_objects as go

    colours = {"default": "rgb(31,119,180)", "random": "rgb(214,39,40)"}
    labels = {"default": "TPE + successive halving (default)", "random": "random search, no pruning"}
    fig = go.Figure()
    grid = summary["grid"]
    for method, figures in summary["methods"].items():
        colour = colours.get(method, "gray")
        band = [(t, lo, hi) for t, lo, hi in zip(grid, figures["low"], figures["high"]) if lo == lo and hi == hi]
        xs, lows, highs = [b[0] for b in band], [b[1] for b in band], [b[2] for b in band]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=highs + lows[::-1], fill="toself",
                                 fillcolor=colour.replace("rgb", "rgba").replace(")", ",0.15)"), line={"width": 0},
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=grid, y=figures["median"], mode="lines", name=labels.get(method, method),
                                 line={"color": colour, "shape": "hv"}))
    if summary["target"] == summary["target"]:  # not NaN
        fig.add_hline(y=summary["target"], line_dash="dot", annotation_text="random's final best (median)")
    fig.update_layout(title="Search efficiency: best validation accuracy over time (median, min-max over seeds)",
                      xaxis_title="wall-clock seconds", yaxis_title="best val_accuracy (complete trials)",
                      template="plotly_white")
    return fig


def _base_pruner(args: argparse.Namespace) -> dict:
    from hpo.config import load_study

    base = load_study(args.base)
    return {"name": base.pruner.name, "args": dict(base.pruner.args)}


def print_short_horizon(analysis: dict) -> None:
    """One line per seed: early/late rank correlations and the replayed times to the target."""
    for entry in analysis["seeds"]:
        correlations = ", ".join(f"epoch {e}: {v:.2f}" for e, v in entry["spearman"].items())
        reach = ", ".join(f"{name} {utils.fmt_seconds(t)}" for name, t in entry["reach"].items())
        print(f"seed {entry['seed']} random run, {entry['trials']} trials: Spearman with the last epoch ({correlations}); "
              f"replayed through successive halving, reaches {analysis['target']:.3f} with: {reach}")


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print its figures and ratio, write JSON and plots.

    Returns:
        The summary written to ``search.json``.
    """
    args = parse_args(argv)
    work = args.out_dir / "search-runs"
    if args.replot or args.analyse:
        summary = json.loads((args.out_dir / "search.json").read_text())
        if args.analyse:
            summary["short_horizon"] = short_horizon(work, args.seeds, args.epochs, summary["target"],
                                                     _base_pruner(args))
            (args.out_dir / "search.json").write_text(json.dumps(summary, indent=1))
            print_short_horizon(summary["short_horizon"])
        utils.write_figure(figure(summary), args.out_dir, "search")
        return summary
    machine = utils.machine_info()
    print(f"machine: {utils.describe_machine(machine)}")
    threads = args.threads or utils.threads_per_job(len(METHODS))
    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
    for seed in range(args.seeds):
        specs = [(method_definition(m, seed, args), work / f"{m}-{seed}", f"bench-seed-{seed}") for m in METHODS]
        results = utils.run_side_by_side(specs, budget=args.budget, data_dir=args.data_dir, threads=threads,
                                         device=args.device)
        for method, result in zip(METHODS, results):
            runs[method].append(result)
            counts = {s: sum(t["state"] == s for t in result["trials"]) for s in ("COMPLETE", "PRUNED")}
            best = max((v for _, v in best_accuracy_events(result["trials"])), default=float("nan"))
            print(f"seed {seed} {method:8s}: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, best {best:.3f}")
    summary = summarise(runs, args.budget)
    summary.update(machine=machine, command="python bench/search.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                   settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   threads_per_run=threads, runs=runs)
    summary["short_horizon"] = short_horizon(work, args.seeds, args.epochs, summary["target"], _base_pruner(args))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "search.json").write_text(json.dumps(summary, indent=1))
    utils.write_figure(figure(summary), args.out_dir, "search")
    print_short_horizon(summary["short_horizon"])
    for method, figures in summary["methods"].items():
        finals = ", ".join(f"{v:.3f}" for v in figures["final_best"])
        print(f"{method:8s}: final best per seed {finals}; median curve reaches {summary['target']:.3f} at "
              f"{utils.fmt_seconds(figures['time_to_target'])}")
    ratio = summary["ratio"]
    verdict = "n/a" if ratio is None else ("met" if ratio <= 0.5 else "missed")
    print(f"time to random's final best, default / random: {'n/a' if ratio is None else f'{ratio:.2f}'} "
          f"(target <= 0.50: {verdict})")
    return summary


if __name__ == "__main__":
    main()

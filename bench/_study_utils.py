"""Shared pieces of the study-level benchmarks (search, multiobjective, overhead, scaling).

These benchmarks run whole studies through the service's own code path: ``hpo.study.create_or_load``
stores the definition, ``hpo.workers.run_worker`` asks, trains and tells (sampler, pruner, storage,
heartbeats, user attributes). Each run gets a fresh SQLite file, so runs never see each other's
trials. Runs that are compared are started side by side (one process each, the cores split
between them), so a load change on the shared machine hits both alike.

The pure functions here (curves, medians, time to a target) take plain lists, so the tests check
them against hand-computed values without running a study.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "out"
BASE_STUDY = "cpu-small"  # the search space and trainer settings the benchmarks start from (the pre-0.2 Quickstart)


# ----------------------------------------------------------------------------------------------
# Study definitions and runs


def study_definition(
    name: str,
    *,
    sampler: Mapping[str, Any],
    pruner: Mapping[str, Any] | str,
    epochs: int,
    R: int,
    n_classes: int = 4,
    seed: int = 0,
    objectives: Sequence[str] = ("val_accuracy",),
    n_trials: int = 10_000,
    base: str = BASE_STUDY,
):
    """A study definition derived from a shipped study, for one benchmark run.

    The shipped study's search space, trainer settings and constraints are kept. Its ``enqueue``
    list is dropped: a hand-picked first trial would hand every method the same head start and hide
    the difference the benchmark measures.

    Args:
        name: Study name (unique per run).
        sampler: ``{"name": ..., "args": {...}}`` as in a study file.
        pruner: ``{"name": ..., "args": {...}}`` or a pruner name.
        epochs: Epochs per trial.
        R: MINICIFAR reduction factor (keeps 1/R of the images).
        n_classes: MINICIFAR classes.
        seed: Study seed: training initialisation, data order, split, and the sampler's seed.
        objectives: Objective names, ``val_accuracy`` first.
        n_trials: Study budget; large, since the benchmarks stop on wall-clock time.
        base: Shipped study name whose space and settings are used.

    Returns:
        A validated ``hpo.config.StudyConfig``.
    """
    from hpo.config import StudyConfig, load_study

    definition = load_study(base).to_dict()
    definition.update(
        name=name,
        description=f"benchmark run derived from {base}",
        sampler=dict(sampler),
        pruner=pruner if isinstance(pruner, str) else dict(pruner),
        epochs=int(epochs),
        n_trials=int(n_trials),
        seed=int(seed),
        objectives=list(objectives),
        enqueue=[],
    )
    definition["dataset"] = {**definition["dataset"], "R": int(R), "n_classes": int(n_classes)}
    return StudyConfig.from_dict(definition, origin=f"benchmark study {name}")


def _study_child(definition: dict, work_dir: str, data_dir: str | None, threads: int | None, budget: float,
                 worker_id: str, device: str) -> None:
    # One run, in its own process: create the study in a fresh SQLite file, note the start time,
    # then run the service's worker until the parent stops it at the deadline.
    import json
    import warnings

    import optuna

    from hpo.config import StudyConfig
    from hpo.data import load_dataset
    from hpo.storage import open_storage
    from hpo.study import create_or_load
    from hpo.workers import WorkerOptions, run_worker

    warnings.filterwarnings("ignore", message=r".*experimental.*")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = StudyConfig.from_dict(definition, origin=f"benchmark study {definition['name']}")
    url = f"sqlite:///{Path(work_dir) / 'study.db'}"
    dataset = load_dataset(config.dataset, data_dir, split_seed=config.seed)
    create_or_load(config, open_storage(url), n_trials=config.n_trials, dataset_fingerprint=dataset.fingerprint)
    options = WorkerOptions(study_name=config.name, storage_url=url, device=device, worker_id=worker_id,
                            data_dir=data_dir, artifacts=str(Path(work_dir) / "artifacts"), threads=threads,
                            timeout=budget)
    (Path(work_dir) / "started.json").write_text(json.dumps({"started": time.time()}))
    try:
        run_worker(options)
    except KeyboardInterrupt:  # the parent's SIGTERM at the deadline: the running trial is recorded
        pass


def run_side_by_side(
    runs: Sequence[tuple[Any, Path, str]],
    *,
    budget: float,
    data_dir: str | None,
    threads: int | None,
    device: str = "cpu",
    startup_limit: float = 300.0,
) -> list[dict]:
    """Run several studies at the same time, one worker process each, for ``budget`` seconds each.

    Each run's clock starts when its worker is ready (imports and data loaded); at ``budget``
    seconds the process gets SIGTERM, which the worker records as an interrupted trial, so every
    run gets exactly the same wall-clock budget whatever its last trial was doing. Runs that are
    compared start together, so a load change on the shared machine hits them alike.

    Args:
        runs: ``(study_config, work_dir, worker_id)`` per run. Runs given the same ``worker_id``
            get the same sampler seed (``hpo.samplers.worker_seed``): with a shared seed, TPE's
            random start-up and the random sampler propose the same first configurations, a
            paired comparison.
        budget: Wall-clock seconds per run.
        data_dir: ``--data-dir``.
        threads: Torch threads per run.
        device: Device of every run.
        startup_limit: Seconds a run may take to get ready before it is abandoned.

    Returns:
        Per run, in order: ``{"name", "started", "budget", "trials": trial_records(...)}`` (trials
        finished after the budget are left out).

    Raises:
        RuntimeError: a run failed to start (its exit code is given).
    """
    import json

    import optuna

    from hpo.data import load_dataset
    from hpo.storage import open_storage

    context = multiprocessing.get_context("spawn")
    processes = []
    for config, work_dir, worker_id in runs:
        load_dataset(config.dataset, data_dir, split_seed=config.seed)  # decode cache built once, not raced
        if work_dir.exists():
            shutil.rmtree(work_dir)
        work_dir.mkdir(parents=True)
        process = context.Process(
            target=_study_child,
            args=(config.to_dict(), str(work_dir), data_dir, threads, budget, worker_id, device),
            daemon=False,
        )
        process.start()
        processes.append(process)
    starts: list[float | None] = [None] * len(runs)
    stopped: list[float | None] = [None] * len(runs)
    waited = time.time()
    while True:
        now = time.time()
        for i, (_config, work_dir, _worker) in enumerate(runs):
            marker = work_dir / "started.json"
            if starts[i] is None and marker.exists():
                starts[i] = json.loads(marker.read_text())["started"]
            if starts[i] is None and not processes[i].is_alive():
                raise RuntimeError(f"benchmark run {runs[i][0].name} exited with code {processes[i].exitcode} "
                                   "before it started")
            if starts[i] is None and now - waited > startup_limit:
                processes[i].kill()
                raise RuntimeError(f"benchmark run {runs[i][0].name} did not start within {startup_limit:.0f} s")
            if starts[i] is not None and processes[i].is_alive() and now >= starts[i] + budget:
                if stopped[i] is None:
                    stopped[i] = now
                    processes[i].terminate()  # SIGTERM: the worker records its running trial as interrupted
                elif now - stopped[i] > 10:
                    # A SIGTERM that lands in a library callback can be swallowed ("Exception
                    # ignored"); the run's trials after the budget do not count anyway.
                    processes[i].kill()
        if all(s is not None for s in starts) and not any(p.is_alive() for p in processes):
            break
        time.sleep(0.2)
    for process in processes:
        process.join()
    results = []
    for (config, work_dir, _worker), started in zip(runs, starts):
        storage = open_storage(f"sqlite:///{work_dir / 'study.db'}")
        study = optuna.load_study(study_name=config.name, storage=storage)
        trials = [t for t in trial_records(study, started) if t["finished_seconds"] <= budget]
        results.append({"name": config.name, "started": started, "budget": budget, "trials": trials})
    return results


def trial_records(study, started: float) -> list[dict]:
    """Every finished trial of a study as a JSON-ready record, ordered by completion time.

    Args:
        study: An Optuna study.
        started: Unix time the run started; ``finished_seconds`` counts from it.

    Returns:
        Dicts with ``number``, ``state``, ``finished_seconds``, ``values`` (None unless COMPLETE),
        ``epochs_run``, ``param_count``, ``train_seconds``, ``val_accuracy`` (the last epoch's) and
        ``stop_reason``.
    """
    from optuna.trial import TrialState

    records = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) or trial.datetime_complete is None:
            continue
        attrs = trial.user_attrs
        records.append({
            "number": trial.number,
            "state": trial.state.name,
            "finished_seconds": trial.datetime_complete.timestamp() - started,
            "values": list(trial.values) if trial.state == TrialState.COMPLETE and trial.values else None,
            "epochs_run": attrs.get("epochs_run"),
            "param_count": attrs.get("param_count"),
            "train_seconds": attrs.get("train_seconds"),
            "val_accuracy": attrs.get("val_accuracy"),
            "stop_reason": attrs.get("stop_reason"),
        })
    records.sort(key=lambda r: r["finished_seconds"])
    return records


def threads_per_job(processes: int) -> int:
    """The cores of this machine split evenly between ``processes`` concurrent runs (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, processes))


# ----------------------------------------------------------------------------------------------
# Curves over time (pure)


def best_so_far(events: Sequence[tuple[float, float]], grid: Sequence[float]) -> list[float]:
    """The best value reached by each time of ``grid`` (NaN before the first event).

    Args:
        events: ``(seconds, value)`` pairs, in any order.
        grid: Times at which to read the curve.

    Returns:
        One value per grid time: the maximum of the values of events at or before it.
    """
    ordered = sorted(events)
    curve, best, i = [], -math.inf, 0
    for t in grid:
        while i < len(ordered) and ordered[i][0] <= t:
            best = max(best, ordered[i][1])
            i += 1
        curve.append(best if best > -math.inf else math.nan)
    return curve


def step_curve(times: Sequence[float], values: Sequence[float], grid: Sequence[float]) -> list[float]:
    """Read a step function known at ``times`` (ascending) on ``grid``: the last value at or before.

    Args:
        times: Ascending times where the value changes.
        values: The value from each time on.
        grid: Times at which to read it.

    Returns:
        One value per grid time; NaN before ``times[0]``.
    """
    out, i, current = [], 0, math.nan
    for t in grid:
        while i < len(times) and times[i] <= t:
            current = values[i]
            i += 1
        out.append(current)
    return out


def median_and_spread(curves: Sequence[Sequence[float]]) -> dict[str, list[float]]:
    """Point-wise median, minimum and maximum of several curves on one grid.

    A run with no value yet (NaN) counts as the worst value at that time, so the median is NaN
    until more than half the runs have a value.

    Args:
        curves: Equal-length curves, one per seed.

    Returns:
        ``{"median": [...], "low": [...], "high": [...]}``.
    """
    array = np.asarray(curves, dtype=float)
    worst = np.where(np.isnan(array), -np.inf, array)
    median = np.median(worst, axis=0)
    low = np.min(worst, axis=0)
    high = np.max(np.where(np.isnan(array), -np.inf, array), axis=0)

    def clean(values) -> list[float]:
        return [float(v) if np.isfinite(v) else math.nan for v in values]

    return {"median": clean(median), "low": clean(low), "high": clean(high)}


def time_to_reach(grid: Sequence[float], curve: Sequence[float], target: float) -> float | None:
    """The first grid time at which a non-decreasing curve reaches ``target``.

    Args:
        grid: Ascending times.
        curve: The curve's value at each time (NaN: no value yet).
        target: The value to reach.

    Returns:
        The time, or None if the curve never reaches it.
    """
    for t, value in zip(grid, curve):
        if not math.isnan(value) and value >= target - 1e-12:
            return float(t)
    return None


def time_grid(budget: float, step: float = 1.0) -> list[float]:
    """``0, step, 2 step, ..., budget``."""
    n = int(math.floor(budget / step + 1e-9))
    return [round(i * step, 6) for i in range(n + 1)]


# ----------------------------------------------------------------------------------------------
# Output


def machine_info() -> dict:
    """What the figures were measured on: the trainer benchmark's record, plus the Optuna version.

    Returns:
        A JSON-ready dict.
    """
    import optuna
    import torch

    try:
        from bench import common
    except ImportError:  # python bench/<script>.py puts bench/ itself on sys.path
        import common

    return {**common.machine_info(torch.device("cpu")), "optuna": optuna.__version__}


def describe_machine(info: Mapping[str, Any]) -> str:
    """One line describing ``machine_info()`` for the top of a benchmark's output."""
    load = "/".join(f"{x:.2f}" for x in info["load_average"]) if info.get("load_average") else "n/a"
    return (f"{info['cpu']}; {info['cpu_cores']} cores; {info['memory_gib']} GiB RAM; torch {info['torch']}; "
            f"optuna {info['optuna']}; load average {load}; {info['date']}")


def write_figure(figure, out_dir: Path, stem: str) -> list[Path]:
    """Write a Plotly figure as ``stem.html``, and as ``stem.png`` when a Chromium for kaleido exists.

    Args:
        figure: A ``plotly.graph_objects.Figure``.
        out_dir: Output folder (created).
        stem: File name without extension.

    Returns:
        The files written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"{stem}.html"
    figure.write_html(html, include_plotlyjs="cdn")
    written = [html]
    if not os.environ.get("BROWSER_PATH") and Path("/usr/bin/chromium").exists():
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"
    if os.environ.get("BROWSER_PATH"):
        try:
            png = out_dir / f"{stem}.png"
            figure.write_image(png, width=900, height=520, scale=1)
            written.append(png)
        except Exception as exc:  # a missing or broken browser costs the PNG, not the benchmark
            print(f"note: no PNG for {stem} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
    return written


def fmt_seconds(value: float | None) -> str:
    """``12.3 s``, or ``not reached``."""
    return "not reached" if value is None else f"{value:.1f} s"

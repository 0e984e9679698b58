"""Worker scaling: trials finished per hour with 1 and 2 CPU workers, through ``hpo run``.

The same small study runs twice through the real command line, ``hpo run --workers 1`` and
``hpo run --workers 2`` (process start-up, data loading, SQLite locking and the heartbeats
included), each on a fresh SQLite file for ``--budget`` seconds (``--timeout``). The workers divide
the cores between them (``plan_slots``: 2 threads for one worker, 1 each for two on a two-core
machine).

The study has a fixed model (the practice's CNN, channels 16/32), a fixed trainer recipe and only
the learning rate searched (random sampler, no pruning), so every trial costs about the same and
the count measures the service, not the luck of which architectures were drawn. Throughput is the
number of COMPLETE trials finished within ``budget`` seconds of the first trial's start, per hour;
the ratio printed is 2 workers over 1.

On a GPU, ``--device cuda:0 --per-device 1,2,4`` runs ``hpo run --devices cuda:0 --per-device K``
instead: K workers share the one GPU (bf16 and channels-last on by the trainer's ``auto``
settings), and the figure is how many of these small-model trials one GPU finishes per hour at
each K; the ratios printed are against the first K.

Examples (the documented commands; the CPU one takes about 6 minutes)::

    python bench/scaling.py --data-dir data/cifar10-jpeg
    python bench/scaling.py --data-dir data/cifar10-jpeg --device cuda:0 --per-device 1,2,4 --R 1 --epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    from bench import _study_utils as utils  # python -m bench.scaling, or the tests
except ImportError:
    import _study_utils as utils  # python bench/scaling.py

STUDY_NAME = "bench-scaling"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (defaults are the documented benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding the CIFAR-10 images (default $HPO_DATA_DIR or ./data)")
    parser.add_argument("--out-dir", type=Path, default=utils.DEFAULT_OUT_DIR, help="JSON, HTML and PNG go here")
    parser.add_argument("--budget", type=float, default=150.0, help="wall-clock seconds per run (hpo run --timeout)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (hpo run --workers N)")
    parser.add_argument("--device", default="cpu", help="device of every worker (cpu, cuda:0, ...)")
    parser.add_argument("--per-device", default=None,
                        help="workers per device to compare instead of --workers, e.g. 1,2,4 on a GPU")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial")
    parser.add_argument("--R", type=int, default=10, help="MINICIFAR: keep 1/R of the images (10: 1,600 train / 400 val)")
    return parser.parse_args(argv)


def study_yaml(epochs: int, R: int) -> str:
    """The scaling study: fixed CNN and recipe, learning rate searched, random sampler, no pruning."""
    return f"""\
name: {STUDY_NAME}
description: "worker scaling benchmark: fixed small CNN, only lr searched"
dataset: {{kind: minicifar, n_classes: 4, R: {R}, train_size: 0.8}}
space:
  params:
    model: cnn
    cnn.channels: [16, 32]
    cnn.downsample: stride
    cnn.batch_norm: true
    lr: {{type: float, low: 0.01, high: 0.2, log: true}}
    optimizer: sgd
    momentum: 0.9
    weight_decay: 5.0e-4
    schedule: cosine
    augment: flip
    batch_size: 64
objectives: [val_accuracy]
sampler: random
pruner: none
epochs: {epochs}
n_trials: 100000
seed: 0
"""


def throughput(trials: list[dict], budget: float) -> dict:
    """Trials finished within ``budget`` seconds of the first trial's start, and per hour.

    Args:
        trials: ``{"start": unix, "complete": unix, "state": name}`` per trial.
        budget: The measured window, seconds.

    Returns:
        ``{"finished", "trials_per_hour", "window_start"}``.
    """
    starts = [t["start"] for t in trials if t["start"] is not None]
    if not starts:
        return {"finished": 0, "trials_per_hour": 0.0, "window_start": None}
    t0 = min(starts)
    finished = sum(1 for t in trials if t["state"] == "COMPLETE" and t["complete"] is not None
                   and t["complete"] - t0 <= budget)
    return {"finished": finished, "trials_per_hour": finished / budget * 3600.0, "window_start": t0}


def settings_of(args: argparse.Namespace) -> list[tuple[str, int]]:
    """The runs to compare: ``("--workers", N)`` or, with ``--per-device``, ``("--per-device", K)``."""
    flag, values = ("--per-device", args.per_device) if args.per_device else ("--workers", args.workers)
    counts = [int(v) for v in str(values).split(",") if v.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit(f"{flag}: give worker counts of at least 1, e.g. 1,2,4 (got {values!r})")
    return [(flag, n) for n in counts]


def run_workers(workers: int, args: argparse.Namespace, study_file: Path, flag: str = "--workers") -> dict:
    """``hpo run --workers N`` (or ``--per-device N``) on a fresh SQLite file for the budget; its trials' times."""
    import optuna

    from hpo.storage import open_storage

    run_dir = args.out_dir / "scaling-runs" / f"{flag.strip('-')}-{workers}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    url = f"sqlite:///{(run_dir / 'study.db').resolve()}"
    command = [sys.executable, "-m", "hpo", "run", "--study", str(study_file), flag, str(workers),
               "--devices", args.device, "--timeout", str(args.budget), "--storage", url,
               "--log-dir", str(run_dir / "logs"), "--artifacts", str(run_dir / "artifacts")]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # --timeout stops new trials; the running ones finish unless interrupted: give them a minute.
        output, _ = process.communicate(timeout=args.budget + 240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate()
    wall = time.time() - started
    study = optuna.load_study(study_name=STUDY_NAME, storage=open_storage(url))
    trials = [{"number": t.number, "state": t.state.name,
               "start": t.datetime_start.timestamp() if t.datetime_start else None,
               "complete": t.datetime_complete.timestamp() if t.datetime_complete else None}
              for t in study.get_trials(deepcopy=False)]
    result = {"workers": workers, "setting": f"{flag} {workers}", "device": args.device, "command_seconds": wall, "exit_code": process.returncode,
              "output_tail": output.decode(errors="replace")[-2000:], "trials": trials,
              **throughput(trials, args.budget)}
    if result["window_start"] is not None:
        result["startup_seconds"] = result["window_start"] - started
    return result


def figure(summary: dict):
    """Trials finished per hour by worker count."""
    import plotly.graph_objects as go

    runs = summary["runs"]
    fig = go.Figure(go.Bar(x=[r.get("setting", str(r["workers"])) for r in runs], y=[r["trials_per_hour"] for r in runs],
                           text=[f"{r['trials_per_hour']:.0f}/h" for r in runs], textposition="outside"))
    where = (f"{summary['machine']['cpu_cores']} CPU cores" if summary["settings"]["device"] == "cpu"
             else summary["settings"]["device"])
    fig.update_layout(title=f"Worker scaling on {where} (hpo run)", xaxis_title="workers",
                      yaxis_title="trials finished per hour", template="plotly_white")
    return fig


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print trials per hour and the 2-over-1 ratio, write JSON and plots.

    Returns:
        The summary written to ``scaling.json``.
    """
    args = parse_args(argv)
    machine = utils.machine_info()
    print(f"machine: {utils.describe_machine(machine)}")
    study_dir = args.out_dir / "scaling-runs"
    study_dir.mkdir(parents=True, exist_ok=True)
    study_file = study_dir / f"{STUDY_NAME}.yaml"
    study_file.write_text(study_yaml(args.epochs, args.R))
    runs = []
    for flag, workers in settings_of(args):
        result = run_workers(workers, args, study_file, flag)
        runs.append(result)
        print(f"{flag} {workers} on {args.device}: {result['finished']} trials in {args.budget:.0f} s = "
              f"{result['trials_per_hour']:.0f} trials/hour (start-up {result.get('startup_seconds', float('nan')):.1f} s, "
              f"exit code {result['exit_code']})", flush=True)
    summary = {"machine": machine, "runs": runs,
               "command": "python bench/scaling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    base = runs[0]["trials_per_hour"]
    for run in runs[1:]:
        run["speedup"] = run["trials_per_hour"] / base if base else None
        speedup = "n/a" if run["speedup"] is None else f"{run['speedup']:.2f}"
        print(f"throughput, {run['setting']} / {runs[0]['setting']}: {speedup}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "scaling.json").write_text(json.dumps(summary, indent=1))
    utils.write_figure(figure(summary), args.out_dir, "scaling")
    return summary


if __name__ == "__main__":
    main()

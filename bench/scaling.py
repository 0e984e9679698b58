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

``--per-device`` also takes ``auto`` (memory-aware packing, ``hpo run --per-device auto``), and
``--study NAME`` runs a shipped study (e.g. ``densenet-mini``, pruning and all) instead of the
fixed CNN; a trial then counts once it is finished (COMPLETE or PRUNED). On a CUDA device the run
also samples ``nvidia-smi`` once a second: GPU utilisation (mean, max) and memory used (max).

Examples (the documented commands; the CPU one takes about 6 minutes)::

    python bench/scaling.py --data-dir data/cifar10-jpeg
    python bench/scaling.py --data-dir data/cifar10-jpeg --device cuda:0 --per-device 1,2,4 --R 1 --epochs 5
    python bench/scaling.py --data-dir data/cifar10-jpeg --device cuda:0 --per-device 1,2,4,8,auto --study densenet-mini --budget 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
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
    parser.add_argument("--study", default=None, help="a shipped study (e.g. densenet-mini) instead of the fixed CNN study")
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
    finished = sum(1 for t in trials if t["state"] in ("COMPLETE", "PRUNED") and t["complete"] is not None
                   and t["complete"] - t0 <= budget)
    return {"finished": finished, "trials_per_hour": finished / budget * 3600.0, "window_start": t0}


def settings_of(args: argparse.Namespace) -> list[tuple[str, int | str]]:
    """The runs to compare: ``("--workers", N)`` or, with ``--per-device``, ``("--per-device", K)``."""
    flag, values = ("--per-device", args.per_device) if args.per_device else ("--workers", args.workers)
    counts = [v.strip() for v in str(values).split(",") if v.strip()]
    auto_ok = flag == "--per-device"  # auto: memory-aware packing, a per-device setting
    if not counts or not all((c == "auto" and auto_ok) or (c.isdigit() and int(c) >= 1) for c in counts):
        raise SystemExit(f"{flag}: give worker counts of at least 1 (or auto, per device), e.g. 1,2,4 (got {values!r})")
    return [(flag, c if c == "auto" else int(c)) for c in counts]


class GpuSampler:
    """``nvidia-smi`` once a second in a thread: GPU utilisation and memory used while a run lasts."""

    def __init__(self, device: str) -> None:
        self.index = device.partition(":")[2] or "0"
        self.samples: list[tuple[float, float]] = []
        self.active = device.startswith("cuda") and shutil.which("nvidia-smi") is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = ["nvidia-smi", "-i", self.index, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.wait(1.0):
            try:
                util, used = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.strip().split(",")
                self.samples.append((float(util), float(used)))
            except (OSError, ValueError, subprocess.SubprocessError):
                continue

    def __enter__(self) -> "GpuSampler":
        if self.active:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def figures(self) -> dict:
        """Mean and max utilisation (%), max memory used (MiB); empty without samples."""
        if not self.samples:
            return {}
        utils_ = [u for u, _ in self.samples]
        return {"gpu_util_mean": sum(utils_) / len(utils_), "gpu_util_max": max(utils_),
                "gpu_memory_used_max_mib": max(m for _, m in self.samples), "gpu_samples": len(self.samples)}


def run_workers(workers: int | str, args: argparse.Namespace, study_file: Path, flag: str = "--workers",
                study_name: str = STUDY_NAME) -> dict:
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
               "--log-dir", str(run_dir / "logs"), "--artifacts", str(run_dir / "artifacts"), "--n-trials", "100000"]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    started = time.time()
    env = {**os.environ, "HPO_PACKING_DIR": str((run_dir / "packing").resolve())}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    with GpuSampler(args.device) as sampler:
        try:
            # --timeout stops new trials; the running ones finish unless interrupted: give them a minute.
            output, _ = process.communicate(timeout=args.budget + 240)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGINT)
            output, _ = process.communicate()
    wall = time.time() - started
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    trials = [{"number": t.number, "state": t.state.name,
               "start": t.datetime_start.timestamp() if t.datetime_start else None,
               "complete": t.datetime_complete.timestamp() if t.datetime_complete else None}
              for t in study.get_trials(deepcopy=False)]
    result = {"workers": workers, "setting": f"{flag} {workers}", "device": args.device, "command_seconds": wall, "exit_code": process.returncode,
              "output_tail": output.decode(errors="replace")[-2000:], "trials": trials,
              **throughput(trials, args.budget), **sampler.figures()}
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
    if args.study:
        from hpo.config import load_study

        shipped = load_study(args.study)
        study_file, study_name = Path(shipped.source), shipped.name
    else:
        study_file, study_name = study_dir / f"{STUDY_NAME}.yaml", STUDY_NAME
        study_file.write_text(study_yaml(args.epochs, args.R))
    runs = []
    for flag, workers in settings_of(args):
        result = run_workers(workers, args, study_file, flag, study_name)
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
    try:
        utils.write_figure(figure(summary), args.out_dir, "scaling")
    except ImportError as exc:  # a GPU machine without the report stack: the JSON is the result
        print(f"note: no figure ({exc})")
    return summary


if __name__ == "__main__":
    main()

"""The Quickstart's result, measured: `hpo run --study cpu-quick` over several study seeds.

Each seed runs the shipped study through the real command line, exactly as a new user does
(``hpo run --study cpu-quick``, no other flag, its own time budget), in a fresh folder with a
fresh SQLite file and, with ``--cold``, an empty decode cache, so the first-time JPEG decode is
in the wall time. Only the study's ``seed`` differs between runs. Then it reads the study back
and prints, per seed, what the issue asks the result to show:

- wall seconds of the whole command, trials finished, complete, stopped at the deadline;
- the Pareto front of COMPLETE trials over validation accuracy x parameters x training seconds:
  its size, its distinct architectures (family and model knobs; trainer options count once),
  the decades of parameter count they span, how many are also on the accuracy x parameters front,
  and how many the sampler proposed (not enqueued);
- the best sampler-proposed accuracy with its 95% interval, against the enqueued reference's;
- the knee hpo's reports show (trial, accuracy, parameters) and how many front members tie it.

Its last line is ``median over seeds: ...``. ``--study`` and ``--args`` run another shipped study the
same way, e.g. the Quickstart before 0.2 (``cpu-small``) for as long as the issue measured it.
Examples (15 and 5 minutes on 2 cores)::

    python bench/quickstart.py --data-dir data/cifar10-jpeg --seeds 0,1,2 --cold
    python bench/quickstart.py --data-dir data/cifar10-jpeg --seeds 0 --cold --study cpu-small --args "--n-trials 1000 --timeout 300"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import yaml

import hpo
from hpo.analysis.intervals import tie, wilson_interval
from hpo.analysis.pareto import pareto_mask
from hpo.trials import TrialRecord

ROOT = Path(__file__).resolve().parents[1]


def architecture(params: dict) -> tuple:
    """What identifies a model: the family and its knobs (trainer options left out)."""
    family = params.get("model")
    return (family, *sorted((k, str(v)) for k, v in params.items() if k.startswith(f"{family}.")))


def analyse(url: str, name: str) -> dict:
    """The figures of one finished Quickstart study."""
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    records = [TrialRecord.of(t) for t in complete]
    points = np.array([[r.val_accuracy, r.param_count, r.train_seconds] for r in records], dtype=float)
    on_front = pareto_mask(points, ["maximize", "minimize", "minimize"]) if len(points) else np.zeros(0, bool)
    on_2d = pareto_mask(points[:, :2], ["maximize", "minimize"]) if len(points) else np.zeros(0, bool)
    front = [(t, r) for t, r, f in zip(complete, records, on_front) if f]
    architectures = {architecture(dict(t.params) | {"model": t.params.get("model", "resnet")}) for t, _ in front}
    sizes = [r.param_count for _, r in front]
    enqueued = {t.number for t in trials if "fixed_params" in t.system_attrs}
    reference = next((r for t, r in zip(complete, records) if t.number in enqueued), None)
    sampled = [(t, r) for t, r in zip(complete, records) if t.number not in enqueued]
    best = max(sampled, key=lambda tr: tr[1].val_accuracy, default=None)

    def interval(record):
        return list(wilson_interval(record.val_accuracy, record.n_val_images)) if record.n_val_images else None

    figures = {
        "trials": len(trials),
        "finished": sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials),
        "complete": len(complete),
        "deadline": sum(TrialRecord.of(t).stop_reason_text == "deadline" for t in trials),
        "front": len(front),
        "front_architectures": len(architectures),
        "front_decades": round(math.log10(max(sizes) / min(sizes)), 2) if sizes else 0.0,
        "front_also_acc_x_params": int(sum(f and g for f, g in zip(on_front, on_2d))),
        "front_sampled": sum(t.number not in enqueued for t, _ in front),
        "reference": [reference.val_accuracy, interval(reference)] if reference else None,
        "best_sampled": [best[1].val_accuracy, interval(best[1]), best[0].number] if best else None,
    }
    figures["knee"] = knee_of(url, name)
    if reference and best and figures["reference"][1] and figures["best_sampled"][1]:
        figures["best_sampled_ok"] = bool(best[1].val_accuracy >= reference.val_accuracy
                                          or tie(figures["reference"][1], figures["best_sampled"][1]))
    return figures


def knee_of(url: str, name: str) -> list | None:
    """``[trial, accuracy, parameters, front members tying it]`` of the knee hpo's reports show, or None."""
    report = hpo.open_study(name, storage=url).report(importances=False)
    number = report.knee_trial
    if number is None:
        return None
    row = report.trial(number)
    ties = sum(bool(report.ties_knee(n)) for n in report.front.front_trial_numbers)
    return [number, row["val_accuracy"], row["param_count"], ties]


def run_seed(seed: int, data_dir: Path, work: Path, cold: bool, name: str = "cpu-quick", extra: str = "") -> dict:
    folder = work / f"{name}-seed-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "studies").mkdir(parents=True)
    study = yaml.safe_load((ROOT / "studies" / f"{name}.yaml").read_text())
    study["seed"] = seed
    study["space"] = str(ROOT / "search_spaces" / Path(study["space"]).name)
    (folder / "studies" / f"{name}.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    if cold:
        for cache in (data_dir / ".hpo-cache", Path.home() / ".cache" / "hpo"):
            shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "HPO_DATA_DIR": str(data_dir.resolve()), "HPO_STORAGE": f"sqlite:///{folder}/hpo.db"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hpo", "run", "--study", name, *shlex.split(extra)], cwd=folder,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (folder / "run.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed}: hpo run exited {proc.returncode}; see {folder / 'run.log'}")
    return {"seed": seed, "wall_seconds": round(wall, 1), **analyse(env["HPO_STORAGE"], name)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data/cifar10-jpeg"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cold", action="store_true", help="empty the decode cache before each run")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "quickstart")
    parser.add_argument("--study", default="cpu-quick", help="a shipped study (studies/NAME.yaml)")
    parser.add_argument("--args", default="", help="more `hpo run` arguments, e.g. \"--timeout 300\"")
    args = parser.parse_args()
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        results.append(run_seed(seed, args.data_dir, args.work, args.cold, args.study, args.args))
        print(json.dumps(results[-1]), flush=True)
    (args.work / f"{args.study}-results.json").write_text(json.dumps(results, indent=2))
    keys = ("wall_seconds", "complete", "front", "front_architectures", "front_decades", "front_also_acc_x_params",
            "front_sampled")
    medians = {k: statistics.median(r[k] for r in results) for k in keys}
    best = statistics.median(r["best_sampled"][0] for r in results if r["best_sampled"])
    print("median over seeds: " + ", ".join(f"{k} {v:g}" for k, v in medians.items()) + f", best_sampled {best:.4f}")


if __name__ == "__main__":
    main()

"""The GPU check of issue 16, in stages that rerun one by one: one prepared script for a lent GPU.

Stages, in order (``--only a,b`` runs some; each writes its part of ``OUT/gpu.json`` and the whole
``OUT/gpu.md`` again, so a rerun of one stage keeps the others' results):

- ``setup``: install what the bare, offline GPU machine lacks, from wheels carried in ``wheels/``
  (``pip install --no-deps --no-index --target .gpu-site``), build hpo's own wheel from this
  checkout and install it the same way (``--no-deps``: the machine's torch stays), and unpack the
  carried CIFAR-10 archive ``wheels/cifar10-jpeg.tar.gz`` into ``data/cifar10-jpeg``;
- ``env``: the device and the versions (GPU, driver, torch, CUDA, Optuna, hpo);
- ``cuda-tests``: ``python -m pytest -m cuda tests/cuda``;
- ``trainer``: ``bench/trainer.py`` on ResNet18 at full width (64) on MINICIFAR, against the
  seed-style loop (bf16 and channels-last: the trainer's ``auto`` on CUDA);
- ``scaling``: ``bench/scaling.py`` on ``densenet-mini`` at ``--per-device 1,2,4,8,auto``: trials
  per hour, GPU utilisation and memory;
- ``study``: a ``densenet-mini`` study at the best packing of ``scaling`` (``--study-trials``, 30
  by default), timed, with its projection to 100 trials.

Stages that need CUDA are skipped (and say so) where torch sees none; ``--dry-run`` runs nothing
and records the commands it would run, which tests the plumbing on any machine.

Preparing the carried files (on a machine with the package index; both folders are ignored)::

    pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \\
        -d wheels optuna==5.0.0 sqlalchemy==2.1.9 alembic mako colorlog greenlet redis cmaes
    cp ../shared/data/cifar10-jpeg.tar.gz wheels/

Running it on the GPU machine (the whole check, about 5 minutes; then rerun only what failed)::

    python3 bench/gpu.py bench/out/gpu
    python3 bench/gpu.py bench/out/gpu --only scaling,study

This script imports nothing beyond the standard library itself, so it runs before hpo is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("setup", "env", "cuda-tests", "trainer", "scaling", "study")
NEEDS_CUDA = frozenset({"cuda-tests", "trainer", "scaling", "study"})
SITE = REPO / ".gpu-site"  # where the carried wheels are installed (ignored by git)
WHEELS = REPO / "wheels"
DATA_ARCHIVE = WHEELS / "cifar10-jpeg.tar.gz"
DATA_DIR = REPO / "data" / "cifar10-jpeg"
PACKINGS = ("1", "2", "4", "8", "auto")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for gpu.json, gpu.md and each stage's own files")
    parser.add_argument("--only", default=None, help=f"comma-separated stages to run, of {', '.join(STAGES)}")
    parser.add_argument("--dry-run", action="store_true", help="run nothing; record the commands each stage would run")
    parser.add_argument("--scaling-budget", type=float, default=20.0, help="seconds per packing in the scaling stage")
    parser.add_argument("--study-trials", type=int, default=30, help="trials of the timed densenet-mini study (100 if time allows)")
    parser.add_argument("--study-timeout", type=float, default=90.0, help="wall-clock limit of the timed study, seconds")
    args = parser.parse_args(argv)
    chosen = STAGES if args.only is None else tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = [s for s in chosen if s not in STAGES]
    if unknown or not chosen:
        parser.error(f"--only: unknown stage {', '.join(unknown) or '(none)'}; stages are {', '.join(STAGES)}")
    args.stages = [s for s in STAGES if s in chosen]
    return args


# ---------------------------------------------------------------------------------------------
# Running commands
# ---------------------------------------------------------------------------------------------


def environment() -> dict[str, str]:
    """The environment of every command: the carried packages and this checkout first on the path."""
    path = [str(SITE), str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1", "HPO_OFFLINE": "1"}


class Runner:
    """Runs (or, dry, records) a stage's commands, keeping each one's exit code, time and output tail."""

    def __init__(self, dry_run: bool, log_dir: Path) -> None:
        self.dry_run, self.log_dir = dry_run, log_dir
        self.commands: list[dict] = []

    def __call__(self, command: list[str], name: str, timeout: float = 600) -> dict:
        record = {"command": " ".join(command), "name": name}
        self.commands.append(record)
        if self.dry_run:
            record.update(exit_code=None, seconds=0.0, output_tail="")
            return record
        started = time.time()
        try:
            done = subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=timeout)
            code, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code, output = 124, f"{exc.stdout or ''}{exc.stderr or ''}\ntimed out after {timeout:.0f} s"
        except OSError as exc:
            code, output = 127, str(exc)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / f"{name}.log").write_text(output if isinstance(output, str) else output.decode(errors="replace"))
        record.update(exit_code=code, seconds=round(time.time() - started, 2), output_tail=str(output)[-1500:])
        print(f"[{name}] exit {code} in {record['seconds']:.1f} s: {record['command']}", flush=True)
        return record


def cuda_available(runner: Runner) -> bool:
    """Whether the machine's torch sees a CUDA device (asked in a child: this script imports no torch)."""
    if runner.dry_run:
        return True
    probe = [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"]
    done = subprocess.run(probe, capture_output=True, text=True, env=environment())
    return done.stdout.strip().endswith("True")


# ---------------------------------------------------------------------------------------------
# The stages: each returns its figures (a dict); `status` is ok, failed, skipped or dry-run
# ---------------------------------------------------------------------------------------------


def stage_setup(run: Runner, args) -> dict:
    wheels = sorted(str(p) for p in WHEELS.glob("*.whl"))
    build = SITE.with_name(".gpu-wheel")
    steps = [
        run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--upgrade",
             "--target", str(SITE), *wheels], "setup-wheels") if wheels else {"exit_code": 0, "name": "setup-wheels", "command": "no wheels carried"},
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(build),
             str(REPO)], "setup-hpo-wheel"),
        run([sys.executable, "-c", "import glob, subprocess, sys; subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', "
             f"'--no-deps', '--no-index', '--upgrade', '--target', {str(SITE)!r}, *glob.glob({str(build / 'hpo-*.whl')!r})], check=True)"],
            "setup-hpo-install"),
    ]
    if not DATA_DIR.is_dir() and (DATA_ARCHIVE.exists() or run.dry_run):
        if not run.dry_run:
            DATA_DIR.mkdir(parents=True, exist_ok=True)
        steps.append(run(["tar", "xzf", str(DATA_ARCHIVE), "-C", str(DATA_DIR)], "setup-data"))
    # hpo's own wheel is a nicety: the checkout is first on PYTHONPATH anyway, so only the carried
    # wheels and the data decide the stage.
    failed = [s for s in steps if s.get("exit_code") not in (0, None) and not s["name"].startswith("setup-hpo")]
    return {"status": "failed" if failed else "ok", "wheels": [Path(w).name for w in wheels],
            "data_dir": str(DATA_DIR.relative_to(REPO)), "data_present": DATA_DIR.is_dir()}


ENV_SCRIPT = """
import json, platform, torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(device=torch.cuda.get_device_name(0), memory_gib=round(p.total_memory / 2**30, 1),
                multiprocessors=p.multi_processor_count, bf16=torch.cuda.is_bf16_supported())
for name in ("optuna", "sqlalchemy", "hpo", "torchvision"):
    try:
        info[name] = __import__(name).__version__
    except Exception as exc:
        info[name] = f"missing ({type(exc).__name__})"
print(json.dumps(info))
"""


def stage_env(run: Runner, args) -> dict:
    record = run([sys.executable, "-c", ENV_SCRIPT], "env")
    smi = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], "env-nvidia-smi")
    figures = {"status": "ok" if record["exit_code"] in (0, None) else "failed"}
    if record["exit_code"] == 0:
        figures.update(json.loads(record["output_tail"].strip().splitlines()[-1]))
    if smi.get("exit_code") == 0:
        figures["nvidia_smi"] = smi["output_tail"].strip()
    return figures


def stage_cuda_tests(run: Runner, args) -> dict:
    record = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests/cuda", "-rfs"],
                 "cuda-tests", timeout=400)
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", record["output_tail"])}
    status = "dry-run" if run.dry_run else ("ok" if record["exit_code"] == 0 and counts.get("passed") else "failed")
    return {"status": status, **counts, "failures": re.findall(r"^FAILED .*$", record["output_tail"], re.M)}


def stage_trainer(run: Runner, args) -> dict:
    out = args.out / "trainer.json"
    record = run([sys.executable, "bench/trainer.py", "--data-dir", str(DATA_DIR), "--device", "cuda", "--model",
                  "resnet18", "--set", "width=64", "--out", str(out)], "trainer", timeout=400)
    match = re.search(r"speedup at default batch: ([0-9.]+)", record["output_tail"])
    figures = {"status": "dry-run" if run.dry_run else ("ok" if record["exit_code"] == 0 else "failed"),
               "speedup_at_default_batch": float(match.group(1)) if match else None, "target": 10.0}
    if out.exists():
        figures["runs"] = json.loads(out.read_text()).get("runs")
    return figures


def stage_scaling(run: Runner, args) -> dict:
    out = args.out / "scaling"
    record = run([sys.executable, "bench/scaling.py", "--data-dir", str(DATA_DIR), "--device", "cuda:0", "--study",
                  "densenet-mini", "--per-device", ",".join(PACKINGS), "--budget", str(args.scaling_budget),
                  "--out-dir", str(out)], "scaling", timeout=len(PACKINGS) * (args.scaling_budget + 120))
    figures = {"status": "dry-run" if run.dry_run else ("ok" if record["exit_code"] == 0 else "failed"), "target": 3.0}
    summary = out / "scaling.json"
    if summary.exists():
        keep = ("setting", "finished", "trials_per_hour", "speedup", "startup_seconds", "gpu_util_mean", "gpu_util_max",
                "gpu_memory_used_max_mib", "exit_code")
        figures["runs"] = [{k: r.get(k) for k in keep} for r in json.loads(summary.read_text())["runs"]]
        figures["best"] = best_packing(figures["runs"])
    return figures


def best_packing(runs: list[dict]) -> str:
    """The ``--per-device`` value with the most trials per hour (``1`` when nothing was measured)."""
    measured = [r for r in runs if r.get("trials_per_hour")]
    if not measured:
        return "1"
    return str(max(measured, key=lambda r: r["trials_per_hour"])["setting"]).split()[-1]


def projection(trials: int, finished: int, wall_seconds: float, startup_seconds: float, target: int = 100) -> float | None:
    """Seconds a ``target``-trial study would take: the start-up once, then the measured seconds per trial.

    At a fixed packing the trials finish at a steady rate once the workers are up, so the time
    after start-up scales with the number of trials.
    """
    if finished <= 0:
        return None
    return startup_seconds + (wall_seconds - startup_seconds) * target / finished


def stage_study(run: Runner, args, previous: dict) -> dict:
    packing = previous.get("scaling", {}).get("best") or "auto"
    db = args.out / "study.db"
    if db.exists() and not run.dry_run:
        db.unlink()
    record = run([sys.executable, "-m", "hpo", "run", "--study", "densenet-mini", "--n-trials", str(args.study_trials),
                  "--devices", "cuda:0", "--per-device", packing, "--data-dir", str(DATA_DIR), "--storage",
                  f"sqlite:///{db.resolve()}", "--timeout", str(args.study_timeout), "--log-dir", str(args.out / "study-logs"),
                  "--artifacts", str(args.out / "study-artifacts")], "study", timeout=args.study_timeout + 240)
    figures = {"status": "dry-run" if run.dry_run else ("ok" if record["exit_code"] == 0 else "failed"),
               "per_device": packing, "trials": args.study_trials, "wall_seconds": record.get("seconds"),
               "target_seconds_for_100": 600}
    if db.exists() and not run.dry_run:
        figures.update(study_figures(db, record["seconds"]))
        figures["projected_seconds_for_100"] = projection(args.study_trials, figures["finished"], record["seconds"],
                                                          figures.get("startup_seconds") or 0.0)
    return figures


STUDY_SCRIPT = """
import json, sys, optuna
from hpo.storage import open_storage
from hpo.trials import TrialRecord
study = optuna.load_study(study_name="densenet-mini", storage=open_storage(sys.argv[1]))
trials = study.get_trials(deepcopy=False)
done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
starts = [t.datetime_start.timestamp() for t in trials if t.datetime_start]
records = [TrialRecord.of(t) for t in done]
epoch_seconds = sum(r.train_seconds or 0.0 for r in records)
durations = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
print(json.dumps({"finished": len(done), "states": {s: sum(t.state.name == s for t in trials) for s in
                  ("COMPLETE", "PRUNED", "FAIL")}, "first_start": min(starts) if starts else None,
                  "epochs_seconds": epoch_seconds, "trial_seconds": durations,
                  "peak_memory_max_bytes": max((r.peak_memory_bytes or 0 for r in records), default=0)}))
"""


def study_figures(db: Path, wall_seconds: float) -> dict:
    """Counts and where the time went, read from the timed study's database."""
    done = subprocess.run([sys.executable, "-c", STUDY_SCRIPT, f"sqlite:///{db.resolve()}"], capture_output=True,
                          text=True, env=environment())
    if done.returncode != 0:
        return {"read_error": done.stderr[-500:]}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    # Outside the epochs' training + evaluation: start-up, data to device, checkpoints, storage calls.
    if figures["trial_seconds"]:
        figures["share_in_epochs"] = figures["epochs_seconds"] / figures["trial_seconds"]
    figures["startup_seconds"] = None if figures["first_start"] is None else figures["first_start"] - (time.time() - wall_seconds)
    return figures


# ---------------------------------------------------------------------------------------------
# Writing the summary
# ---------------------------------------------------------------------------------------------


def markdown(summary: dict) -> str:
    """The summary as markdown: one section per stage, its status and figures."""
    lines = ["# GPU check (issue 16)", "", f"Command: `{summary['command']}`", ""]
    for stage in STAGES:
        if stage not in summary["stages"]:
            continue
        result = summary["stages"][stage]
        lines += [f"## {stage}: {result.get('status')}", ""]
        for key, value in result.items():
            if key in ("status", "commands"):
                continue
            if isinstance(value, list) and value and isinstance(value[0], dict):
                columns = list(value[0])
                lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in value]
            else:
                lines.append(f"- {key}: {_cell(value)}")
        lines += ["", "Commands:", ""] + [f"    {c['command']}" for c in result.get("commands", [])] + [""]
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen stages and write ``OUT/gpu.json`` and ``OUT/gpu.md``.

    Returns:
        0 when every chosen stage is ok, skipped or dry; 1 when one failed.
    """
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu.json"
    summary = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    summary["command"] = "python bench/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    run = Runner(args.dry_run, args.out / "logs")
    has_cuda = None
    for stage in args.stages:
        run.commands = []
        if stage in NEEDS_CUDA:
            has_cuda = cuda_available(run) if has_cuda is None else has_cuda
        if stage in NEEDS_CUDA and not has_cuda:
            result = {"status": "skipped: no CUDA device"}
        elif stage == "study":
            result = stage_study(run, args, summary["stages"])
        else:
            result = {"setup": stage_setup, "env": stage_env, "cuda-tests": stage_cuda_tests, "trainer": stage_trainer,
                      "scaling": stage_scaling}[stage](run, args)
        if run.dry_run:
            result["status"] = "dry-run"
        result["commands"] = run.commands
        result["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        summary["stages"][stage] = result
        print(f"{stage}: {result['status']}", flush=True)
        path.write_text(json.dumps(summary, indent=1))
        (args.out / "gpu.md").write_text(markdown(summary))
    failed = [s for s in args.stages if summary["stages"][s]["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    if shutil.which("nvidia-smi") is None:
        print("note: no nvidia-smi here; GPU stages run only where torch sees a CUDA device", file=sys.stderr)
    sys.exit(main())

"""Fault-suite helpers: tiny studies, real worker processes, storage end states, root-only faults.

Every fault test runs real ``python -m hpo`` and ``python -m hpo.workers`` processes (or the worker loop in-process) on the fake
CIFAR data, with ``HPO_HEARTBEAT_SECONDS=1`` so that a killed worker's trial is stale after ~3 s, and
``HPO_FAULT_SLEEP_PER_EPOCH`` so that a trial lasts long enough to be killed or interrupted mid-way.
Figures measured here (time to detect a killed worker, time to stop on Ctrl-C, outage length
survived, SQLite workers held) are written to ``$HPO_FAULT_FIGURES`` when set, one JSON per line,
for README's "What survives what" table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[2]
HPO = [sys.executable, "-m", "hpo"]
HEARTBEAT_SECONDS = 1.0

# A linear model on 4 fake classes: an epoch takes milliseconds, so a trial lasts as long as the
# per-epoch sleep says. lr is sampled so that trials differ.
LINEAR_SPACE = """\
params:
  model: linear
  lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
  optimizer: sgd
  batch_size: 16
  augment: none
"""


def write_study(folder: Path, name: str, *, epochs: int = 3, n_trials: int = 3, space: str = LINEAR_SPACE,
                extra: str = "") -> Path:
    """A study file on MINICIFAR (4 classes of the fake CIFAR, all images kept) and its search space."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}-space.yaml").write_text(space)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        description: fault-suite study
        dataset: {{kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}}
        space: {name}-space.yaml
        objectives: [val_accuracy]
        sampler: random
        pruner: none
        epochs: {epochs}
        n_trials: {n_trials}
        seed: 0
        """) + extra)
    return path


def create_study(study_file: Path, url: str, data_dir: Path, n_trials: int | None = None) -> optuna.Study:
    """Create the study in storage in this process (what `hpo run` does before starting workers)."""
    from hpo.config import load_study
    from hpo.data import load_dataset
    from hpo.storage import open_storage
    from hpo.study import create_or_load

    config = load_study(study_file)
    dataset = load_dataset(config.dataset, str(data_dir), split_seed=config.seed)
    return create_or_load(config, open_storage(url), n_trials=n_trials, dataset_fingerprint=dataset.fingerprint)


def load(url: str, name: str) -> optuna.Study:
    """A fresh view of a stored study."""
    from hpo.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url))


def counts(study: optuna.Study) -> dict[str, int]:
    """Trial counts by state name (every state present, zeros included)."""
    found = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return {state.name: found.get(state.name, 0) for state in TrialState}


def reasons(study: optuna.Study, state: TrialState = TrialState.FAIL) -> list[str]:
    """The ``stop_reason`` of every trial in ``state``, by trial number."""
    return [t.user_attrs.get("stop_reason", "") for t in study.get_trials(deepcopy=False, states=(state,))]


def finished_values(study: optuna.Study) -> dict[int, tuple]:
    """Values of COMPLETE trials by number: they must never change once told."""
    return {t.number: tuple(t.values) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}


def assert_exact_end(study: optuna.Study, n_trials: int) -> dict[str, int]:
    """Exactly N finished (COMPLETE + PRUNED) trials, nothing RUNNING or WAITING left over."""
    by_state = counts(study)
    assert by_state["COMPLETE"] + by_state["PRUNED"] == n_trials, by_state
    assert by_state["RUNNING"] == 0 and by_state["WAITING"] == 0, by_state
    return by_state


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    """Poll ``predicate`` until it returns something truthy (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # a storage being written concurrently: look again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def freeze_and_kill(send, moment, timeout: float, what: str):
    """SIGKILL processes at the moment ``moment()`` describes, without that moment passing between
    the last look and the kill: wait for it, freeze the processes (SIGSTOP), look again at what they
    left in the storage, and kill them if it still holds; if not, let them go on (SIGCONT) and wait
    again.

    Args:
        send: Sends a signal to the processes, e.g. ``lambda sig: os.killpg(proc.pid, sig)``.
        moment: Returns something truthy at the moment (polled like :func:`wait_for`); what it
            returned on the frozen processes is returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        wait_for(moment, max(deadline - time.monotonic(), 1.0), what)
        send(signal.SIGSTOP)
        try:
            value = moment()
        except Exception:  # a frozen writer may hold the SQLite lock: let it go on and look again
            value = None
        if value:
            send(signal.SIGKILL)
            return value
        send(signal.SIGCONT)
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} on the frozen processes")


def mid_trial(study: optuna.Study, min_epochs: int = 1, max_epochs: int | None = None, worker: str | None = None):
    """RUNNING trials with a stored checkpoint and ``min_epochs``..``max_epochs`` epochs done (of ``worker``)."""
    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        epochs = len(trial.user_attrs.get("history", []))
        if not trial.user_attrs.get("checkpoint") or epochs < min_epochs:
            continue
        if max_epochs is not None and epochs > max_epochs:
            continue
        if worker is not None and trial.system_attrs.get("hpo:worker") != worker:
            continue
        found.append(trial)
    return found


def fault_env(data_dir: Path, tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    """Environment for real `hpo` processes: offline, fake data, fast heartbeats, one CPU thread."""
    env = {
        **os.environ,
        "HPO_OFFLINE": "1",
        "HPO_DATA_DIR": str(data_dir),
        "HPO_ARTIFACTS": str(tmp_path / "artifacts"),
        "HPO_STORAGE": url,
        "HPO_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    env.update(extra)
    return env


def start_worker(env: dict, study: str, log_file: Path, worker_id: str = "") -> subprocess.Popen:
    """One CPU worker through the public entry point `python -m hpo.workers`, as its own process group.

    Its own process group lets a test signal it alone. The options travel as the launcher sends
    them (``hpo.workers.worker_environment``): HPO_WORKER_OPTIONS, and the storage in HPO_STORAGE.
    """
    from hpo.workers import WorkerOptions, worker_environment

    options = WorkerOptions(study_name=study, storage_url=env["HPO_STORAGE"], device="cpu", worker_id=worker_id, threads=1)
    out = open(log_file.with_suffix(".out"), "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo.workers"], env={**env, **worker_environment(options, log_file)},
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=log_file.parent,
    )
    out.close()
    return proc


def stop_all(procs) -> None:
    """Kill what a failed test left running (only the processes this test started)."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)


def logs_of(folder: Path) -> str:
    """Everything the workers wrote (logs and captured output) under ``folder``."""
    parts = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".log", ".out"):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
    return "\n".join(parts)


def record_figure(name: str, value: float, unit: str, **context) -> None:
    """Append a measured figure to ``$HPO_FAULT_FIGURES`` (README's table) when that is set."""
    target = os.environ.get("HPO_FAULT_FIGURES")
    if target:
        with open(target, "a") as handle:
            handle.write(json.dumps({"figure": name, "value": round(value, 2), "unit": unit, **context}) + "\n")


def require_root(what: str) -> None:
    """Skip a test that needs root (mounts, stopping PostgreSQL), except under CI, where it must run."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} needs root; CI must run the fault suite as root")
    pytest.skip(f"{what} needs root")




def run_worker_here(url: str, name: str, data_dir: Path, artifacts: Path, **options) -> dict[str, int]:
    """The worker loop in this process (torch is already imported: seconds faster than a new process)."""
    from hpo.workers import WorkerOptions, run_worker

    return run_worker(WorkerOptions(study_name=name, storage_url=url, device="cpu", worker_id="follow-up",
                                    data_dir=str(data_dir), artifacts=str(artifacts), threads=1, **options))


def start_run(env: dict, study_file: Path, log_dir: Path, *args: str) -> subprocess.Popen:
    """`hpo run --study FILE --devices cpu` in its own session, so that a test can Ctrl-C it alone."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_dir / "run.out", "ab")
    proc = subprocess.Popen([*HPO, "run", "--study", str(study_file), "--devices", "cpu", "--log-dir", str(log_dir), *args],
                            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=log_dir)
    out.close()
    return proc


def worker_pids(study: optuna.Study) -> list[int]:
    """Process ids of the workers that have joined ``study`` (from their presence records)."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return [int(v["pid"]) for k, v in attrs.items() if k.startswith("hpo:worker:") and isinstance(v, dict) and "pid" in v]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            state = next((line.split()[1] for line in handle if line.startswith("State:")), "")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")

"""Worker processes: device slots, the trial loop, heartbeats, the exact budget, joining a study.

A worker is one process bound to one device. It loads the study's definition and data from
storage, then asks, trains and tells trials until the study-wide budget is met. ``hpo run`` starts
one worker process per slot; ``hpo worker`` joins from anywhere that reaches the storage.

Liveness works on every storage (SQLite, PostgreSQL, MySQL, journal file, Redis): while a trial
runs, a thread of its worker writes the time into the trial's ``hpo:heartbeat`` system attribute
every ``HPO_HEARTBEAT_SECONDS`` (default 10 s). Any worker that finds a RUNNING trial whose
heartbeat is older than ``STALE_HEARTBEATS`` intervals marks it FAIL (``worker_lost``) and queues
its configuration again, to resume from its last checkpoint (at most twice). A killed worker's
trial is therefore detected within 3 intervals plus one poll of a live worker.

Budget (DECISIONS.md): ``n_trials`` counts COMPLETE + PRUNED trials study-wide. Queued trials
(WAITING: enqueued recipes and retries) are taken first. Otherwise a worker asks for a new trial
only while COMPLETE + PRUNED + RUNNING < N, and waits while the remainder is in flight elsewhere.
After ``ask`` it ranks its trial among COMPLETE + PRUNED + RUNNING + WAITING by number; a trial
ranked beyond N (a concurrent worker took the last slot) ends as FAIL ``budget`` before training.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hpo import study as studies
from hpo.errors import HpoError
from hpo.storage import set_user_attrs

log = logging.getLogger("hpo")

STALE_HEARTBEATS = 3  # a trial is stale after this many missed heartbeat intervals
MAX_CONSECUTIVE_CONSTRAINT_FAILS = 100
POLL_SECONDS = 2.0  # how often an idle worker looks at the study again


def heartbeat_seconds() -> float:
    """Seconds between heartbeats (``HPO_HEARTBEAT_SECONDS``, default 10)."""
    return float(os.environ.get("HPO_HEARTBEAT_SECONDS", "10"))


class Heartbeat(threading.Thread):
    """Writes the worker's presence into the study and the time into its running trial, if any.

    One thread per worker. The worker sets ``trial_id`` when it starts a trial (and beats the
    trial once at once, so that its liveness never rests on the start time another machine's
    clock and time zone would read) and clears it after.
    """

    def __init__(self, storage, study_id: int, worker_id: str, info: dict):
        super().__init__(daemon=True, name=f"heartbeat-{worker_id}")
        self.storage, self.study_id = storage, study_id
        self.trial_id: int | None = None
        self.worker_id, self.info = worker_id, info
        self._stop_event = threading.Event()

    def beat(self) -> None:
        self.beat_trial(self.trial_id)
        self._write(self.storage.set_study_system_attr, self.study_id, f"hpo:worker:{self.worker_id}",
                    {**self.info, "time": time.time()})

    def beat_trial(self, trial_id: int | None) -> None:
        """Write the time into trial ``trial_id`` (the worker calls it once when the trial starts)."""
        if trial_id is not None:
            self._write(self.storage.set_trial_system_attr, trial_id, studies.SYS_HEARTBEAT, time.time())

    @staticmethod
    def _write(method, *args) -> None:
        try:
            method(*args)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # the trial ended between reading trial_id and writing
        except Exception as exc:  # storage briefly unreachable: the next beat tries again
            log.warning("heartbeat failed: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def run(self) -> None:
        interval = heartbeat_seconds()
        while not self._stop_event.wait(interval):
            self.beat()

    def stop(self) -> None:
        self._stop_event.set()


def live_workers(study: optuna.Study, now: float | None = None) -> list[dict]:
    """Workers whose presence record is fresher than the stale limit."""
    now = time.time() if now is None else now
    limit = STALE_HEARTBEATS * heartbeat_seconds()
    workers = []
    for key, value in study._storage.get_study_system_attrs(study._study_id).items():
        if key.startswith("hpo:worker:") and isinstance(value, dict) and now - value.get("time", 0) <= limit:
            workers.append({"worker": key[len("hpo:worker:"):], **value})
    return sorted(workers, key=lambda w: w["worker"])


def reap_stale_trials(study: optuna.Study, now: float | None = None) -> list[int]:
    """Fail RUNNING trials whose heartbeat is stale (``worker_lost``) and queue their retries.

    Returns:
        The numbers of the trials that this call failed.
    """
    now = time.time() if now is None else now
    limit = STALE_HEARTBEATS * heartbeat_seconds()
    storage = study._storage
    if now - getattr(storage, "last_error_time", 0.0) <= limit:
        # This process just lived through a storage outage: the other workers could not write their
        # heartbeats either. Give them the stale limit to beat again before taking trials for lost.
        return []
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = trial.system_attrs.get(studies.SYS_HEARTBEAT)
        if last is None:
            last = trial.datetime_start.timestamp() if trial.datetime_start else now
        if now - float(last) <= limit:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "stop_reason", "worker_lost")
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker reaped it, or it just finished
        log.warning("trial %d lost its worker (no heartbeat for %.0f s); queued for retry", trial.number, now - float(last))
        reaped.append(trial.number)
        _retry_once(study, trial.number, "worker_lost")
    return reaped


def _retry_once(study: optuna.Study, number: int, reason: str) -> None:
    # Two workers may reap the same trial; only one retry per failed trial is queued.
    trials = study.get_trials(deepcopy=False)
    if any(t.user_attrs.get("retry_of") == number for t in trials):
        return
    studies.enqueue_retry(study, studies.get_trial(study, number), reason)


@dataclass
class BudgetState:
    finished: int  # COMPLETE + PRUNED
    running: int
    waiting: int


def budget_state(study: optuna.Study) -> BudgetState:
    counts = studies.count_states(study)
    return BudgetState(counts[TrialState.COMPLETE] + counts[TrialState.PRUNED], counts[TrialState.RUNNING], counts[TrialState.WAITING])


def next_action(state: BudgetState, n_trials: int) -> str:
    """``ask``, ``wait`` (the rest of the budget is in flight elsewhere) or ``stop``."""
    if state.finished >= n_trials:
        return "stop"
    if state.waiting > 0 or state.finished + state.running < n_trials:
        return "ask"
    return "wait"


def beyond_budget(study: optuna.Study, trial_number: int, n_trials: int) -> bool:
    """Whether ``trial_number`` ranks beyond ``n_trials`` among live and finished trials."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    numbers = sorted(t.number for t in study.get_trials(deepcopy=False, states=states))
    return trial_number in numbers[n_trials:]


def check_failure_streak(study: optuna.Study, n_trials: int, since_number: int = 0) -> None:
    """Stop a study that only fails: N consecutive FAILs, or 100 consecutive constraint violations.

    Interrupted, lost and budget trials do not count: they are not the configuration's fault.

    Args:
        since_number: only trials numbered from here count (the study's size when this worker
            joined), so that a run started after fixing the cause (disk freed, memory) gets its
            own N attempts instead of stopping at once on the previous run's failures.
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    fails = constraint_fails = 0
    last = None
    for trial in sorted(trials, key=lambda t: t.number, reverse=True):  # newest first: the streak ends at a success
        if trial.number < since_number:
            break
        reason = trial.user_attrs.get("stop_reason")
        if reason in ("interrupted", "worker_lost", "budget"):
            continue
        if trial.state != TrialState.FAIL:
            break
        last = last or trial
        if reason == "constraint":
            constraint_fails += 1
        else:
            fails += 1
    limit = max(n_trials, 1)
    if fails >= limit:
        raise HpoError(
            f"study {study.study_name!r} stopped after {fails} consecutive failed trials (last: trial {last.number}, "
            f"{last.user_attrs.get('stop_reason')}: {last.user_attrs.get('error', 'no message')}); fix the cause shown "
            "by `hpo status` and run again"
        )
    if constraint_fails >= MAX_CONSECUTIVE_CONSTRAINT_FAILS:
        raise HpoError(
            f"study {study.study_name!r} stopped after {constraint_fails} consecutive trials over its constraints; "
            "widen constraints (max_params, max_macs) or narrow the search space"
        )


def plan_next(study: optuna.Study, sampler: optuna.samplers.BaseSampler, since_number: int = 0) -> tuple[str, int]:
    """The worker loop's study-wide checks before each trial, and what to do next.

    Reaps trials whose workers were lost, stops a study that only fails (``check_failure_streak``)
    and applies the budget rule.

    Returns:
        ``(action, n_trials)``: action is ``ask``, ``wait``, ``stop`` or ``exhausted`` (a grid
        sampler has no configuration left); n_trials is the study's current budget.
    """
    from hpo.samplers import sampler_exhausted

    n_trials = studies.n_trials_of(study)
    reap_stale_trials(study)
    check_failure_streak(study, n_trials, since_number=since_number)
    action = next_action(budget_state(study), n_trials)
    if action == "ask" and sampler_exhausted(sampler, study):
        action = "exhausted"
    return action, n_trials


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@dataclass
class WorkerOptions:
    """One worker process's settings."""

    study_name: str
    storage_url: str
    device: str = "auto"
    worker_id: str = ""
    data_dir: str | None = None
    artifacts: str | None = None
    threads: int | None = None
    timeout: float | None = None  # wall-clock seconds for this worker
    tensorboard_dir: str | None = None
    max_trials: int | None = None  # stop after this many trials of this worker (tests, benchmarks)


def run_worker(options: WorkerOptions) -> dict[str, int]:
    """Run trials of a stored study until its budget is met, the timeout passes, or an interrupt.

    Returns:
        Counts of this worker's trials by final state name.

    Raises:
        HpoError: the study, data or device cannot be used (clear message), or the study only fails.
        KeyboardInterrupt: after recording the running trial as ``interrupted`` and queueing its retry.
    """
    from hpo.data import load_dataset
    from hpo.device import device_name, resolve_device, set_cpu_threads
    from hpo.pruning import EpochPruner, make_pruner
    from hpo.samplers import make_sampler, worker_seed
    from hpo.storage import open_artifact_store, open_retrying_storage

    worker_id = options.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    device = resolve_device(options.device)
    set_cpu_threads(options.threads)
    storage = open_retrying_storage(options.storage_url)  # rides out database restarts (HPO_STORAGE_RETRY_SECONDS)
    stored = studies.load_stored(options.study_name, storage)
    config = studies.definition_of(stored)
    dataset = load_dataset(config.dataset, options.data_dir, split_seed=config.seed)
    studies.check_fingerprint(stored, dataset.fingerprint)

    sampler = make_sampler(
        config.sampler.name, config.sampler.args, space=config.space, n_objectives=len(config.objectives),
        seed=worker_seed(config.seed, worker_id), constraints_func=_constraints,
    )
    pruner = make_pruner(config.pruner.name, config.pruner.args, n_objectives=len(config.objectives), epochs=config.epochs)
    study = studies.load_stored(options.study_name, storage, sampler=sampler, pruner=EpochPruner(pruner).study_pruner)
    from hpo.storage import safe_component

    ctx = studies.TrialContext(
        study=study, config=config, dataset=dataset, device=device,
        artifact_store=open_artifact_store(options.artifacts),
        feature_cache_dir=Path(options.artifacts or os.environ.get("HPO_ARTIFACTS") or "artifacts") / "features",
        worker_id=worker_id,
        tensorboard_dir=Path(options.tensorboard_dir) if options.tensorboard_dir else None,
    )
    safe_component(config.name)
    info = {"host": socket.gethostname(), "pid": os.getpid(), "device": str(device), "device_name": device_name(device)}
    presence = Heartbeat(storage, study._study_id, worker_id, info)
    presence.beat()
    presence.start()
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    deadline = time.monotonic() + options.timeout if options.timeout else None
    first_number = len(study.get_trials(deepcopy=False))  # the failure streak counts this worker's era only
    # Everything loaded so far (torch, the data, the study) lives as long as the worker: exempt it from
    # the garbage collector, so that the collection after each trial only scans what the trial made.
    gc.freeze()
    outcome: dict[str, int] = {}
    log.info("worker %s joined study %s on %s (%s)", worker_id, config.name, device, info["device_name"])
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                log.info("worker %s: timeout reached", worker_id)
                break
            if options.max_trials is not None and sum(outcome.values()) >= options.max_trials:
                break
            action, n_trials = plan_next(study, sampler, since_number=first_number)
            if action == "exhausted":
                log.info("worker %s: the grid is exhausted", worker_id)
                break
            if action == "stop":
                break
            if action == "wait":
                time.sleep(POLL_SECONDS)
                continue
            state = run_one(study, ctx, n_trials, presence)
            outcome[state.name] = outcome.get(state.name, 0) + 1
    finally:
        presence.stop()
        signal.signal(signal.SIGTERM, previous_sigterm)
        shutil.rmtree(ctx.scratch_dir, ignore_errors=True)  # local checkpoint copies: the artifact store keeps them
        try:
            storage.set_study_system_attr(study._study_id, f"hpo:worker:{worker_id}", {**info, "time": 0})
        except Exception:
            pass
    return outcome


def _constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    # Feasible (<= 0) unless the trial exceeded a size constraint before training.
    return [float(trial.user_attrs.get("constraint_violation", -1.0))]


def run_one(study: optuna.Study, ctx: studies.TrialContext, n_trials: int, heartbeat: Heartbeat) -> TrialState:
    """Ask one trial, run it, tell its result; returns the state that counts for it."""
    trial = study.ask()
    heartbeat.trial_id = trial._trial_id
    heartbeat.beat_trial(trial._trial_id)
    try:
        if beyond_budget(study, trial.number, n_trials):
            trial.set_user_attr("stop_reason", "budget")
            study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL
        try:
            state, values = studies.run_trial(ctx, trial)
        except KeyboardInterrupt:
            trial.set_user_attr("stop_reason", "interrupted")
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            studies.enqueue_retry(study, studies.get_trial(study, trial.number), "interrupted")
            log.warning("trial %d interrupted; queued to resume from its last checkpoint", trial.number)
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker took this trial for lost (its heartbeats were late: an overloaded machine
            # or a storage that kept them waiting) and queued its retry, which counts instead.
            stored = study._storage.get_trial(trial._trial_id)
            log.warning("trial %d was recorded as %s (%s) by another worker while it ran here; its retry counts instead",
                        trial.number, stored.state.name, stored.user_attrs.get("stop_reason", ""))
            return stored.state
        except HpoError as exc:
            set_user_attrs(trial, {"stop_reason": "error", "error": str(exc)})
            state, values = TrialState.FAIL, None
        except Exception as exc:  # a bug in one configuration must not stop the study
            log.exception("trial %d failed", trial.number)
            studies.record_error(trial, exc)
            state, values = TrialState.FAIL, None
        study.tell(trial, values=values, state=state, skip_if_finished=True)
        stored = study._storage.get_trial(trial._trial_id)
        if stored.state != state:
            # Another worker took this trial for lost (this one could not write heartbeats for the
            # stale limit) and queued a retry: the retry, not this result, counts.
            log.warning("trial %d finished here as %s but was already recorded as %s (%s); its retry counts instead",
                        trial.number, state.name, stored.state.name, stored.user_attrs.get("stop_reason", ""))
            return stored.state
        reason = trial.user_attrs.get("stop_reason", "")
        log.info("trial %d %s%s values=%s", trial.number, state.name, f" ({reason})" if reason else "", values)
        _apply_checkpoint_policy(study, ctx)
        return state
    finally:
        heartbeat.trial_id = None


def _apply_checkpoint_policy(study: optuna.Study, ctx: studies.TrialContext) -> None:
    from hpo.checkpoints import apply_policy

    try:
        apply_policy(study, ctx.artifact_store, ctx.config.checkpoints)
    except Exception as exc:  # disk housekeeping must never fail a study
        log.warning("checkpoint clean-up failed: %s", exc)


def configure_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Log hpo's messages to a file (per-worker logs) or stderr, with time and worker pid."""
    handler: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---------------------------------------------------------------------------------------------
# Device slots and worker processes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One worker process: its device and CPU threads."""

    device: str
    threads: int


def plan_slots(devices: str = "auto", per_device: int = 1, workers: int | None = None) -> list[Slot]:
    """Worker slots: ``devices`` x ``per_device``, or ``workers`` spread round-robin over the devices.

    CPU slots share the machine's cores evenly (at least one thread each).

    Raises:
        DeviceError: a named device does not exist here.
        ConfigError: ``per_device`` or ``workers`` below 1.
    """
    import torch

    from hpo.device import resolve_device
    from hpo.errors import ConfigError

    if per_device < 1:
        raise ConfigError(f"--per-device must be at least 1 (got {per_device})")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers})")
    spec = (devices or "auto").strip()
    if spec == "auto":
        names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
    else:
        names = [d.strip() for d in spec.split(",") if d.strip()]
        if not names:
            raise ConfigError(f"--devices {devices!r} names no device; use auto, cpu, or a list such as cuda:0,cuda:1")
    for name in names:
        resolve_device(name)  # refuses cuda:3 on a two-GPU machine, with the devices it has
    names = ["cuda:0" if n == "cuda" else n for n in names]
    chosen = [names[i % len(names)] for i in range(workers)] if workers else [n for n in names for _ in range(per_device)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpu_slots = sum(1 for d in chosen if d == "cpu") or 1
    return [Slot(d, max(1, cores // cpu_slots) if d == "cpu" else max(1, min(4, cores // len(chosen)))) for d in chosen]


def launch(
    study_name: str,
    storage_url: str,
    slots: list[Slot],
    *,
    log_dir: Path,
    data_dir: str | None = None,
    artifacts: str | None = None,
    timeout: float | None = None,
    tensorboard_dir: str | None = None,
    on_tick=None,
    tick_seconds: float = 1.0,
) -> int:
    """Start one ``hpo worker`` process per slot and wait for them.

    The storage URL reaches the workers through ``HPO_STORAGE`` (not argv, which ``ps`` shows).
    The first SIGINT/SIGTERM is passed on to the workers, which record their running trials as
    ``interrupted`` and exit; a second one kills them at once.

    Args:
        on_tick: called every ``tick_seconds`` while workers run (the live display).

    Returns:
        0 if every worker exited cleanly, else the first non-zero exit code (130 when interrupted).
    """
    import subprocess

    log_dir.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    env = {**os.environ, "HPO_STORAGE": storage_url, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen] = []
    for i, slot in enumerate(slots):
        cmd = [sys.executable, "-m", "hpo", "worker", "--study", study_name, "--devices", slot.device,
               "--workers", "1", "--threads", str(slot.threads), "--worker-id", f"{host}-{os.getpid()}-{i}",
               "--log-file", str(log_dir / f"worker-{i}.log")]
        for flag, value in (("--data-dir", data_dir), ("--artifacts", artifacts), ("--timeout", timeout),
                            ("--tensorboard", tensorboard_dir)):
            if value is not None:
                cmd += [flag, str(value)]
        out = open(log_dir / f"worker-{i}.out", "ab")
        procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        out.close()

    interrupts = [0]

    def forward(signum, frame):
        interrupts[0] += 1
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL if interrupts[0] > 1 else signal.SIGINT)
                except ProcessLookupError:
                    pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = False
    try:
        while any(p.poll() is None for p in procs):
            if deadline is not None and not timed_out and time.monotonic() >= deadline:
                # --timeout bounds the run: running trials are interrupted like on Ctrl-C, and
                # resumed from their checkpoints by the next run.
                timed_out = True
                log.info("timeout reached: interrupting the workers")
                for p in procs:
                    if p.poll() is None:
                        try:
                            os.kill(p.pid, signal.SIGINT)
                        except ProcessLookupError:
                            pass
            if on_tick is not None:
                try:
                    on_tick()
                except Exception as exc:  # the display must never stop the workers
                    log.debug("display failed: %s", exc)
            time.sleep(tick_seconds)
        if on_tick is not None:
            on_tick()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if interrupts[0]:
        return 130
    codes = [p.returncode for p in procs if p.returncode and not (timed_out and p.returncode == 130)]
    return codes[0] if codes else 0


def worker_log_tail(log_dir: Path, lines: int = 5) -> str:
    """The last lines of each worker's output (shown when a worker fails)."""
    parts = []
    for path in sorted(log_dir.glob("worker-*.out")):
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
        if text:
            parts.append(f"{path.name}:\n  " + "\n  ".join(text))
    return "\n".join(parts)

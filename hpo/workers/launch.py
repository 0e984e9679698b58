"""Launch: device slots, worker processes, their signals, and the workers' public entry point.

``hpo run`` and ``hpo worker`` both call :func:`launch`: one worker process per slot, or (``hpo
worker`` on one slot) the worker loop in this process. A worker process is started through the
public entry point ``python -m hpo.workers``, which reads its :class:`WorkerOptions` as JSON from
``HPO_WORKER_OPTIONS`` and the storage URL from ``HPO_STORAGE`` (never argv, which ``ps`` shows),
and exits like the CLI: 0, 2 with a one-line message for an error the user can fix, 130 when
interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hpo.errors import ConfigError, HpoError
from hpo.workers.interrupts import SECOND_PRESS_GRACE_SECONDS, worker_id_prefix
from hpo.workers.worker import WorkerOptions, configure_logging, run_worker

log = logging.getLogger("hpo")

OPTIONS_ENV = "HPO_WORKER_OPTIONS"  # the entry point's WorkerOptions (JSON, without the storage URL)
STORAGE_ENV = "HPO_STORAGE"
_LOG_FILE = "log_file"  # the entry point's own setting beside the WorkerOptions fields


@dataclass(frozen=True)
class Slot:
    """One worker process: its device and CPU threads."""

    device: str
    threads: int


def plan_slots(devices: str = "auto", per_device: int | str = 1, workers: int | None = None) -> list[Slot]:
    """Worker slots: ``devices`` x ``per_device``, or ``workers`` spread round-robin over the devices.

    ``per_device="auto"`` plans as many slots as memory-aware packing may fill
    (:func:`hpo.workers.packing.auto_slots`); the workers then gate their trials on free memory.

    CPU slots share the machine's cores evenly (at least one thread each).

    Raises:
        DeviceError: a named device does not exist here.
        ConfigError: ``per_device`` or ``workers`` below 1.
    """
    import torch

    from hpo.device import resolve_device
    from hpo.workers.packing import AUTO, auto_slots

    if per_device != AUTO and per_device < 1:
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
    per_device = auto_slots(names) if per_device == AUTO else per_device
    chosen = [names[i % len(names)] for i in range(workers)] if workers else [n for n in names for _ in range(per_device)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpu_slots = sum(1 for d in chosen if d == "cpu") or 1
    return [Slot(d, max(1, cores // cpu_slots) if d == "cpu" else max(1, min(4, cores // len(chosen)))) for d in chosen]


# ---------------------------------------------------------------------------------------------
# The entry point: python -m hpo.workers
# ---------------------------------------------------------------------------------------------


def worker_environment(options: WorkerOptions, log_file: str | os.PathLike | None = None) -> dict[str, str]:
    """The environment variables that start one worker through ``python -m hpo.workers``.

    Args:
        options: The worker's settings.
        log_file: Where the worker logs (None: stderr).

    Returns:
        ``HPO_STORAGE`` (the URL) and ``HPO_WORKER_OPTIONS`` (the other settings, as JSON).
    """
    settings = dataclasses.asdict(options)
    url = settings.pop("storage_url")
    settings[_LOG_FILE] = str(log_file) if log_file is not None else None
    return {STORAGE_ENV: url, OPTIONS_ENV: json.dumps(settings)}


def options_from_environment(environ: Mapping[str, str] | None = None) -> tuple[WorkerOptions, str | None]:
    """The worker settings that :func:`worker_environment` wrote.

    Args:
        environ: The environment (default ``os.environ``).

    Returns:
        ``(options, log_file)``.

    Raises:
        ConfigError: ``HPO_WORKER_OPTIONS`` is missing, not JSON, or names unknown settings.
    """
    from hpo.storage import resolve_storage_url

    environ = os.environ if environ is None else environ
    how = "start workers with `hpo run` or `hpo worker`, or set it to a JSON object such as {\"study_name\": \"NAME\"}"
    try:
        settings = json.loads(environ[OPTIONS_ENV])
    except KeyError:
        raise ConfigError(f"{OPTIONS_ENV} is not set; {how}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{OPTIONS_ENV} is not JSON ({exc}); {how}") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{OPTIONS_ENV} must be a JSON object; {how}")
    log_file = settings.pop(_LOG_FILE, None)
    known = {f.name for f in dataclasses.fields(WorkerOptions)} - {"storage_url"}
    unknown = sorted(set(settings) - known)
    if unknown or "study_name" not in settings:
        problem = f"unknown settings {', '.join(unknown)}" if unknown else "no study_name"
        raise ConfigError(f"{OPTIONS_ENV}: {problem}; its settings are {', '.join(sorted(known))}")
    url = resolve_storage_url(environ.get(STORAGE_ENV))
    return WorkerOptions(storage_url=url, **settings), log_file


def outcome_line(outcome: Mapping[str, int]) -> str:
    """What a worker prints when it is done: its trials by final state."""
    return "worker done: " + (", ".join(f"{k.lower()} {v}" for k, v in sorted(outcome.items())) or "no trials run")


def entry_point(environ: Mapping[str, str] | None = None) -> int:
    """``python -m hpo.workers``: run one worker from the environment's settings.

    Args:
        environ: The environment (default ``os.environ``).

    Returns:
        The exit code, as the CLI's (``hpo.faults_user``): 0 when done, 2 for an error the user can
        fix, 1 for an environment fault or an unexpected error (each printed as one line; the
        traceback goes to the log file), 130 when interrupted (SIGINT, SIGTERM).
    """
    from hpo.faults_user import debug_enabled, describe, format_traceback
    from hpo.workers.interrupts import Interrupted, ignore_further_interrupts

    # Optuna flags features such as constraints as experimental; that is noise in a worker's log.
    warnings.filterwarnings("ignore", message=r".*is experimental.*")
    try:
        options, log_file = options_from_environment(environ)
        configure_logging(log_file)
        outcome = run_worker(options)
    except Interrupted as exc:
        ignore_further_interrupts()
        print(exc.summary(), file=sys.stderr)  # which trial, and the command that resumes it
        return 130
    except (Exception, KeyboardInterrupt) as exc:
        fault = describe(exc)
        if fault.exit_code == 130:
            ignore_further_interrupts()
        if not isinstance(exc, (HpoError, KeyboardInterrupt)):
            log.error("worker failed:\n%s", format_traceback(exc))  # the log file keeps what the terminal does not
        if debug_enabled():
            print(format_traceback(exc), file=sys.stderr)
        print(fault.message, file=sys.stderr)
        return fault.exit_code
    print(outcome_line(outcome), file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# Launching workers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchResult:
    """How the workers of one :func:`launch` ended.

    Attributes:
        exit_code: 0 if every worker exited cleanly, 130 when interrupted, else the first
            non-zero exit code of a worker process.
        outcome: The trials by final state of a worker that ran in this process (None otherwise).
        forced: Whether a second interrupt cut the workers' recording short (the storage may not
            answer: the caller's last words must not wait on it).
        worker_prefix: The ids of the worker processes are this plus ``-N`` (see
            :func:`hpo.workers.interrupts.interrupted_trials`).
    """

    exit_code: int
    outcome: dict[str, int] | None = None
    forced: bool = False
    worker_prefix: str = ""


def launch(
    options: WorkerOptions,
    slots: Sequence[Slot],
    *,
    log_dir: Path | None = None,
    in_process: bool = False,
    on_tick: Callable[[], None] | None = None,
    tick_seconds: float = 1.0,
) -> LaunchResult:
    """Run a study's workers: one ``python -m hpo.workers`` process per slot, or one worker here.

    Each worker gets ``options`` with its slot's device and threads (``options.threads`` wins when
    set). In a process, the first SIGINT/SIGTERM is passed on to the workers, which record their
    running trials as ``interrupted`` and exit; a second one is passed on too, and the workers exit
    within ``SECOND_PRESS_GRACE_SECONDS`` (killed a second later). ``options.timeout``
    bounds the run: each worker stops its running trial at the next epoch end after it (recorded as
    ``interrupted``, queued to resume) and exits; a worker still running :func:`timeout_grace`
    seconds later (an epoch that never ends) is interrupted like on Ctrl-C.

    Args:
        options: The settings every worker shares (study, storage, data, artifacts, timeout).
        slots: From :func:`plan_slots`.
        log_dir: Worker processes log to ``worker-N.log`` and print to ``worker-N.out`` there.
        in_process: Run the one slot's worker in this process (``hpo worker`` on one slot; the
            caller configures its logging, see :func:`configure_logging`).
        on_tick: Called every ``tick_seconds`` while worker processes run (the live display).
        tick_seconds: See ``on_tick``.

    Returns:
        How the workers ended.

    Raises:
        HpoError, KeyboardInterrupt: from the worker in this process (``in_process``).
        ValueError: ``in_process`` with several slots, or processes without a ``log_dir``.
    """
    if in_process:
        if len(slots) != 1:
            raise ValueError(f"in_process runs one worker, not {len(slots)}")
        return LaunchResult(0, run_worker(_slot_options(options, slots[0])))
    if log_dir is None:
        raise ValueError("worker processes need a log_dir")
    if options.timeout and options.timeout_at is None:
        # Every worker stops at the same moment, the run's timeout, however long its start-up took.
        options = dataclasses.replace(options, timeout_at=time.time() + options.timeout)
    procs = _start_processes(options, slots, log_dir)
    code, forced = _wait(procs, options.timeout, on_tick, tick_seconds)
    return LaunchResult(code, forced=forced, worker_prefix=worker_id_prefix())


def _slot_options(options: WorkerOptions, slot: Slot, worker_id: str | None = None) -> WorkerOptions:
    return dataclasses.replace(options, device=slot.device, threads=options.threads or slot.threads,
                               worker_id=options.worker_id if worker_id is None else worker_id)


def _start_processes(options: WorkerOptions, slots: Sequence[Slot], log_dir: Path) -> list[subprocess.Popen]:
    log_dir.mkdir(parents=True, exist_ok=True)
    prefix = worker_id_prefix()
    procs = []
    for i, slot in enumerate(slots):
        worker = _slot_options(options, slot, worker_id=f"{prefix}-{i}")
        env = {**os.environ, **worker_environment(worker, log_dir / f"worker-{i}.log"), "PYTHONUNBUFFERED": "1"}
        with open(log_dir / f"worker-{i}.out", "ab") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "hpo.workers"], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def _signal_all(procs: Sequence[subprocess.Popen], signum: int) -> None:
    for proc in procs:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signum)
            except ProcessLookupError:
                pass


def timeout_grace(timeout: float) -> float:
    """How long after ``--timeout`` the launcher waits for workers to reach an epoch end before it
    interrupts them: a quarter of the timeout, at least a minute."""
    return max(60.0, timeout / 4)


def _wait(procs: list[subprocess.Popen], timeout: float | None, on_tick: Callable[[], None] | None,
          tick_seconds: float) -> tuple[int, bool]:
    # Wait for the worker processes, forwarding signals, applying the timeout and ticking the display.
    # A second press is forwarded too: each worker then gives its trial's recording
    # SECOND_PRESS_GRACE_SECONDS and exits; one still alive a second after that is killed, as at a third press.
    interrupts = [0]
    kill_at: list[float | None] = [None]

    def forward(signum, frame):
        interrupts[0] += 1
        if interrupts[0] == 2:
            kill_at[0] = time.monotonic() + SECOND_PRESS_GRACE_SECONDS + 1.0
        _signal_all(procs, signal.SIGKILL if interrupts[0] > 2 else signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    deadline = time.monotonic() + timeout + timeout_grace(timeout) if timeout else None
    timed_out = False
    try:
        while any(p.poll() is None for p in procs):
            if kill_at[0] is not None and time.monotonic() >= kill_at[0]:
                _signal_all(procs, signal.SIGKILL)
            if interrupts[0] > 1:  # exit at once: no display, which reads the storage
                time.sleep(0.05)
                continue
            if deadline is not None and not timed_out and time.monotonic() >= deadline:
                # The workers stop at the epoch end after the timeout by themselves; one that is
                # still running now is interrupted like on Ctrl-C (resumed by the next run).
                timed_out = True
                log.info("timeout passed %.0f s ago: interrupting the workers", timeout_grace(timeout))
                _signal_all(procs, signal.SIGINT)
            _tick(on_tick)
            time.sleep(tick_seconds)
        if on_tick is not None and interrupts[0] < 2:
            on_tick()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if interrupts[0]:
        return 130, interrupts[0] > 1
    codes = [p.returncode for p in procs if p.returncode and not (timed_out and p.returncode == 130)]
    return (codes[0] if codes else 0), False


def _tick(on_tick: Callable[[], None] | None) -> None:
    if on_tick is None:
        return
    try:
        on_tick()
    except Exception as exc:  # the display must never stop the workers
        log.debug("display failed: %s", exc)


def worker_log_tail(log_dir: Path, lines: int = 5) -> str:
    """The last lines of each worker's output (shown when a worker fails)."""
    parts = []
    for path in sorted(log_dir.glob("worker-*.out")):
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
        if text:
            parts.append(f"{path.name}:\n  " + "\n  ".join(text))
    return "\n".join(parts)

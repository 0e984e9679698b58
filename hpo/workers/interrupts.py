"""Ctrl-C and SIGTERM: what a first and a second press do, and what the terminal says afterwards.

A worker counts the presses itself (:class:`InterruptCounter`). The first raises ``KeyboardInterrupt``
where the worker is (training, waiting; while a trial is being created, once the worker has stamped
itself its owner: :meth:`InterruptCounter.hold`); the worker then records its running trial as
``interrupted`` and queues it to resume (:func:`record_within`). A second press never raises: it
only bounds that recording to :data:`SECOND_PRESS_GRACE_SECONDS`, so the worker exits at once if the
storage does not answer, and its trial is then taken for lost by the next run, like a killed
worker's. ``hpo run`` forwards each press to its workers (:mod:`hpo.workers.launch`).

User stops (Ctrl-C, SIGTERM from Slurm or compose, a worker's ``--timeout``) never use up the
crash-retry limit (``StopReason.counts_against_retries``); crashes and lost workers do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import optuna
from optuna.trial import TrialState

from hpo.trials import SYS_WORKER, StopReason, TrialRecord

log = logging.getLogger("hpo")

SECOND_PRESS_GRACE_SECONDS = 2.0  # after a second press, how long a worker still tries to record its trial

T = TypeVar("T")


class Interrupted(KeyboardInterrupt):
    """A worker stopped by the user, after recording its running trial (if any).

    Attributes:
        study_name: The study the worker ran.
        numbers: The trial interrupted (empty when none was running).
        recorded: Whether the trial was recorded as ``interrupted`` and queued (False: the storage
            did not answer in time; the next run takes it for lost and resumes it).
    """

    def __init__(self, study_name: str, numbers: Iterable[int] = (), recorded: bool = True) -> None:
        super().__init__(str(StopReason.INTERRUPTED))
        self.study_name = study_name
        self.numbers = tuple(numbers)
        self.recorded = recorded

    def summary(self, resume_command: str | None = None) -> str:
        """One line: what was interrupted and the command that resumes it."""
        command = resume_command or f"hpo worker --study {self.study_name}"
        if self.recorded:
            return interrupt_summary(self.numbers, (), command)
        return interrupt_summary((), self.numbers, command)


class InterruptCounter:
    """SIGINT/SIGTERM handler of a worker: the first press raises ``KeyboardInterrupt``, later ones
    only note their time (see :func:`record_within`)."""

    def __init__(self) -> None:
        self.presses = 0
        self.last_press = 0.0
        self._previous: dict[int, Any] = {}
        self._holding = False
        self._held: str | None = None  # a first press held by :meth:`hold`, raised when the block ends

    def __call__(self, signum, frame) -> None:
        self.presses += 1
        self.last_press = time.monotonic()
        name = signal.Signals(signum).name
        if self.presses == 1 and self._holding:
            self._held = name
            return
        if self.presses == 1 or self._held is not None:  # a second press while the first is held: at once
            self._held = None
            raise KeyboardInterrupt(name)
        log.warning("second interrupt: stopping now (the running trial is recorded only if the storage answers "
                    "within %.0f s)", SECOND_PRESS_GRACE_SECONDS)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold a first press that lands inside the block, and raise it as the block ends.

        For the moment between the storage creating a trial and the worker stamping itself as its
        owner: a press there would strand a trial nobody can name. A second press inside the block
        raises at once, so that a storage that does not answer never holds the user up.
        """
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            held, self._held = self._held, None
            if held is not None:
                raise KeyboardInterrupt(held)

    def install(self) -> InterruptCounter:
        """Handle SIGINT and SIGTERM here (main thread only; elsewhere Python's defaults stay)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def give_up_at(self) -> float | None:
        """The monotonic time after which recording stops waiting (None: no second press yet)."""
        return self.last_press + SECOND_PRESS_GRACE_SECONDS if self.presses > 1 else None


def record_within(record: Callable[[], T], counter: InterruptCounter | None) -> tuple[bool, T | None]:
    """Run ``record`` (the storage writes that end an interrupted trial) until it is done, or until
    :data:`SECOND_PRESS_GRACE_SECONDS` after a second press.

    Returns:
        ``(done, result)``: done is False when a second press gave up waiting (the writes go on in a
        daemon thread that dies with the process).
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["result"] = record()
        except BaseException as exc:  # reported below, in the caller's thread
            outcome["failure"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True, name="record-interrupt").start()
    while not done.wait(0.05):
        limit = counter.give_up_at() if counter is not None else None
        if limit is not None and time.monotonic() >= limit:
            return False, None
    if "failure" in outcome:
        raise outcome["failure"]
    return True, outcome.get("result")


def within(seconds: float, call: Callable[[], T]) -> T | None:
    """``call()``, or None if it does not return within ``seconds`` (or fails): the terminal's last
    words after a second press must not wait on a storage that does not answer."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except Exception as exc:  # the summary is best effort
            log.debug("interrupt summary failed: %s", exc)

    thread = threading.Thread(target=target, daemon=True, name="interrupt-summary")
    thread.start()
    thread.join(seconds)
    return box.get("value")


def worker_id_prefix(pid: int | None = None) -> str:
    """The prefix of the worker ids that process ``pid`` (default: this one) gives its workers."""
    return f"{socket.gethostname()}-{os.getpid() if pid is None else pid}"


@dataclass(frozen=True)
class InterruptedTrials:
    """The trials of some workers after an interrupt: recorded and queued, or left running."""

    queued: tuple[int, ...]
    running: tuple[int, ...]


def interrupted_trials(study: optuna.Study, worker_prefix: str, since: float = 0.0) -> InterruptedTrials:
    """The trials that the workers named ``worker_prefix``-N left interrupted or still running.

    Args:
        study: The study.
        worker_prefix: From :func:`worker_id_prefix` of the launching process.
        since: Only trials that started at or after this unix time.
    """
    queued, running = [], []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL, TrialState.RUNNING)):
        worker = str(trial.system_attrs.get(SYS_WORKER, ""))
        if not (worker == worker_prefix or worker.startswith(worker_prefix + "-")):
            continue
        if trial.datetime_start is not None and trial.datetime_start.timestamp() < since:
            continue
        if trial.state == TrialState.RUNNING:
            running.append(trial.number)
        elif TrialRecord.of(trial).stop_reason == StopReason.INTERRUPTED:
            queued.append(trial.number)
    return InterruptedTrials(tuple(sorted(queued)), tuple(sorted(running)))


def interrupt_summary(queued: Iterable[int], running: Iterable[int], resume_command: str) -> str:
    """What the terminal says after an interrupt: which trials stopped, and how to resume them."""
    queued, running = list(queued), list(running)
    parts = []
    if queued:
        parts.append(f"{_trials(queued)} stopped and queued to resume from {'its' if len(queued) == 1 else 'their'} "
                     "last checkpoint")
    if running:
        parts.append(f"{_trials(running)} could not be recorded in time (the storage did not answer) and will be "
                     "taken for lost and resumed by the next run")
    if not parts:
        parts.append("no trial was running")
    return f"{StopReason.INTERRUPTED}: {'; '.join(parts)}; resume with: {resume_command}"


def _trials(numbers: list[int]) -> str:
    return f"trial {numbers[0]}" if len(numbers) == 1 else "trials " + ", ".join(str(n) for n in numbers)


def resume_command(command: str, study: str, storage: str | None = None, storage_file: str | os.PathLike | None = None) -> str:
    """The command line that resumes an interrupted ``hpo run`` or ``hpo worker`` (password masked)."""
    from hpo.storage import mask_url

    line = f"hpo {command} --study {study}"
    if storage:
        line += f" --storage {mask_url(storage)}"
    if storage_file:
        line += f" --storage-file {storage_file}"
    return line


def interrupt_line(study: optuna.Study, result: Any, command: str, since: float = 0.0) -> str:
    """What ``hpo run`` or ``hpo worker`` prints after its workers were interrupted.

    Args:
        study: The study.
        result: The ``hpo.workers.launch.LaunchResult`` (``forced``: a second press, so the storage
            gets only :data:`SECOND_PRESS_GRACE_SECONDS` to answer).
        command: From :func:`resume_command`.
        since: When the workers started (unix time): older interrupted trials are not theirs.
    """
    seconds = SECOND_PRESS_GRACE_SECONDS if result.forced else 30.0
    found = within(seconds, lambda: interrupted_trials(study, result.worker_prefix, since))
    if found is None:
        return (f"{StopReason.INTERRUPTED}: the storage did not answer; trials left running are taken for lost and "
                f"resumed by the next run; resume with: {command}")
    return interrupt_summary(found.queued, found.running, command)


def ignore_further_interrupts() -> None:
    """From now until the process ends, ignore SIGINT and SIGTERM.

    For a process that ends after an interrupt: the interpreter still runs its exit handlers
    (temporary folders, torch's operator libraries, trackers' open runs), and a further press, or the
    launcher passing on a second one, would break into them with a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


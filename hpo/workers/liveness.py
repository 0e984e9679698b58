"""Liveness: heartbeats, the live-worker list, and the reaper of trials whose worker was lost.

Liveness works on every storage (SQLite, PostgreSQL, MySQL, journal file, Redis): while a trial
runs, a thread of its worker writes the time into the trial's ``SYS_HEARTBEAT`` system attribute
every ``HPO_HEARTBEAT_SECONDS`` (default 10 s), and the worker's presence into a study system
attribute (``WORKER_PRESENCE_PREFIX`` + worker id). Any worker that finds a RUNNING trial whose
heartbeat is older than ``STALE_HEARTBEATS`` intervals marks it FAIL (``worker_lost``) and queues
its configuration again, to resume from its last checkpoint (at most twice). A killed worker's
trial is therefore detected within 3 intervals plus one poll of a live worker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo import compat
from hpo import study as studies
from hpo.budget import AliveInterval
from hpo.storage import MAX_RETRY_DELAY_SECONDS, fail_running_trial
from hpo.trials import SYS_HEARTBEAT, SYS_WORKER, WORKER_PRESENCE_PREFIX, StopReason, TrialRecord, record_attrs

log = logging.getLogger("hpo")

STALE_HEARTBEATS = 3  # a trial is stale after this many missed heartbeat intervals
PRESENCE_TIME = "time"  # the presence record's field holding the unix time of the worker's last beat (0: left)
PRESENCE_STARTED = "started"  # unix time this worker's current life began (its alive interval's start)
PRESENCE_CLOSED = "closed"  # [[start, end], ...]: the alive intervals of its earlier lives (closed when it left)
PRESENCE_INTERRUPTED = "interrupted_at"  # unix time the user interrupted it: its stale trial is interrupted, not lost


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker's presence record says about it (``live_workers`` and ``hpo status`` show it)."""

    host: str
    pid: int
    device: str
    device_name: str


def heartbeat_seconds() -> float:
    """Seconds between heartbeats (``HPO_HEARTBEAT_SECONDS``, default 10)."""
    return float(os.environ.get("HPO_HEARTBEAT_SECONDS", "10"))


class Heartbeat(threading.Thread):
    """Writes the worker's presence into the study and the time into its running trial, if any.

    One thread per worker. The worker claims each trial it starts (:meth:`claim`: its owner stamped,
    and one beat at once, so that its liveness never rests on the start time another machine's clock
    and time zone would read) and clears ``trial_id`` after.

    Args:
        storage: The study's storage.
        study_id: The study's id in it.
        worker_id: This worker's name in the presence record.
        info: What the presence record says about the worker (``dataclasses.asdict(WorkerInfo(...))``).
    """

    def __init__(self, storage: optuna.storages.BaseStorage, study_id: int, worker_id: str, info: Mapping[str, Any]):
        super().__init__(daemon=True, name=f"heartbeat-{worker_id}")
        self.storage, self.study_id = storage, study_id
        self.trial_id: int | None = None
        self.worker_id, self.info = worker_id, dict(info)
        self._stop_event = threading.Event()
        self.started = time.time()
        self.closed = _earlier_lives(storage, study_id, worker_id)

    @classmethod
    def for_study(cls, study: optuna.Study, worker_id: str, info: Mapping[str, Any]) -> Heartbeat:
        """The heartbeat of a worker of ``study`` (not started).

        Args:
            study: The study the worker runs trials of.
            worker_id: This worker's name in the presence record.
            info: What the presence record says about the worker (host, pid, device).
        """
        return cls(compat.storage_of(study), compat.study_id(study), worker_id, info)

    def beat(self) -> None:
        """Write the time into the running trial (if any) and the worker's presence."""
        self.beat_trial(self.trial_id)
        self._write(self.storage.set_study_system_attr, self.study_id, WORKER_PRESENCE_PREFIX + self.worker_id,
                    self._record(time.time()))

    def _record(self, beat: float) -> dict[str, Any]:
        return {**self.info, PRESENCE_TIME: beat, PRESENCE_STARTED: self.started, PRESENCE_CLOSED: self.closed}

    def mark_interrupted(self) -> None:
        """Note in the presence record that the user interrupted this worker (Ctrl-C, SIGTERM): should
        it die before recording its trial (a second press), the reaper records that trial as
        ``interrupted``, which does not use up the crash-retry limit, rather than ``worker_lost``."""
        self.info[PRESENCE_INTERRUPTED] = time.time()
        self._write(self.storage.set_study_system_attr, self.study_id, WORKER_PRESENCE_PREFIX + self.worker_id,
                    self._record(time.time()))

    def claim(self, trial_id: int) -> None:
        """Take trial ``trial_id``, just asked for: beat it from now on, stamp this worker as its
        owner and beat it once. The owner comes first, before anything can interrupt the trial: the
        interrupt summary names a launcher's trials by their owner, and the reaper reads the owner's
        presence to tell an interrupted trial from a lost one."""
        self.trial_id = trial_id
        self._write(self.storage.set_trial_system_attr, trial_id, SYS_WORKER, self.worker_id)
        self.beat_trial(trial_id)

    def beat_trial(self, trial_id: int | None) -> None:
        """Write the time into trial ``trial_id`` (the worker calls it once when the trial starts)."""
        if trial_id is not None:
            self._write(self.storage.set_trial_system_attr, trial_id, SYS_HEARTBEAT, time.time())

    def leave(self) -> None:
        """Mark the worker gone (presence time 0), so that ``live_workers`` stops listing it at once, and
        close its alive interval (what the study's time budget measures)."""
        closed = [*self.closed, [self.started, time.time()]]
        try:
            self.storage.set_study_system_attr(self.study_id, WORKER_PRESENCE_PREFIX + self.worker_id,
                                               {**self.info, PRESENCE_TIME: 0, PRESENCE_STARTED: None,
                                                PRESENCE_CLOSED: closed})
        except Exception:  # the storage is down: the presence goes stale by itself
            pass

    @staticmethod
    def _write(method: Callable[..., Any], *args: Any) -> None:
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
        """End the thread after its current beat."""
        self._stop_event.set()


def _earlier_lives(storage: optuna.storages.BaseStorage, study_id: int, worker_id: str) -> list[list[float]]:
    # A worker id used before (an explicit --worker-id, a reused pid): keep that life's intervals.
    try:
        record = storage.get_study_system_attrs(study_id).get(WORKER_PRESENCE_PREFIX + worker_id)
    except Exception:
        return []
    return [[s, e] for s, e in _record_intervals(record, now=0.0, stale_after=0.0)] if isinstance(record, dict) else []


def _record_intervals(record: Mapping[str, Any], now: float, stale_after: float) -> list[tuple[float, float]]:
    """A presence record's alive intervals: its closed ones, and the current life up to its last beat
    (up to ``now`` while the record is fresh)."""
    spans = [(float(s), float(e)) for s, e in (record.get(PRESENCE_CLOSED) or ()) if e is not None and s is not None]
    started, beat = record.get(PRESENCE_STARTED), float(record.get(PRESENCE_TIME) or 0)
    if started is not None and beat > 0:
        spans.append((float(started), now if now - beat <= stale_after else beat))
    return spans


def alive_intervals(study: optuna.Study, now: float | None = None) -> tuple[list[AliveInterval], list[AliveInterval]]:
    """Every worker's alive intervals, from the presence records (what the time budget measures).

    A live worker's current interval runs up to ``now``; a worker that stopped beating without
    leaving (killed) ends at its last beat once it is stale.

    Returns:
        ``(all intervals, the current intervals of live workers)``.
    """
    now = time.time() if now is None else now
    limit = STALE_HEARTBEATS * heartbeat_seconds()
    every, live = [], []
    for key, value in compat.storage_of(study).get_study_system_attrs(compat.study_id(study)).items():
        if not (key.startswith(WORKER_PRESENCE_PREFIX) and isinstance(value, dict)):
            continue
        worker, host, device = key[len(WORKER_PRESENCE_PREFIX):], str(value.get("host", "")), str(value.get("device", ""))
        for start, end in _record_intervals(value, now, limit):
            interval = AliveInterval(worker, host, device, start, end)
            every.append(interval)
            if end == now:
                live.append(interval)
    return every, live


def live_workers(study: optuna.Study, now: float | None = None) -> list[dict]:
    """Workers whose presence record is fresher than the stale limit.

    Args:
        study: The study.
        now: The time to judge by (default: now).

    Returns:
        One dict per live worker: ``worker`` (its id) and its presence record, sorted by id.
    """
    now = time.time() if now is None else now
    limit = STALE_HEARTBEATS * heartbeat_seconds()
    workers = []
    for key, value in compat.storage_of(study).get_study_system_attrs(compat.study_id(study)).items():
        if (key.startswith(WORKER_PRESENCE_PREFIX) and isinstance(value, dict)
                and now - value.get(PRESENCE_TIME, 0) <= limit):
            workers.append({"worker": key[len(WORKER_PRESENCE_PREFIX):], **value})
    return sorted(workers, key=lambda w: w["worker"])


def reap_stale_trials(study: optuna.Study, now: float | None = None) -> list[int]:
    """Fail RUNNING trials whose heartbeat is stale (``worker_lost``) and queue their retries.

    Args:
        study: The study.
        now: The time to judge by (default: now).

    Returns:
        The numbers of the trials that this call failed.
    """
    now = time.time() if now is None else now
    limit = STALE_HEARTBEATS * heartbeat_seconds()
    storage = compat.storage_of(study)
    if now - getattr(storage, "last_error_time", 0.0) <= limit + MAX_RETRY_DELAY_SECONDS:
        # This process just lived through a storage outage: the other workers could not write their
        # heartbeats either, and their retries may sleep out one more backoff step after it ends.
        # Give them that and the stale limit to beat again before taking trials for lost.
        return []
    reaped = []
    presence: dict[str, Any] | None = None
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = trial.system_attrs.get(SYS_HEARTBEAT)
        if last is None:
            last = trial.datetime_start.timestamp() if trial.datetime_start else now
        if now - float(last) <= limit:
            continue
        if presence is None:  # read once, and only when a trial is stale
            presence = storage.get_study_system_attrs(compat.study_id(study))
        owner = presence.get(WORKER_PRESENCE_PREFIX + str(trial.system_attrs.get(SYS_WORKER, "")))
        interrupted = isinstance(owner, dict) and owner.get(PRESENCE_INTERRUPTED) is not None
        reason = StopReason.INTERRUPTED if interrupted else StopReason.WORKER_LOST
        try:
            # State and label together, and only if the trial still runs: its owner may complete it meanwhile.
            fail_running_trial(storage, compat.trial_id(trial), record_attrs(stop_reason=reason))
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker reaped it, or it just finished
        log.warning("trial %d %s (no heartbeat for %.0f s); queued for retry", trial.number,
                    "was interrupted and its worker stopped" if interrupted else "lost its worker", now - float(last))
        reaped.append(trial.number)
        retry_once(study, trial.number, reason)
    return reaped


def retry_once(study: optuna.Study, number: int, reason: StopReason) -> bool:
    """Queue the retry of failed trial ``number``, unless one is queued already.

    Two workers may reap the same trial; only one retry per failed trial is queued.

    Returns:
        Whether this call queued a retry.
    """
    if any(TrialRecord.of(t).retry_of == number for t in study.get_trials(deepcopy=False)):
        return False
    return studies.enqueue_retry(study, studies.get_trial(study, number), reason)

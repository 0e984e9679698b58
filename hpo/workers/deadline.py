"""Deadlines: how much of the study's time budget is spent, and the worker's own deadline.

The study's deadline is the moment its time budget (:mod:`hpo.budget`) is spent, measured from
the workers' alive intervals in their presence records, so every worker on every machine reads the
same clock. A worker's own deadline is the earlier of that and its ``--timeout``. The worker loop
asks :meth:`WorkerDeadline.reason` before each trial, and the trial run at each epoch end: a trial
stopped by the study's deadline ends PRUNED (``deadline``, its value kept); one stopped by the
worker's timeout ends as on Ctrl-C (``interrupted``, queued to resume).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna

from hpo import study as studies
from hpo.budget import TimeBudget, spending_rate, spent_seconds
from hpo.trials import StopReason
from hpo.workers.liveness import alive_intervals, heartbeat_seconds


class StopAtEpochEnd(Exception):
    """Raised by the per-epoch callback when a deadline has passed; ``reason`` says which.

    ``StopReason.DEADLINE``: the study's time budget is spent (the trial ends PRUNED, value kept);
    ``StopReason.INTERRUPTED``: this worker's ``--timeout`` passed (recorded as on Ctrl-C).
    """

    def __init__(self, reason: StopReason):
        super().__init__(f"stopped at an epoch end: {reason.value}")
        self.reason = reason


@dataclass(frozen=True)
class BudgetClock:
    """Where a study stands against its time budget at one moment."""

    budget: TimeBudget
    spent: float  # budget seconds spent
    rate: float  # budget seconds spent per second now (1 for wall clock; live devices for device time)

    @property
    def left(self) -> float:
        """Budget seconds left (0 once spent)."""
        return max(self.budget.seconds - self.spent, 0.0)

    @property
    def passed(self) -> bool:
        return self.spent >= self.budget.seconds

    @property
    def seconds_to_deadline(self) -> float:
        """Wall-clock seconds until the budget is spent, at the current rate."""
        return self.left / self.rate


def budget_clock(study: optuna.Study, now: float | None = None) -> BudgetClock | None:
    """The study's budget clock, or None for a study without a time budget."""
    budget = studies.budget_of(study)
    if budget is None:
        return None
    every, live = alive_intervals(study, now)
    return BudgetClock(budget, spent_seconds(budget, every), spending_rate(budget, live))


class WorkerDeadline:
    """One worker's deadline: the study's (its time budget) or its own ``--timeout``, whichever is first.

    The study's clock is read from storage at most every heartbeat interval, and at once when the
    last reading says the deadline is due, so that checking it after every epoch costs no storage
    round trip most of the time.

    Args:
        study: The study.
        timeout: The worker's own wall-clock limit in seconds, or None.
    """

    def __init__(self, study: optuna.Study, timeout: float | None = None):
        self.study = study
        self.timeout_at = time.monotonic() + timeout if timeout is not None else None
        self._read_at = -float("inf")
        self._due_at: float | None = None  # monotonic time the last reading expects the study's deadline
        self._passed = False

    def reason(self) -> StopReason | None:
        """``DEADLINE`` once the study's budget is spent, ``INTERRUPTED`` once the timeout passed, else None."""
        now = time.monotonic()
        if not self._passed and (now - self._read_at >= heartbeat_seconds() or
                                 (self._due_at is not None and now >= self._due_at)):
            self._read(now)
        if self._passed:
            return StopReason.DEADLINE
        if self.timeout_at is not None and now >= self.timeout_at:
            return StopReason.INTERRUPTED
        return None

    def refresh(self) -> None:
        """Read the study's clock now (before asking for a trial: the budget may have changed)."""
        self._read(time.monotonic())

    def _read(self, now: float) -> None:
        clock = budget_clock(self.study)
        self._read_at = now
        self._passed = clock is not None and clock.passed
        self._due_at = None if clock is None else now + clock.seconds_to_deadline

    def check(self) -> None:
        """The per-epoch check.

        Raises:
            StopAtEpochEnd: a deadline has passed.
        """
        reason = self.reason()
        if reason is not None:
            raise StopAtEpochEnd(reason)

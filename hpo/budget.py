"""A study's time budget: its syntax (``--budget 5m``, ``budget: {minutes: 5}``) and how it is spent.

A budget is wall-clock time or device time, study-wide across every worker and machine:

- wall clock (``s``, ``m``, ``h``; ``seconds``/``minutes``/``hours``): the measure of the union of
  the intervals during which any worker of the study was alive, so pauses between runs do not count;
- device time (``dh``; ``device_hours``): the time each worker slot held its device, summed over the
  slots, where a CPU counts as one device per host (CPU workers on one host count once: their
  intervals are merged per host before summing).

Everything here is pure: the alive intervals come from the workers' presence records
(:func:`hpo.workers.liveness.alive_intervals`), and :mod:`hpo.workers.deadline` applies the budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hpo.errors import ConfigError
from hpo.trials import BUDGET_KEY

CPU = "cpu"

# Study-file keys of ``budget:`` and the seconds one unit of each is.
_WALL_KEYS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0}
_DEVICE_KEY = "device_hours"
BUDGET_KEYS = (*_WALL_KEYS, _DEVICE_KEY)

# ``--budget`` units: the number of seconds and whether the unit is device time.
_UNITS = {
    "s": (1.0, False), "sec": (1.0, False), "second": (1.0, False), "seconds": (1.0, False),
    "m": (60.0, False), "min": (60.0, False), "minute": (60.0, False), "minutes": (60.0, False),
    "h": (3600.0, False), "hour": (3600.0, False), "hours": (3600.0, False),
    "dh": (3600.0, True), "device-hour": (3600.0, True), "device-hours": (3600.0, True),
}
_TEXT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z-]+)\s*", re.IGNORECASE)
BUDGET_SYNTAX = "a number and a unit: 90s, 5m, 2h, or 3dh (device-hours; also written '3 device-hours')"


@dataclass(frozen=True)
class TimeBudget:
    """A study's time budget.

    Attributes:
        seconds: How much time the study may spend, in seconds.
        device: True for device time (summed over worker slots, a CPU once per host), False for wall clock.
    """

    seconds: float
    device: bool = False

    def to_dict(self) -> dict[str, float]:
        """The stored form, as a study file writes it: ``{seconds: ...}`` or ``{device_hours: ...}``."""
        return {_DEVICE_KEY: self.seconds / 3600.0} if self.device else {"seconds": self.seconds}

    def describe(self) -> str:
        """``5m``, ``2h30m``, ``3 device-hours``: how status lines name the budget."""
        if self.device:
            return f"{self.seconds / 3600.0:g} device-hours"
        return format_seconds(self.seconds)


def format_seconds(seconds: float | None) -> str:
    """``1h05m``, ``4m09s``, ``-`` for None (what the live display and ``hpo status`` show)."""
    if seconds is None:
        return "-"
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def parse_budget(text: str, option: str = "--budget") -> TimeBudget:
    """A budget from the command line: ``90s``, ``5m``, ``1.5h``, ``3dh`` or ``3 device-hours``.

    Raises:
        ConfigError: anything else, or a budget that is not > 0 (one sentence naming ``option``).
    """
    match = _TEXT.fullmatch(text or "")
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if unit is None:
        raise ConfigError(f"{option} {text!r} is not a duration; write {BUDGET_SYNTAX}")
    seconds = float(match.group(1)) * unit[0]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{option} must be more than 0 (got {text!r}); write {BUDGET_SYNTAX}")
    return TimeBudget(seconds, device=unit[1])


def budget_from_mapping(raw: Any, where: str = BUDGET_KEY, origin: str = "") -> TimeBudget:
    """A budget from a study file (``{minutes: 5}``, ``{hours: 2}``, ``{device_hours: 3}``, ``{seconds: 90}``).

    Args:
        raw: The mapping.
        where: The key's name in messages.
        origin: The file's name, prefixed to messages.

    Raises:
        ConfigError: not a mapping with exactly one of those keys and a number > 0.
    """
    try:
        return _budget_from_mapping(raw, where)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}" if origin else str(exc)) from None


def _budget_from_mapping(raw: Any, where: str) -> TimeBudget:
    example = f"{where} must be a mapping with one of {', '.join(BUDGET_KEYS)}, e.g. {{minutes: 5}}"
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ConfigError(f"{example} (got {raw!r})")
    (key, value), = raw.items()
    if key not in BUDGET_KEYS:
        raise ConfigError(f"unknown key {where}.{key!s}; {example}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}.{key} must be a number > 0 (got {value!r})")
    if key == _DEVICE_KEY:
        return TimeBudget(float(value) * 3600.0, device=True)
    return TimeBudget(float(value) * _WALL_KEYS[key])


def stored_budget(raw: Any) -> TimeBudget | None:
    """The budget a study stores (:meth:`TimeBudget.to_dict`), or None (none stored, or unreadable)."""
    if raw is None:
        return None
    try:
        return budget_from_mapping(raw)
    except ConfigError:
        return None


# ---------------------------------------------------------------------------------------------
# Spending: intervals


@dataclass(frozen=True)
class AliveInterval:
    """One stretch of time a worker was alive (unix seconds), with where it ran."""

    worker: str
    host: str
    device: str
    start: float
    end: float


def union_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """The measure of the union of ``(start, end)`` intervals (empty or reversed ones count 0)."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def device_key(interval: AliveInterval) -> tuple[str, str]:
    """The device an interval held: a CPU is one device per host; any other device, one per worker slot."""
    if interval.device == CPU:
        return (interval.host, CPU)
    return (interval.worker, interval.device)


def wall_seconds(intervals: Iterable[AliveInterval]) -> float:
    """Wall-clock time spent: the union of every worker's alive intervals."""
    return union_seconds((i.start, i.end) for i in intervals)


def device_seconds(intervals: Iterable[AliveInterval]) -> float:
    """Device time spent: per device (:func:`device_key`), the union of its intervals, summed."""
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for i in intervals:
        groups.setdefault(device_key(i), []).append((i.start, i.end))
    return sum(union_seconds(spans) for spans in groups.values())


def spent_seconds(budget: TimeBudget, intervals: Iterable[AliveInterval]) -> float:
    """How much of ``budget`` the intervals spent."""
    return device_seconds(intervals) if budget.device else wall_seconds(intervals)


def spending_rate(budget: TimeBudget, live: Iterable[AliveInterval]) -> float:
    """Budget seconds spent per second now: 1 for wall clock, the number of live devices for device time."""
    if not budget.device:
        return 1.0
    return float(max(len({device_key(i) for i in live}), 1))


def estimate_left(mean_trial_seconds: float | None, remaining_trials: int | None, workers: int) -> float | None:
    """Time left without a budget: mean duration of finished trials × remaining trials / live workers."""
    if mean_trial_seconds is None or remaining_trials is None:
        return None
    return mean_trial_seconds * max(remaining_trials, 0) / max(workers, 1)

"""What a study is doing now: counts by state, best value, throughput, time left, live workers.

``progress()`` computes plain data from storage (testable without a terminal); ``render()`` turns
it into a Rich table for ``hpo run``'s live display and ``hpo status``.

Time left: with a time budget, the budget minus what the workers' alive intervals spent (it only
decreases while workers run, and stands still between runs); without one, an estimate: the mean
duration of finished trials × the trials left to N / the live workers. :class:`Countdown` keeps the
figure one run displays from ever growing between its ticks.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from hpo import study as studies
from hpo.budget import estimate_left, format_seconds
from hpo.trials import INTEGER_FIELDS, PRIMARY_OBJECTIVE, VAL_ACCURACY, TrialRecord


@dataclass
class Progress:
    """A snapshot of one study."""

    name: str
    n_trials: int | None  # None: no limit but the time budget
    counts: dict[str, int]
    stop_reasons: dict[str, int]
    best: list[dict] = field(default_factory=list)  # best trial(s): number, values, params
    finished_per_hour: float | None = None
    time_left_seconds: float | None = None  # of the time budget when there is one, else estimated
    workers: list[dict] = field(default_factory=list)
    objectives: tuple[str, ...] = (PRIMARY_OBJECTIVE,)
    budget: str | None = None  # the time budget, described ("5m", "3 device-hours"), or None
    device_budget: bool = False  # time_left_seconds is device time

    @property
    def trials_text(self) -> str:
        """``3/20``, or ``3`` without a limit N."""
        return f"{self.finished}/{self.n_trials}" if self.n_trials is not None else str(self.finished)

    @property
    def time_left_text(self) -> str:
        """``4m10s left``, ``4m10s of 5m00s left``, or ``-``."""
        if self.time_left_seconds is None:
            return "-"
        unit = " device time" if self.device_budget else ""
        of = f" of {self.budget}" if self.budget else " (estimated)"
        return f"{format_seconds(self.time_left_seconds)}{unit}{of} left"

    @property
    def finished(self) -> int:
        return self.counts.get("COMPLETE", 0) + self.counts.get("PRUNED", 0)


def progress(study: optuna.Study, since: float | None = None, finished_at_start: int = 0) -> Progress:
    """Snapshot of ``study``; throughput counts trials finished since ``since`` (unix time).

    Args:
        study: the study.
        since: start of the current run (for throughput and time left); None for the whole study.
        finished_at_start: finished trials when the run started.
    """
    from hpo.workers import live_workers

    trials = study.get_trials(deepcopy=False)
    counts = {state.name: 0 for state in TrialState}
    reasons: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name] += 1
        reason = TrialRecord.of(trial).stop_reason_text
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
    objectives = tuple(study.metric_names or ["value"] * len(study.directions))
    best = []
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best_trials = study.best_trials if len(study.directions) > 1 else [study.best_trial]
        best = [_best_entry(study, t, objectives) for t in best_trials[:5]]
    snapshot = Progress(
        name=study.study_name,
        n_trials=studies.n_trials_of(study),
        counts=counts,
        stop_reasons=reasons,
        best=best,
        workers=live_workers(study),
        objectives=objectives,
    )
    _time_left(study, snapshot, trials)
    if since is not None:
        elapsed = max(time.time() - since, 1e-9)
        done = snapshot.finished - finished_at_start
        if done > 0:
            snapshot.finished_per_hour = done / elapsed * 3600
    return snapshot


def _time_left(study: optuna.Study, snapshot: Progress, trials: list) -> None:
    from hpo.workers.deadline import budget_clock

    clock = budget_clock(study)
    if clock is not None:
        snapshot.budget, snapshot.device_budget = clock.budget.describe(), clock.budget.device
        snapshot.time_left_seconds = clock.left
        return
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                 if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.datetime_start and t.datetime_complete]
    remaining = None if snapshot.n_trials is None else snapshot.n_trials - snapshot.finished
    if durations and snapshot.workers:
        mean = sum(durations) / len(durations)
        snapshot.time_left_seconds = estimate_left(mean, remaining, len(snapshot.workers))


class Countdown:
    """The time left as one run displays it: never more than at its previous tick.

    Call it with each tick's figure; it returns the figure to show (the previous one when the new
    one is larger or unknown).
    """

    def __init__(self) -> None:
        self.shown: float | None = None

    def __call__(self, seconds: float | None) -> float | None:
        if seconds is not None and (self.shown is None or seconds < self.shown):
            self.shown = seconds
        return self.shown


def _best_entry(study: optuna.Study, trial: optuna.trial.FrozenTrial, objectives: tuple[str, ...]) -> dict:
    """A best trial: number, values, params, and ``interval``: its validation accuracy's 95% interval
    (from the images it was measured on, stored or derived from the dataset definition), or None."""
    from hpo.analysis.intervals import accuracy_interval, measured_on
    from hpo.data.sizes import split_sizes_of

    record = TrialRecord.of(trial)
    accuracy = trial.values[0] if objectives and objectives[0] in (VAL_ACCURACY, "value") else None
    definition = study.user_attrs.get(studies.ATTR_DEFINITION) or {}
    sizes = split_sizes_of(definition.get("dataset") if isinstance(definition, dict) else None)
    seen = [accuracy, *(entry.get(VAL_ACCURACY) for entry in record.epochs)]
    n = measured_on(record.n_val_images, sizes.val if sizes else None, seen)
    return {"number": trial.number, "values": trial.values, "params": trial.params,
            "interval": accuracy_interval(accuracy, n)}


def _fmt_value(name: str, value: float, interval: tuple[float, float] | None = None) -> str:
    """An objective value as shown; an accuracy with its interval: ``0.7013 [0.6689, 0.7318]``."""
    if name in (VAL_ACCURACY, "value"):
        from hpo.analysis.intervals import format_interval

        return format_interval(value, interval)
    if name in INTEGER_FIELDS:  # counts: parameters, MACs
        return f"{value:,.0f}"
    return f"{value:.1f}"


def summary_line(p: Progress) -> str:
    """One line for logs and non-interactive output."""
    c = p.counts
    best = ""
    if p.best:
        first = p.best[0]
        best = " best " + ", ".join(f"{n}={_fmt_value(n, v, first.get('interval') if i == 0 else None)}"
                                    for i, (n, v) in enumerate(zip(p.objectives, first["values"])))
        best += f" (trial {p.best[0]['number']})"
    rate = f" {p.finished_per_hour:.1f}/h" if p.finished_per_hour else ""
    left = f", {p.time_left_text}" if p.time_left_seconds is not None else ""
    return (
        f"{p.name}: {p.trials_text} finished (complete {c['COMPLETE']}, pruned {c['PRUNED']}, "
        f"failed {c['FAIL']}, running {c['RUNNING']}, waiting {c['WAITING']}){best}{rate}{left}"
    )


def _workers_table(live: list[dict]):
    """The live workers and what their presence records say (the pid means nothing on another host)."""
    from rich.table import Table

    from hpo.workers.liveness import WorkerInfo

    fields = [f.name for f in dataclasses.fields(WorkerInfo) if f.name != "pid"]
    workers = Table(title="live workers", title_justify="left")
    for column in ("worker", *fields):
        workers.add_column(column.replace("_", " "))
    for w in live:
        workers.add_row(w["worker"], *(str(w.get(name, "")) for name in fields))
    return workers


def render(p: Progress):
    """A Rich renderable for the live display and ``hpo status``."""
    from rich.console import Group
    from rich.table import Table

    c = p.counts
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{p.name}[/]", f"finished [bold]{p.trials_text}[/]",
        f"complete {c['COMPLETE']}", f"pruned {c['PRUNED']}", f"[red]failed {c['FAIL']}[/]",
        f"running {c['RUNNING']}", f"waiting {c['WAITING']}",
    )
    head.add_row(
        "throughput", f"{p.finished_per_hour:.1f} trials/h" if p.finished_per_hour else "-",
        "time left", p.time_left_text, "workers", str(len(p.workers)), "",
    )
    parts = [head]
    if p.stop_reasons:
        parts.append("stop reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(p.stop_reasons.items())))
    if p.best:
        best = Table(title="best trials" if len(p.best) > 1 else "best trial", title_justify="left")
        best.add_column("trial", justify="right")
        for name in p.objectives:
            best.add_column(name, justify="right")
        best.add_column("parameters")
        for b in p.best:
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in b["params"].items())
            best.add_row(str(b["number"]), *(_fmt_value(n, v, b.get("interval") if i == 0 else None)
                                             for i, (n, v) in enumerate(zip(p.objectives, b["values"]))), params)
        parts.append(best)
    if p.workers:
        parts.append(_workers_table(p.workers))
    return Group(*parts)


class LiveDisplay:
    """``hpo run``'s live display: a Rich table on a terminal, otherwise one summary line on stderr
    whenever the counts change. Called on every tick of the launcher; redraws at most every 2 s.

    Args:
        study: The study.
        started: Unix time the run began (for throughput).
        finished_at_start: Finished trials when it began.
    """

    def __init__(self, study: optuna.Study, started: float, finished_at_start: int):
        self.study, self.started, self.finished_at_start = study, started, finished_at_start
        self.countdown = Countdown()  # the time left shown never grows between ticks
        self.live = None
        self.last_line = ""
        self.last_time = 0.0

    def __enter__(self) -> LiveDisplay:
        if sys.stdout.isatty():
            from rich.live import Live

            self.live = Live(refresh_per_second=1, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self) -> None:
        now = time.time()
        if now - self.last_time < 2:
            return
        self.last_time = now
        snapshot = progress(self.study, self.started, self.finished_at_start)
        snapshot.time_left_seconds = self.countdown(snapshot.time_left_seconds)
        if self.live is not None:
            self.live.update(render(snapshot))
        else:
            line = summary_line(snapshot)
            if line != self.last_line:
                print(line, file=sys.stderr, flush=True)
                self.last_line = line

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
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpo import study as studies
from hpo.budget import estimate_left, format_seconds
from hpo.trials import (
    INTEGER_FIELDS,
    PRIMARY_OBJECTIVE,
    QUEUE_ONLY_KEY,
    REFIT_SOURCE_KEY,
    SYS_WARM_FROM,
    SYS_WORKER,
    VAL_ACCURACY,
    StopReason,
    TrialRecord,
    history_value,
)

if TYPE_CHECKING:
    from hpo.data.sizes import SplitSizes


@dataclass
class Progress:
    """A snapshot of one study."""

    name: str
    n_trials: int | None  # None: no limit but the time budget
    counts: dict[str, int]
    stop_reasons: dict[str, int]
    best: list[dict] = field(default_factory=list)  # best trial(s): number, values, params; a front's first objective's best first
    front_size: int = 0  # several objectives: trials on the front (best holds its first 5)
    refits_of: str | None = None  # a refit study: the search study whose status shows its mean ± std
    finished_per_hour: float | None = None
    time_left_seconds: float | None = None  # of the time budget when there is one, else estimated
    workers: list[dict] = field(default_factory=list)
    objectives: tuple[str, ...] = (PRIMARY_OBJECTIVE,)
    budget: str | None = None  # the time budget, described ("5m", "3 device-hours"), or None
    device_budget: bool = False  # time_left_seconds is device time
    warm_start: str = ""  # which trials are warm-start trials, and from where (hpo.warm_start.describe_marks)
    running: list[dict] = field(default_factory=list)  # per running trial: number, worker, epoch, epochs, accuracy

    @property
    def trials_text(self) -> str:
        """``3/20``, or ``3`` without a limit N."""
        # A study that hpo did not create has no N (0): show the count alone.
        return f"{self.finished}/{self.n_trials}" if self.n_trials else str(self.finished)

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
    from hpo.warm_start import describe_marks, marks_of
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
    front_size = 0
    attrs = study.user_attrs  # read once: the definition (sizes, epochs) and the refit marks
    definition = attrs.get(studies.ATTR_DEFINITION)
    definition = definition if isinstance(definition, dict) else {}
    refits_of = attrs.get(REFIT_SOURCE_KEY) if attrs.get(QUEUE_ONLY_KEY) else None
    # A refit study's runs are seeds of chosen configurations: its "best" would be a lucky seed.
    if complete and refits_of is None:
        if len(study.directions) > 1:
            best_trials = _front_by_first_objective(study)
            front_size = len(best_trials)
        else:
            best_trials = [study.best_trial]
        from hpo.data.sizes import split_sizes_of

        sizes = split_sizes_of(definition.get("dataset"))
        best = [_best_entry(t, objectives, sizes) for t in best_trials[:5]]
    epochs = definition.get("epochs") if isinstance(definition.get("epochs"), int) else None
    snapshot = Progress(
        name=study.study_name,
        n_trials=studies.n_trials_of(study),
        counts=counts,
        stop_reasons=reasons,
        best=best,
        front_size=front_size,
        refits_of=refits_of,
        workers=live_workers(study),
        objectives=objectives,
        warm_start=describe_marks(marks_of(trials)),
        running=[_running_entry(t, epochs) for t in trials if t.state == TrialState.RUNNING],
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


def _running_entry(trial: optuna.trial.FrozenTrial, epochs: int | None) -> dict:
    """A running trial as the live display shows it, from what its worker wrote at its last epoch end."""
    history = TrialRecord.of(trial).epochs
    last = history[-1] if history else None
    return {"number": trial.number, "worker": trial.system_attrs.get(SYS_WORKER) or "-",
            "epoch": history_value(last, "epoch") or (len(history) if history else 0), "epochs": epochs,
            "accuracy": history_value(last, VAL_ACCURACY)}


def running_text(entry: dict) -> str:
    """``trial 4: epoch 3/15, last 61.20%``: one running trial, as the live display shows it."""
    from hpo.analysis.intervals import format_accuracy

    of = f"/{entry['epochs']}" if entry.get("epochs") else ""
    last = f", last {format_accuracy(entry['accuracy'])}" if entry.get("accuracy") is not None else ""
    return f"trial {entry['number']}: epoch {entry['epoch']}{of}{last}"


def _running_table(running: list[dict]):
    from rich.table import Table

    table = Table(title="running trials", title_justify="left")
    for column, justify in (("trial", "right"), ("worker", "left"), ("epoch", "right"), ("last val accuracy", "right")):
        table.add_column(column, justify=justify)
    from hpo.analysis.intervals import format_accuracy

    for entry in running:
        of = f"/{entry['epochs']}" if entry.get("epochs") else ""
        table.add_row(str(entry["number"]), str(entry["worker"]), f"{entry['epoch']}{of}", format_accuracy(entry["accuracy"]))
    return table


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


def _front_by_first_objective(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's front, the first objective's best first (validation accuracy: the most accurate),
    then by trial number: the trial a one-line summary names is the front's most accurate, not its oldest."""
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return sorted(study.best_trials, key=lambda t: (sign * t.values[0], t.number))


def _best_entry(trial: optuna.trial.FrozenTrial, objectives: tuple[str, ...], sizes: SplitSizes | None) -> dict:
    """A best trial: number, values, params, and ``interval``: its validation accuracy's 95% interval
    (from the images it was measured on, stored or derived from the dataset definition's ``sizes``), or None."""
    from hpo.analysis.intervals import accuracy_interval, measured_on

    record = TrialRecord.of(trial)
    accuracy = trial.values[0] if objectives and objectives[0] in (VAL_ACCURACY, "value") else None
    seen = [accuracy, *(entry.get(VAL_ACCURACY) for entry in record.epochs)]
    n = measured_on(record.n_val_images, sizes.val if sizes else None, seen)
    return {"number": trial.number, "values": trial.values, "params": trial.params,
            "interval": accuracy_interval(accuracy, n), "warm_from": trial.system_attrs.get(SYS_WARM_FROM)}


def _fmt_value(name: str, value: float, interval: tuple[float, float] | None = None) -> str:
    """An objective value as shown; an accuracy with its interval: ``70.13% [66.9, 73.2]``."""
    if name in (VAL_ACCURACY, "value"):
        from hpo.analysis.intervals import format_accuracy

        return format_accuracy(value, interval)
    if name in INTEGER_FIELDS:  # counts: parameters, MACs
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _front_top(p: Progress) -> str:
    """What comes first in a multi-objective study's front as shown: ``most accurate`` (or ``best OBJ``)."""
    return "most accurate" if p.objectives[0] == VAL_ACCURACY else f"best {p.objectives[0]}"


def _past_budget(p: Progress) -> int:
    """FAIL trials that workers asking at once created past N: ended ``budget`` before any training."""
    return p.stop_reasons.get(StopReason.BUDGET.value, 0)


def _failed_text(p: Progress) -> str:
    """``failed 2``, or ``failed 2 (1 budget: past N, never trained)``: a budget trial is no fault."""
    past = _past_budget(p)
    return f"failed {p.counts['FAIL']}" + (f" ({past} budget: past N, never trained)" if past else "")


def summary_line(p: Progress) -> str:
    """One line for logs and non-interactive output."""
    c = p.counts
    best = ""
    if p.best:
        first = p.best[0]
        values = ", ".join(f"{n}={_fmt_value(n, v, first.get('interval') if i == 0 else None)}"
                           for i, (n, v) in enumerate(zip(p.objectives, first["values"])))
        if p.front_size:  # several objectives: no single best; the front's best by its first objective
            best = f" front of {p.front_size}, {_front_top(p)}: trial {first['number']} {values}"
        else:
            best = f" best {values} (trial {first['number']})"
    if p.refits_of:
        best = f" seed runs; mean ± std per configuration: hpo status {p.refits_of}"
    rate = f" {p.finished_per_hour:.1f}/h" if p.finished_per_hour else ""
    left = f", {p.time_left_text}" if p.time_left_seconds is not None else ""
    return (
        f"{p.name}: {p.trials_text} finished (complete {c['COMPLETE']}, pruned {c['PRUNED']}, "
        f"{_failed_text(p)}, running {c['RUNNING']}, waiting {c['WAITING']}){best}{rate}{left}"
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
        f"complete {c['COMPLETE']}", f"pruned {c['PRUNED']}",
        f"[red]{_failed_text(p)}[/]" if c["FAIL"] > _past_budget(p) else _failed_text(p),
        f"running {c['RUNNING']}", f"waiting {c['WAITING']}",
    )
    head.add_row(
        "throughput", f"{p.finished_per_hour:.1f} trials/h" if p.finished_per_hour else "-",
        "time left", p.time_left_text, "workers", str(len(p.workers)), "",
    )
    parts = [head]
    if p.stop_reasons:
        parts.append("stop reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(p.stop_reasons.items())))
    if p.warm_start:
        parts.append(f"warm start: {p.warm_start}")
    if p.refits_of:
        parts.append(f"refits over seeds of {p.refits_of}'s chosen trials; their mean ± std: hpo status {p.refits_of}")
    if p.best:
        title = "best trial"
        if p.front_size:
            shown = f"{len(p.best)} of {p.front_size}, " if p.front_size > len(p.best) else ""
            title = f"the front ({shown}{_front_top(p)} first)"
        best = Table(title=title, title_justify="left")
        best.add_column("trial", justify="right")
        for name in p.objectives:
            best.add_column(name, justify="right")
        warm = any(b.get("warm_from") for b in p.best)
        if warm:
            best.add_column("warm from")
        best.add_column("parameters")
        for b in p.best:
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in b["params"].items())
            best.add_row(str(b["number"]), *(_fmt_value(n, v, b.get("interval") if i == 0 else None)
                                             for i, (n, v) in enumerate(zip(p.objectives, b["values"]))),
                         *([b.get("warm_from") or ""] if warm else []), params)
        parts.append(best)
    if p.running:
        parts.append(_running_table(p.running))
    if p.workers:
        parts.append(_workers_table(p.workers))
    return Group(*parts)


def finished_line(trial: optuna.trial.FrozenTrial, objectives: tuple[str, ...]) -> str:
    """One line for a trial that has just finished: ``trial 3 complete: val_accuracy=70.13%, ... (4 epochs)``,
    ``trial 4 pruned (pruned) at epoch 2: val_accuracy=41.25%`` or ``trial 5 failed (oom): MESSAGE``."""
    record = TrialRecord.of(trial)
    reason = record.stop_reason_text
    state = "failed" if trial.state == TrialState.FAIL else trial.state.name.lower()
    head = f"trial {trial.number} {state}{f' ({reason})' if reason and trial.state != TrialState.COMPLETE else ''}"
    if trial.state == TrialState.FAIL:
        return f"{head}: {record.error}" if record.error else head
    values = trial.values or []
    shown = ", ".join(f"{n}={_fmt_value(n, v)}" for n, v in zip(objectives, values))
    if not shown and record.epochs:  # a pruned trial reports one intermediate value, not its objectives
        shown = f"{VAL_ACCURACY}={_fmt_value(VAL_ACCURACY, history_value(record.epochs[-1], VAL_ACCURACY) or 0.0)}"
    epochs = len(record.epochs)
    at = f" at epoch {epochs}" if trial.state == TrialState.PRUNED and epochs else ""
    run = f" ({epochs} epoch{'s' if epochs != 1 else ''})" if trial.state == TrialState.COMPLETE and epochs else ""
    return f"{head}{at}: {shown}{run}" if shown else f"{head}{at}"


class LiveDisplay:
    """``hpo run``'s live display, called on every tick of the launcher.

    On a terminal: a Rich table (counts, best trials, each running trial's epoch and last accuracy,
    live workers), redrawn at most every 2 s. Without one (a pipe, a log file, CI): one line on stderr
    per trial that finishes during the run, and while trials run without finishing, one
    ``still running`` line a minute, so a long run writes a few lines per trial, not one per tick.

    Args:
        study: The study.
        started: Unix time the run began (for throughput).
        finished_at_start: Finished trials when it began.
        stream: Where lines go without a terminal (default stderr).
        interactive: Draw the table (default: whether stdout is a terminal).
    """

    REDRAW_SECONDS = 2.0
    STILL_RUNNING_SECONDS = 60.0

    def __init__(self, study: optuna.Study, started: float, finished_at_start: int, *, stream=None,
                 interactive: bool | None = None):
        self.study, self.started, self.finished_at_start = study, started, finished_at_start
        self.countdown = Countdown()  # the time left shown never grows between ticks
        self.stream = stream
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self.live = None
        self.last_time = 0.0
        self.last_line_time = time.monotonic()
        self.reported: set[int] = set()

    def __enter__(self) -> LiveDisplay:
        # Trials that finished before this run are not news.
        self.reported = {t.number for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()}
        if self.interactive:
            from rich.live import Live

            self.live = Live(refresh_per_second=1, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
        else:
            self._report_finished()  # the last trials, even when the final tick fell inside the redraw limit

    def __call__(self) -> None:
        now = time.time()
        if now - self.last_time < self.REDRAW_SECONDS:
            return
        self.last_time = now
        if self.live is not None:
            snapshot = progress(self.study, self.started, self.finished_at_start)
            snapshot.time_left_seconds = self.countdown(snapshot.time_left_seconds)
            self.live.update(render(snapshot))
            return
        if self._report_finished():
            return
        if time.monotonic() - self.last_line_time >= self.STILL_RUNNING_SECONDS:
            snapshot = progress(self.study, self.started, self.finished_at_start)
            snapshot.time_left_seconds = self.countdown(snapshot.time_left_seconds)
            running = "; ".join(running_text(entry) for entry in snapshot.running)
            self._print(f"still running: {running or 'no trial yet'} ({summary_line(snapshot)})")

    def _report_finished(self) -> bool:
        trials = self.study.get_trials(deepcopy=False)
        objectives = tuple(self.study.metric_names or ["value"] * len(self.study.directions))
        new = [t for t in trials if t.state.is_finished() and t.number not in self.reported]
        for trial in sorted(new, key=lambda t: t.number):
            self.reported.add(trial.number)
            self._print(finished_line(trial, objectives))
        return bool(new)

    def _print(self, line: str) -> None:
        print(line, file=self.stream or sys.stderr, flush=True)
        self.last_line_time = time.monotonic()

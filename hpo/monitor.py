"""What a study is doing now: counts by state, best value, throughput, time left, live workers.

``progress()`` computes plain data from storage (testable without a terminal); ``render()`` turns
it into a Rich table for ``hpo run``'s live display and ``hpo status``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from hpo import study as studies
from hpo.trials import INTEGER_FIELDS, PRIMARY_OBJECTIVE, VAL_ACCURACY, TrialRecord


@dataclass
class Progress:
    """A snapshot of one study."""

    name: str
    n_trials: int
    counts: dict[str, int]
    stop_reasons: dict[str, int]
    best: list[dict] = field(default_factory=list)  # best trial(s): number, values, params
    finished_per_hour: float | None = None
    eta_seconds: float | None = None
    workers: list[dict] = field(default_factory=list)
    objectives: tuple[str, ...] = (PRIMARY_OBJECTIVE,)

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
        best = [{"number": t.number, "values": t.values, "params": t.params} for t in best_trials[:5]]
    snapshot = Progress(
        name=study.study_name,
        n_trials=studies.n_trials_of(study),
        counts=counts,
        stop_reasons=reasons,
        best=best,
        workers=live_workers(study),
        objectives=objectives,
    )
    if since is not None:
        elapsed = max(time.time() - since, 1e-9)
        done = snapshot.finished - finished_at_start
        if done > 0:
            snapshot.finished_per_hour = done / elapsed * 3600
            remaining = max(snapshot.n_trials - snapshot.finished, 0)
            snapshot.eta_seconds = remaining / (done / elapsed)
    return snapshot


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _fmt_value(name: str, value: float) -> str:
    if name in (VAL_ACCURACY, "value"):
        return f"{value:.4f}"
    if name in INTEGER_FIELDS:  # counts: parameters, MACs
        return f"{value:,.0f}"
    return f"{value:.1f}"


def summary_line(p: Progress) -> str:
    """One line for logs and non-interactive output."""
    c = p.counts
    best = ""
    if p.best:
        best = " best " + ", ".join(f"{n}={_fmt_value(n, v)}" for n, v in zip(p.objectives, p.best[0]["values"]))
        best += f" (trial {p.best[0]['number']})"
    rate = f" {p.finished_per_hour:.1f}/h, {_fmt_seconds(p.eta_seconds)} left" if p.finished_per_hour else ""
    return (
        f"{p.name}: {p.finished}/{p.n_trials} finished (complete {c['COMPLETE']}, pruned {c['PRUNED']}, "
        f"failed {c['FAIL']}, running {c['RUNNING']}, waiting {c['WAITING']}){best}{rate}"
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
        f"[bold]{p.name}[/]", f"finished [bold]{p.finished}[/]/{p.n_trials}",
        f"complete {c['COMPLETE']}", f"pruned {c['PRUNED']}", f"[red]failed {c['FAIL']}[/]",
        f"running {c['RUNNING']}", f"waiting {c['WAITING']}",
    )
    head.add_row(
        "throughput", f"{p.finished_per_hour:.1f} trials/h" if p.finished_per_hour else "-",
        "time left", _fmt_seconds(p.eta_seconds), "workers", str(len(p.workers)), "",
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
            best.add_row(str(b["number"]), *(_fmt_value(n, v) for n, v in zip(p.objectives, b["values"])), params)
        parts.append(best)
    if p.workers:
        parts.append(_workers_table(p.workers))
    return Group(*parts)

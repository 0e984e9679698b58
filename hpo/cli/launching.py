"""What ``hpo run``, ``hpo worker`` and ``hpo refit`` share once their workers are planned: the live
display while they run, the summary line, and on Ctrl-C the trials interrupted and the resume command."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def launch_with_display(optuna_study, options, slots, run_dir: Path, resume: str) -> int:
    """Start the workers of ``options`` on ``slots`` under the live display, print the summary line.

    Returns:
        The workers' exit code (0: all ended normally).

    Raises:
        typer.Exit: 130 after Ctrl-C, having printed which trials stopped and ``resume``, the
            command that resumes them.
    """
    from hpo import monitor, workers as worker_mod
    from hpo.workers.interrupts import interrupt_line

    start = monitor.progress(optuna_study)
    started = time.time()
    tick = monitor.LiveDisplay(optuna_study, started, start.finished)
    with tick:
        result = worker_mod.launch(options, slots, log_dir=run_dir, on_tick=tick)
    if result.exit_code == 130:
        typer.echo(interrupt_line(optuna_study, result, resume, since=started), err=True)
        raise typer.Exit(130)
    typer.echo(monitor.summary_line(monitor.progress(optuna_study, started, start.finished)))
    return result.exit_code


def exit_on_worker_failure(code: int, run_dir: Path) -> None:
    """After the workers ended: a failed worker's code becomes the command's (2 stays 2, anything else 1),
    with the tail of its log."""
    from hpo import workers as worker_mod

    if code:
        typer.echo(f"error: a worker exited with code {code}; its log is in {run_dir}\n{worker_mod.worker_log_tail(run_dir)}",
                   err=True)
        raise typer.Exit(2 if code == 2 else 1)

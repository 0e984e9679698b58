"""Read-only views of a stored study: ``status``, ``pareto``, ``export`` and ``dashboard``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hpo.cli.common import (
    ArtifactsOpt, StorageFileOpt, StorageOpt, StudyOpt, api_study, app, load_stored_study, one_study, open_storage_from,
    user_errors,
)
from hpo.errors import ConfigError


@app.command()
@user_errors
def status(
    study: Annotated[Optional[str], typer.Argument(help="A study name; all studies when omitted.")] = None,
    study_opt: Annotated[Optional[str], typer.Option("--study", "-s", help="The study, as with every other command "
                                                     "(the same as the argument).")] = None,
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
):
    """List the studies in storage, or one study's trial counts, best trials, running trials and live workers.

    Example: hpo status --study cpu-quick (or hpo status cpu-quick)
    """
    import optuna
    from rich.console import Console

    from hpo import monitor
    from hpo.analysis.refits import collect_refits, summary_text
    from hpo.storage import mask_url
    from hpo.study import get_trial
    from hpo.trials import TrialRecord

    study = one_study(study, study_opt)
    url, storage_obj = open_storage_from(storage, storage_file, must_exist=True)
    console = Console()
    if study is None:
        summaries = optuna.get_all_study_summaries(storage_obj, include_best_trial=False)
        if not summaries:
            typer.echo(f"no studies in {mask_url(url)}; start one with `hpo run --study NAME`")
            return
        for summary in summaries:
            # One plain line per study (no wrapping at the terminal's width: grep and logs read it whole).
            typer.echo(monitor.summary_line(monitor.progress(optuna.load_study(study_name=summary.study_name, storage=storage_obj))))
        return
    stored = load_stored_study(study, storage_obj)
    console.print(monitor.render(monitor.progress(stored)))
    refits = collect_refits(stored)
    if refits:
        single = {n: TrialRecord.of(get_trial(stored, n)).val_accuracy for n in refits}
        typer.echo("\nrefits (hpo refit):\n" + summary_text(refits, single))


@app.command()
@user_errors
def pareto(
    study: StudyOpt,
    objectives: Annotated[str, typer.Option("--objectives", help="Front axes: acc,params,time[,macs].")] = "acc,params,time",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
):
    """Print the Pareto front of complete trials (knee marked) with their key hyperparameters.

    Example: hpo pareto --study cpu-quick --objectives acc,params
    """
    from hpo.analysis import terminal
    from hpo.analysis.refits import within_spread_text

    if fmt not in terminal.FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(terminal.FORMATS)}")
    report = api_study(study, storage, storage_file).report(objectives, importances=False)  # a table shows none
    if fmt == "json":
        typer.echo(terminal.front_json(report))
        return
    if fmt == "csv":
        typer.echo(terminal.front_csv(report), nl=False)
        return
    from rich.console import Console

    table = terminal.front_rich_table(report)
    Console(width=max(120, 14 * len(table.columns))).print(table)
    if report.pruned_numbers:
        typer.echo(f"{len(report.pruned_numbers)} pruned trials are left out of the front (their budgets differ).")
    if report.refits:
        typer.echo(f"knee chosen on the refit means: trial {report.knee_trial}. "
                   f"{within_spread_text(report.refits)}".rstrip())


@app.command()
@user_errors
def export(
    study: StudyOpt,
    fmt: Annotated[str, typer.Option("--format", help="pptx, html, png, svg, csv, md or tex.")] = "pptx",
    out: Annotated[Path, typer.Option("--out", help="Output file (pptx/html/csv/md/tex) or folder (png/svg: one file per figure).")] = Path("report.pptx"),
    objectives: Annotated[str, typer.Option("--objectives", help="Front axes: acc,params,time[,macs].")] = "acc,params,time",
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
):
    """Export the study's tradeoff analysis: a slide deck, an HTML report, figures or the front table.

    Example: hpo export --study cpu-quick --format pptx --out cpu-quick.pptx
    """
    from hpo.analysis.dashboard import publish_quietly

    stored = api_study(study, storage, storage_file)
    for path in stored.export(out, fmt, objectives):
        typer.echo(str(path))
    # The note and figures optuna-dashboard shows; a read-only storage is one warning, never a failure.
    publish_quietly(stored.optuna, warn=lambda line: typer.echo(f"warning: {line}", err=True), axes=objectives.split(","))


@app.command()
@user_errors
def dashboard(
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind; 127.0.0.1 keeps the dashboard local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8080,
    artifacts: ArtifactsOpt = None,
):
    """Serve optuna-dashboard on the study storage (live view of trials, curves, importances).

    Example: hpo dashboard --port 8080, then open http://127.0.0.1:8080
    """
    from optuna_dashboard import run_server

    from hpo.faults_user import check_port
    from hpo.storage import mask_url, open_artifact_store

    check_port(host, port)  # out of range: exit 2; in use: exit 1, before anything is opened
    url, storage_obj = open_storage_from(storage, storage_file, must_exist=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: binding {host}: anyone who reaches this address can read and change the studies; "
                   "use an SSH tunnel or a reverse proxy with authentication", err=True)
    typer.echo(f"optuna-dashboard for {mask_url(url)} on http://{host}:{port}", err=True)
    # A read-only command creates no folder: without an artifact store, the dashboard shows no artifacts.
    run_server(storage_obj, host=host, port=port, artifact_store=open_artifact_store(artifacts, create=False))

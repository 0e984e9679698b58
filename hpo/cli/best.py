"""``hpo best``: the chosen model of a study written to a folder, ready to hand in (``hpo.best``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hpo.cli.common import ArtifactsOpt, DataDirOpt, StorageFileOpt, StorageOpt, StudyOpt, app, stored_study, user_errors


@app.command()
@user_errors
def best(
    study: StudyOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write model.pt, config.json, metrics.json and "
                                      "load.py into (created; a folder with files in it needs --force).")],
    trial: Annotated[Optional[int], typer.Option("--trial", help="Export this trial instead of the knee (or the best "
                                                 "refit mean when the study has refits).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the exported files in a folder that has files.")] = False,
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    data_dir: DataDirOpt = None,
    artifacts: ArtifactsOpt = None,
):
    """Write the chosen model (weights, configuration, metrics with intervals, load.py) to a folder.

    The knee of the front by default (the most accurate trial of a single-objective study); with refits, the configuration with the best mean validation accuracy over its seeds.

    Example: hpo best --study cpu-quick --out handin/ && python handin/load.py cat.png
    """
    from hpo.analysis.intervals import accuracy_interval, format_interval
    from hpo.best import check_out_folder, export_best
    from hpo.trials import N_VAL_IMAGES, PARAM_COUNT, VAL_ACCURACY

    check_out_folder(out, force)  # before the storage is opened
    exported = export_best(stored_study(study, storage, storage_file), out, trial=trial, data_dir=data_dir,
                           artifacts=artifacts, force=force)
    metrics = exported.metrics
    val, n = metrics[VAL_ACCURACY], metrics.get(N_VAL_IMAGES)
    typer.echo(f"chose {exported.choice.describe()}")
    typer.echo(f"exported {metrics['weights_from']}")
    typer.echo(f"val accuracy {format_interval(val, accuracy_interval(val, n))} on {n} images, "
               f"{metrics[PARAM_COUNT]:,} parameters")
    if exported.cpu_difference_images:
        typer.echo(f"note: on the CPU the exported weights classify {exported.cpu_difference_images} validation images "
                   f"differently (accuracy {metrics[VAL_ACCURACY + '_at_export']:.4f}): the trial ran on "
                   "another device or precision", err=True)
    typer.echo(f"wrote {out}/: model.pt config.json metrics.json load.py; try `python {out}/load.py IMAGE`")

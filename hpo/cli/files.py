"""Commands on the shipped files and the model zoo: ``validate``, ``studies``, ``models``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hpo.cli.common import (
    app, one_study, user_errors,
)
from hpo.errors import ConfigError, require_positive


@app.command()
@user_errors
def validate(
    study: Annotated[Optional[str], typer.Argument(help="Study name or path to a study YAML file.")] = None,
    study_opt: Annotated[Optional[str], typer.Option("--study", "-s", help="The same, as with every other command.")] = None,
):
    """Check a study file and its search space without running anything.

    Example: hpo validate --study densenet-mini (or hpo validate densenet-mini)
    """
    from hpo.config import load_study

    study = one_study(study, study_opt)
    if study is None:
        raise ConfigError("name the study to check: hpo validate --study NAME (or a path to its YAML file)")
    from hpo.workers.packing import study_per_device

    config = load_study(study)
    study_per_device(config)  # not part of the definition, but `hpo run` reads it: refused here too
    params = ", ".join(p.name for p in config.space.params if p.kind != "fixed")
    typer.echo(
        f"{config.source}: ok: {config.dataset.kind} dataset, objectives {', '.join(config.objectives)}, "
        f"sampler {config.sampler.name}, pruner {config.pruner.name}, {config.epochs} epochs, "
        f"{config.n_trials or 'unlimited'} trials{f', budget {config.budget.describe()}' if config.budget else ''}"
        f"{f', warm start from {config.warm_start.source} (top {config.warm_start.top})' if config.warm_start else ''}; "
        f"searches {params or 'nothing (all fixed)'}"
    )


@app.command()
@user_errors
def studies():
    """List the ready-made studies (studies/*.yaml).

    Example: hpo studies
    """
    from hpo.study_files import list_studies

    for name, description in list_studies():
        typer.echo(f"{name:24s} {description}")


@app.command()
@user_errors
def models(
    classes: Annotated[int, typer.Option("--classes", help="Number of classes for the parameter counts.")] = 10,
):
    """List model families with their knobs, and reference variants with parameters and MACs.

    Example: hpo models --classes 10
    """
    from hpo.models import describe_families, reference_table

    require_positive("--classes", classes)
    typer.echo("families (knobs = default):")
    for family, description, knobs in describe_families():
        typer.echo(f"  {family}: {description}")
        typer.echo("    " + ", ".join(f"{name}={default!r}" for name, _type, default in knobs))
    typer.echo(f"\nreference variants ({classes} classes, 3x32x32 input):")
    typer.echo(f"  {'name':30s} {'params':>12s} {'MACs':>15s}")
    for name, params, macs in reference_table(num_classes=classes):
        typer.echo(f"  {name:30s} {params:12,d} {macs:15,d}")

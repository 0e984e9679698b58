"""``hpo run`` and ``hpo worker``: start a study's workers, or join one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hpo.cli.common import (
    ArtifactsOpt, BudgetOpt, DataDirOpt, DevicesOpt, StorageFileOpt, StorageOpt, StudyOpt, app, limits,
    load_stored_study, open_storage_from, user_errors,
)
from hpo.cli.launching import exit_on_worker_failure, launch_with_display
from hpo.errors import require_positive


@app.command()
@user_errors
def run(
    study: StudyOpt,
    n_trials: Annotated[Optional[int], typer.Option("--n-trials", "-n", help="Study-wide budget of finished (complete + pruned) trials; stored with the study.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Total worker processes, spread round-robin over the devices.")] = None,
    devices: DevicesOpt = "auto",
    per_device: Annotated[Optional[str], typer.Option("--per-device", help="Worker processes per device (several small-model trials share a GPU), or auto: as many trials as fit its free memory. Default: the study file's per_device, else 1.")] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Wall-clock seconds for this run; running trials then stop at their next epoch end, and are resumed from their checkpoints by a later run.")] = None,
    budget: BudgetOpt = None,
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    data_dir: DataDirOpt = None,
    artifacts: ArtifactsOpt = None,
    log_dir: Annotated[Path, typer.Option("--log-dir", help="Per-worker log files go to LOG_DIR/STUDY/.")] = Path("logs"),
    tensorboard: Annotated[Optional[str], typer.Option("--tensorboard", help="Write every trial's learning curves to this TensorBoard folder.")] = None,
    allow_changed_definition: Annotated[bool, typer.Option("--allow-changed-definition", help="Run a changed study file against the existing study's trials.")] = False,
    mlflow: Annotated[Optional[str], typer.Option("--mlflow", help="Log every trial as an MLflow run to this tracking URI, e.g. sqlite:///mlflow.db (never the study's own database); replaces the study's tracking.mlflow.")] = None,
    wandb: Annotated[Optional[str], typer.Option("--wandb", help="Log every trial as a W&B run in this project (W&B's login and WANDB_MODE apply); replaces the study's tracking.wandb project.")] = None,
    warm_start_from: Annotated[Optional[str], typer.Option("--warm-start-from", help="Begin a new study with the best configurations of this study (wins over the file's warm_start.from).")] = None,
    warm_start_top: Annotated[Optional[int], typer.Option("--warm-start-top", help="How many of them (default 5).")] = None,
    warm_start_storage: Annotated[Optional[str], typer.Option("--warm-start-storage", help="Storage URL of the source study (default: this study's storage).")] = None,
):
    """Run a study: create it in storage (or resume it) and train trials on every device slot.

    Example: hpo run --study cpu-quick --budget 5m
    """
    import dataclasses

    from hpo.warm_start import with_options
    from hpo import monitor, workers as worker_mod
    from hpo.workers import packing
    from hpo.config import load_study
    from hpo.data import load_dataset
    from hpo.device import resolve_device
    from hpo.storage import mask_url, safe_component, storage_kind
    from hpo.study import create_or_load, hardware_description
    from hpo.workers.interrupts import resume_command

    config = load_study(study)
    config = dataclasses.replace(config, warm_start=with_options(config.warm_start, warm_start_from, warm_start_top,
                                                                 warm_start_storage))
    time_budget = limits(n_trials, budget, timeout)
    per_device = packing.parse_per_device(per_device) or packing.study_per_device(config) or 1
    slots = worker_mod.plan_slots(devices, per_device, workers)
    url, storage_obj = open_storage_from(storage, storage_file)
    if storage_kind(url) == "sqlite" and len(slots) > 8:
        typer.echo(f"note: {len(slots)} workers on one SQLite file may wait on its lock; for more than 8 workers use "
                   "PostgreSQL (postgresql://...) or the journal file (journal:///FILE)", err=True)
    from hpo.tracking import check_run

    check_run(config, url, mlflow, wandb)  # callbacks resolve, trackers open, MLflow is not the study's database
    dataset = load_dataset(config.dataset, data_dir, split_seed=config.seed)  # builds the cache once, before workers
    optuna_study = create_or_load(
        config, storage_obj, n_trials=n_trials, dataset_fingerprint=dataset.fingerprint,
        hardware=hardware_description(resolve_device(slots[0].device)), allow_changed_definition=allow_changed_definition,
        budget=time_budget,
    )
    start = monitor.progress(optuna_study)
    typer.echo(f"study {config.name} in {mask_url(url)}: {start.trials_text} finished; "
               f"{len(slots)} worker(s) on {', '.join(sorted({s.device for s in slots}))}", err=True)
    run_dir = log_dir / safe_component(config.name)
    options = worker_mod.WorkerOptions(study_name=config.name, storage_url=url, data_dir=data_dir, artifacts=artifacts,
                                       timeout=timeout, tensorboard_dir=tensorboard, packing=per_device == packing.AUTO,
                                       mlflow=mlflow, wandb=wandb)
    code = launch_with_display(optuna_study, options, slots, run_dir, resume_command("run", study, storage, storage_file))
    from hpo.analysis.dashboard import publish_quietly  # the note and figures optuna-dashboard shows
    publish_quietly(optuna_study, warn=lambda line: typer.echo(f"warning: {line}", err=True))
    exit_on_worker_failure(code, run_dir)


@app.command()
@user_errors
def worker(
    study: Annotated[str, typer.Option("--study", "-s", help="Name of a study already in the storage.")],
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    devices: DevicesOpt = "auto",
    per_device: Annotated[str, typer.Option("--per-device", help="Worker processes per device, or auto (as many trials as fit its free memory).")] = "1",
    workers: Annotated[Optional[int], typer.Option("--workers", help="Total worker processes.")] = None,
    n_trials: Annotated[Optional[int], typer.Option("--n-trials", "-n", help="Change the study-wide budget.")] = None,
    budget: BudgetOpt = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Wall-clock seconds for this worker; its running trial then stops at its next epoch end.")] = None,
    data_dir: DataDirOpt = None,
    artifacts: ArtifactsOpt = None,
    log_dir: Annotated[Path, typer.Option("--log-dir", help="Per-worker logs go to LOG_DIR/STUDY/.")] = Path("logs"),
    tensorboard: Annotated[Optional[str], typer.Option("--tensorboard", help="TensorBoard folder for learning curves.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for this worker.")] = None,
    mlflow: Annotated[Optional[str], typer.Option("--mlflow", help="Log every trial as an MLflow run to this tracking URI, e.g. sqlite:///mlflow.db (never the study's own database); replaces the study's tracking.mlflow.")] = None,
    wandb: Annotated[Optional[str], typer.Option("--wandb", help="Log every trial as a W&B run in this project (W&B's login and WANDB_MODE apply); replaces the study's tracking.wandb project.")] = None,
):
    """Join a running study from another terminal, GPU or machine (the definition comes from storage).

    Example: HPO_STORAGE=postgresql://hpo@db/hpo hpo worker --study densenet-mini --devices cuda:0
    """
    from hpo import workers as worker_mod
    from hpo.workers import packing
    from hpo.storage import resolve_storage_url, safe_component
    from hpo.study import set_limits

    url = resolve_storage_url(storage, storage_file)
    safe_component(study)
    require_positive("--threads", threads)
    time_budget = limits(n_trials, budget, timeout)
    if n_trials is not None or time_budget is not None:
        set_limits(load_stored_study(study, open_storage_from(url, None)[1]), n_trials, time_budget)
    per_device = packing.parse_per_device(per_device)
    slots = worker_mod.plan_slots(devices, per_device, workers)
    options = worker_mod.WorkerOptions(study_name=study, storage_url=url, data_dir=data_dir, artifacts=artifacts, threads=threads,
                                       timeout=timeout, tensorboard_dir=tensorboard, packing=per_device == packing.AUTO,
                                       mlflow=mlflow, wandb=wandb)
    from hpo.workers.interrupts import Interrupted, resume_command

    again = resume_command("worker", study, storage, storage_file)
    if len(slots) == 1:
        worker_mod.configure_logging()
        try:
            outcome = worker_mod.launch(options, slots, in_process=True).outcome
        except Interrupted as stop:
            typer.echo(stop.summary(again), err=True)
            raise typer.Exit(130) from None
        typer.echo(worker_mod.outcome_line(outcome), err=True)
        return
    optuna_study = load_stored_study(study, open_storage_from(url, None)[1])
    exit_on_worker_failure(launch_with_display(optuna_study, options, slots, log_dir / study, again), log_dir / study)

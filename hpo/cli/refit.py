"""``hpo refit``: retrain chosen configurations of a study with new seeds, on every device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hpo.cli.common import (
    ArtifactsOpt, DataDirOpt, DevicesOpt, StorageFileOpt, StorageOpt, StudyOpt, app, load_stored_study,
    open_storage_from, user_errors,
)
from hpo.cli.launching import exit_on_worker_failure, launch_with_display
from hpo.errors import ConfigError, require_positive


def _trial_list(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ConfigError(f"--trials {text!r} is not a list of trial numbers; write e.g. --trials 3,7") from None


@app.command()
@user_errors
def refit(
    study: StudyOpt,
    seeds: Annotated[int, typer.Option("--seeds", help="New seeds per configuration (initialisation, data order, augmentation; same split).")] = 3,
    pareto_front: Annotated[bool, typer.Option("--pareto", help="Refit every configuration on the Pareto front.")] = False,
    trials: Annotated[Optional[str], typer.Option("--trials", help="Refit these trials: 3,7.")] = None,
    top: Annotated[Optional[int], typer.Option("--top", help="Refit the K complete trials with the best validation accuracy.")] = None,
    devices: DevicesOpt = "auto",
    per_device: Annotated[str, typer.Option("--per-device", help="Worker processes per device, or auto (as many refits as fit its free memory).")] = "1",
    workers: Annotated[Optional[int], typer.Option("--workers", help="Total worker processes.")] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Wall-clock seconds for this run; running refits then stop at their next epoch end and resume on the next `hpo refit`.")] = None,
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    data_dir: DataDirOpt = None,
    artifacts: ArtifactsOpt = None,
    log_dir: Annotated[Path, typer.Option("--log-dir", help="Per-worker logs go to LOG_DIR/STUDY.refit/.")] = Path("logs"),
):
    """Retrain chosen configurations with new seeds, evaluate each on validation and test, and report
    mean ± std per configuration. Refits never count in the study's N or budget, and the sampler never
    sees them; run it again to resume or to add seeds.

    Example: hpo refit --study cpu-quick --top 2 --seeds 3
    """
    from hpo import workers as worker_mod
    from hpo.workers import packing
    from hpo.analysis.refits import collect_refits, summary_text
    from hpo.study import get_trial
    from hpo.trials import TrialRecord
    from hpo.refit import choose_trials, prepare_refits
    from hpo.storage import safe_component
    from hpo.workers.interrupts import resume_command

    require_positive("--seeds", seeds), require_positive("--timeout", timeout, seconds=True)
    url, storage_obj = open_storage_from(storage, storage_file, must_exist=True)
    source = load_stored_study(safe_component(Path(study).stem if study.endswith(".yaml") else study), storage_obj)
    numbers = choose_trials(source, pareto=pareto_front, trials=_trial_list(trials), top=top)
    per_device = packing.parse_per_device(per_device)
    slots = worker_mod.plan_slots(devices, per_device, workers)
    plan = prepare_refits(source, numbers, seeds)
    typer.echo(f"refit of {source.study_name}: trials {', '.join(map(str, plan.trials))} x seeds "
               f"{', '.join(map(str, plan.seeds))}: {len(plan.finished)} finished, {len(plan.in_flight)} resumed, "
               f"{len(plan.queued)} queued; {len(slots)} worker(s)", err=True)
    if plan.to_run:
        options = worker_mod.WorkerOptions(study_name=plan.study_name, storage_url=url, data_dir=data_dir,
                                           artifacts=artifacts, timeout=timeout, packing=per_device == packing.AUTO)
        run_dir = log_dir / safe_component(plan.study_name)
        chosen = ",".join(map(str, plan.trials))
        again = f"{resume_command('refit', source.study_name, storage, storage_file)} --trials {chosen} --seeds {seeds}"
        exit_on_worker_failure(launch_with_display(load_stored_study(plan.study_name, storage_obj), options, slots, run_dir,
                                                   again), run_dir)
    single = {n: TrialRecord.of(get_trial(source, n)).val_accuracy for n in plan.trials}
    typer.echo(summary_text(collect_refits(source), single, plan.trials))

"""A study in storage, and one trial's objective: configuration -> model -> trainer -> metrics.

The whole study definition (the resolved YAML, its hash, the dataset fingerprint, the package
version and the trial budget) is stored as study user attributes, so ``hpo worker --study NAME``
on another machine needs only the package, the data and the storage URL.

A trial ends in one of Optuna's states, with a ``stop_reason`` user attribute when it did not
complete (DECISIONS.md "Trials"):

=============  ========  =====================================================================
stop_reason    state     meaning
=============  ========  =====================================================================
pruned         PRUNED    the pruner stopped it (last reported value kept)
diverged       PRUNED    NaN or infinite training loss
too_slow       PRUNED    an epoch took longer than ``constraints.max_epoch_seconds``
constraint     FAIL      e.g. over ``max_params``: refused before any training
oom            FAIL      out of device memory; not retried with the same configuration
error          FAIL      any other exception (message in ``error``); not retried
interrupted    FAIL      SIGINT/SIGTERM; retried from the last checkpoint (at most twice)
worker_lost    FAIL      its worker stopped sending heartbeats; retried like ``interrupted``
budget         FAIL      asked beyond ``n_trials`` by a concurrent worker; never trained
=============  ========  =====================================================================
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

import hpo
from hpo.config import StudyConfig
from hpo.errors import HpoError

log = logging.getLogger("hpo")

# Study user attributes.
ATTR_DEFINITION = "definition"
ATTR_DEFINITION_HASH = "definition_hash"
ATTR_FINGERPRINT = "dataset_fingerprint"
ATTR_VERSION = "hpo_version"
ATTR_N_TRIALS = "n_trials"
ATTR_HARDWARE = "hardware"

# Trial system attributes (not shown as user data in the dashboard).
SYS_RETRY_OF = "hpo:retry_of"  # number of the first trial of a retry chain
SYS_RETRIES = "hpo:retries"  # how many times this configuration was retried
SYS_RESUME = "hpo:resume_checkpoint"  # artifact id of the checkpoint to resume from
SYS_WORKER = "hpo:worker"
SYS_HEARTBEAT = "hpo:heartbeat"  # unix time of the worker's last heartbeat for this trial

MAX_RETRIES = 2  # interrupted / worker_lost trials are retried at most this often

RETRIED_REASONS = ("interrupted", "worker_lost")


class StudyDefinitionChanged(HpoError):
    """The study file differs from the definition stored with the study."""


def definition_of(study: optuna.Study) -> StudyConfig:
    """The study's stored definition.

    Raises:
        HpoError: the study was not created by hpo.
    """
    attrs = study.user_attrs
    if ATTR_DEFINITION not in attrs:
        raise HpoError(
            f"study {study.study_name!r} has no hpo definition stored with it; it was not created by `hpo run`, "
            "so run it with `hpo run --study FILE` first"
        )
    return StudyConfig.from_dict(attrs[ATTR_DEFINITION], origin=f"study {study.study_name!r} in storage")


def load_stored(name: str, storage: optuna.storages.BaseStorage, **kwargs) -> optuna.Study:
    """The study ``name`` in ``storage`` (``kwargs`` go to ``optuna.load_study``, e.g. the sampler).

    Raises:
        HpoError: no such study, naming the studies the storage holds.
    """
    try:
        return optuna.load_study(study_name=name, storage=storage, **kwargs)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
        raise HpoError(
            f"no study named {name!r} in this storage (studies there: {names}); "
            "start it with `hpo run --study NAME` or check --study and --storage"
        ) from None


def get_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """Trial ``number`` of ``study``, read by its id rather than by loading every trial.

    Raises:
        HpoError: the study has no such trial.
    """
    storage = study._storage
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    except KeyError:
        raise HpoError(f"study {study.study_name!r} has no trial {number}; `hpo status {study.study_name}` lists them") from None
    return storage.get_trial(trial_id)


def n_trials_of(study: optuna.Study) -> int:
    """The study-wide budget of finished (COMPLETE + PRUNED) trials."""
    return int(study.user_attrs.get(ATTR_N_TRIALS, 0))


def _diff_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _diff_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def create_or_load(
    config: StudyConfig,
    storage: optuna.storages.BaseStorage,
    *,
    n_trials: int | None,
    dataset_fingerprint: str,
    hardware: str = "",
    allow_changed_definition: bool = False,
) -> optuna.Study:
    """Create the study described by ``config`` in ``storage``, or load it if it exists.

    A new study stores its definition, enqueues the study's first trials, and names its metrics
    for optuna-dashboard. An existing study must have the same definition (``n_trials`` aside)
    unless ``allow_changed_definition``.

    Args:
        config: the validated study definition.
        storage: where the study lives.
        n_trials: the new study-wide budget, or None to keep the stored one (or the file's).
        dataset_fingerprint: fingerprint of the data this process loaded.
        hardware: a description of the machine, shown in reports.
        allow_changed_definition: run a changed definition against an existing study.

    Returns:
        The Optuna study.
    """
    definition = config.to_dict()
    try:
        study = optuna.create_study(study_name=config.name, storage=storage, directions=config.directions())
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=config.name, storage=storage)
        created = False

    if created:
        study.set_metric_names(list(config.objectives))
        study.set_user_attr(ATTR_DEFINITION, definition)
        study.set_user_attr(ATTR_DEFINITION_HASH, config.definition_hash())
        study.set_user_attr(ATTR_FINGERPRINT, dataset_fingerprint)
        study.set_user_attr(ATTR_VERSION, hpo.__version__)
        study.set_user_attr(ATTR_HARDWARE, hardware)
        study.set_user_attr(ATTR_N_TRIALS, int(n_trials if n_trials is not None else config.n_trials))
        from hpo.space import encode_params

        for params in config.enqueue:
            study.enqueue_trial(encode_params(config.space, params), skip_if_exists=True)
        return study

    stored_hash = study.user_attrs.get(ATTR_DEFINITION_HASH)
    if stored_hash is None:
        raise HpoError(
            f"study {config.name!r} already exists in this storage but was not created by hpo; "
            "choose another study name or another storage"
        )
    if stored_hash != config.definition_hash():
        changed = _diff_keys(study.user_attrs.get(ATTR_DEFINITION, {}), definition)
        changed = [k for k in changed if k != "n_trials"] or ["(definition hash)"]
        if not allow_changed_definition:
            raise StudyDefinitionChanged(
                f"{config.source}: the definition differs from study {config.name!r} stored in this storage "
                f"(changed: {', '.join(changed[:8])}); revert the file, rename the study, or pass "
                "--allow-changed-definition to run the new definition against the existing trials"
            )
        log.warning("running a changed definition against study %s (changed: %s)", config.name, ", ".join(changed[:8]))
        study.set_user_attr(ATTR_DEFINITION, definition)
        study.set_user_attr(ATTR_DEFINITION_HASH, config.definition_hash())
        study.set_user_attr(ATTR_FINGERPRINT, dataset_fingerprint)
    check_fingerprint(study, dataset_fingerprint)
    if n_trials is not None:
        study.set_user_attr(ATTR_N_TRIALS, int(n_trials))
    return study


def check_fingerprint(study: optuna.Study, fingerprint: str) -> None:
    """Refuse to work on a study whose data differs from the data this worker loaded."""
    stored = study.user_attrs.get(ATTR_FINGERPRINT)
    if stored and stored != fingerprint:
        raise HpoError(
            f"the dataset loaded here (fingerprint {fingerprint[:12]}) differs from the one study "
            f"{study.study_name!r} was created with ({stored[:12]}); point --data-dir / HPO_DATA_DIR at the same data "
            "(same files, same dataset settings) as the other workers"
        )


def count_states(study: optuna.Study) -> dict[TrialState, int]:
    """Trial counts by state."""
    counts = {state: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# One trial
# ---------------------------------------------------------------------------------------------


@dataclass
class TrialContext:
    """What a worker holds while it runs trials: the study, its data and where things go."""

    study: optuna.Study
    config: StudyConfig
    dataset: Any  # hpo.data.Dataset
    device: torch.device
    artifact_store: Any
    feature_cache_dir: Path
    worker_id: str = "worker-0"
    tensorboard_dir: Path | None = None
    scratch_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hpo-trial-")))


def objective_values(config: StudyConfig, metrics: dict[str, float]) -> list[float]:
    """The values told to Optuna, in the order of ``config.objectives``."""
    return [float(metrics[name]) for name in config.objectives]


def _train_config(config: StudyConfig, overrides: dict[str, Any]):
    from hpo.train import TrainConfig

    settings = {**config.train, **overrides, "epochs": config.epochs, "seed": config.seed}
    if config.constraints.max_epoch_seconds:
        settings.setdefault("max_epoch_seconds", float(config.constraints.max_epoch_seconds))
    return TrainConfig(**settings)


def build_trial_model(config: StudyConfig, params: dict[str, Any], num_classes: int):
    """The model and trainer configuration of one trial's parameters.

    Args:
        config: the study.
        params: the trial's parameters (as returned by ``hpo.space.suggest``).
        num_classes: classes in the study's dataset.

    Returns:
        (model, train_config, trial_config)
    """
    from hpo.models import create_model
    from hpo.space import split_params
    from hpo.train import seed_everything

    trial_config = split_params(params)
    train_config = _train_config(config, trial_config.train_overrides)
    seed_everything(config.seed)  # same initialisation for the same configuration and seed
    model = create_model(trial_config.family, num_classes=num_classes, **trial_config.model_knobs)
    return model, train_config, trial_config


def _upload_checkpoint(ctx: TrialContext, trial: optuna.Trial, path: Path, previous: str | None) -> str | None:
    from optuna.artifacts import upload_artifact

    from hpo.train import CheckpointError

    try:
        artifact_id = upload_artifact(artifact_store=ctx.artifact_store, file_path=str(path), study_or_trial=trial)
    except OSError as exc:
        # Disk full or read-only: the trial fails with this reason (a trial without checkpoints could
        # neither resume nor be evaluated), and the partial file is removed so that its space is freed.
        prefix = "artifacts:"
        for key in trial.storage.get_trial_system_attrs(trial._trial_id):
            if key.startswith(prefix) and key[len(prefix):] != previous:
                try:
                    ctx.artifact_store.remove(key[len(prefix):])
                except Exception:
                    pass
        detail = exc.strerror or str(exc) or type(exc).__name__
        raise CheckpointError(
            f"cannot store the checkpoint in the artifact store ({detail}); free space or choose a writable --artifacts "
            "folder",
            path,
        ) from exc
    if previous:
        try:
            ctx.artifact_store.remove(previous)
        except Exception:  # an old checkpoint left behind costs disk, not correctness
            pass
    return artifact_id


def _download_checkpoint(ctx: TrialContext, artifact_id: str, trial_number: int) -> Path | None:
    from optuna.artifacts import download_artifact

    path = ctx.scratch_dir / f"resume-{trial_number}.pt"
    try:
        if path.exists():
            path.unlink()
        download_artifact(artifact_store=ctx.artifact_store, file_path=str(path), artifact_id=artifact_id)
        return path
    except Exception as exc:
        log.warning("trial %d: checkpoint %s unreachable (%s); restarting from scratch", trial_number, artifact_id, exc)
        return None


def run_trial(ctx: TrialContext, trial: optuna.Trial) -> tuple[TrialState, list[float] | None]:
    """Run one asked trial to its end and return the state and values to tell Optuna.

    User attributes are written on the way (model size, per-epoch history, checkpoint). Interrupts
    (KeyboardInterrupt) propagate after the caller has been given the chance to record them.
    """
    from hpo.models import count_macs, count_params
    from hpo.pruning import EpochPruner
    from hpo.space import suggest
    from hpo.storage import set_user_attrs
    from hpo.train import CheckpointError, TrainingStopped, load_checkpoint, train

    config = ctx.config
    params = suggest(trial, config.space)
    trial.storage.set_trial_system_attr(trial._trial_id, SYS_WORKER, ctx.worker_id)
    model, train_config, _ = build_trial_model(config, params, len(ctx.dataset.classes))

    param_count = count_params(model)
    macs = count_macs(model, (3, 32, 32))
    set_user_attrs(trial, {"param_count": int(param_count), "macs": int(macs)})
    limits = config.constraints
    violation = 0.0
    if limits.max_params and param_count > limits.max_params:
        violation = max(violation, param_count / limits.max_params - 1.0)
    if limits.max_macs and macs > limits.max_macs:
        violation = max(violation, macs / limits.max_macs - 1.0)
    trial.set_constraint("size", violation if violation > 0 else -1.0)
    if violation > 0:
        set_user_attrs(trial, {
            "stop_reason": "constraint",
            "constraint_violation": violation,
            "error": f"{param_count:,} parameters / {macs:,} MACs exceed the study's constraints "
                     f"(max_params={limits.max_params}, max_macs={limits.max_macs})",
        })
        return TrialState.FAIL, None

    resume_path = None
    history: list[dict] = []
    resume_id = trial.storage.get_trial_system_attrs(trial._trial_id).get(SYS_RESUME)
    if resume_id:
        resume_path = _download_checkpoint(ctx, resume_id, trial.number)
        if resume_path is not None:
            try:
                history = list(load_checkpoint(resume_path, map_location="cpu").get("history", []))
            except CheckpointError as exc:
                log.warning("trial %d: checkpoint unreadable (%s); restarting from scratch", trial.number, exc)
                resume_path, history = None, []
        if resume_path is not None:
            trial.set_user_attr("resumed_from_epoch", len(history))
    pruner = EpochPruner.for_study(ctx.study, config)
    for record in history:
        pruner.replay(trial, record["epoch"], record["val_accuracy"])

    checkpoint_path = ctx.scratch_dir / f"trial-{trial.number}.pt"
    checkpoint_id: list[str | None] = [None]
    writer = _tensorboard_writer(ctx, trial)

    def on_epoch(metrics) -> None:
        record = metrics.to_dict()
        history.append(record)
        if writer is not None:
            for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
                writer.add_scalar(key, record[key], record["epoch"])
        attrs: dict[str, Any] = {"history": history}
        if checkpoint_path.exists():
            checkpoint_id[0] = _upload_checkpoint(ctx, trial, checkpoint_path, checkpoint_id[0])
            if checkpoint_id[0]:
                attrs["checkpoint"] = checkpoint_id[0]
        set_user_attrs(trial, attrs)  # one write per epoch: the pruner below reads this history
        # Report every epoch, but never prune after the last one: the compute is already spent.
        stop = pruner.should_prune(trial, metrics.epoch, metrics.val_accuracy)
        if stop and metrics.epoch < train_config.epochs:
            raise optuna.TrialPruned(f"pruned at epoch {metrics.epoch}")

    def record_result(result_history: list[dict], **attrs: Any) -> None:
        # The trial's outcome in one write: the history (its last epoch may not be stored yet, e.g.
        # when that epoch's checkpoint upload failed), the last epoch's metrics, and ``attrs``.
        if result_history:
            attrs["history"] = list(result_history)
            last = result_history[-1]
            attrs.update({key: float(last[key]) for key in ("train_accuracy", "train_loss", "val_accuracy", "val_loss")})
            attrs["epochs_run"] = int(last["epoch"])
            # Compute time: training + evaluation epochs, without checkpoint writes and storage calls.
            attrs["train_seconds"] = float(sum(r["epoch_seconds"] for r in result_history))
        set_user_attrs(trial, attrs)

    def run(net, resume):
        return train(net, ctx.dataset, train_config, device=ctx.device, on_epoch=on_epoch,
                     checkpoint_path=checkpoint_path, resume_from=resume, feature_cache_dir=ctx.feature_cache_dir)

    try:
        try:
            result = run(model, resume_path)
        except CheckpointError as exc:
            if resume_path is None or getattr(exc, "path", None) is None or Path(exc.path) != Path(resume_path):
                raise
            # DECISIONS: an unusable checkpoint means a fresh start, with a warning, not a failed trial.
            log.warning("trial %d: cannot resume (%s); restarting from scratch", trial.number, exc)
            trial.set_user_attr("resumed_from_epoch", 0)
            history.clear()
            model, train_config, _ = build_trial_model(config, params, len(ctx.dataset.classes))
            result = run(model, None)
    except optuna.TrialPruned:
        record_result(history, stop_reason="pruned")
        return TrialState.PRUNED, None
    except TrainingStopped as stop:
        record_result(history, stop_reason=stop.reason, error=str(stop))
        return TrialState.PRUNED, None
    except torch.OutOfMemoryError as exc:
        record_result(history, stop_reason="oom",
                      error=f"out of memory on {ctx.device}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return TrialState.FAIL, None
    except CheckpointError as exc:
        record_result(history, stop_reason="error", error=f"checkpoint could not be written: {exc}")
        return TrialState.FAIL, None
    finally:
        if writer is not None:
            writer.close()
        # The artifact store holds the checkpoint; local copies would fill the worker's disk trial by trial.
        checkpoint_path.unlink(missing_ok=True)
        if resume_path is not None:
            resume_path.unlink(missing_ok=True)
        del model
        if ctx.device.type == "cuda":
            # Free the trial's GPU memory for the next trial on this device now, reference cycles
            # included. (On the CPU the interpreter's own collector suffices: a full collection
            # scans every cached trial of the study, 0.05 s at 3 000 trials.)
            gc.collect()
            torch.cuda.empty_cache()

    final = result.history[-1]
    record_result([m.to_dict() for m in result.history] if not history else history,
                  images_per_second=float(result.images_per_second), device_name=result.device_name,
                  peak_memory_bytes=int(result.peak_memory_bytes))
    metrics = {
        "val_accuracy": final.val_accuracy,
        "param_count": float(param_count),
        "train_seconds": float(sum(r["epoch_seconds"] for r in history)) if history else result.train_seconds,
        "macs": float(macs),
    }
    values = objective_values(config, metrics)
    if not all(math.isfinite(v) for v in values):
        trial.set_user_attr("stop_reason", "diverged")
        return TrialState.PRUNED, None
    return TrialState.COMPLETE, values


def _tensorboard_writer(ctx: TrialContext, trial: optuna.Trial):
    if ctx.tensorboard_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(Path(ctx.tensorboard_dir) / ctx.config.name / f"trial-{trial.number:05d}"))


def record_error(trial: optuna.Trial, exc: BaseException) -> None:
    """Store an unexpected exception on the trial (message and the last lines of the traceback)."""
    from hpo.storage import set_user_attrs

    set_user_attrs(trial, {
        "stop_reason": "error",
        "error": f"{type(exc).__name__}: {exc}"[:2000],
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    })


def enqueue_retry(study: optuna.Study, failed: optuna.trial.FrozenTrial, reason: str) -> bool:
    """Queue the configuration of an interrupted or lost trial again, resuming from its checkpoint.

    Returns:
        True if queued; False when the configuration has been retried ``MAX_RETRIES`` times.
    """
    retries = int(failed.system_attrs.get(SYS_RETRIES, 0))
    if retries >= MAX_RETRIES:
        log.warning("trial %d (%s) was retried %d times already; not retrying", failed.number, reason, retries)
        return False
    system_attrs = {
        SYS_RETRY_OF: int(failed.system_attrs.get(SYS_RETRY_OF, failed.number)),
        SYS_RETRIES: retries + 1,
    }
    checkpoint = failed.user_attrs.get("checkpoint")
    if checkpoint:
        system_attrs[SYS_RESUME] = checkpoint
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs={"retry_of": failed.number},
            system_attrs=system_attrs,
        )
    )
    return True


def hardware_description(device: torch.device) -> str:
    """A one-line description of the device, for reports."""
    from hpo.device import device_name

    return f"{device_name(device)} ({device.type}), torch {torch.__version__}, {os.cpu_count()} CPU cores"


def dumps_definition(study: optuna.Study) -> str:
    """The stored definition as pretty JSON (for ``hpo status --definition``)."""
    return json.dumps(study.user_attrs.get(ATTR_DEFINITION, {}), indent=2)

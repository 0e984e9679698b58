"""A study in storage: its definition, budget and fingerprint, trial lookups and retries.

The whole study definition (the resolved YAML, its hash, the dataset fingerprint, the package
version and the trial budget) is stored as study user attributes, so ``hpo worker --study NAME``
on another machine needs only the package, the data and the storage URL.

A trial's outcome, its stop reasons and the attributes it records are defined in
:mod:`hpo.trials`; one trial's run is :mod:`hpo.workers.trial`.
"""

from __future__ import annotations

import logging
import os
import traceback

import optuna
import torch
from optuna.trial import TrialState

import hpo
from hpo import compat
from hpo.config import StudyConfig
from hpo.errors import HpoError
from hpo.budget import TimeBudget, stored_budget
from hpo.trials import (BUDGET_KEY, CARRIED_SYSTEM_ATTRS, MAX_RETRIES, SYS_RESUME, SYS_RETRIES, SYS_RETRY_OF, StopReason,
                        TrialRecord, record_attrs, write_record)

log = logging.getLogger("hpo")

# Study user attributes.
ATTR_DEFINITION = "definition"
ATTR_DEFINITION_HASH = "definition_hash"
ATTR_FINGERPRINT = "dataset_fingerprint"
ATTR_VERSION = "hpo_version"
ATTR_N_TRIALS = "n_trials"  # the trial budget N; None: no limit (a study with only a time budget)
ATTR_BUDGET = BUDGET_KEY  # the time budget (hpo.budget.TimeBudget.to_dict()); absent: none
ATTR_HARDWARE = "hardware"

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
    storage = compat.storage_of(study)
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(compat.study_id(study), number)
    except KeyError:
        # Optuna numbers a study's trials 0..n-1; `hpo status` shows only the best, so give the range.
        count = storage.get_n_trials(compat.study_id(study))
        held = f"its trials are numbered 0 to {count - 1}" if count else "it has no trials yet"
        raise HpoError(f"study {study.study_name!r} has no trial {number}; {held} "
                       f"(`hpo pareto --study {study.study_name} --format csv` lists the front's)") from None
    return storage.get_trial(trial_id)


def n_trials_of(study: optuna.Study) -> int | None:
    """The study-wide budget of finished (COMPLETE + PRUNED) trials; None: no limit but the time budget."""
    attrs = study.user_attrs
    if ATTR_N_TRIALS in attrs and attrs[ATTR_N_TRIALS] is None:
        return None
    return int(attrs.get(ATTR_N_TRIALS, 0))


def budget_of(study: optuna.Study) -> TimeBudget | None:
    """The study-wide time budget, or None."""
    return stored_budget(study.user_attrs.get(ATTR_BUDGET))


def set_limits(study: optuna.Study, n_trials: int | None = None, budget: TimeBudget | None = None) -> None:
    """Change the study's N and/or time budget (given ones only): neither changes its definition."""
    if n_trials is not None:
        study.set_user_attr(ATTR_N_TRIALS, int(n_trials))
    if budget is not None:
        study.set_user_attr(ATTR_BUDGET, budget.to_dict())


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
    budget: TimeBudget | None = None,
) -> optuna.Study:
    """Create the study described by ``config`` in ``storage``, or load it if it exists.

    A new study stores its definition, enqueues its warm-start trials (:mod:`hpo.warm_start`), then
    its first trials, and names its metrics. An existing study must have the same definition
    (``n_trials``, ``budget`` aside) unless ``allow_changed_definition``; it is not warm-started again.

    Args:
        config: the validated study definition.
        storage: where the study lives.
        n_trials: the new study-wide budget, or None to keep the stored one (or the file's).
        budget: the new study-wide time budget, or None to keep the stored one (or the file's).
        dataset_fingerprint: fingerprint of the data this process loaded.
        hardware: a description of the machine, shown in reports.
        allow_changed_definition: run a changed definition against an existing study.

    Returns:
        The Optuna study.
    """
    from hpo import warm_start

    plan = warm_start.plan(config, storage, n_trials)  # checked before the study exists; None without one
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
        file_n = None if config.n_trials is None else int(config.n_trials)
        study.set_user_attr(ATTR_N_TRIALS, int(n_trials) if n_trials is not None else file_n)
        if budget is not None or config.budget is not None:
            study.set_user_attr(ATTR_BUDGET, (budget or config.budget).to_dict())
        from hpo.space import encode_params

        warm_start.enqueue(study, plan)  # first, so warm trials run before the study's own enqueued recipes
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
        changed = [k for k in changed if k.split(".")[0] not in (ATTR_N_TRIALS, ATTR_BUDGET)] or ["(definition hash)"]
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
    warm_start.check_resumed(study, config.warm_start)
    set_limits(study, n_trials, budget)
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


def record_error(trial: optuna.Trial, exc: BaseException) -> None:
    """Store an unexpected exception on the trial (message and the last lines of the traceback)."""
    write_record(trial, stop_reason=StopReason.ERROR, error=f"{type(exc).__name__}: {exc}"[:2000],
                 traceback="".join(traceback.format_exception(exc))[-4000:])


def enqueue_retry(study: optuna.Study, failed: optuna.trial.FrozenTrial, reason: StopReason | str) -> bool:
    """Queue the configuration of an interrupted or lost trial again, resuming from its checkpoint.

    Args:
        study: The study.
        failed: The failed trial.
        reason: Why it failed (for the log).

    Returns:
        True if queued; False when a crashed configuration has been retried ``MAX_RETRIES`` times.
        ``SYS_RETRIES`` counts crash retries only: a stop by the user or the system (``interrupted``)
        is queued however often, and passes the count on unchanged.
    """
    retries = int(failed.system_attrs.get(SYS_RETRIES, 0))
    parsed = StopReason.parse(str(reason))
    crash = parsed is None or parsed.counts_against_retries
    if crash and retries >= MAX_RETRIES:
        log.warning("trial %d (%s) was retried %d times already; not retrying", failed.number, reason, retries)
        return False
    system_attrs = {
        SYS_RETRY_OF: int(failed.system_attrs.get(SYS_RETRY_OF, failed.number)),
        SYS_RETRIES: retries + 1 if crash else retries,
        **{key: failed.system_attrs[key] for key in CARRIED_SYSTEM_ATTRS if key in failed.system_attrs},
    }
    checkpoint = TrialRecord.of(failed).checkpoint
    if checkpoint:
        system_attrs[SYS_RESUME] = checkpoint
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs=record_attrs(retry_of=failed.number),
            system_attrs=system_attrs,
        )
    )
    return True


def hardware_description(device: torch.device) -> str:
    """A one-line description of the device, for reports."""
    from hpo.device import device_name

    return f"{device_name(device)} ({device.type}), torch {torch.__version__}, {os.cpu_count()} CPU cores"

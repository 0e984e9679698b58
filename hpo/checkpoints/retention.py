"""Which trial checkpoints the artifact store keeps (the study's ``checkpoints`` setting).

- Pruned trials and trials that failed for good (``error``, ``oom``, ``diverged`` ...) lose their
  checkpoint: they will never be evaluated or resumed.
- Interrupted and lost trials (retryable stop reasons) keep theirs until their retry has finished:
  the retry resumes from it.
- ``keep: front`` (default) keeps complete trials that are on the front of accuracy, parameter count
  and training time; a dominated trial can never re-enter a front, so its checkpoint goes.
  ``keep: all`` keeps every complete trial; ``keep: none`` keeps nothing once trials finish.
- ``disk_budget_mb`` caps what complete trials keep: over it, the least accurate go first.

Removal is idempotent, so concurrent workers applying the policy at once do no harm.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import numpy as np
import optuna
from optuna.trial import TrialState

from hpo import compat
from hpo.trials import CHECKPOINT_REMOVED_PREFIX, PARAM_COUNT, TRAIN_SECONDS, VAL_ACCURACY, TrialRecord, directions

log = logging.getLogger("hpo")

# The front that ``keep: front`` keeps: accuracy, model size and compute time.
_FRONT_OBJECTIVES = (VAL_ACCURACY, PARAM_COUNT, TRAIN_SECONDS)


def _artifact_size(store: Any, artifact_id: str) -> int:
    folder = compat.artifact_store_folder(store)
    if folder is None:
        return 0  # a remote store: sizes unknown, so the disk budget does not apply
    try:
        return os.path.getsize(folder / artifact_id)
    except OSError:
        return 0


def _value(record: TrialRecord, name: str) -> Any:
    value = record.get(name)
    return 0.0 if value is None else value


def checkpoints_to_remove(trials: list[optuna.trial.FrozenTrial], keep: str, budget_bytes: float | None,
                          sizes: dict[int, int], already_removed: set[int] = frozenset()) -> list[int]:
    """Trial numbers whose checkpoint the policy removes (pure: no storage access).

    Args:
        trials: all trials of the study.
        keep: ``all``, ``front`` or ``none``.
        budget_bytes: cap on the checkpoints of complete trials, or None.
        sizes: checkpoint size in bytes by trial number.
        already_removed: trials whose checkpoint is gone already (not listed again).

    Returns:
        Trial numbers, sorted.
    """
    from hpo.analysis.pareto import pareto_mask

    already_removed = set(already_removed)
    records = {t.number: TrialRecord.of(t) for t in trials}
    retried_done = {records[t.number].retry_of for t in trials if t.state.is_finished()}
    remove = set()
    complete = []  # all of them, removed or not: the front is the study's front
    for t in trials:
        record = records[t.number]
        if not record.checkpoint:
            continue
        if t.state == TrialState.COMPLETE:
            complete.append(t)
            continue
        if t.number in already_removed:
            continue
        resumable = record.stop_reason is not None and record.stop_reason.retryable
        if t.state == TrialState.PRUNED:
            remove.add(t.number)
        elif t.state == TrialState.FAIL and (not resumable or t.number in retried_done):
            remove.add(t.number)
    if keep == "none":
        remove.update(t.number for t in complete)
        return sorted(remove - already_removed)
    if keep == "front" and complete:
        points = np.array([[_value(records[t.number], name) for name in _FRONT_OBJECTIVES] for t in complete],
                          dtype=float)
        mask = pareto_mask(points, directions(_FRONT_OBJECTIVES))
        remove.update(t.number for t, on_front in zip(complete, mask) if not on_front)
    if budget_bytes:
        kept = sorted((t for t in complete if t.number not in remove),
                      key=lambda t: _value(records[t.number], VAL_ACCURACY), reverse=True)
        total = 0
        for t in kept:
            total += sizes.get(t.number, 0)
            if total > budget_bytes:
                remove.add(t.number)
    return sorted(remove - already_removed)


def apply_policy(study: optuna.Study, store: Any, policy: Mapping[str, Any]) -> list[int]:
    """Remove the checkpoints the study's policy no longer keeps.

    Args:
        study: the study.
        store: its artifact store.
        policy: the study's ``checkpoints`` setting (``keep``, ``disk_budget_mb``).

    Returns:
        The numbers of the trials whose checkpoint was removed now.
    """
    keep = str(policy.get("keep", "front"))
    budget_mb = policy.get("disk_budget_mb")
    trials = study.get_trials(deepcopy=False)
    storage, study_id = compat.storage_of(study), compat.study_id(study)
    # Finished trials are read-only in Optuna, so removals are recorded on the study, one key per trial.
    study_attrs = storage.get_study_system_attrs(study_id)
    gone = {int(key[len(CHECKPOINT_REMOVED_PREFIX):]) for key in study_attrs if key.startswith(CHECKPOINT_REMOVED_PREFIX)}
    artifacts = {t.number: TrialRecord.of(t).checkpoint for t in trials}
    sizes = {number: _artifact_size(store, artifact) for number, artifact in artifacts.items()
             if artifact and number not in gone}
    removed = checkpoints_to_remove(trials, keep, float(budget_mb) * 1e6 if budget_mb else None, sizes, gone)
    for number in removed:
        try:
            store.remove(artifacts[number])
        except Exception:  # already removed by another worker, or never written
            pass
        storage.set_study_system_attr(study_id, f"{CHECKPOINT_REMOVED_PREFIX}{number}", True)
    if removed:
        log.info("removed the checkpoints of trials %s (policy keep=%s, budget %s MB)", removed, keep, budget_mb)
    return removed

"""Which trial checkpoints the artifact store keeps (the study's ``checkpoints`` setting).

- Pruned trials and trials that failed for good (``error``, ``oom``, ``diverged`` ...) lose their
  checkpoint: they will never be evaluated or resumed.
- Interrupted and lost trials keep theirs until their retry has finished: the retry resumes from it.
- ``keep: front`` (default) keeps complete trials that are on the front of accuracy, parameter count
  and training time; a dominated trial can never re-enter a front, so its checkpoint goes.
  ``keep: all`` keeps every complete trial; ``keep: none`` keeps nothing once trials finish.
- ``disk_budget_mb`` caps what complete trials keep: over it, the least accurate go first.

Removal is idempotent, so concurrent workers applying the policy at once do no harm.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

log = logging.getLogger("hpo")

RESUMABLE = ("interrupted", "worker_lost")
# Finished trials are read-only in Optuna, so removals are recorded on the study, one key per trial.
REMOVED_PREFIX = "hpo:checkpoint_removed:"


def _artifact_size(store, artifact_id: str) -> int:
    base = getattr(store, "_base_path", None)
    if base is None:
        return 0
    try:
        return os.path.getsize(Path(base) / artifact_id)
    except OSError:
        return 0


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
    retried_done = {t.user_attrs.get("retry_of") for t in trials if t.state.is_finished()}
    remove = set()
    complete = []  # all of them, removed or not: the front is the study's front
    for t in trials:
        if not t.user_attrs.get("checkpoint"):
            continue
        if t.state == TrialState.COMPLETE:
            complete.append(t)
            continue
        if t.number in already_removed:
            continue
        reason = t.user_attrs.get("stop_reason")
        if t.state == TrialState.PRUNED:
            remove.add(t.number)
        elif t.state == TrialState.FAIL and (reason not in RESUMABLE or t.number in retried_done):
            remove.add(t.number)
    if keep == "none":
        remove.update(t.number for t in complete)
        return sorted(remove - already_removed)
    if keep == "front" and complete:
        points = np.array([[t.user_attrs.get("val_accuracy", 0.0), t.user_attrs.get("param_count", 0.0),
                            t.user_attrs.get("train_seconds", 0.0)] for t in complete], dtype=float)
        mask = pareto_mask(points, ["maximize", "minimize", "minimize"])
        remove.update(t.number for t, on_front in zip(complete, mask) if not on_front)
    if budget_bytes:
        kept = sorted((t for t in complete if t.number not in remove),
                      key=lambda t: t.user_attrs.get("val_accuracy", 0.0), reverse=True)
        total = 0
        for t in kept:
            total += sizes.get(t.number, 0)
            if total > budget_bytes:
                remove.add(t.number)
    return sorted(remove - already_removed)


def apply_policy(study: optuna.Study, store, policy: dict) -> list[int]:
    """Remove the checkpoints the study's policy no longer keeps; returns the trial numbers."""
    keep = str(policy.get("keep", "front"))
    budget_mb = policy.get("disk_budget_mb")
    trials = study.get_trials(deepcopy=False)
    study_attrs = study._storage.get_study_system_attrs(study._study_id)
    gone = {int(key[len(REMOVED_PREFIX):]) for key in study_attrs if key.startswith(REMOVED_PREFIX)}
    sizes = {t.number: _artifact_size(store, t.user_attrs["checkpoint"])
             for t in trials if t.user_attrs.get("checkpoint") and t.number not in gone}
    removed = checkpoints_to_remove(trials, keep, float(budget_mb) * 1e6 if budget_mb else None, sizes, gone)
    by_number = {t.number: t for t in trials}
    for number in removed:
        trial = by_number[number]
        try:
            store.remove(trial.user_attrs["checkpoint"])
        except Exception:  # already removed by another worker, or never written
            pass
        study._storage.set_study_system_attr(study._study_id, f"{REMOVED_PREFIX}{number}", True)
    if removed:
        log.info("removed the checkpoints of trials %s (policy keep=%s, budget %s MB)", removed, keep, budget_mb)
    return removed

"""Every use of Optuna's private attributes, in one place, each with the reason it is needed.

Optuna's public API has no way to reach a study's storage or ids, a trial's id, a GridSampler's
unvisited points, or a file artifact store's folder. hpo needs them for a few jobs (atomic
multi-attribute writes, heartbeats on system attributes, reading one trial by number). When
Optuna renames one of these, only this module changes; a test (tests/test_compat.py) exercises
each accessor against the installed Optuna.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The study's storage object.

    Why private: ``Study`` does not expose its storage, and hpo writes system attributes
    (heartbeats, worker presence, retention marks) that ``Study`` has no setter for.
    """
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The study's id in its storage (the key of every storage call about the study).

    Why private: ``Study`` does not expose it; ``storage.get_study_id_from_name`` would cost a
    query on every call.
    """
    return study._study_id


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """A trial's id in its storage (not its number).

    Why private: ``Trial`` and ``FrozenTrial`` keep the id private, but the storage API that
    writes system attributes and reads one trial takes it.
    """
    return trial._trial_id


def update_cached_user_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    """Make ``trial.user_attrs`` show attributes written straight to the storage.

    Why private: ``Trial.set_user_attr`` updates the trial's cached frozen copy, which
    ``trial.user_attrs`` returns; a batched write through the storage must do the same, or the
    running trial would not see its own record.
    """
    trial._cached_frozen_trial.user_attrs.update(attrs)


def grid_unvisited_ids(sampler: optuna.samplers.GridSampler, study: optuna.Study) -> list[int]:
    """The grid points no trial of ``study`` has taken yet.

    Why private: GridSampler has no public query for it, and hpo must tell "the grid is done"
    before ``ask`` (Optuna's own ``study.stop()`` from ``after_trial`` does not stop other workers).
    """
    return sampler._get_unvisited_grid_ids(study)


def artifact_store_folder(store: Any) -> Path | None:
    """The folder of a ``FileSystemArtifactStore`` (None for other stores).

    Why private: the store keeps its base path private, and retention weighs checkpoints by their
    file size, and error messages name the folder.
    """
    base = getattr(store, "_base_path", None)
    return Path(base) if base is not None else None


def reseed_grid_sampler(sampler: optuna.samplers.GridSampler, seed: int) -> None:
    """Reseed the generator a GridSampler picks among unvisited points with, keeping its shuffle.

    Why private: the constructor's ``seed`` sets both the grid's shuffle (which must be the same on
    every worker, or points repeat and others are skipped) and that generator; only the private
    ``_rng`` lets a worker vary the second alone.
    """
    sampler._rng.rng.seed(seed)


def rdb_storage(storage: optuna.storages.BaseStorage) -> optuna.storages.RDBStorage | None:
    """The ``RDBStorage`` behind ``storage`` (unwrapping Optuna's caching layer), or None.

    Why private: ``optuna.storages.get_storage`` wraps an RDBStorage in ``_CachedStorage``, which
    keeps the RDBStorage as its private ``_backend``.
    """
    rdb = getattr(storage, "_backend", storage)
    return rdb if isinstance(rdb, optuna.storages.RDBStorage) else None


def _rdb_internals(rdb: optuna.storages.RDBStorage):
    """``(models, session_scope, set_attr_without_commit)`` of an RDBStorage, or None where this
    Optuna release lacks them: the pieces the one-transaction writes below are built from."""
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        set_without_commit = rdb._set_trial_attr_without_commit
    except (ImportError, AttributeError):  # pragma: no cover - depends on the Optuna release
        return None
    return models, lambda: _create_scoped_session(rdb.scoped_session), set_without_commit


def write_rdb_user_attrs(rdb: optuna.storages.RDBStorage, trial_id: int, attrs: dict[str, Any]) -> bool:
    """Write several user attributes of a running trial in one RDB session (one commit).

    Why private: ``RDBStorage`` commits once per ``set_trial_user_attr``; its per-attribute
    statement (an upsert after checking that the trial still runs) and session helper are private.

    Returns:
        False, writing nothing, where this Optuna release lacks those internals.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has finished (nothing is written).
    """
    internals = _rdb_internals(rdb)
    if internals is None:  # pragma: no cover - depends on the Optuna release
        return False
    models, session_scope, set_without_commit = internals
    with session_scope() as session:
        for key, value in attrs.items():
            set_without_commit(session, models.TrialUserAttributeModel, trial_id, key, value)
    return True


def fail_rdb_trial_with_user_attrs(rdb: optuna.storages.RDBStorage, trial_id: int, attrs: dict[str, Any]) -> bool | None:
    """Set a running trial's user attributes and its state FAIL in one RDB transaction.

    Why private: Optuna writes attributes and the state in separate transactions, so a trial that
    its owner completes in between keeps the attributes of a verdict that never took effect (the
    reaper's ``worker_lost`` on a COMPLETE trial). The row lock, the per-attribute statement and the
    session helper that make it one transaction are private.

    Returns:
        True when done; None, writing nothing, where this Optuna release lacks those internals.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has finished (nothing is written).
    """
    import datetime

    internals = _rdb_internals(rdb)
    if internals is None:  # pragma: no cover - depends on the Optuna release
        return None
    models, session_scope, set_without_commit = internals
    with session_scope() as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        rdb.check_trial_is_updatable(trial_id, trial.state)
        for key, value in attrs.items():
            set_without_commit(session, models.TrialUserAttributeModel, trial_id, key, value)
        trial.state = TrialState.FAIL
        trial.datetime_complete = datetime.datetime.now()
    return True


def take_waiting_rdb_trial(rdb: optuna.storages.RDBStorage, trial_id: int, key: str, token: str) -> bool | None:
    """Take a WAITING trial (set it RUNNING) and write the taker's ``token`` as system attribute ``key``,
    in one RDB transaction.

    Why private: Optuna's ``set_trial_state_values(RUNNING)`` answers False when the trial is no longer
    WAITING, so a worker whose call committed but whose connection dropped before the answer cannot
    tell its own take from another worker's, and leaves the trial RUNNING with nobody training it.
    With the token in the same transaction, the retry recognises its own take. The row lock, the
    attribute statement and the session helper are private.

    Returns:
        True if this call took the trial; False if it was not WAITING; None, writing nothing, where this
        Optuna release lacks those internals.
    """
    import datetime

    internals = _rdb_internals(rdb)
    if internals is None:  # pragma: no cover - depends on the Optuna release
        return None
    models, session_scope, set_without_commit = internals
    with session_scope() as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        if trial.state != TrialState.WAITING:
            return False
        trial.state = TrialState.RUNNING
        trial.datetime_start = datetime.datetime.now()
        set_without_commit(session, models.TrialSystemAttributeModel, trial_id, key, token)
    return True

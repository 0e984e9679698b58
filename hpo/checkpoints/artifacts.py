"""Checkpoints in Optuna's artifact store: a trial uploads its latest one, a retry downloads it.

The store (a ``FileSystemArtifactStore`` by default, or Boto3/GCS for many machines) is what lets
a retried trial and ``hpo evaluate`` find a checkpoint from any machine. A trial keeps one
checkpoint there: each upload removes the previous one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import download_artifact, get_all_artifact_meta, upload_artifact

from hpo.checkpoints.format import CheckpointError

log = logging.getLogger("hpo")


def upload_checkpoint(store: Any, trial: optuna.Trial, path: Path, previous: str | None) -> str:
    """Upload a trial's checkpoint file, then remove its previous one from the store.

    Args:
        store: the artifact store.
        trial: the running trial the artifact belongs to.
        path: the checkpoint file.
        previous: the artifact id of the trial's previous checkpoint, or None.

    Returns:
        The new artifact id.

    Raises:
        CheckpointError: the store refused the file (disk full, read-only); the trial's partial
            artifacts are removed first, so that their space is freed.
    """
    try:
        artifact_id = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
    except OSError as exc:
        # A trial without checkpoints could neither resume nor be evaluated, so it fails with this reason.
        for meta in get_all_artifact_meta(trial):
            if meta.artifact_id != previous:
                try:
                    store.remove(meta.artifact_id)
                except Exception:  # never written, or removed already
                    pass
        detail = exc.strerror or str(exc) or type(exc).__name__
        raise CheckpointError(
            f"cannot store the checkpoint in the artifact store ({detail}); free space or choose a writable --artifacts "
            "folder",
            path,
        ) from exc
    if previous:
        try:
            store.remove(previous)
        except Exception:  # an old checkpoint left behind costs disk, not correctness
            pass
    return artifact_id


def download_checkpoint(store: Any, artifact_id: str, dest: Path, *, trial_number: int | None = None) -> Path | None:
    """Download a checkpoint to ``dest`` (replacing a file there), or warn and return None.

    Args:
        store: the artifact store.
        artifact_id: the checkpoint's artifact id.
        dest: where to put the file.
        trial_number: the trial that resumes from it, named in the warning.

    Returns:
        ``dest``, or None when the checkpoint is unreachable (the caller restarts from scratch).
    """
    try:
        if dest.exists():
            dest.unlink()
        download_artifact(artifact_store=store, file_path=str(dest), artifact_id=artifact_id)
        return dest
    except Exception as exc:
        who = "" if trial_number is None else f"trial {trial_number}: "
        log.warning("%scheckpoint %s unreachable (%s); restarting from scratch", who, artifact_id, exc)
        return None

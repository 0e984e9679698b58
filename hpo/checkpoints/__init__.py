"""Trial checkpoints in one room: the trainer-state file, the artifact store, and retention.

- :mod:`hpo.checkpoints.format`: what a checkpoint holds (``TrainerState``), atomic
  ``save_checkpoint`` and ``load_checkpoint``, the check that a resumed checkpoint fits the run,
  RNG capture and restore;
- :mod:`hpo.checkpoints.artifacts`: ``upload_checkpoint`` / ``download_checkpoint`` through
  Optuna's artifact store;
- :mod:`hpo.checkpoints.retention`: which checkpoints the study's policy keeps (``apply_policy``).
"""

from hpo.checkpoints.artifacts import download_checkpoint, upload_checkpoint
from hpo.checkpoints.format import (
    RUNTIME_FIELDS,
    CheckpointError,
    TrainerState,
    atomic_save,
    check_compatible,
    load_checkpoint,
    restore_trainer_state,
    save_checkpoint,
)
from hpo.checkpoints.retention import apply_policy, checkpoints_to_remove

__all__ = [
    "RUNTIME_FIELDS",
    "CheckpointError",
    "TrainerState",
    "apply_policy",
    "atomic_save",
    "check_compatible",
    "checkpoints_to_remove",
    "download_checkpoint",
    "load_checkpoint",
    "restore_trainer_state",
    "save_checkpoint",
    "upload_checkpoint",
]

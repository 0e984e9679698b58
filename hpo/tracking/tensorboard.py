"""TensorBoard hparams: each trial's configuration and final metrics, beside its learning curves.

With ``--tensorboard DIR`` a trial's curves go to ``DIR/<study>/trial-NNNNN`` (:mod:`hpo.workers.trial`);
this tracker adds, in the same folder, the HPARAMS plugin's summaries: the trial's parameters and
its final metrics as ``final/<name>`` scalars (the objectives, losses, seconds and the accuracies'
interval ends), so that TensorBoard's HPARAMS tab shows one row per trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpo.tracking.base import STOP_REASON_TAG, Tracker, TrialEnd, TrialStart

FINAL_PREFIX = "final/"


def trial_log_dir(tensorboard_dir: str | Path, study_name: str, number: int) -> Path:
    """Where a trial's TensorBoard events go (its curves and its hparams)."""
    return Path(tensorboard_dir) / study_name / f"trial-{number:05d}"


def _hparam(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) else str(value)


class TensorBoardHparams(Tracker):
    """Writes the HPARAMS summaries of each trial when it ends."""

    name = "tensorboard"

    def __init__(self, tensorboard_dir: str | Path, study_name: str) -> None:
        self.tensorboard_dir, self.study_name = Path(tensorboard_dir), study_name
        self.params: dict[str, Any] = {}

    def on_trial_start(self, start: TrialStart) -> None:
        self.params = {str(k): _hparam(v) for k, v in start.params.items()}

    def on_trial_end(self, end: TrialEnd) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        hparam_values = {**self.params, "hpo/state": end.state, f"hpo/{STOP_REASON_TAG}": end.stop_reason or "none"}
        finals = {FINAL_PREFIX + k: float(v) for k, v in {**end.metrics, **end.values}.items()}
        experiment, start_info, end_info = hparams(hparam_values, finals)
        with SummaryWriter(str(trial_log_dir(self.tensorboard_dir, self.study_name, end.number))) as writer:
            for summary in (experiment, start_info, end_info):
                writer.file_writer.add_summary(summary)
            for name, value in finals.items():
                writer.add_scalar(name, value)

"""Weights & Biases: one run per trial, grouped under the study.

``--wandb PROJECT`` or ``tracking: {wandb: PROJECT}`` (or ``{project: P, entity: E, mode: offline}``)
in a study. Each trial is a run named ``<study>-trial-N`` in the group ``<study>``: its
configuration as the run's config, every epoch's curves logged at step = epoch, its final metrics
(with the accuracies' interval ends), state and stop reason in the run's summary, and its last
checkpoint as a ``model`` artifact. ``mode: offline`` (or ``WANDB_MODE=offline``) writes the runs
under ``WANDB_DIR`` for ``wandb sync`` later; without ``mode``, W&B's own settings decide. W&B's
console capture is off, so hpo's output stays its own. wandb is imported only when a study
tracks to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpo.errors import ConfigError
from hpo.tracking.base import STOP_REASON_TAG, Tracker, TrialEnd, TrialStart, epoch_values
from hpo.tracking.registry import register_tracker, string_settings
from hpo.trials import EpochMetrics

_KEYS = ("project", "entity", "mode")
MODES = ("online", "offline", "disabled")


@dataclass(frozen=True)
class WandbSettings:
    """Where a study's runs go.

    Attributes:
        project: The W&B project.
        entity: The team or user; None: W&B's default.
        mode: ``online``, ``offline`` or ``disabled``; None: W&B's settings (``WANDB_MODE``).
    """

    project: str
    entity: str | None = None
    mode: str | None = None


def parse_settings(raw: Any, label: str) -> WandbSettings:
    """``PROJECT`` or ``{project: P, entity: E, mode: offline}``.

    Raises:
        ConfigError: naming ``label``.
    """
    raw = string_settings(raw, label, _KEYS, form="a project name or {project: P, mode: offline}")
    if raw.get("mode") not in (None, *MODES):
        raise ConfigError(f"{label}.mode must be one of {', '.join(MODES)} (got {raw['mode']!r})")
    return WandbSettings(raw["project"], raw.get("entity"), raw.get("mode"))


def _wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise ConfigError("wandb is not installed; pip install 'hpo[tracking]' (or wandb)") from None
    return wandb


def check(settings: WandbSettings, storage_url: str | None, label: str, study_name: str, connect: bool) -> None:
    """Before any trial: wandb must be importable (its login is W&B's own business)."""
    if connect:
        _wandb()


def _config_value(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


@register_tracker("wandb", description="one W&B run per trial, grouped by study (offline mode for later sync)",
                  parse=parse_settings, check=check)
class WandbTracker(Tracker):
    """Logs each trial as a W&B run (see the module docstring)."""

    name = "wandb"
    wants_checkpoint = True

    def __init__(self, settings: WandbSettings, study_name: str) -> None:
        self.settings, self.study_name = settings, study_name
        self.wandb = _wandb()
        self.run: Any = None

    def on_trial_start(self, start: TrialStart) -> None:
        wandb = self.wandb
        config = {str(k): _config_value(v) for k, v in start.params.items()}
        self.run = wandb.init(
            project=self.settings.project, entity=self.settings.entity, mode=self.settings.mode,
            group=start.study, job_type="trial", name=f"{start.study}-trial-{start.number}", config=config,
            tags=[f"worker:{start.worker_id}"] if start.worker_id else None, reinit="create_new",
            settings=wandb.Settings(console="off", silent=True),
        )
        self.run.summary["hpo_trial"] = start.number

    def on_epoch(self, metrics: EpochMetrics) -> None:
        self.run.log({**epoch_values(metrics), "epoch": int(metrics.epoch)}, step=int(metrics.epoch))

    def on_trial_end(self, end: TrialEnd) -> None:
        run = self.run
        run.summary.update({**end.metrics, **end.values, "hpo_state": end.state, STOP_REASON_TAG: end.stop_reason})
        if end.error:
            run.summary["hpo_error"] = end.error[:2000]
        if end.checkpoint is not None:
            artifact = self.wandb.Artifact(f"{self.study_name}-trial-{end.number}-checkpoint", type="model",
                                           metadata={"trial": end.number, "state": end.state})
            artifact.add_file(str(end.checkpoint), name="checkpoint.pt")
            run.log_artifact(artifact)
        run.finish(exit_code=1 if end.state == "FAIL" else 0)
        self.run = None

    def close(self) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1)
            self.run = None

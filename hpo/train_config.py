"""The trainer's configuration: every option a search space, a study's ``train:`` or ``--set`` can set.

``TrainConfig.from_dict`` is the constructor that refuses unknown keys (nanoGPT's rule); every
production path builds a ``TrainConfig`` through it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from hpo.data.augment import AUGMENT_LEVELS
from hpo.errors import ConfigError
from hpo.typed import is_number, problem_of

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "plateau", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16")


# ----------------------------------------------------------------------------------------------
# Configuration


class TrainConfigError(ConfigError, ValueError):
    """A trainer option has an invalid value (a ``ConfigError`` the CLI prints, and a ``ValueError``)."""


@dataclass
class TrainConfig:
    """Trainer knobs; every field can be a search-space parameter or `hpo train --set KEY=VALUE`."""

    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05  # peak learning rate (after warm-up), not scaled by batch size
    momentum: float = 0.9  # SGD only
    nesterov: bool = True  # SGD only; ignored when momentum is 0 (torch refuses Nesterov without momentum)
    weight_decay: float = 5e-4  # decoupled for adamw, L2 otherwise; applied to every parameter, BN and biases included
    batch_size: int = 256  # images per optimizer step
    epochs: int = 10
    label_smoothing: float = 0.0  # training loss only: val_loss is plain cross entropy
    schedule: str = "cosine"  # constant | step | plateau | cosine | onecycle
    milestones: tuple[float, ...] = (0.5, 0.75)  # step schedule: fractions of `epochs` where lr /= 10
    plateau_patience: int = 2  # plateau schedule: epochs without val-accuracy gain before lr /= 10
    warmup_epochs: float = 0.0  # linear warm-up from lr/10, in epochs (fractions allowed); onecycle: its rise; capped at epochs
    augment: str = "crop+flip"  # none | flip | crop+flip | crop+flip+cutout
    backbone_lr_mult: float = 0.1  # transfer finetune: backbone lr = lr * this
    seed: int = 0
    eval_batch_size: int = 1024  # images per evaluation batch (no gradients, so larger than batch_size)
    precision: str = "auto"  # auto (bf16 autocast on CUDA with bf16, else fp32) | fp32 | bf16
    channels_last: str | bool = "auto"  # auto = on CUDA; channels-last convolutions are faster on tensor cores
    compile: bool = False  # torch.compile; compiled models are reused by trials of the same architecture
    grad_clip: float = 0.0  # max global gradient norm; 0 = off
    max_epoch_seconds: float = 0.0  # stop with TooSlow when an epoch takes longer; 0 = off

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """A validated config from a mapping, refusing unknown keys.

        Args:
            values: field names to values; missing fields keep their defaults.

        Returns:
            The config.

        Raises:
            TrainConfigError: an unknown key or an invalid value.
        """
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in valid:
                raise TrainConfigError(f"unknown trainer option {key!r}; valid options: {', '.join(valid)}")
        values = dict(values)
        if "milestones" in values and not isinstance(values["milestones"], tuple):
            values["milestones"] = tuple(values["milestones"])
        return cls(**values).validate()

    def to_dict(self) -> dict[str, Any]:
        """The config as plain Python values (milestones as a list), for JSON, YAML and checkpoints."""
        values = dataclasses.asdict(self)
        values["milestones"] = list(self.milestones)
        return values

    def validate(self) -> "TrainConfig":
        """Check every field, normalising ``channels_last`` strings to ``auto``/bool.

        Returns:
            The config itself, for chaining.

        Raises:
            TrainConfigError: naming the first invalid field, its value and what is allowed.
        """

        def bad(name: str, rule: str) -> TrainConfigError:
            return TrainConfigError(f"trainer option {name} {rule} (got {getattr(self, name)!r})")

        for name, choices in (
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("augment", AUGMENT_LEVELS),
            ("precision", PRECISIONS),
        ):
            if getattr(self, name) not in choices:
                raise bad(name, f"must be one of {', '.join(choices)}")
        for name in ("batch_size", "epochs", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, "must be an integer >= 1")
        if isinstance(self.plateau_patience, bool) or not isinstance(self.plateau_patience, int) or self.plateau_patience < 0:
            raise bad("plateau_patience", "must be an integer >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "must be an integer >= 0")
        if not is_number(self.lr) or not self.lr > 0 or not math.isfinite(self.lr):
            raise bad("lr", "must be a number > 0")
        if not is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise bad("momentum", "must be in [0, 1)")
        if not is_number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "must be in [0, 1)")
        for name in ("weight_decay", "backbone_lr_mult", "grad_clip", "max_epoch_seconds", "warmup_epochs"):
            value = getattr(self, name)
            if not is_number(value) or not value >= 0 or not math.isfinite(value):
                raise bad(name, "must be a number >= 0")
        if not isinstance(self.milestones, (tuple, list)) or not all(
            is_number(m) and 0 < m < 1 for m in self.milestones
        ):
            raise bad("milestones", "must be a list of fractions of the epochs, each in (0, 1)")
        if list(self.milestones) != sorted(self.milestones):
            raise bad("milestones", "must be in increasing order")
        self.milestones = tuple(float(m) for m in self.milestones)
        if not isinstance(self.nesterov, bool):
            raise bad("nesterov", "must be true or false")
        if not isinstance(self.compile, bool):
            raise bad("compile", "must be true or false")
        channels_last = self.channels_last
        if isinstance(channels_last, str):
            text = channels_last.strip().lower()
            mapping = {"auto": "auto", "true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
            if text not in mapping:
                raise bad("channels_last", "must be auto, true or false")
            self.channels_last = mapping[text]
        elif not isinstance(channels_last, bool):
            raise bad("channels_last", "must be auto, true or false")
        return self


def option_problem(key: str, value: Any) -> str | None:
    """Why ``TrainConfig`` refuses one option's value, on one line, or None when it takes it.

    Study files and search spaces check every value they could give the trainer with this before
    any trial starts, so the rule stays in :meth:`TrainConfig.validate` alone.

    Args:
        key: A TrainConfig field.
        value: A value for it.

    Returns:
        The trainer's complaint (e.g. ``trainer option lr must be a number > 0 (got 0)``), or None.
    """
    return problem_of(lambda: TrainConfig.from_dict({key: value}))

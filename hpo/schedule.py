"""The learning rate of every optimizer step: warm-up, then constant, step, cosine, plateau or onecycle."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from hpo.train_config import TrainConfig


class LrSchedule:
    """The learning rate of every optimizer step, with a checkpointable state of plain numbers.

    For constant, step, cosine and plateau the rate of step ``s`` is
    ``base_lr * factor(s) * plateau_scale``: a linear warm-up from ``lr/10`` over ``warmup_epochs``,
    then the shape (constant; /10 at each milestone; half-cosine to 0 at the last step). Plateau
    follows torch's ``ReduceLROnPlateau(mode='max', factor=0.1, patience=plateau_patience,
    threshold=1e-4)`` on validation accuracy, once per epoch. Onecycle is torch's ``OneCycleLR``
    (max_lr = each group's lr, its rise lasting ``warmup_epochs`` or 30% of training when 0,
    without momentum cycling so the configured momentum holds).

    Args:
        optimizer: its param groups' current ``lr`` are the base rates.
        config: the trainer config.
        steps_per_epoch: optimizer steps per epoch.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> None:
        self.optimizer = optimizer
        self.kind = config.schedule
        self.total_steps = max(1, config.epochs * steps_per_epoch)
        self.warmup_steps = min(round(config.warmup_epochs * steps_per_epoch), self.total_steps)
        self.milestone_steps = [round(m * self.total_steps) for m in config.milestones]
        self.patience = config.plateau_patience
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.step_count = 0
        self.plateau_scale = 1.0
        self.best = -math.inf
        self.bad_epochs = 0
        self._onecycle = None
        if self.kind == "onecycle":
            pct_start = config.warmup_epochs / config.epochs if config.warmup_epochs > 0 else 0.3
            self._onecycle = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=self.base_lrs,
                total_steps=self.total_steps,
                pct_start=min(max(pct_start, 1e-6), 1 - 1e-6),
                cycle_momentum=False,
            )
        else:
            self._apply()

    def factor(self, step: int) -> float:
        """The multiplier of the base rate at optimizer step ``step`` (0-based), before plateau cuts."""
        if step < self.warmup_steps:
            return 0.1 + 0.9 * step / self.warmup_steps
        if self.kind == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if self.kind == "step":
            return 0.1 ** sum(step >= m for m in self.milestone_steps)
        return 1.0

    def _apply(self) -> None:
        factor = self.factor(self.step_count) * self.plateau_scale
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def step_batch(self) -> None:
        """Advance after an optimizer step."""
        self.step_count += 1
        if self._onecycle is not None:
            if self.step_count < self.total_steps:  # OneCycleLR refuses steps past its end
                self._onecycle.step()
        else:
            self._apply()

    def step_epoch(self, val_accuracy: float) -> None:
        """Advance after an epoch's evaluation (only the plateau schedule uses it)."""
        if self.kind != "plateau":
            return
        if val_accuracy > self.best * (1.0 + 1e-4) or self.best == -math.inf:
            self.best = val_accuracy
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.plateau_scale *= 0.1
            self.bad_epochs = 0
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        """The state to checkpoint (numbers only, loadable with ``weights_only=True``)."""
        return {
            "kind": self.kind,
            "step_count": self.step_count,
            "plateau_scale": self.plateau_scale,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "onecycle": self._onecycle.state_dict() if self._onecycle is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from ``state_dict`` (after the optimizer's own state is restored)."""
        if state.get("kind") != self.kind:
            raise ValueError(f"schedule state is for {state.get('kind')!r}, not {self.kind!r}")
        self.step_count = int(state["step_count"])
        self.plateau_scale = float(state["plateau_scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        if self._onecycle is not None:
            self._onecycle.load_state_dict(dict(state["onecycle"]))
        else:
            self._apply()

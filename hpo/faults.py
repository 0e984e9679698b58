"""Test-only fault injection: a plan of faults the trainer injects into chosen epochs.

The fault suite (tests/faults) exercises the handling paths of real failures: out of device
memory, a diverging loss, a trial slow enough to be killed or interrupted mid-way. It sets these
environment variables for the processes it starts; :meth:`FaultPlan.from_env` reads them once, at
the edge (a worker's start, ``hpo train``), and the plan travels to ``hpo.train.train`` as an
argument. The trainer never reads the environment, and with no plan injects nothing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Mapping

import torch

FAULT_OOM_ENV = "HPO_FAULT_OOM_AT_EPOCH"  # raise torch.OutOfMemoryError at the start of this epoch
FAULT_NAN_ENV = "HPO_FAULT_NAN_AT_EPOCH"  # make this epoch's loss NaN, so training diverges
FAULT_SLEEP_ENV = "HPO_FAULT_SLEEP_PER_EPOCH"  # seconds to idle after each epoch (a trial slow enough to kill mid-way)


def _epoch_number(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an epoch number (got {value!r})") from None


@dataclass(frozen=True)
class FaultPlan:
    """Faults to inject into a training run; the default plan injects none.

    Attributes:
        oom_at_epoch: raise ``torch.OutOfMemoryError`` at the start of this epoch (1-based).
        nan_at_epoch: multiply this epoch's loss by NaN, so training diverges.
        sleep_per_epoch: seconds to idle after each epoch's timing, checkpoint and report (no
            metric changes).
    """

    oom_at_epoch: int | None = None
    nan_at_epoch: int | None = None
    sleep_per_epoch: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultPlan:
        """The plan the ``HPO_FAULT_*`` environment variables describe.

        Args:
            environ: the environment to read; ``os.environ`` when None.

        Returns:
            The plan (no faults when none of the variables is set).

        Raises:
            ValueError: a variable holds no number.
        """
        environ = os.environ if environ is None else environ
        return cls(
            oom_at_epoch=_epoch_number(environ, FAULT_OOM_ENV),
            nan_at_epoch=_epoch_number(environ, FAULT_NAN_ENV),
            sleep_per_epoch=float(environ.get(FAULT_SLEEP_ENV, "0") or 0),
        )

    def start_epoch(self, epoch: int) -> None:
        """Called before an epoch starts: the simulated out-of-memory error."""
        if self.oom_at_epoch == epoch:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory (simulated by {FAULT_OOM_ENV}={epoch} at the start of epoch {epoch})"
            )

    def poisons_loss(self, epoch: int) -> bool:
        """Whether every training loss of ``epoch`` is to be made NaN."""
        return self.nan_at_epoch == epoch

    def end_epoch(self, epoch: int) -> None:
        """Called after an epoch's timing, checkpoint and report: the idle time."""
        if self.sleep_per_epoch:
            time.sleep(self.sleep_per_epoch)

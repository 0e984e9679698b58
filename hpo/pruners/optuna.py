"""Optuna's own pruners (median, percentile, successive halving, Hyperband, Wilcoxon, ...).

They decide from the values the trial loop reports with ``trial.report``, which Optuna allows on
single-objective studies only; on a multi-objective study this adapter never prunes (the registry
refuses such a pairing before any worker starts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpo.pruners.base import BasePruner

if TYPE_CHECKING:
    import optuna

    from hpo.trials import EpochMetrics


class OptunaPruner(BasePruner):
    """An ``optuna.pruners.BasePruner`` behind hpo's per-epoch contract.

    The study must be loaded with :attr:`optuna_pruner` (the wrapped pruner), since
    ``trial.should_prune`` asks the study's pruner.

    Args:
        pruner: Any Optuna pruner.
    """

    def __init__(self, pruner: optuna.pruners.BasePruner) -> None:
        self.pruner = pruner

    @property
    def optuna_pruner(self) -> optuna.pruners.BasePruner:
        """The wrapped Optuna pruner."""
        return self.pruner

    def should_prune(
        self, study: optuna.Study, trial: optuna.Trial, epoch: int, metrics: EpochMetrics
    ) -> bool:
        """Optuna's decision from the reported values (False on multi-objective studies)."""
        if len(study.directions) > 1:
            return False
        return bool(trial.should_prune())  # some Optuna pruners answer with numpy bools

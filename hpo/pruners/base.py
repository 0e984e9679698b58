"""The contract every pruner meets: one decision after each completed epoch.

The trial loop calls, after storing the epoch's ``history`` entry on the trial (and, on
single-objective studies, after ``trial.report(val_accuracy, epoch)``)::

    pruner.should_prune(study, trial, epoch, metrics)

and stops the trial when it answers True, except after the last epoch. It loads the study with
``pruner.optuna_pruner``, the Optuna pruner that ``trial.should_prune`` consults. Nothing else
about a pruner is known to the loop, so a plug-in pruner, built-in or not, prunes through the same
path (the one decision is never made by the pruner's class).

Epochs are counted from 1: ``epoch`` is the number of completed epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from hpo.trials import EpochMetrics


class BasePruner:
    """A per-epoch pruning decision.

    Whether multi-objective studies may use a pruner is a field of its registry entry
    (``register_pruner(..., multi_objective=True)``): such a pruner must judge trials from their
    records, since Optuna refuses ``trial.report`` on those studies.
    """

    def should_prune(
        self, study: optuna.Study, trial: optuna.Trial, epoch: int, metrics: EpochMetrics
    ) -> bool:
        """Whether the trial should stop after ``epoch``.

        Args:
            study: The trial's study.
            trial: The running trial; its ``history`` already holds ``epoch``.
            epoch: Completed epochs (1-based).
            metrics: What that epoch measured.

        Returns:
            True to stop the trial now (the loop records it as pruned).
        """
        raise NotImplementedError

    @property
    def optuna_pruner(self) -> optuna.pruners.BasePruner:
        """The pruner to load the study with (``optuna.load_study(pruner=...)``).

        Optuna's ``NopPruner`` unless the decision is Optuna's own ``trial.should_prune``.
        """
        import optuna

        return optuna.pruners.NopPruner()

    def check(self, objectives: Sequence[str]) -> None:
        """Refuse objectives this pruner cannot judge, before any worker starts.

        Args:
            objectives: The study's objective names.

        Raises:
            ConfigError: An objective it cannot measure (the message, without the file name,
                says what to use instead).
        """

    def notes(self, epochs: int | None, n_objectives: int) -> list[str]:
        """What to tell the user once about this pruner on this study (e.g. when it judges).

        Args:
            epochs: Epochs per trial, when known.
            n_objectives: Number of study objectives.

        Returns:
            Notes, empty when there is nothing to say.
        """
        return []


class NoPruning(BasePruner):
    """Never prune: every trial trains all its epochs, on any study."""

    def should_prune(
        self, study: optuna.Study, trial: optuna.Trial, epoch: int, metrics: EpochMetrics
    ) -> bool:
        """Always False."""
        return False

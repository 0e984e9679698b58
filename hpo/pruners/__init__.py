"""Pruners: one per-epoch decision, whatever the pruner (the way Optuna has ``pruners/``).

- :mod:`hpo.pruners.base`: the contract, :class:`BasePruner` (``should_prune(study, trial, epoch,
  metrics)``, ``optuna_pruner``, and the ``check``/``notes`` hooks a study file's check calls);
- :mod:`hpo.pruners.optuna`: :class:`OptunaPruner`, any of Optuna's own pruners (single-objective
  studies, through ``trial.report``/``trial.should_prune``);
- :mod:`hpo.pruners.mo_asha`: the project's multi-objective successive halving;
- :mod:`hpo.pruners.registry`: ``pruner: {name, args}`` of a study file -> a pruner
  (:func:`register_pruner`, :func:`create_pruner`, :func:`check_pruner`).

The trial loop, after each epoch: stores the epoch's ``history`` entry, calls
``trial.report(val_accuracy, epoch)`` on single-objective studies (Optuna refuses it on the
others), then ``pruner.should_prune(study, trial, epoch, metrics)``; it never prunes after the last
epoch.
"""

from hpo.pruners.base import BasePruner, NoPruning
from hpo.pruners.mo_asha import MultiObjectiveSuccessiveHalving, mo_successive_halving_keep
from hpo.pruners.optuna import OptunaPruner
from hpo.pruners.registry import (
    PRUNERS,
    PrunerEntry,
    PrunerFactory,
    check_pruner,
    create_pruner,
    register_pruner,
)

__all__ = [
    "PRUNERS",
    "BasePruner",
    "MultiObjectiveSuccessiveHalving",
    "NoPruning",
    "OptunaPruner",
    "PrunerEntry",
    "PrunerFactory",
    "check_pruner",
    "create_pruner",
    "mo_successive_halving_keep",
    "register_pruner",
]

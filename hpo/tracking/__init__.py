"""Trackers: each trial logged where its users keep their experiments (MLflow, W&B, TensorBoard).

- :mod:`hpo.tracking.base`: the contract, :class:`Tracker` (``on_trial_start``, ``on_epoch``,
  ``on_trial_end``) and what it is told (:class:`TrialStart`, :class:`TrialEnd`);
- :mod:`hpo.tracking.registry`: :func:`register_tracker` and a study's ``tracking:`` section;
- :mod:`hpo.tracking.mlflow`, :mod:`hpo.tracking.wandb`: the built-in trackers (their packages are
  imported only when a study tracks to them: the training path never needs them);
- :mod:`hpo.tracking.tensorboard`: hparams beside the curves of ``--tensorboard``;
- :mod:`hpo.tracking.session`: a worker's trackers and callbacks, and the calls the worker loop makes.
"""

from hpo.tracking.base import Tracker, TrialEnd, TrialStart
from hpo.tracking.registry import TrackingConfig, register_tracker, string_settings, trackers
from hpo.tracking.session import Tracking, check_run, open_tracking, with_options

__all__ = ["Tracker", "TrackingConfig", "Tracking", "TrialEnd", "TrialStart", "check_run", "open_tracking",
           "register_tracker", "string_settings", "trackers", "with_options"]

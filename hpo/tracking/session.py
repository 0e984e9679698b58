"""A worker's trackers and callbacks, and what the worker loop calls on them.

:func:`open_tracking` builds a worker's :class:`Tracking` from its study (``tracking:``,
``callbacks:``), the command line (``--mlflow``, ``--wandb``) and ``--tensorboard``.
:func:`check_run` is what ``hpo run`` checks before any trial. The worker calls
:meth:`Tracking.trial_started` (hpo.workers.trial), :meth:`Tracking.epoch` after each epoch, and
:meth:`Tracking.trial_told` once the trial is told and stored (hpo.workers.worker): trackers end
the trial's run, then the callbacks run. Tracker failures never fail a trial: each is logged as a
warning, and a tracker that cannot start a trial sits that trial out.
"""

from __future__ import annotations

import atexit
import logging
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.callbacks import registered_callbacks, resolve_callbacks, run_callbacks
from hpo.tracking.base import Tracker, TrialStart, trial_end
from hpo.tracking.registry import TrackingConfig, tracker_entry
from hpo.trials import EpochMetrics, TrialRecord

if TYPE_CHECKING:
    from hpo.config import StudyConfig

log = logging.getLogger("hpo")

OPTION_TRACKERS = {"mlflow": "--mlflow", "wandb": "--wandb"}  # command-line options that name a tracker


def with_options(tracking: TrackingConfig, **options: str | None) -> TrackingConfig:
    """The study's trackers, with each given ``--mlflow``/``--wandb`` value replacing the study's section.

    A ``--wandb PROJECT`` keeps the study's ``entity`` and ``mode``; ``--mlflow URI`` its ``experiment``.
    """
    for name, value in options.items():
        if value is None:
            continue
        key = "uri" if name == "mlflow" else "project"
        section = tracking.raw.get(name)
        raw = {**section, key: value} if isinstance(section, dict) else value
        tracking = tracking.with_tracker(name, raw, OPTION_TRACKERS[name])
    return tracking


def check_run(config: StudyConfig, storage_url: str, mlflow: str | None = None, wandb: str | None = None) -> TrackingConfig:
    """What ``hpo run`` checks before any trial: the callbacks resolve, and each tracker opens.

    Returns:
        The trackers of this run (the study's, with the options applied).

    Raises:
        ConfigError: a callback or tracker module is missing, a tracking URI is the study's own
            database, or a tracker's store cannot be opened.
    """
    resolve_callbacks(config.extensions.callbacks, config.source)
    tracking = with_options(config.extensions.tracking, mlflow=mlflow, wandb=wandb)
    for name, settings, label in tracking:
        check = tracker_entry(name, label).check
        if check is not None:
            check(settings, storage_url, label, config.name, True)
    return tracking


def open_tracking(ctx: Any, options: Any) -> Tracking:
    """A worker's trackers and callbacks (see the module docstring).

    Args:
        ctx: The worker's ``hpo.workers.trial.TrialContext``.
        options: Its ``hpo.workers.WorkerOptions`` (``mlflow``, ``wandb``, ``storage_url``).

    Raises:
        ConfigError: a callback cannot be resolved, or a tracking URI is the study's own database.
    """
    config = ctx.config
    callbacks = resolve_callbacks(config.extensions.callbacks, f"study {config.name!r} in storage")
    tracking = with_options(config.extensions.tracking, mlflow=getattr(options, "mlflow", None),
                            wandb=getattr(options, "wandb", None))
    trackers: list[Tracker] = []
    for name, settings, label in tracking:
        entry = tracker_entry(name, label)
        if entry.check is not None:
            entry.check(settings, options.storage_url, label, config.name, False)
        try:
            trackers.append(entry.build(settings, config.name))
        except Exception as exc:  # a tracker that cannot start must not stop the study
            log.warning("tracker %s (%s) could not start (%s: %s); trials run without it", name, label,
                        type(exc).__name__, exc)
    if ctx.tensorboard_dir is not None:
        from hpo.tracking.tensorboard import TensorBoardHparams

        trackers.append(TensorBoardHparams(ctx.tensorboard_dir, config.name))
    return Tracking(trackers, callbacks, config=config, artifact_store=ctx.artifact_store, worker_id=ctx.worker_id)


class Tracking:
    """One worker's trackers and callbacks; with none, every call does nothing.

    Args:
        trackers: The trackers.
        callbacks: The study's resolved ``callbacks:``; callbacks registered with
            ``hpo.register_callback`` are added at each call.
        config: The study's definition (its space decodes a trial's parameters).
        artifact_store: Where trial checkpoints are (for trackers that log them).
        worker_id: The worker's name.
    """

    def __init__(self, trackers: Sequence[Tracker] = (), callbacks: Sequence[Any] = (), *,
                 config: StudyConfig | None = None, artifact_store: Any = None, worker_id: str = "") -> None:
        self.trackers, self.callbacks = list(trackers), list(callbacks)
        self.config, self.artifact_store, self.worker_id = config, artifact_store, worker_id
        self._study: Any = None
        self._number: int | None = None  # the trial whose run is open
        self._active: list[Tracker] = []
        self._logged: set[int] = set()
        if self.trackers:
            atexit.register(self.close)  # an interrupted trial's run ends with what storage recorded

    # -- the worker loop's calls ------------------------------------------------------------------

    def trial_started(self, trial: Any, history: Iterable[dict] = ()) -> None:
        """A trial's run begins; ``history``: the epochs a resumed trial restored."""
        if not self.trackers:
            return
        self._end_open()
        self._start(trial.study, trial.number, trial.params)
        for entry in history:
            self.epoch(trial, EpochMetrics.from_dict(entry))

    def epoch(self, trial: Any, metrics: EpochMetrics) -> None:
        """The running trial finished an epoch."""
        if self._number != trial.number or not self._active:
            return
        self._logged.add(int(metrics.epoch))
        self._each("on_epoch", metrics)

    def trial_told(self, study: Any, trial: Any) -> None:
        """A trial is told and stored (``trial``: its ``FrozenTrial``): end its run, then run the callbacks."""
        if self.trackers:
            self._end(study, trial)
        run_callbacks([*self.callbacks, *(fn for fn in registered_callbacks() if fn not in self.callbacks)], study, trial)

    def close(self) -> None:
        """End a run left open (an interrupted trial) and close the trackers; safe to call twice."""
        try:
            self._end_open()
        finally:
            for tracker in self.trackers:
                self._call(tracker, "close")
            self.trackers = []

    # -- internals ---------------------------------------------------------------------------------

    def _start(self, study: Any, number: int, params: dict) -> None:
        from hpo.space import decode_params

        config = self.config
        decoded = decode_params(config.space, params) if config is not None else dict(params)
        start = TrialStart(study=study.study_name, number=number, params=decoded, worker_id=self.worker_id,
                           objectives=tuple(config.objectives) if config is not None else ())
        self._study, self._number, self._logged = study, number, set()
        self._active = [t for t in self.trackers if self._call(t, "on_trial_start", start)]

    def _end(self, study: Any, trial: Any) -> None:
        if self._number != trial.number:
            self._end_open()
            self._start(study, trial.number, trial.params)  # never started here: a trial refused before training
        for entry in TrialRecord.of(trial).epochs:  # epochs no on_epoch call carried
            metrics = EpochMetrics.from_dict(entry)
            if int(metrics.epoch) not in self._logged:
                self.epoch(trial, metrics)
        objectives = self.config.objectives if self.config is not None else ()
        with tempfile.TemporaryDirectory(prefix="hpo-tracking-") as scratch:
            checkpoint = self._checkpoint(trial, Path(scratch))
            end = trial_end(trial, objectives, checkpoint)
            self._each("on_trial_end", end)
        self._number, self._active = None, []

    def _end_open(self) -> None:
        # A trial whose run is open but that was never told here (an interrupt, the worker's timeout).
        if self._number is None:
            return
        study, number = self._study, self._number
        try:
            from hpo.study import get_trial

            self._end(study, get_trial(study, number))
        except Exception as exc:
            log.warning("trial %d: could not end its tracker runs (%s)", number, exc)
        self._number, self._active = None, []

    def _checkpoint(self, trial: Any, scratch: Path) -> Path | None:
        checkpoint_id = TrialRecord.of(trial).checkpoint
        if not checkpoint_id or self.artifact_store is None or not any(t.wants_checkpoint for t in self._active):
            return None
        from optuna.artifacts import download_artifact

        path = scratch / "checkpoint.pt"
        try:
            download_artifact(artifact_store=self.artifact_store, file_path=str(path), artifact_id=checkpoint_id)
            return path
        except Exception as exc:
            log.warning("trial %d: checkpoint %s not logged to trackers (%s)", trial.number, checkpoint_id, exc)
            return None

    def _each(self, method: str, *args: Any) -> None:
        self._active = [t for t in self._active if self._call(t, method, *args)]

    @staticmethod
    def _call(tracker: Tracker, method: str, *args: Any) -> bool:
        try:
            getattr(tracker, method)(*args)
            return True
        except Exception as exc:  # a tracker's failure never fails a trial
            log.warning("tracker %s: %s failed (%s: %s); the trial goes on without it", tracker.name, method,
                        type(exc).__name__, exc)
            return False

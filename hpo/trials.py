"""What a trial is and what it records: objectives, stop reasons and the trial record.

This module is the one owner of that vocabulary. Every other module reads and writes a trial's
attributes through it, so an attribute's name is spelled here and nowhere else:

- :data:`OBJECTIVES`: the metrics a study can optimise, with their direction, unit, how
  ``mo_asha`` measures them at a rung, and how they enter the hypervolume;
- :class:`StopReason`: why a trial did not complete, with the Optuna state it ends in, whether it
  is retried, and whether it counts in the study's budget (DECISIONS.md "Trials");
- :class:`EpochMetrics`: what one epoch measured (one entry of a trial's ``history``);
- :class:`TrialRecord`: a trial's user attributes as typed fields, read with :meth:`TrialRecord.of`
  and written with :func:`write_record`;
- the system-attribute keys hpo keeps on trials and studies (:data:`SYS_RETRY_OF`, ...).

The stored layout is a contract: a database written by an earlier release must still load,
report and resume, so names may be added here but never renamed.

=============  ========  =====================================================================
stop_reason    state     meaning
=============  ========  =====================================================================
pruned         PRUNED    the pruner stopped it (last reported value kept)
diverged       PRUNED    NaN or infinite training loss
too_slow       PRUNED    an epoch took longer than ``constraints.max_epoch_seconds``
constraint     FAIL      e.g. over ``max_params``: refused before any training
oom            FAIL      out of device memory; not retried with the same configuration
error          FAIL      any other exception (message in ``error``); not retried
interrupted    FAIL      SIGINT/SIGTERM or a worker's --timeout; resumed from the last checkpoint,
                         however often (a user stop uses up no crash retry)
worker_lost    FAIL      its worker stopped sending heartbeats; resumed likewise, at most twice
budget         FAIL      asked beyond ``n_trials`` by a concurrent worker; never trained
deadline       PRUNED    the study's time budget ran out; stopped at an epoch end, value kept
=============  ========  =====================================================================
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import TrialState

MAXIMIZE = "maximize"
MINIMIZE = "minimize"


# ----------------------------------------------------------------------------------------------
# Objectives


@dataclass(frozen=True)
class Objective:
    """One metric a study can optimise.

    Attributes:
        name: The name in study files, ``study.metric_names`` and the trial record.
        direction: ``maximize`` or ``minimize``.
        unit: What one unit of the value is.
        label: An axis title for figures.
        rung_source: Where ``mo_asha`` reads the value at a rung epoch: :data:`RUNG_EPOCH` (the
            history entry of that epoch), :data:`RUNG_SUM` (the sum over the history entries up to
            that epoch) or :data:`RUNG_TRIAL` (the trial record, fixed before training).
        rung_key: The field read there (an :class:`EpochMetrics` or :class:`TrialRecord` field).
        reference_key: The key of ``hypervolume_reference`` that bounds this axis, or None for an
            axis bounded by its own range (accuracy: from 0 to 1).
        log_scale: Whether the hypervolume, the knee and figures use ``log10`` of the value.
    """

    name: str
    direction: str
    unit: str
    label: str
    rung_source: str
    rung_key: str
    reference_key: str | None
    log_scale: bool


RUNG_EPOCH = "epoch"
RUNG_SUM = "sum"
RUNG_TRIAL = "trial"

VAL_ACCURACY = "val_accuracy"
PARAM_COUNT = "param_count"
TRAIN_SECONDS = "train_seconds"
MACS = "macs"
TEST_ACCURACY = "test_accuracy"
N_VAL_IMAGES = "n_val_images"  # the images behind val_accuracy: its interval's n (hpo.analysis.intervals)
N_TEST_IMAGES = "n_test_images"  # the images behind test_accuracy

OBJECTIVES: dict[str, Objective] = {
    VAL_ACCURACY: Objective(VAL_ACCURACY, MAXIMIZE, "fraction of validation images", "Validation accuracy",
                            RUNG_EPOCH, "val_accuracy", None, False),
    PARAM_COUNT: Objective(PARAM_COUNT, MINIMIZE, "parameters", "Parameters (count, log scale)",
                           RUNG_TRIAL, "param_count", "params", True),
    # At a rung, the same quantity the trial reports at its end: its epochs' seconds so far.
    TRAIN_SECONDS: Objective(TRAIN_SECONDS, MINIMIZE, "seconds", "Training time (s)",
                             RUNG_SUM, "epoch_seconds", "train_seconds", False),
    MACS: Objective(MACS, MINIMIZE, "multiply-accumulates per image", "MACs per image (log scale)",
                    RUNG_TRIAL, "macs", "macs", True),
}

PRIMARY_OBJECTIVE = VAL_ACCURACY  # every study's first objective; single-objective studies have only it


def directions(names: Iterable[str]) -> list[str]:
    """The Optuna direction of each objective name.

    Args:
        names: Objective names (keys of :data:`OBJECTIVES`).

    Returns:
        ``maximize`` or ``minimize`` per name.

    Raises:
        KeyError: an unknown objective.
    """
    return [OBJECTIVES[name].direction for name in names]


def direction_sign(direction: Any) -> float:
    """-1 for ``maximize``, +1 for ``minimize``: multiply to turn values into costs.

    Args:
        direction: ``maximize``/``minimize``, in any case, or an ``optuna.study.StudyDirection``.

    Raises:
        ValueError: anything else.
    """
    text = str(getattr(direction, "name", direction)).lower()
    if text == MAXIMIZE:
        return -1.0
    if text == MINIMIZE:
        return 1.0
    raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")


# ----------------------------------------------------------------------------------------------
# Stop reasons


class StopReason(str, enum.Enum):
    """Why a trial did not complete. The value is what ``stop_reason`` stores."""

    PRUNED = "pruned"
    DIVERGED = "diverged"
    TOO_SLOW = "too_slow"
    CONSTRAINT = "constraint"
    OOM = "oom"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    WORKER_LOST = "worker_lost"
    BUDGET = "budget"
    DEADLINE = "deadline"

    def __str__(self) -> str:
        return self.value

    @property
    def state(self) -> TrialState:
        """The Optuna state a trial stopped for this reason ends in."""
        return TrialState.PRUNED if self in _PRUNED_REASONS else TrialState.FAIL

    @property
    def retryable(self) -> bool:
        """Whether the configuration is queued again, to resume from its last checkpoint."""
        return self in _RETRYABLE

    @property
    def counts_in_budget(self) -> bool:
        """Whether the trial counts in ``n_trials`` (COMPLETE and PRUNED trials do)."""
        return self.state == TrialState.PRUNED

    @property
    def counts_against_retries(self) -> bool:
        """Whether queueing it again uses up the crash-retry limit (``MAX_RETRIES``): a lost worker does;
        a stop by the user or the system (Ctrl-C, SIGTERM, a worker's ``--timeout``) does not."""
        return self in _RETRYABLE and self not in _USER_STOPS

    @property
    def counts_as_failure(self) -> bool:
        """Whether the trial counts towards the failure-streak limit (the configuration's fault)."""
        return self.state == TrialState.FAIL and self not in _NOT_THE_CONFIGURATION

    @classmethod
    def parse(cls, value: Any) -> StopReason | None:
        """The reason a stored ``stop_reason`` names, or None (absent, or a name this release lacks)."""
        if isinstance(value, cls) or value is None:
            return value
        try:
            return cls(value)
        except ValueError:
            return None


_PRUNED_REASONS = frozenset({StopReason.PRUNED, StopReason.DIVERGED, StopReason.TOO_SLOW, StopReason.DEADLINE})
_RETRYABLE = frozenset({StopReason.INTERRUPTED, StopReason.WORKER_LOST})
_USER_STOPS = frozenset({StopReason.INTERRUPTED})  # retried however often: the configuration did nothing wrong
_NOT_THE_CONFIGURATION = frozenset({StopReason.INTERRUPTED, StopReason.WORKER_LOST, StopReason.BUDGET})

MAX_RETRIES = 2  # a crashed configuration (worker_lost) is queued again at most this often; user stops do not count


# ----------------------------------------------------------------------------------------------
# Per-epoch metrics


@dataclass
class EpochMetrics:
    """What one epoch measured; :meth:`to_dict` is one entry of a trial's ``history``."""

    epoch: int  # 1-based
    train_loss: float  # mean training loss over the epoch (label smoothing included), under the moving weights
    train_accuracy: float  # fraction of training images classified correctly, augmented, during the epoch
    val_loss: float  # mean cross entropy on the validation split after the epoch
    val_accuracy: float  # fraction of validation images classified correctly after the epoch
    epoch_seconds: float  # training + evaluation, device-synchronised
    images_per_second: float  # training images per second of the training phase
    lr: float  # learning rate of the epoch's last optimizer step (first parameter group: the head's)
    elapsed_seconds: float  # wall clock since the epoch loop began (see hpo.train)

    def to_dict(self) -> dict[str, float | int]:
        """The metrics as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> EpochMetrics:
        """An entry of a stored ``history`` (keys this release does not know are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in entry.items() if k in names})


SCALAR_CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")  # learning curves (TensorBoard)


def history_entry(history: Sequence[Mapping[str, Any]] | None, epoch: int) -> Mapping[str, Any] | None:
    """The stored history entry of ``epoch`` (1-based), or None."""
    for entry in history or ():
        if isinstance(entry, Mapping) and entry.get("epoch") == epoch:
            return entry
    return None


def history_value(entry: Mapping[str, Any] | None, name: str) -> Any:
    """One field of a stored history entry (an :class:`EpochMetrics` field name), or None."""
    return None if entry is None else entry.get(name)


def train_seconds_of(history: Sequence[Mapping[str, Any]]) -> float:
    """Compute time of a run: the sum of its epochs' training + evaluation seconds."""
    return float(sum(float(entry["epoch_seconds"]) for entry in history))


# ----------------------------------------------------------------------------------------------
# The trial record


@dataclass
class TrialRecord:
    """A trial's user attributes, as typed fields. None means "not recorded".

    Read one with :meth:`of` (a frozen or live trial) or :meth:`from_attrs`; write fields with
    :func:`write_record`. Attributes this release does not know are kept in ``extra``.
    """

    # Before training
    param_count: int | None = None  # all of the model's parameters, a frozen backbone's included
    macs: int | None = None  # multiply-accumulates per image at the training resolution
    constraint_violation: float | None = None  # > 0: by how much a size constraint is exceeded
    resumed_from_epoch: int | None = None  # epochs restored from a checkpoint (0: restarted from scratch)
    retry_of: int | None = None  # the number of the trial this one retries
    # While training
    history: list | None = None  # one EpochMetrics.to_dict() per completed epoch
    checkpoint: str | None = None  # artifact id of the latest checkpoint
    # At the end
    n_val_images: int | None = None  # images the validation accuracy was measured on (its interval's n)
    val_accuracy: float | None = None
    val_loss: float | None = None
    train_accuracy: float | None = None
    train_loss: float | None = None
    epochs_run: int | None = None
    train_seconds: float | None = None  # sum of epoch_seconds: training + evaluation, no checkpoint writes
    images_per_second: float | None = None
    device_name: str | None = None
    peak_memory_bytes: int | None = None
    test_accuracy: float | None = None  # from `hpo evaluate` (older studies keep it on the study)
    n_test_images: int | None = None  # images the test accuracy was measured on
    stop_reason: StopReason | None = None
    error: str | None = None  # one sentence, for stop reasons other than pruned
    traceback: str | None = None  # the last lines of an unexpected exception's traceback
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> TrialRecord:
        """The record stored as ``attrs`` (a trial's ``user_attrs``)."""
        known = _RECORD_FIELDS
        values = {k: v for k, v in attrs.items() if k in known}
        extra = {k: v for k, v in attrs.items() if k not in known}
        if "stop_reason" in values:
            raw = values["stop_reason"]
            parsed = StopReason.parse(raw)
            if parsed is None and raw is not None:
                extra["stop_reason"] = raw  # a reason this release does not know: kept, not lost
            values["stop_reason"] = parsed
        return cls(**values, extra=extra)

    @classmethod
    def of(cls, trial: Any) -> TrialRecord:
        """The record of an ``optuna.Trial`` or ``FrozenTrial``."""
        return cls.from_attrs(trial.user_attrs)

    def to_attrs(self) -> dict[str, Any]:
        """The recorded fields as user attributes (None fields left out, ``extra`` included)."""
        attrs = dict(self.extra)
        for name in _RECORD_FIELDS:
            value = getattr(self, name)
            if value is not None:
                attrs[name] = value.value if isinstance(value, StopReason) else value
        return attrs

    def get(self, name: str) -> Any:
        """A field by name (an objective or metric name), or None."""
        if name in _RECORD_FIELDS:
            return getattr(self, name)
        return self.extra.get(name)

    @property
    def stop_reason_text(self) -> str:
        """The stored reason as text, ``""`` when none (a reason a later release added included)."""
        if self.stop_reason is not None:
            return self.stop_reason.value
        return str(self.extra.get("stop_reason") or "")

    @property
    def epochs(self) -> list[dict]:
        """The history, as stored (an empty list when none)."""
        return list(self.history) if isinstance(self.history, list) else []



_RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialRecord) if f.name != "extra")

# Record fields that tables lay out by name (hpo.api's trials frame, the live display).
STOP_REASON = "stop_reason"
EPOCHS_RUN = "epochs_run"
HISTORY = "history"

# Metrics of the record that are counts (stored by Optuna as floats when they are objective values).
INTEGER_FIELDS = frozenset({"param_count", "macs", "epochs_run", "peak_memory_bytes", "n_val_images", "n_test_images"})

# Record fields the reports copy into each trial's row.
REPORTED_FIELDS: tuple[str, ...] = (
    "val_accuracy", "param_count", "macs", "train_seconds", "epochs_run", "images_per_second", "device_name",
    "peak_memory_bytes", "train_accuracy", "train_loss", "val_loss", "checkpoint", "stop_reason", "test_accuracy",
    "n_val_images", "n_test_images",
)


def record_attrs(**fields: Any) -> dict[str, Any]:
    """User attributes for some record fields (checked by name; StopReason stored as its value).

    Raises:
        TypeError: a name that is not a :class:`TrialRecord` field.
    """
    unknown = [name for name in fields if name not in _RECORD_FIELDS]
    if unknown:
        raise TypeError(f"not a TrialRecord field: {', '.join(unknown)}")
    return {k: (v.value if isinstance(v, StopReason) else v) for k, v in fields.items()}


def write_record(trial: Any, **fields: Any) -> None:
    """Write some record fields to a running trial, in one storage transaction where it can.

    Args:
        trial: A running ``optuna.Trial``.
        **fields: :class:`TrialRecord` field names and values.
    """
    from hpo.storage import set_user_attrs

    set_user_attrs(trial, record_attrs(**fields))


def finite_or_none(value: Any) -> Any:
    """``value``, or None for a NaN or infinite float (JSON and reports have no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------------------------
# System attributes (not shown as user data in the dashboard)

SYS_RETRY_OF = "hpo:retry_of"  # trial: number of the first trial of a retry chain
SYS_RETRIES = "hpo:retries"  # trial: how many times this configuration was retried
SYS_RESUME = "hpo:resume_checkpoint"  # trial: artifact id of the checkpoint to resume from
SYS_WORKER = "hpo:worker"  # trial: the worker that runs it
SYS_HEARTBEAT = "hpo:heartbeat"  # trial: unix time of its worker's last heartbeat
SYS_CREATE_TOKEN = "hpo:create_token"  # trial: a worker's token, to find the trial it created when the reply was lost
SYS_TAKE_TOKEN = "hpo:take_token"  # trial: a worker's token, to recognise the queued trial it took when the reply was lost
SYS_GRID_ID = "grid_id"  # trial: the point Optuna's GridSampler gave it
WORKER_PRESENCE_PREFIX = "hpo:worker:"  # study: hpo:worker:<id> -> {host, pid, device, time}
CHECKPOINT_REMOVED_PREFIX = "hpo:checkpoint_removed:"  # study: hpo:checkpoint_removed:<number> -> True
TEST_ACCURACY_PREFIX = "test_accuracy:"  # study: test_accuracy:<number> -> accuracy (finished trials are read-only)
TEST_IMAGES_PREFIX = "test_images:"  # study: test_images:<number> -> the images that accuracy was measured on
SYS_WARM_FROM = "hpo:warm_start_from"  # trial: "STUDY#N", the trial of another study whose configuration it runs

# System attributes a retry of a trial keeps (hpo.study.enqueue_retry): what the configuration is, not
# how far its run got.
SYS_REFIT_OF = "hpo:refit_of"  # trial of a refit study: the number of the search trial whose configuration it retrains
SYS_REFIT_SEED = "hpo:refit_seed"  # trial of a refit study: the seed it trains with (initialisation, order, augmentation)
CARRIED_SYSTEM_ATTRS: tuple[str, ...] = (SYS_WARM_FROM, SYS_REFIT_OF, SYS_REFIT_SEED)

# Refits (hpo.refit): study user attributes of a refit study (``<study>.refit``): the search study it
# retrains, and that it runs only its queued trials (no sampling, no pruning).
REFIT_SOURCE_KEY = "refit_of_study"
QUEUE_ONLY_KEY = "queue_only"

# Warm start (hpo.warm_start): the study-file key, and the study user attribute recording that the
# study's warm trials were enqueued, and from where ({from, storage, top, trials}).
WARM_START_KEY = "warm_start"

# The study's time budget: the study-file and definition key, and the study user attribute that holds
# it ({"seconds": ...} or {"device_hours": ...}), changed like n_trials. Not the ``budget`` stop reason.
BUDGET_KEY = "budget"

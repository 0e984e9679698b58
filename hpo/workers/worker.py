"""One worker: the trial loop of one process bound to one device, with the exact budget.

A worker loads the study's definition and data from storage, then asks, trains and tells trials
until the study-wide budget is met. ``hpo run`` starts one worker process per slot
(:mod:`hpo.workers.launch`); ``hpo worker`` joins from anywhere that reaches the storage. The
trainer is passed in (``run_worker(options, trainer=...)``), so a benchmark or a test swaps it
without patching.

Budget (DECISIONS.md): ``n_trials`` counts COMPLETE + PRUNED trials study-wide. Queued trials
(WAITING: enqueued recipes and retries) are taken first. Otherwise a worker asks for a new trial
only while COMPLETE + PRUNED + RUNNING < N, and waits while the remainder is in flight elsewhere.
After ``ask`` it ranks its trial among COMPLETE + PRUNED + RUNNING + WAITING by number; a trial
ranked beyond N (a concurrent worker took the last slot) ends as FAIL ``budget`` before training.

Time budget (:mod:`hpo.budget`): a study may also have one, and then ends at exactly N or at its
deadline, whichever comes first (N may be unlimited). Past the deadline no new or queued trial
starts, and a running trial stops at its next epoch end, PRUNED with ``deadline``
(:mod:`hpo.workers.deadline`). A worker's ``timeout`` stops its running trial at the next epoch end
too, recorded as on Ctrl-C (``interrupted``, queued to resume).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo import compat
from hpo import study as studies
from hpo.config import DEFAULT_N_TRIALS, StudyConfig
from hpo.errors import HpoError
from hpo.refit import is_queue_only
from hpo.tracking import open_tracking
from hpo.trials import StopReason, TrialRecord, write_record
from hpo.workers.deadline import StopAtEpochEnd, WorkerDeadline
from hpo.workers.interrupts import InterruptCounter, Interrupted, record_within
from hpo.workers.liveness import Heartbeat, WorkerInfo, reap_stale_trials, retry_once
from hpo.workers.trial import Trainer, TrialContext, run_trial, trial_constraints

log = logging.getLogger("hpo")

MAX_CONSECUTIVE_CONSTRAINT_FAILS = 100
POLL_SECONDS = 2.0  # how often an idle worker looks at the study again


@dataclass
class BudgetState:
    """Study-wide trial counts that the budget rule reads."""

    finished: int  # COMPLETE + PRUNED
    running: int
    waiting: int


def budget_state(study: optuna.Study) -> BudgetState:
    """The study's finished, running and waiting trial counts."""
    counts = studies.count_states(study)
    return BudgetState(counts[TrialState.COMPLETE] + counts[TrialState.PRUNED], counts[TrialState.RUNNING],
                       counts[TrialState.WAITING])


def next_action(state: BudgetState, n_trials: int | None) -> str:
    """``ask``, ``wait`` (the rest of the budget is in flight elsewhere) or ``stop`` (None: no limit N)."""
    if n_trials is None:
        return "ask"
    if state.finished >= n_trials:
        return "stop"
    if state.waiting > 0 or state.finished + state.running < n_trials:
        return "ask"
    return "wait"


def beyond_budget(study: optuna.Study, trial_number: int, n_trials: int | None) -> bool:
    """Whether ``trial_number`` ranks beyond ``n_trials`` among live and finished trials."""
    if n_trials is None:
        return False
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    numbers = sorted(t.number for t in study.get_trials(deepcopy=False, states=states))
    return trial_number in numbers[n_trials:]


def check_failure_streak(study: optuna.Study, n_trials: int | None, since_number: int = 0) -> None:
    """Stop a study that only fails: N consecutive FAILs, or 100 consecutive constraint violations.

    Interrupted, lost and budget trials do not count: they are not the configuration's fault.

    Args:
        study: The study.
        n_trials: Its budget N (None, no limit: the streak limit is ``DEFAULT_N_TRIALS``).
        since_number: only trials numbered from here count (the study's size when this worker
            joined), so that a run started after fixing the cause (disk freed, memory) gets its
            own N attempts instead of stopping at once on the previous run's failures.

    Raises:
        HpoError: the streak is reached, naming the last failure and what to do.
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    fails = constraint_fails = 0
    last: TrialRecord | None = None
    last_number = -1
    for trial in sorted(trials, key=lambda t: t.number, reverse=True):  # newest first: the streak ends at a success
        if trial.number < since_number:
            break
        record = TrialRecord.of(trial)
        reason = record.stop_reason
        if reason is not None and reason.state == TrialState.FAIL and not reason.counts_as_failure:
            continue
        if trial.state != TrialState.FAIL:
            break
        if last is None:
            last, last_number = record, trial.number
        if reason == StopReason.CONSTRAINT:
            constraint_fails += 1
        else:
            fails += 1
    if fails >= max(DEFAULT_N_TRIALS if n_trials is None else n_trials, 1):
        error = last.error if last.error is not None else "no message"
        raise HpoError(
            f"study {study.study_name!r} stopped after {fails} consecutive failed trials (last: trial {last_number}, "
            f"{last.stop_reason_text or None}: {error}); fix the cause shown by `hpo status` and run again"
        )
    if constraint_fails >= MAX_CONSECUTIVE_CONSTRAINT_FAILS:
        raise HpoError(
            f"study {study.study_name!r} stopped after {constraint_fails} consecutive trials over its constraints; "
            "widen constraints (max_params, max_macs) or narrow the search space"
        )


def plan_next(study: optuna.Study, sampler: optuna.samplers.BaseSampler, since_number: int = 0,
              deadline: WorkerDeadline | None = None) -> tuple[str, int | None]:
    """The worker loop's study-wide checks before each trial, and what to do next.

    Reaps trials whose workers were lost, stops at the study's deadline or the worker's timeout,
    stops a study that only fails (``check_failure_streak``) and applies the budget rule.

    Returns:
        ``(action, n_trials)``: action is ``ask``, ``wait``, ``stop``, ``spent`` (the time budget
        is spent), ``timeout`` (the worker's own) or ``exhausted`` (a grid sampler has no
        configuration left); n_trials is the study's current budget (None: no limit).
    """
    from hpo.samplers import sampler_exhausted

    n_trials = studies.n_trials_of(study)
    reap_stale_trials(study)
    if deadline is not None:
        deadline.refresh()
        reason = deadline.reason()
        if reason is not None:
            return ("spent" if reason == StopReason.DEADLINE else "timeout"), n_trials
    check_failure_streak(study, n_trials, since_number=since_number)
    state = budget_state(study)
    action = next_action(state, n_trials)
    if action == "ask" and state.waiting == 0 and is_queue_only(study):
        action = "wait" if state.running else "stop"  # a refit study never samples: its queue is all it runs
    if action == "ask" and sampler_exhausted(sampler, study):
        action = "exhausted"
    return action, n_trials


def load_worker_study(
    storage: optuna.storages.BaseStorage, name: str, config: StudyConfig, worker_id: str,
) -> tuple[optuna.Study, optuna.samplers.BaseSampler, Any]:
    """Load a stored study the way a worker runs it: with the study's sampler and pruner.

    Args:
        storage: The storage holding the study.
        name: The study's name.
        config: Its stored definition (``hpo.study.definition_of``).
        worker_id: The worker's name; its sampler's seed derives from it and the study seed, so
            that workers do not propose identical configurations.

    Returns:
        ``(study, sampler, pruner)``: the pruner is an ``hpo.pruners.BasePruner``; the study is
        loaded with its ``optuna_pruner``.
    """
    from hpo.pruners import create_pruner
    from hpo.samplers import make_sampler, worker_seed

    sampler = make_sampler(
        config.sampler.name, config.sampler.args, space=config.space, n_objectives=len(config.objectives),
        seed=worker_seed(config.seed, worker_id), constraints_func=trial_constraints,
    )
    study = studies.load_stored(name, storage, sampler=sampler)
    # A refit study's trials are never pruned: each is a full run of a chosen configuration.
    pruner_name, pruner_args = ("none", {}) if is_queue_only(study) else (config.pruner.name, config.pruner.args)
    pruner = create_pruner(pruner_name, pruner_args, objectives=list(config.objectives), epochs=config.epochs)
    study.pruner = pruner.optuna_pruner  # a public attribute of optuna.Study: the study is loaded once
    return study, sampler, pruner


@dataclass
class WorkerOptions:
    """One worker process's settings."""

    study_name: str
    storage_url: str
    device: str = "auto"
    worker_id: str = ""
    data_dir: str | None = None
    artifacts: str | None = None
    threads: int | None = None
    timeout: float | None = None  # wall-clock seconds for this worker
    timeout_at: float | None = None  # unix time the timeout ends (set by launch, so that all its workers agree)
    tensorboard_dir: str | None = None
    max_trials: int | None = None  # stop after this many trials of this worker (tests, benchmarks)
    packing: bool = False  # --per-device auto: a trial trains only once it fits the device's free memory
    mlflow: str | None = None  # --mlflow URI: log trials to MLflow (hpo.tracking), replacing the study's tracking.mlflow
    wandb: str | None = None  # --wandb PROJECT: log trials to W&B, replacing the study's tracking.wandb project


def _prepare(options: WorkerOptions, worker_id: str, trainer: Trainer | None) -> tuple[TrialContext, Any]:
    # Everything a worker loads once: device, storage, definition, data, sampler, pruner, fault plan.
    from hpo.data import load_dataset, resolve_data_dir
    from hpo.device import resolve_device, set_cpu_threads
    from hpo.faults import FaultPlan
    from hpo.storage import open_artifact_store, open_retrying_storage, safe_component

    device = resolve_device(options.device)
    set_cpu_threads(options.threads)
    storage = open_retrying_storage(options.storage_url)  # rides out database restarts (HPO_STORAGE_RETRY_SECONDS)
    stored = studies.load_stored(options.study_name, storage)
    config = studies.definition_of(stored)
    # No data_dir: $HPO_DATA_DIR, else ./data (DECISIONS.md "Data").
    dataset = load_dataset(config.dataset, resolve_data_dir(options.data_dir), split_seed=config.seed)
    studies.check_fingerprint(stored, dataset.fingerprint)
    study, sampler, pruner = load_worker_study(storage, options.study_name, config, worker_id)
    ctx = TrialContext(
        study=study, config=config, dataset=dataset, device=device,
        artifact_store=open_artifact_store(options.artifacts),
        feature_cache_dir=Path(options.artifacts or os.environ.get("HPO_ARTIFACTS") or "artifacts") / "features",
        pruner=pruner, worker_id=worker_id,
        tensorboard_dir=Path(options.tensorboard_dir) if options.tensorboard_dir else None,
        trainer=trainer, faults=FaultPlan.from_env(),  # the fault-injection seams are read once, here
    )
    safe_component(config.name)
    ctx.tracking = open_tracking(ctx, options)  # the study's trackers and callbacks (hpo.tracking)
    if options.packing:  # hpo.workers.packing: the trainer waits at the device's memory gate
        from hpo.workers.packing import gate_for

        ctx.trainer = gate_for(ctx).wrap(ctx.trainer)
    return ctx, sampler


def run_worker(options: WorkerOptions, trainer: Trainer | None = None) -> dict[str, int]:
    """Run trials of a stored study until its budget is met, the timeout passes, or an interrupt.

    Args:
        options: The worker's settings.
        trainer: The training function, with ``hpo.train.train``'s signature (default: that one).

    Returns:
        Counts of this worker's trials by final state name.

    Raises:
        HpoError: the study, data or device cannot be used (clear message), or the study only fails.
        Interrupted: (a ``KeyboardInterrupt``) on SIGINT/SIGTERM, after recording the running trial as
            ``interrupted`` and queueing it to resume; a second signal bounds that recording to
            ``SECOND_PRESS_GRACE_SECONDS`` (:mod:`hpo.workers.interrupts`).
    """
    from hpo.device import device_name

    worker_id = options.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    ctx, sampler = _prepare(options, worker_id, trainer)
    ctx.deadline = WorkerDeadline(ctx.study, options.timeout_at - time.time() if options.timeout_at else options.timeout or None)
    info = WorkerInfo(host=socket.gethostname(), pid=os.getpid(), device=str(ctx.device),
                      device_name=device_name(ctx.device))
    presence = Heartbeat.for_study(ctx.study, worker_id, dataclasses.asdict(info))
    presence.beat()
    presence.start()
    interrupts = InterruptCounter().install()  # SIGINT and SIGTERM: the first raises, a second only hurries
    # Everything loaded so far (torch, the data, the study) lives as long as the worker: exempt it from
    # the garbage collector, so that the collection after each trial only scans what the trial made.
    gc.freeze()
    log.info("worker %s joined study %s on %s (%s)", worker_id, ctx.config.name, ctx.device, info.device_name)
    try:
        return _trial_loop(ctx, sampler, presence, options, interrupts)
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(ctx.config.name) from None  # between trials: nothing was running
    finally:
        presence.stop()
        interrupts.restore()
        shutil.rmtree(ctx.scratch_dir, ignore_errors=True)  # local checkpoint copies: the artifact store keeps them
        presence.leave()


_STOP_MESSAGES = {"exhausted": "the grid is exhausted", "spent": "the study's time budget is spent",
                  "timeout": "timeout reached"}


def _trial_loop(ctx: TrialContext, sampler: Any, presence: Heartbeat, options: WorkerOptions,
                interrupts: InterruptCounter | None = None) -> dict[str, int]:
    first_number = len(ctx.study.get_trials(deepcopy=False))  # the failure streak counts this worker's era only
    outcome: dict[str, int] = {}
    while True:
        if options.max_trials is not None and sum(outcome.values()) >= options.max_trials:
            break
        action, n_trials = plan_next(ctx.study, sampler, since_number=first_number, deadline=ctx.deadline)
        if action in _STOP_MESSAGES:
            log.info("worker %s: %s", ctx.worker_id, _STOP_MESSAGES[action])
            break
        if action == "stop":
            break
        if action == "wait":
            time.sleep(POLL_SECONDS)
            continue
        state = run_one(ctx.study, ctx, n_trials, presence, interrupts)
        outcome[state.name] = outcome.get(state.name, 0) + 1
    return outcome


def run_one(study: optuna.Study, ctx: TrialContext, n_trials: int | None, heartbeat: Heartbeat,
            interrupts: InterruptCounter | None = None) -> TrialState:
    """Ask one trial, run it, tell its result.

    Returns:
        The state that counts for it (another worker's verdict when it took the trial for lost).

    Raises:
        Interrupted: after recording the trial as ``interrupted`` and queueing its retry (within
            the grace of a second press, see :func:`hpo.workers.interrupts.record_within`).
    """
    trial = None
    try:
        # A press while the trial is created and claimed is raised once it is claimed: never an unowned trial.
        with interrupts.hold() if interrupts is not None else contextlib.nullcontext():
            trial = study.ask()
            heartbeat.trial_id = compat.trial_id(trial)
            heartbeat.claim(heartbeat.trial_id)
        if beyond_budget(study, trial.number, n_trials):
            write_record(trial, stop_reason=StopReason.BUDGET)
            study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL
        try:
            state, values = run_trial(ctx, trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker took this trial for lost (its heartbeats were late: an overloaded machine
            # or a storage that kept them waiting) and queued its retry, which counts instead.
            stored = compat.storage_of(study).get_trial(compat.trial_id(trial))
            log.warning("trial %d was recorded as %s (%s) by another worker while it ran here; its retry counts instead",
                        trial.number, stored.state.name, TrialRecord.of(stored).stop_reason_text)
            return stored.state
        except HpoError as exc:
            write_record(trial, stop_reason=StopReason.ERROR, error=str(exc))
            state, values = TrialState.FAIL, None
        except StopAtEpochEnd:
            # The worker's timeout passed (the study's deadline is handled by the trial run): as on
            # Ctrl-C, the trial is interrupted and queued to resume, but the worker ends normally.
            _record_interrupt(study, trial)
            return TrialState.FAIL
        except Exception as exc:  # a bug in one configuration must not stop the study
            log.exception("trial %d failed", trial.number)
            studies.record_error(trial, exc)
            state, values = TrialState.FAIL, None
        return _tell(study, ctx, trial, state, values)
    except KeyboardInterrupt:
        if trial is None:  # a second press while asking (or no counter installed): nothing this worker can name
            raise
        # Anywhere after ask, so that an interrupted trial never stays RUNNING until it is reaped.
        def record() -> bool:
            heartbeat.mark_interrupted()  # should a second press cut the next writes short, the reaper knows
            return _record_interrupt(study, trial)

        try:
            recorded, ours = record_within(record, interrupts)
        except Exception as exc:  # the storage failed for good: the next run takes the trial for lost
            log.warning("trial %d: could not record the interrupt (%s); the next run resumes it", trial.number, exc)
            recorded, ours = False, None
        # A trial that had ended before the interrupt (told, or reaped elsewhere) is not this one's to name.
        raise Interrupted(study.study_name, [trial.number] if ours or not recorded else [], recorded) from None
    finally:
        heartbeat.trial_id = None


def _record_interrupt(study: optuna.Study, trial: optuna.Trial) -> bool:
    """End an interrupted trial as FAIL ``interrupted`` and queue it to resume, unless it has ended
    already: told before the interrupt, or taken for lost by another worker (which queued its retry).

    Returns:
        Whether this call recorded the trial as interrupted.
    """
    try:
        write_record(trial, stop_reason=StopReason.INTERRUPTED)
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Ended before the interrupt, or reaped between our reading it as running and our write
        # (tell reads the state, then writes): nothing to record.
        log.warning("trial %d had ended when it was interrupted; nothing to record", trial.number)
        return False
    stored = studies.get_trial(study, trial.number)
    if stored.state != TrialState.FAIL or TrialRecord.of(stored).stop_reason != StopReason.INTERRUPTED:
        return False  # another worker's verdict stands (worker_lost, with its own retry)
    retry_once(study, trial.number, StopReason.INTERRUPTED)
    log.warning("trial %d interrupted; queued to resume from its last checkpoint", trial.number)
    return True


def _tell(study: optuna.Study, ctx: TrialContext, trial: optuna.Trial, state: TrialState,
          values: list[float] | None) -> TrialState:
    study.tell(trial, values=values, state=state, skip_if_finished=True)
    stored = compat.storage_of(study).get_trial(compat.trial_id(trial))
    if stored.state != state:
        # Another worker took this trial for lost (this one could not write heartbeats for the
        # stale limit) and queued a retry: the retry, not this result, counts.
        log.warning("trial %d finished here as %s but was already recorded as %s (%s); its retry counts instead",
                    trial.number, state.name, stored.state.name, TrialRecord.of(stored).stop_reason_text)
        return stored.state
    reason = TrialRecord.of(trial).stop_reason_text
    log.info("trial %d %s%s values=%s", trial.number, state.name, f" ({reason})" if reason else "", values)
    ctx.tracking.trial_told(study, stored)  # trackers end the trial's run, then the callbacks (study, frozen_trial)
    _apply_checkpoint_policy(study, ctx)
    return state


def _apply_checkpoint_policy(study: optuna.Study, ctx: TrialContext) -> None:
    from hpo.checkpoints import apply_policy

    policy = ctx.config.checkpoints
    if is_queue_only(study):  # a refit study keeps every refit's weights: `hpo best` exports one of them
        policy = dataclasses.replace(policy, keep="all", disk_budget_mb=None)
    try:
        apply_policy(study, ctx.artifact_store, policy)
    except Exception as exc:  # disk housekeeping must never fail a study
        log.warning("checkpoint clean-up failed: %s", exc)


def configure_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Log hpo's messages to a file (per-worker logs) or stderr, with time and worker pid.

    Args:
        log_file: The file to append to (its folder is created), or None for stderr.
        level: The lowest level logged.
    """
    handler: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    optuna.logging.set_verbosity(optuna.logging.WARNING)

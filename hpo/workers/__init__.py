"""Workers in three rooms: liveness, the worker's trial loop, and launch.

- :mod:`hpo.workers.liveness`: heartbeats (:class:`Heartbeat`), the live-worker list and the
  reaper of trials whose worker was lost (:func:`reap_stale_trials`);
- :mod:`hpo.workers.worker`: one worker's trial loop (:func:`run_worker`, with its trainer passed
  in) and the exact budget; :mod:`hpo.workers.trial`: one trial's run (:class:`TrialRun`);
- :mod:`hpo.workers.launch`: device slots (:func:`plan_slots`), worker processes and their signals
  (:func:`launch`, shared by ``hpo run`` and ``hpo worker``), and the public entry point
  ``python -m hpo.workers``.
"""

from hpo.workers.launch import (
    OPTIONS_ENV,
    LaunchResult,
    Slot,
    entry_point,
    launch,
    options_from_environment,
    outcome_line,
    plan_slots,
    worker_environment,
    worker_log_tail,
)
from hpo.workers.liveness import (
    STALE_HEARTBEATS,
    Heartbeat,
    WorkerInfo,
    heartbeat_seconds,
    live_workers,
    reap_stale_trials,
)
from hpo.workers.trial import Trainer, TrialContext, TrialRun, objective_values, run_trial, trial_constraints
from hpo.workers.worker import (
    BudgetState,
    WorkerOptions,
    beyond_budget,
    budget_state,
    check_failure_streak,
    configure_logging,
    load_worker_study,
    next_action,
    plan_next,
    run_one,
    run_worker,
)

__all__ = [
    "OPTIONS_ENV",
    "STALE_HEARTBEATS",
    "BudgetState",
    "Heartbeat",
    "LaunchResult",
    "Slot",
    "Trainer",
    "TrialContext",
    "TrialRun",
    "WorkerInfo",
    "WorkerOptions",
    "beyond_budget",
    "budget_state",
    "check_failure_streak",
    "configure_logging",
    "entry_point",
    "heartbeat_seconds",
    "launch",
    "live_workers",
    "load_worker_study",
    "next_action",
    "objective_values",
    "options_from_environment",
    "outcome_line",
    "plan_next",
    "plan_slots",
    "reap_stale_trials",
    "run_one",
    "run_trial",
    "run_worker",
    "trial_constraints",
    "worker_environment",
    "worker_log_tail",
]

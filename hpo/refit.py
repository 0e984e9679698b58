"""Refits: chosen configurations of a study retrained from scratch with new seeds.

A search ranks configurations by one run each. ``hpo refit`` retrains the chosen ones (the front,
the top K, or given trials) with N new seeds each (initialisation, data order, augmentation; the
same train/validation split, which the study's own seed fixes) and evaluates every refit on
validation and test. The refits are trials of a separate study, ``<study>.refit``, in the same
storage (:func:`hpo.analysis.refits.refit_study_name`):

- the search study's sampler never sees them, and they never count in its N or its time budget;
- each refit trial names the search trial it retrains (``hpo:refit_of``) and its seed
  (``hpo:refit_seed``); a retry of a lost or interrupted refit keeps both, so a seed is never run
  twice and none is lost;
- the refit study runs only its queued trials (``queue_only``): a worker never samples a new
  configuration there and never prunes, and stops when the queue is empty.

The workers are hpo's own (:mod:`hpo.workers`), on every device, resumable as ``hpo run`` is:
running ``hpo refit`` again queues only the (configuration, seed) pairs that are neither finished
nor queued, and resumes interrupted ones from their checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from hpo import study as studies
from hpo.analysis.refits import refit_study_name
from hpo.errors import ConfigError
from hpo.trials import (
    PRIMARY_OBJECTIVE,
    QUEUE_ONLY_KEY,
    REFIT_SOURCE_KEY,
    SYS_REFIT_OF,
    SYS_REFIT_SEED,
    direction_sign,
)

# The search study's attributes a refit study copies: what a worker needs to train its trials.
_COPIED_ATTRS = (studies.ATTR_DEFINITION, studies.ATTR_DEFINITION_HASH, studies.ATTR_FINGERPRINT,
                 studies.ATTR_VERSION, studies.ATTR_HARDWARE)


@dataclass(frozen=True)
class RefitPlan:
    """What ``hpo refit`` queued.

    Attributes:
        study_name: The refit study (``<study>.refit``).
        trials: The search trials being refitted.
        seeds: The refit seeds, the same for every configuration.
        queued: (trial, seed) pairs queued by this call.
        finished: pairs finished before this call.
        in_flight: pairs queued or running before this call (resumed, not queued again).
    """

    study_name: str
    trials: tuple[int, ...]
    seeds: tuple[int, ...]
    queued: tuple[tuple[int, int], ...]
    finished: tuple[tuple[int, int], ...]
    in_flight: tuple[tuple[int, int], ...]

    @property
    def to_run(self) -> int:
        return len(self.queued) + len(self.in_flight)


def refit_seeds(study_seed: int, n: int) -> list[int]:
    """The N refit seeds of a study: ``seed + 1 ... seed + N`` (never the search's own seed).

    The same for every configuration and every call, so ``--seeds 5`` after ``--seeds 3`` adds two.
    """
    return [int(study_seed) + k for k in range(1, n + 1)]


def is_queue_only(study: optuna.Study) -> bool:
    """Whether a study only runs its queued trials (a refit study)."""
    return bool(study.user_attrs.get(QUEUE_ONLY_KEY))


def choose_trials(study: optuna.Study, *, pareto: bool = False, trials: Sequence[int] | None = None,
                  top: int | None = None) -> list[int]:
    """The search trials to refit: exactly one of ``pareto`` (the front), ``trials`` or ``top``
    (the K complete trials with the best primary objective, validation accuracy).

    Raises:
        ConfigError: none or several of the three, an unknown or unfinished trial, K < 1.
    """
    given = [name for name, value in (("--pareto", pareto), ("--trials", trials), ("--top", top is not None)) if value]
    if len(given) != 1:
        raise ConfigError(f"hpo refit needs exactly one of --pareto, --trials 3,7 or --top K (got {', '.join(given) or 'none'})")
    complete = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    if not complete:
        raise ConfigError(f"study {study.study_name!r} has no complete trial to refit yet; run it first (`hpo run --study NAME`)")
    if trials:
        for number in trials:
            if number not in complete:
                state = "no such trial" if number < 0 or number >= len(study.get_trials(deepcopy=False)) else "not COMPLETE"
                raise ConfigError(f"--trials {number}: {state} in study {study.study_name!r}; complete trials are "
                                  f"{_ranges(sorted(complete))}")
        return list(dict.fromkeys(int(n) for n in trials))
    if pareto:
        from hpo.evaluation import pareto_trial_numbers

        return pareto_trial_numbers(study)
    if top < 1:
        raise ConfigError(f"--top must be at least 1 (got {top})")
    index = _primary_index(study)
    sign = direction_sign(study.directions[index])  # values times sign are costs: lowest first
    ranked = sorted(complete.values(), key=lambda t: (sign * t.values[index], t.number))
    return [t.number for t in ranked[:top]]


def _primary_index(study: optuna.Study) -> int:
    names = list(study.metric_names or [])
    return names.index(PRIMARY_OBJECTIVE) if PRIMARY_OBJECTIVE in names else 0


def _ranges(numbers: Sequence[int]) -> str:
    """``0-4, 7, 9-10``: a list of trial numbers, short."""
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts)


def open_refit_study(study: optuna.Study) -> optuna.Study:
    """The refit study of a search study, created (with the search's definition) if needed."""
    from hpo import compat

    storage = compat.storage_of(study)
    name = refit_study_name(study.study_name)
    try:
        refit = optuna.create_study(study_name=name, storage=storage, directions=study.directions)
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage)
    if study.metric_names:
        refit.set_metric_names(list(study.metric_names))
    attrs = study.user_attrs
    for key in _COPIED_ATTRS:
        if key in attrs:
            refit.set_user_attr(key, attrs[key])
    refit.set_user_attr(REFIT_SOURCE_KEY, study.study_name)
    refit.set_user_attr(QUEUE_ONLY_KEY, True)
    refit.set_user_attr(studies.ATTR_N_TRIALS, 0)
    return refit


def prepare_refits(study: optuna.Study, numbers: Sequence[int], n_seeds: int) -> RefitPlan:
    """Queue the refits of ``numbers`` with ``n_seeds`` seeds each in the study's refit study.

    A (trial, seed) pair already finished, queued or running is not queued again. The refit
    study's N becomes the number of pairs asked for so far, so its workers stop at exactly that.

    Raises:
        ConfigError: ``n_seeds`` < 1.
    """
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be at least 1 (got {n_seeds})")
    config = studies.definition_of(study)
    seeds = refit_seeds(config.seed, n_seeds)
    refit = open_refit_study(study)
    finished, in_flight = set(), set()
    for trial in refit.get_trials(deepcopy=False):
        key = (trial.system_attrs.get(SYS_REFIT_OF), trial.system_attrs.get(SYS_REFIT_SEED))
        if None in key:
            continue
        key = (int(key[0]), int(key[1]))
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            finished.add(key)
        elif trial.state in (TrialState.WAITING, TrialState.RUNNING):
            in_flight.add(key)
    in_flight -= finished
    queued = []
    for number in numbers:
        source = studies.get_trial(study, number)
        for seed in seeds:
            if (number, seed) in finished or (number, seed) in in_flight:
                continue
            refit.add_trial(optuna.trial.create_trial(
                state=TrialState.WAITING, params=source.params, distributions=source.distributions,
                system_attrs={SYS_REFIT_OF: int(number), SYS_REFIT_SEED: int(seed)},
            ))
            queued.append((int(number), int(seed)))
    asked = finished | in_flight | set(queued)
    refit.set_user_attr(studies.ATTR_N_TRIALS, len(asked))
    mine = lambda pairs: tuple(sorted(p for p in pairs if p[0] in set(numbers) and p[1] in seeds))  # noqa: E731
    return RefitPlan(study_name=refit.study_name, trials=tuple(int(n) for n in numbers), seeds=tuple(seeds),
                     queued=tuple(queued), finished=mine(finished), in_flight=mine(in_flight))


def refit_seed_of(system_attrs: dict) -> int | None:
    """The seed a trial of a refit study trains with, or None for a search trial."""
    seed = system_attrs.get(SYS_REFIT_SEED)
    return None if seed is None else int(seed)


__all__ = [
    "RefitPlan",
    "choose_trials",
    "is_queue_only",
    "open_refit_study",
    "prepare_refits",
    "refit_seed_of",
    "refit_seeds",
    "refit_study_name",
]

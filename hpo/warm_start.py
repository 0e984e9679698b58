"""Warm start: a new study begins with another study's best configurations.

``warm_start: {from: resnet-mini, top: 5}`` in a study file (``storage: URL`` when the source lives
in another storage), or ``hpo run --warm-start-from resnet-mini --warm-start-top 5
[--warm-start-storage URL]``; an option given on the command line wins over the file's.

What happens when the study is created (:func:`hpo.study.create_or_load`):

1. :func:`plan` loads the source study and picks its best configurations (:func:`rank_trials`):
   only COMPLETE trials; for a single-objective source, the highest validation accuracy first;
   for a multi-objective source, Pareto rank first (the front, then the front of the rest, ...),
   and within a rank the largest crowding distance first (NSGA-II's rule: the front's extremes,
   then its sparsest regions, so K trials spread over the tradeoff instead of crowding one end),
   ties broken by validation accuracy, then trial number. Configurations that repeat one already
   chosen are skipped.
2. Each chosen configuration (its sampled values plus its space's fixed values) is checked
   against the new study's search space: a parameter the new space does not have, a value
   outside its range or choices, or a parameter the new space would not sample under the
   configuration's other values refuses the whole warm start with one sentence naming the source
   study, trial, parameter, value and what the new space allows. Nothing is created then.
   Parameters of the new space the source did not have are left out and sampled by the study's
   sampler, as for any trial.
3. :func:`enqueue` queues them as WAITING trials before anything else (so they get the lowest
   trial numbers and run first), each marked with the system attribute
   :data:`~hpo.trials.SYS_WARM_FROM` = ``"STUDY#N"`` (kept by retries), and records the warm start
   in the study's user attribute :data:`~hpo.trials.WARM_START_KEY`.

Warm trials are search trials: they count in ``n_trials`` and the time budget, and the sampler
learns from them. A resumed study is never warm-started again (:func:`check_resumed`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import ConfigError
from hpo.space import SearchSpace, check_assignment, decode_params
from hpo.space.search_space import Param, describe_param
from hpo.trials import SYS_WARM_FROM, WARM_START_KEY, direction_sign
from hpo.typed import conforms, type_name

if TYPE_CHECKING:
    from hpo.config import StudyConfig

log = logging.getLogger("hpo")

DEFAULT_TOP = 5  # configurations taken from the source when ``top`` is not given
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # as hpo.config accepts study names
_KEYS = {"from": str, "top": int, "storage": str | None}  # the ``warm_start:`` keys and their types


@dataclass(frozen=True)
class WarmStart:
    """Where a study's first trials come from (``warm_start:`` in a study file).

    Attributes:
        source: The source study's name (``from``).
        top: How many of its best configurations to run first.
        storage: The source's storage URL; None: the new study's own storage.
    """

    source: str
    top: int = DEFAULT_TOP
    storage: str | None = None

    @classmethod
    def from_dict(cls, raw: Any, origin: str = "") -> WarmStart | None:
        """The ``warm_start:`` value of a study file: ``{from: STUDY, top: K, storage: URL}`` or just ``STUDY``.

        Args:
            raw: The value as read from YAML (None: no warm start).
            origin: The file's name, prefixed to messages.

        Returns:
            The warm start, or None.

        Raises:
            ConfigError: naming ``warm_start.<key>``, what it must be and the value given.
        """
        prefix = f"{origin}: " if origin else ""
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = {"from": raw}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{prefix}{WARM_START_KEY} must be a mapping like {{from: resnet-mini, top: 5}} (got {raw!r})")
        for key, value in raw.items():
            if key not in _KEYS:
                raise ConfigError(f"{prefix}unknown key {WARM_START_KEY}.{key!s}; valid keys: {', '.join(_KEYS)}")
            if not conforms(value, _KEYS[key]):
                raise ConfigError(f"{prefix}{WARM_START_KEY}.{key} must be {type_name(_KEYS[key])} (got {value!r})")
        try:
            return cls.build(raw.get("from"), raw.get("top"), raw.get("storage"), labels=_file_labels())
        except ConfigError as exc:
            raise ConfigError(f"{prefix}{exc}") from None

    @classmethod
    def build(cls, source: Any, top: Any = None, storage: Any = None, *, labels: Mapping[str, str] | None = None) -> WarmStart:
        """A checked warm start; ``labels`` name the keys or options in messages (``from``/``top``/``storage``).

        Raises:
            ConfigError: a missing or malformed study name, ``top`` below 1, or an unknown storage scheme.
        """
        from hpo.storage import storage_kind

        labels = labels or _option_labels()
        if not isinstance(source, str) or not _NAME_RE.fullmatch(source) or ".." in source:
            raise ConfigError(f"{labels['from']} must name a study: letters, digits, '.', '_' and '-' (got {source!r})")
        top = DEFAULT_TOP if top is None else top
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ConfigError(f"{labels['top']} must be an integer >= 1 (got {top!r})")
        if storage is not None:
            storage_kind(storage)  # an unknown scheme is refused now, not when the study is created
        return cls(source, top, storage)

    def describe(self) -> dict[str, Any]:
        """What the study records about its warm start (the storage's password masked)."""
        from hpo.storage import mask_url

        return {"from": self.source, "top": self.top, "storage": None if self.storage is None else mask_url(self.storage)}


def _file_labels() -> dict[str, str]:
    return {key: f"{WARM_START_KEY}.{key}" for key in _KEYS}


def _option_labels() -> dict[str, str]:
    return {key: f"--warm-start-{key}" for key in _KEYS}


def with_options(configured: WarmStart | None, source: str | None, top: int | None, storage: str | None) -> WarmStart | None:
    """The warm start of one ``hpo run``: each ``--warm-start-*`` option given wins over the file's key.

    Args:
        configured: The study file's warm start, or None.
        source: ``--warm-start-from``, or None.
        top: ``--warm-start-top``, or None.
        storage: ``--warm-start-storage``, or None.

    Raises:
        ConfigError: ``--warm-start-top`` or ``--warm-start-storage`` with no source to warm-start from.
    """
    if source is None and top is None and storage is None:
        return configured
    if source is None and configured is None:
        given = "--warm-start-top" if top is not None else "--warm-start-storage"
        raise ConfigError(f"{given} needs --warm-start-from STUDY (or warm_start: {{from: STUDY}} in the study file)")
    base = configured or WarmStart(source or "")
    return WarmStart.build(source if source is not None else base.source, top if top is not None else base.top,
                           storage if storage is not None else base.storage)


# ---------------------------------------------------------------------------------------------
# Choosing the source's best configurations
# ---------------------------------------------------------------------------------------------


def rank_trials(trials: Iterable[FrozenTrial], directions: Sequence[Any]) -> list[FrozenTrial]:
    """The COMPLETE trials of a source study, best first (see the module docstring for the rule).

    Args:
        trials: The source's trials (any states; only COMPLETE ones with finite values are ranked).
        directions: The source's directions (``study.directions`` or ``maximize``/``minimize``), the
            first being validation accuracy's.

    Returns:
        The ranked trials.
    """
    from hpo.analysis.pareto import crowding_distances, non_dominated_ranks

    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None
                and len(t.values) == len(directions) and all(math.isfinite(v) for v in t.values)]
    primary = direction_sign(directions[0])  # costs: lower is better

    def tie_break(trial: FrozenTrial) -> tuple[float, int]:
        return primary * trial.values[0], trial.number

    if len(directions) == 1 or not complete:
        return sorted(complete, key=tie_break)
    points = [list(t.values) for t in complete]
    ranks = non_dominated_ranks(points, directions)
    crowding: dict[int, float] = {}
    for rank in set(ranks.tolist()):
        members = [i for i, r in enumerate(ranks) if r == rank]
        for i, distance in zip(members, crowding_distances([points[i] for i in members], directions)):
            crowding[i] = float(distance)
    order = sorted(range(len(complete)), key=lambda i: (int(ranks[i]), -crowding[i], *tie_break(complete[i])))
    return [complete[i] for i in order]


# ---------------------------------------------------------------------------------------------
# Fitting a configuration into the new space
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarmTrial:
    """One configuration to run first: the source trial it comes from and its values in the new space.

    Attributes:
        mark: ``"STUDY#N"``, stored as :data:`~hpo.trials.SYS_WARM_FROM` on the new trial.
        params: Optuna values of the new space's sampled parameters the source sets.
        distributions: Their distributions in the new space (what its ``suggest`` asks).
    """

    mark: str
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]


@dataclass(frozen=True)
class WarmPlan:
    """The warm trials of a study about to be created, checked against its space."""

    warm_start: WarmStart
    trials: tuple[WarmTrial, ...]


def mark_of(study_name: str, number: int) -> str:
    """The warm-start mark of trial ``number`` of ``study_name``: ``"STUDY#N"``."""
    return f"{study_name}#{number}"


def parse_mark(mark: str) -> tuple[str, int | None]:
    """A stored mark split into (source study, source trial number or None)."""
    study, _, number = str(mark).rpartition("#")
    return (study, int(number)) if study and number.isdigit() else (str(mark), None)


def _distribution(param: Param) -> BaseDistribution:
    """The distribution ``hpo.space.suggest`` asks Optuna for ``param`` (so a queued value is taken as sampled)."""
    if param.kind == "categorical":
        return CategoricalDistribution(list(param.optuna_choices()))
    if param.kind == "float":
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    return IntDistribution(param.low, param.high, log=param.log, step=param.step or 1)


def fit_configuration(values: Mapping[str, Any], space: SearchSpace, mark: str, target: str) -> WarmTrial:
    """A source configuration as a warm trial of the new space, or the sentence saying why it does not fit.

    Args:
        values: The source trial's values (decoded, its space's fixed values included).
        space: The new study's search space.
        mark: ``"STUDY#N"`` of the source trial.
        target: The new study's name, for messages.

    Raises:
        ConfigError: a parameter the new space lacks, a value outside it, or a parameter it would
            not sample under the other values; naming the source trial, the parameter and its value.
    """
    source, number = parse_mark(mark)
    where = f"warm start of {target!r}: trial {number} of study {source!r}"
    fix = "widen the new space, or warm-start from fewer trials (warm_start.top / --warm-start-top)"
    by_name = {p.name: p for p in space.params}
    for name, value in values.items():
        param = by_name.get(name)
        if param is None:
            raise ConfigError(f"{where} sets {name} = {value!r}, a parameter the new search space does not have "
                              f"(its parameters: {', '.join(by_name)}); add {name} to the space, or warm-start from fewer trials")
        if not param.contains(value):
            raise ConfigError(f"{where} sets {name} = {value!r}, which the new search space does not allow "
                              f"({name} allows {describe_param(param)}); {fix}")
    problem = check_assignment(space, values)
    if problem:
        raise ConfigError(f"{where} {problem} in the new search space; {fix}")
    sampled = [by_name[name] for name in values if by_name[name].kind != "fixed"]
    return WarmTrial(mark, {p.name: p.encode(values[p.name]) for p in sampled},
                     {p.name: _distribution(p) for p in sampled})


# ---------------------------------------------------------------------------------------------
# The study's side: plan, enqueue, resume
# ---------------------------------------------------------------------------------------------


def _source_study(warm: WarmStart, storage: optuna.storages.BaseStorage) -> optuna.Study:
    from hpo.storage import mask_url, open_storage

    where = "this storage" if warm.storage is None else f"storage {mask_url(warm.storage)}"
    source_storage = storage if warm.storage is None else open_storage(warm.storage, must_exist=True)
    try:
        return optuna.load_study(study_name=warm.source, storage=source_storage)
    except KeyError:
        names = ", ".join(optuna.get_all_study_names(source_storage)) or "none"
        raise ConfigError(f"warm start: no study named {warm.source!r} in {where} (studies there: {names}); check "
                          "warm_start.from / --warm-start-from, and warm_start.storage / --warm-start-storage") from None


def _source_values(source: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """The trial's configuration as its own space gives it: choices decoded, fixed values added."""
    from hpo.study import ATTR_DEFINITION

    definition = source.user_attrs.get(ATTR_DEFINITION)
    if not isinstance(definition, Mapping) or not isinstance(definition.get("space"), Mapping):
        return dict(trial.params)  # a study hpo did not create: its parameters as Optuna stores them
    return decode_params(SearchSpace.from_dict(definition["space"], origin=f"study {source.study_name!r}"), trial.params)


def plan(config: StudyConfig, storage: optuna.storages.BaseStorage, n_trials: int | None = None) -> WarmPlan | None:
    """The warm trials of ``config``'s study, checked, if it asks for a warm start and does not exist yet.

    Args:
        config: The study definition (``config.warm_start`` says where from).
        storage: The new study's storage (and the source's, unless the warm start names another).
        n_trials: The run's ``--n-trials``, or None for the file's.

    Returns:
        The plan, or None: no warm start asked for, or the study already exists (see :func:`check_resumed`).

    Raises:
        ConfigError: the source is missing or is the study itself, ``top`` exceeds the trial budget,
            the source has no complete trial, or a chosen configuration does not fit the new space.
    """
    warm = config.warm_start
    if warm is None:
        return None
    try:
        storage.get_study_id_from_name(config.name)
        return None
    except KeyError:
        pass
    if warm.source == config.name and warm.storage is None:
        raise ConfigError(f"warm start: study {config.name!r} cannot warm-start from itself; name another study")
    budget = n_trials if n_trials is not None else config.n_trials
    if budget is not None and warm.top > budget:
        raise ConfigError(f"warm start: top is {warm.top} but study {config.name!r} runs only {budget} trials (n_trials); "
                          "lower warm_start.top / --warm-start-top or raise n_trials")
    source = _source_study(warm, storage)
    chosen: list[WarmTrial] = []
    for trial in rank_trials(source.get_trials(deepcopy=False), source.directions):
        if len(chosen) == warm.top:
            break
        candidate = fit_configuration(_source_values(source, trial), config.space, mark_of(source.study_name, trial.number),
                                      config.name)
        if all(candidate.params != other.params for other in chosen):  # a configuration the source ran twice counts once
            chosen.append(candidate)
    if not chosen:
        raise ConfigError(f"warm start: study {warm.source!r} has no complete trial to start from; let it finish some "
                          "trials first, or drop the warm start")
    if len(chosen) < warm.top:
        log.warning("warm start: study %s has only %d distinct complete configuration(s); starting from those",
                    warm.source, len(chosen))
    return WarmPlan(warm, tuple(chosen))


def enqueue(study: optuna.Study, warm_plan: WarmPlan | None) -> None:
    """Record the warm start on the new study and queue its trials (a no-op for None).

    The record comes first, so a run stopped in between is never warm-started a second time.
    """
    if warm_plan is None:
        return
    study.set_user_attr(WARM_START_KEY, {**warm_plan.warm_start.describe(), "trials": [t.mark for t in warm_plan.trials]})
    for warm in warm_plan.trials:
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=warm.params,
                                                  distributions=warm.distributions, system_attrs={SYS_WARM_FROM: warm.mark}))
    log.info("warm start: queued %d configuration(s) of study %s", len(warm_plan.trials), warm_plan.warm_start.source)


def check_resumed(study: optuna.Study, requested: WarmStart | None) -> None:
    """Refuse a warm start asked of a study that already exists, unless it is the one it began with.

    Raises:
        ConfigError: the study was not warm-started, or was warm-started from elsewhere or with another top.
    """
    if requested is None:
        return
    recorded = study.user_attrs.get(WARM_START_KEY)
    if not isinstance(recorded, Mapping):
        raise ConfigError(f"study {study.study_name!r} already exists in this storage and was not warm-started; a warm start "
                          "queues its trials only when a study is created, so drop warm_start / --warm-start-from to resume "
                          "it, or give the study another name to start it warm")
    if (recorded.get("from"), recorded.get("top")) != (requested.source, requested.top):
        raise ConfigError(f"study {study.study_name!r} was warm-started from {recorded.get('from')!r} (top "
                          f"{recorded.get('top')}), not {requested.source!r} (top {requested.top}); a study is warm-started "
                          "once, so resume it with its own warm start or none")
    log.info("study %s was warm-started from %s when it was created; not queued again", study.study_name, requested.source)


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


def marks_of(trials: Iterable[FrozenTrial]) -> dict[int, str]:
    """Trial number -> warm-start mark (``"STUDY#N"``) of the warm trials (and their retries) among ``trials``."""
    return {t.number: str(t.system_attrs[SYS_WARM_FROM]) for t in trials if t.system_attrs.get(SYS_WARM_FROM)}


def describe_marks(marks: Mapping[int, str]) -> str:
    """One phrase for reports: ``trials 0, 1 warm-started from resnet-mini (its trials 7, 3)``; ``""`` when none."""
    by_source: dict[str, list[tuple[int, int | None]]] = {}
    for number, mark in sorted(marks.items()):
        source, source_number = parse_mark(mark)
        by_source.setdefault(source, []).append((number, source_number))
    parts = []
    for source, pairs in by_source.items():
        numbers = ", ".join(str(n) for n, _ in pairs)
        theirs = ", ".join("?" if s is None else str(s) for _, s in pairs)
        noun = "trial" if len(pairs) == 1 else "trials"
        parts.append(f"{noun} {numbers} warm-started from {source} (its {noun} {theirs})")
    return "; ".join(parts)

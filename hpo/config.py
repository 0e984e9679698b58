"""Study files: ``studies/<name>.yaml`` -> a validated, frozen :class:`StudyConfig`.

A study names everything one optimisation needs: the dataset, the search space (a file next to
it or inline), the objectives, the sampler and pruner, the budget (epochs per trial, number of
trials, and optionally time: ``budget: {minutes: 5}``, see :mod:`hpo.budget`), constraints, trials to run first, and the seed. Every problem in a file is reported as
one :class:`~hpo.errors.ConfigError` sentence naming the file and the key, before any training.

The fully resolved study (space inlined, defaults filled in) is what the study stores in its
database: :meth:`StudyConfig.to_dict` / :meth:`StudyConfig.from_dict` round-trip it, and
:meth:`StudyConfig.definition_hash` tells whether a file still describes the stored study. That
dict and its hash are a contract with databases written by earlier releases: a changed hash
would make every existing study refuse to resume.

A trial's configuration comes from the study: :attr:`StudyConfig.base_train` is the trainer
config every trial starts from, ``config.space.sample(trial, config.base_train)`` samples a new
trial, and :meth:`StudyConfig.trial_config` rebuilds a stored one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from hpo.budget import TimeBudget, budget_from_mapping
from hpo.errors import ConfigError
from hpo.space import STUDY_OWNED_TRAIN_KEYS, SearchSpace, check_assignment, decode_params, load_space
from hpo.study_files import display_path, find_study_file
from hpo.trials import BUDGET_KEY, WARM_START_KEY
from hpo.extensions import EXTENSION_KEYS, StudyExtensions
from hpo.typed import conforms, field_types, jsonable as _jsonable, read_yaml, type_name
from hpo.warm_start import WarmStart

if TYPE_CHECKING:
    from hpo.data import DatasetConfig
    from hpo.train_config import TrainConfig
    from hpo.trial_config import TrialConfig

CHECKPOINT_KEEP = ("all", "front", "none")

DEFAULT_PRUNER_SINGLE = "asha"
DEFAULT_PRUNER_MULTI = "mo_asha"
DEFAULT_EPOCHS = 10
DEFAULT_N_TRIALS = 50
DEFAULT_SEED = 0

_TOP_KEYS = (
    "name", "description", "dataset", "space", "objectives", "sampler", "pruner", "epochs", "n_trials", "per_device",
    "train", "constraints", "enqueue", "seed", "hypervolume_reference", "checkpoints", BUDGET_KEY, WARM_START_KEY,
    *EXTENSION_KEYS,
)
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Component:
    """A sampler or pruner: its registry name and keyword arguments."""

    name: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Constraints:
    """Limits checked per trial; None means no limit.

    Attributes:
        max_params: Most trainable parameters; checked before training (a violation is FAIL).
        max_macs: Most multiply-accumulates per image at the training resolution.
        max_epoch_seconds: Longest epoch in seconds; a slower trial is pruned as too_slow.
    """

    max_params: float | None = None
    max_macs: float | None = None
    max_epoch_seconds: float | None = None


class _FieldsMapping(Mapping):
    """Read-only ``name -> value`` view of a dataclass's fields, for callers that take a mapping.

    ``hpo.checkpoints.apply_policy`` and ``hpo.analysis.pareto.resolve_reference`` take the
    stored definition's plain mappings as well as these; new code reads the attributes.
    """

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict, in field order (what the stored definition holds)."""
        return dict(self)


# eq=False keeps Mapping's equality, so a policy also equals the plain dict stored for it.
@dataclass(frozen=True, eq=False)
class CheckpointPolicy(_FieldsMapping):
    """Which trials keep their checkpoints (``checkpoints:`` in a study file).

    Attributes:
        keep: ``all``, ``front`` (the best trial, or the Pareto front) or ``none``.
        disk_budget_mb: Cap, in megabytes, on the checkpoints of complete trials (see
            ``hpo.checkpoints.checkpoints_to_remove``); None: no cap.
    """

    keep: str = "front"
    disk_budget_mb: float | None = 2000.0


# Fixed hypervolume reference (DECISIONS): log10(params) up to log10(1e8), seconds up to 600.
# macs is not in DECISIONS; it follows params (log10 scale), with 1e10 multiply-accumulates.
@dataclass(frozen=True, eq=False)
class HypervolumeReference(_FieldsMapping):
    """The fixed hypervolume reference point (``hypervolume_reference:`` in a study file).

    Attributes:
        params: Parameter-count bound; the axis is ``log10(params)`` up to ``log10`` of this.
        train_seconds: Training-seconds bound.
        macs: Multiply-accumulates bound (log10 scale, like params).
    """

    params: float = 1.0e8
    train_seconds: float = 600.0
    macs: float = 1.0e10


@dataclass(frozen=True)
class StudyConfig:
    """A validated study definition (see the module docstring and ``studies/*.yaml``).

    Attributes:
        train: The trainer options the study's ``train:`` sets, each checked against
            ``TrainConfig`` (read-only); :attr:`base_train` is the full trainer config.
    """

    name: str
    description: str
    dataset: DatasetConfig
    space: SearchSpace
    objectives: tuple[str, ...]
    sampler: Component
    pruner: Component
    epochs: int
    n_trials: int | None  # None: no limit but the time budget (a study file with budget: and no n_trials)
    train: Mapping[str, Any]
    constraints: Constraints
    enqueue: tuple[dict, ...]
    seed: int
    hypervolume_reference: HypervolumeReference
    checkpoints: CheckpointPolicy
    budget: TimeBudget | None = None  # the study's time budget (hpo.budget), or None
    warm_start: WarmStart | None = None  # how the study begins (hpo.warm_start); not part of to_dict()
    extensions: StudyExtensions = field(default_factory=StudyExtensions)  # plugins, callbacks, tracking (hpo.extensions)
    source: str = "<memory>"

    def directions(self) -> list[str]:
        """Optuna directions, one per objective: maximize val_accuracy, minimize the rest."""
        from hpo.trials import directions

        return directions(self.objectives)

    @property
    def is_multi_objective(self) -> bool:
        """Whether the study has more than one objective."""
        return len(self.objectives) > 1

    @property
    def base_train(self) -> TrainConfig:
        """The trainer config every trial starts from (a new instance on every access).

        The study's ``train:`` options, its ``epochs`` and ``seed``, and
        ``constraints.max_epoch_seconds`` as ``max_epoch_seconds`` unless ``train:`` sets that.
        """
        from hpo.train_config import TrainConfig

        settings = {**self.train, "epochs": self.epochs, "seed": self.seed}
        if self.constraints.max_epoch_seconds:
            settings.setdefault("max_epoch_seconds", float(self.constraints.max_epoch_seconds))
        return TrainConfig.from_dict(settings)

    def trial_config(self, params: Mapping[str, Any]) -> TrialConfig:
        """A stored trial's configuration, to evaluate, reproduce or retry it.

        Args:
            params: The trial's parameters as Optuna stores them (``FrozenTrial.params``), or
                already decoded (decoding is idempotent); fixed values of the space are added.

        Returns:
            The TrialConfig, over :attr:`base_train`.
        """
        from hpo.trial_config import TrialConfig

        return TrialConfig.from_params(decode_params(self.space, params), self.base_train, self.model_defaults)

    @property
    def model_defaults(self) -> dict[str, Any]:
        """Knobs every model of the study takes unless its parameters say otherwise.

        A family whose config has an ``image_size`` knob (cnn, mlp, linear) is built for the
        study's images: an image folder's ``image_size``, 32 for CIFAR (the knob's own default).
        """
        return {"image_size": self.dataset.image_size} if self.dataset.kind == "folder" else {}

    def to_dict(self) -> dict:
        """The resolved definition: JSON-serialisable, space inlined, defaults filled, fixed key order.

        ``source`` is left out: where a file lives is not part of what it defines; ``budget`` is
        there only when set, so a study without one keeps the dict (and hash) it always had.
        """
        definition = {
            "name": self.name,
            "description": self.description,
            "dataset": _jsonable(dataclasses.asdict(self.dataset)),
            "space": self.space.to_dict(),
            "objectives": list(self.objectives),
            "sampler": {"name": self.sampler.name, "args": _jsonable(self.sampler.args)},
            "pruner": {"name": self.pruner.name, "args": _jsonable(self.pruner.args)},
            "epochs": self.epochs,
            "n_trials": self.n_trials,
            "train": _jsonable(self.train),
            "constraints": dataclasses.asdict(self.constraints),
            "enqueue": [_jsonable(e) for e in self.enqueue],
            "seed": self.seed,
            "hypervolume_reference": self.hypervolume_reference.to_dict(),
            "checkpoints": self.checkpoints.to_dict(),
        }
        if self.budget is not None:
            definition[BUDGET_KEY] = self.budget.to_dict()
        definition.update(self.extensions.to_dict())  # only the keys a study sets: others keep their hash
        return definition

    @classmethod
    def from_dict(cls, data: Mapping, origin: str = "<database>") -> StudyConfig:
        """Validate and build a study from :meth:`to_dict` output (no file-name check).

        Args:
            data: The mapping (e.g. read back from the study's database).
            origin: How messages name where it came from.

        Returns:
            The StudyConfig, with ``source`` set to ``origin``.
        """
        return _parse_study(_as_written(data), origin=origin, stem=None, base_dir=None)

    def definition_hash(self) -> str:
        """sha256 of the definition, ignoring ``n_trials`` and ``budget`` (a budget change is not a new study)."""
        definition = self.to_dict()
        definition.pop("n_trials")
        definition.pop(BUDGET_KEY, None)
        text = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _as_written(data: Any) -> Any:
    """A stored definition as its study file gave it.

    :meth:`StudyConfig.to_dict` writes every dataset field, so a cifar10 study stores MINICIFAR's
    ``n_classes`` and ``R`` at their defaults, keys a study file may not give for that kind.
    """
    from hpo.data import DatasetConfig

    dataset = data.get("dataset") if isinstance(data, Mapping) else None
    if not isinstance(dataset, Mapping) or dataset.get("kind") == "minicifar":
        return data
    defaults = DatasetConfig()
    section = {k: v for k, v in dataset.items() if not (k in ("n_classes", "R") and v == getattr(defaults, k))}
    return {**data, "dataset": section}


# ---------------------------------------------------------------------------------------------
# Loading study files
# ---------------------------------------------------------------------------------------------


def load_study(name_or_path: str | Path) -> StudyConfig:
    """Find, read and validate a study file.

    Args:
        name_or_path: A study name (``densenet-mini``) or a path to a YAML file.

    Returns:
        The validated StudyConfig (``source`` is the file path).

    Raises:
        ConfigError: one sentence naming the file, the key and the fix.
    """
    path = find_study_file(name_or_path)
    origin = display_path(path)
    data = read_yaml(path, origin)
    return _parse_study(data, origin=origin, stem=path.stem, base_dir=path.parent, source=str(path))


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _fail(origin: str, message: str) -> ConfigError:
    return ConfigError(f"{origin}: {message}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_keys(data: Mapping, valid: Iterable[str], origin: str, where: str) -> None:
    valid = list(valid)
    for key in data:
        if key not in valid:
            label = f"{where}.{key!s}" if where else f"{key!s}"
            raise _fail(origin, f"unknown key {label}; valid keys: {', '.join(valid)}")


def _int(data: Mapping, key: str, default: int, minimum: int, origin: str, where: str = "") -> int:
    value = data.get(key, default)
    label = f"{where}.{key}" if where else key
    if value is None:
        value = default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(origin, f"{label} must be an integer >= {minimum} (got {value!r})")
    if value < minimum:
        raise _fail(origin, f"{label} must be >= {minimum} (got {value})")
    return value


def _positive(value: Any, origin: str, label: str, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        suffix = " or null" if allow_none else ""
        raise _fail(origin, f"{label} must be a number > 0{suffix} (got {value!r})")
    return float(value)


def _parse_study(
    data: Any,
    *,
    origin: str,
    stem: str | None,
    base_dir: Path | None,
    source: str | None = None,
) -> StudyConfig:
    from hpo.samplers import DEFAULT_SAMPLER
    from hpo.trials import PRIMARY_OBJECTIVE

    if not isinstance(data, Mapping):
        raise _fail(origin, f"the top level must be a mapping of study keys (got {_kind(data)}); see studies/densenet-mini.yaml")
    _check_keys(data, _TOP_KEYS, origin, "")
    extensions = StudyExtensions.from_dict(data, origin)  # imports the plug-ins before anything else is checked

    name = _parse_name(data.get("name"), origin, stem)
    description = data.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise _fail(origin, f"description must be a string (got {_kind(description)})")

    dataset = _parse_dataset(data.get("dataset"), origin)
    space = _parse_space_ref(data.get("space"), origin, base_dir)
    objectives = _parse_objectives(data.get("objectives", [PRIMARY_OBJECTIVE]), origin)
    epochs = _int(data, "epochs", DEFAULT_EPOCHS, 1, origin)
    budget = None if data.get(BUDGET_KEY) is None else budget_from_mapping(data[BUDGET_KEY], origin=origin)
    no_n = budget is not None and data.get("n_trials") is None  # a time budget and no n_trials: N has no limit
    n_trials = None if no_n else _int(data, "n_trials", DEFAULT_N_TRIALS, 1, origin)
    seed = _int(data, "seed", DEFAULT_SEED, 0, origin)

    sampler = _parse_component(data.get("sampler"), DEFAULT_SAMPLER, origin, "sampler")
    default_pruner = DEFAULT_PRUNER_MULTI if len(objectives) > 1 else DEFAULT_PRUNER_SINGLE
    pruner = _parse_component(data.get("pruner"), default_pruner, origin, "pruner")
    train = _parse_train(data.get("train"), origin)
    constraints = _parse_constraints(data.get("constraints"), origin)
    constrained = any(v is not None for v in dataclasses.asdict(constraints).values())
    _check_sampler_pruner(sampler, pruner, objectives, epochs, space, constrained, origin)
    enqueue = _parse_enqueue(data.get("enqueue"), space, origin)
    hv_reference = _parse_hv_reference(data.get("hypervolume_reference"), origin)
    checkpoints = _parse_checkpoints(data.get("checkpoints"), origin)
    warm_start = WarmStart.from_dict(data.get(WARM_START_KEY), origin)
    return StudyConfig(
        name=name, description=description, dataset=dataset, space=space, objectives=objectives, sampler=sampler,
        pruner=pruner, epochs=epochs, n_trials=n_trials, train=train, constraints=constraints, enqueue=enqueue,
        seed=seed, hypervolume_reference=hv_reference, checkpoints=checkpoints, budget=budget, warm_start=warm_start,
        extensions=extensions,
        source=source if source is not None else origin,
    )


def _parse_name(name: Any, origin: str, stem: str | None) -> str:
    if name is None:
        if stem is None:
            raise _fail(origin, "name is required")
        name = stem
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise _fail(
            origin,
            f"name must use only letters, digits, '.', '_' and '-', not start with '.', and contain no '..' (got {name!r})",
        )
    if stem is not None and name != stem:
        raise _fail(origin, f"name must equal the file name {stem!r} (got {name!r}); rename the file or the study")
    return name


def _parse_dataset(raw: Any, origin: str) -> DatasetConfig:
    from hpo.data import DatasetConfig

    if raw is None:
        raise _fail(origin, "dataset is required, e.g. dataset: {kind: minicifar, n_classes: 4, R: 5}")
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"dataset must be a mapping like {{kind: minicifar, n_classes: 4}} (got {_kind(raw)})")
    try:
        return DatasetConfig.from_dict(raw)
    except ConfigError as exc:
        raise _fail(origin, str(exc)) from None


def _parse_space_ref(raw: Any, origin: str, base_dir: Path | None) -> SearchSpace:
    if raw is None:
        raise _fail(origin, "space is required: a path like ../search_spaces/densenet.yaml or an inline {params: ...}")
    if isinstance(raw, Mapping):
        return load_space(raw, origin=origin, key_prefix="space.")
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raise _fail(origin, f"space must be a file path or an inline mapping (got {_kind(raw)})")
    path = Path(raw)
    if not path.is_absolute():
        if base_dir is None:
            raise _fail(origin, f"space is a relative path ({raw}) but there is no study file to resolve it against")
        path = base_dir / path
    if not path.is_file():
        raise _fail(origin, f"space file {raw} not found (looked for {display_path(path)})")
    space_origin = display_path(path)
    document = read_yaml(path, space_origin)
    if not isinstance(document, Mapping):  # a bare string must not be taken for another file's path
        raise ConfigError(f"{space_origin}: a search space must be a mapping with params: (got {type(document).__name__})")
    return load_space(document, origin=space_origin)


def _parse_objectives(raw: Any, origin: str) -> tuple[str, ...]:
    from hpo.trials import OBJECTIVES, PRIMARY_OBJECTIVE

    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise _fail(origin, f"objectives must be a non-empty list from {', '.join(OBJECTIVES)} (got {raw!r})")
    seen: list[str] = []
    for i, objective in enumerate(raw):
        if not isinstance(objective, str) or objective not in OBJECTIVES:
            raise _fail(origin, f"objectives[{i}] is {objective!r}; valid objectives: {', '.join(OBJECTIVES)}")
        if objective in seen:
            raise _fail(origin, f"objectives lists {objective} twice")
        seen.append(objective)
    if seen[0] != PRIMARY_OBJECTIVE:
        raise _fail(origin, f"objectives must start with {PRIMARY_OBJECTIVE} (got {', '.join(seen)})")
    return tuple(seen)


def _parse_component(raw: Any, default: str, origin: str, key: str) -> Component:
    if raw is None:
        return Component(default, {})
    if isinstance(raw, str):
        if not raw:
            raise _fail(origin, f"{key} must be a name or {{name: ..., args: {{...}}}} (got an empty string)")
        return Component(raw, {})
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"{key} must be a name or {{name: ..., args: {{...}}}} (got {_kind(raw)})")
    _check_keys(raw, ("name", "args"), origin, key)
    name = raw.get("name", default)
    if not isinstance(name, str) or not name:
        raise _fail(origin, f"{key}.name must be a string (got {name!r})")
    args = raw.get("args")
    if args is None:
        args = {}
    if not isinstance(args, Mapping) or not all(isinstance(k, str) for k in args):
        raise _fail(origin, f"{key}.args must be a mapping of argument name -> value (got {_kind(args)})")
    return Component(name, dict(args))


def _check_sampler_pruner(
    sampler: Component,
    pruner: Component,
    objectives: tuple[str, ...],
    epochs: int,
    space: SearchSpace,
    constrained: bool,
    origin: str,
) -> None:
    """The registries judge their entries (grid needs finite choices, ...); their messages name the file."""
    from hpo.pruners import check_pruner
    from hpo.samplers import check_sampler

    n_objectives = len(objectives)
    check_sampler(
        sampler.name, dict(sampler.args), n_objectives=n_objectives, space=space, origin=origin, constrained=constrained
    )
    check_pruner(
        pruner.name, dict(pruner.args), n_objectives=n_objectives, origin=origin, epochs=epochs, objectives=list(objectives)
    )


def _parse_train(raw: Any, origin: str) -> Mapping[str, Any]:
    from hpo.train_config import TrainConfig, option_problem

    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"train must be a mapping of trainer option -> value (got {_kind(raw)})")
    types_ = field_types(TrainConfig)
    valid = [k for k in types_ if k not in STUDY_OWNED_TRAIN_KEYS]
    train: dict[str, Any] = {}
    for key, value in raw.items():
        if key in STUDY_OWNED_TRAIN_KEYS:
            raise _fail(origin, f"train.{key} is set by the study's top-level {key} key; move it there")
        if key not in types_:
            raise _fail(origin, f"unknown key train.{key!s}; valid keys: {', '.join(valid)}")
        if not conforms(value, types_[key]):
            raise _fail(origin, f"train.{key} must be {type_name(types_[key])} (got {value!r})")
        problem = option_problem(key, value)
        if problem:
            raise _fail(origin, f"train.{key} is not allowed ({value!r}): {problem}")
        train[key] = value
    return MappingProxyType(train)


def _parse_constraints(raw: Any, origin: str) -> Constraints:
    if raw is None:
        return Constraints()
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"constraints must be a mapping like {{max_params: 5.0e6}} (got {_kind(raw)})")
    valid = [f.name for f in dataclasses.fields(Constraints)]
    _check_keys(raw, valid, origin, "constraints")
    return Constraints(**{k: _positive(v, origin, f"constraints.{k}") for k, v in raw.items()})


def _parse_enqueue(raw: Any, space: SearchSpace, origin: str) -> tuple[dict, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(origin, f"enqueue must be a list of {{param: value}} mappings (got {_kind(raw)})")
    entries = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not entry:
            raise _fail(origin, f"enqueue[{i}] must be a non-empty mapping of space parameter -> value (got {entry!r})")
        problem = check_assignment(space, entry)
        if problem:
            raise _fail(origin, f"enqueue[{i}] {problem}")
        entries.append(dict(entry))
    return tuple(entries)


def _parse_hv_reference(raw: Any, origin: str) -> HypervolumeReference:
    if raw is None:
        return HypervolumeReference()
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"hypervolume_reference must be a mapping like {{params: 1.0e8, train_seconds: 600}} (got {_kind(raw)})")
    _check_keys(raw, HypervolumeReference(), origin, "hypervolume_reference")
    bounds = {key: _positive(value, origin, f"hypervolume_reference.{key}", allow_none=False) for key, value in raw.items()}
    reference = HypervolumeReference(**bounds)
    if reference.params <= 1:
        raise _fail(origin, f"hypervolume_reference.params must be > 1 (its log10 is the reference; got {reference.params})")
    return reference


def _parse_checkpoints(raw: Any, origin: str) -> CheckpointPolicy:
    if raw is None:
        return CheckpointPolicy()
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"checkpoints must be a mapping like {{keep: front, disk_budget_mb: 2000}} (got {_kind(raw)})")
    _check_keys(raw, CheckpointPolicy(), origin, "checkpoints")
    policy: dict[str, Any] = {}
    if "keep" in raw:
        keep = raw["keep"]
        if keep is False:  # YAML reads a bare `none`-like `no`/`off` as false
            keep = "none"
        if keep not in CHECKPOINT_KEEP:
            raise _fail(origin, f"checkpoints.keep must be one of {', '.join(CHECKPOINT_KEEP)} (got {keep!r})")
        policy["keep"] = keep
    if "disk_budget_mb" in raw:
        policy["disk_budget_mb"] = _positive(raw["disk_budget_mb"], origin, "checkpoints.disk_budget_mb")
    return CheckpointPolicy(**policy)

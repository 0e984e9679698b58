"""Study files: ``studies/<name>.yaml`` -> a validated, frozen :class:`StudyConfig`.

A study names everything one optimisation needs: the dataset, the search space (a file next to
it or inline), the objectives, the sampler and pruner, the budget (epochs per trial, number of
trials), constraints, trials to run first, and the seed. Every problem in a file is reported as
one :class:`~hpo.errors.ConfigError` sentence naming the file and the key, before any training.

The fully resolved study (space inlined, defaults filled in) is what the study stores in its
database: :meth:`StudyConfig.to_dict` / :meth:`StudyConfig.from_dict` round-trip it, and
:meth:`StudyConfig.definition_hash` tells whether a file still describes the stored study.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo.errors import ConfigError
from hpo.space import (
    STUDY_OWNED_TRAIN_KEYS,
    SearchSpace,
    check_assignment,
    conforms,
    field_types,
    grid_values,
    load_space,
    parse_yaml,
    read_yaml,
    type_name,
)

OBJECTIVES = {
    "val_accuracy": "maximize",
    "param_count": "minimize",
    "train_seconds": "minimize",
    "macs": "minimize",
}

DATASET_KINDS = ("cifar10", "cifar100", "folder", "minicifar")
# Classes available per kind (MINICIFAR takes the first n_classes of CIFAR-10); folder: any.
_MAX_CLASSES = {"cifar10": 10, "minicifar": 10, "cifar100": 100}
# MINICIFAR keeps n_init // R images per class, n_init = 1000 for the test split.
_MAX_R = 1000

CHECKPOINT_KEEP = ("all", "front", "none")

DEFAULT_SAMPLER = "tpe"
DEFAULT_PRUNER_SINGLE = "asha"
DEFAULT_PRUNER_MULTI = "mo_asha"
DEFAULT_EPOCHS = 10
DEFAULT_N_TRIALS = 50
DEFAULT_SEED = 0
# Fixed hypervolume reference (DECISIONS): log10(params) up to log10(1e8), seconds up to 600.
# macs is not in DECISIONS; it follows params (log10 scale), with 1e10 multiply-accumulates.
DEFAULT_HYPERVOLUME_REFERENCE = {"params": 1.0e8, "train_seconds": 600.0, "macs": 1.0e10}
DEFAULT_CHECKPOINTS = {"keep": "front", "disk_budget_mb": 2000.0}

_TOP_KEYS = (
    "name",
    "description",
    "dataset",
    "space",
    "objectives",
    "sampler",
    "pruner",
    "epochs",
    "n_trials",
    "train",
    "constraints",
    "enqueue",
    "seed",
    "hypervolume_reference",
    "checkpoints",
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


@dataclass(frozen=True)
class StudyConfig:
    """A validated study definition (see the module docstring and ``studies/*.yaml``)."""

    name: str
    description: str
    dataset: Any  # hpo.data.DatasetConfig
    space: SearchSpace
    objectives: tuple[str, ...]
    sampler: Component
    pruner: Component
    epochs: int
    n_trials: int
    train: dict
    constraints: Constraints
    enqueue: tuple[dict, ...]
    seed: int
    hypervolume_reference: dict
    checkpoints: dict
    source: str = "<memory>"

    def directions(self) -> list[str]:
        """Optuna directions, one per objective: maximize val_accuracy, minimize the rest."""
        return [OBJECTIVES[o] for o in self.objectives]

    @property
    def is_multi_objective(self) -> bool:
        """Whether the study has more than one objective."""
        return len(self.objectives) > 1

    def to_dict(self) -> dict:
        """The resolved definition: JSON-serialisable, space inlined, defaults filled, fixed key order.

        ``source`` is left out: where a file lives is not part of what it defines.
        """
        return {
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
            "hypervolume_reference": dict(self.hypervolume_reference),
            "checkpoints": dict(self.checkpoints),
        }

    @classmethod
    def from_dict(cls, data: Mapping, origin: str = "<database>") -> StudyConfig:
        """Validate and build a study from :meth:`to_dict` output (no file-name check).

        Args:
            data: The mapping (e.g. read back from the study's database).
            origin: How messages name where it came from.

        Returns:
            The StudyConfig, with ``source`` set to ``origin``.
        """
        return _parse_study(data, origin=origin, stem=None, base_dir=None)

    def definition_hash(self) -> str:
        """sha256 of the definition, ignoring ``n_trials`` (a budget change is not a new study)."""
        definition = self.to_dict()
        definition.pop("n_trials")
        text = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(value: Any) -> Any:
    """Tuples to lists and mapping keys to strings, so a JSON round trip changes nothing."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Finding and loading study files
# ---------------------------------------------------------------------------------------------


def _shipped_studies_dir() -> Path:
    import hpo

    return Path(hpo.__file__).resolve().parent.parent / "studies"


def _default_search_dirs() -> list[Path]:
    dirs = [Path.cwd() / "studies", _shipped_studies_dir()]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def find_study_file(name_or_path: str | Path, search_dirs: list[Path] | None = None) -> Path:
    """Resolve a study argument to a file.

    A value containing a path separator or ending in ``.yaml``/``.yml`` is a path. Otherwise it
    is a study name, looked up as ``<dir>/<name>.yaml`` in ``./studies`` and then in the
    repository's ``studies/``.

    Args:
        name_or_path: ``densenet-mini`` or ``path/to/study.yaml``.
        search_dirs: Directories to search for names (default: ./studies, the shipped studies/).

    Returns:
        The study file.

    Raises:
        ConfigError: not found (lists the available names).
    """
    text = str(name_or_path)
    if not text or "\x00" in text:
        raise ConfigError(f"study {text!r} is not a valid study name or path")
    looks_like_path = isinstance(name_or_path, Path) or os.sep in text or "/" in text or text.endswith((".yaml", ".yml"))
    if looks_like_path:
        path = Path(text)
        if path.is_file():
            return path
        raise ConfigError(f"study file {text} does not exist; give an existing file or a study name")
    dirs = search_dirs if search_dirs is not None else _default_search_dirs()
    for directory in dirs:
        for suffix in (".yaml", ".yml"):
            candidate = Path(directory) / f"{text}{suffix}"
            if candidate.is_file():
                return candidate
    available = sorted({p.stem for d in dirs for p in _study_files(Path(d))})
    listing = ", ".join(available) if available else "none"
    raise ConfigError(f"no study named {text!r} in {', '.join(display_path(Path(d)) for d in dirs)}; available: {listing}")


def _study_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


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


def list_studies(search_dirs: list[Path] | None = None) -> list[tuple[str, str]]:
    """Study names and descriptions, local ``./studies`` first (a local file hides a shipped one).

    Args:
        search_dirs: Directories to list (default: ./studies, the shipped studies/).

    Returns:
        Sorted (name, description) pairs; an unreadable file says so in its description.
    """
    found: dict[str, str] = {}
    for directory in search_dirs if search_dirs is not None else _default_search_dirs():
        for path in _study_files(Path(directory)):
            if path.stem in found:
                continue
            try:
                data = read_yaml(path, display_path(path))
                description = data.get("description", "") if isinstance(data, Mapping) else ""
                found[path.stem] = description if isinstance(description, str) else ""
            except ConfigError as exc:
                found[path.stem] = f"(unreadable: {exc})"
    return sorted(found.items())


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _fail(origin: str, message: str) -> ConfigError:
    return ConfigError(f"{origin}: {message}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_keys(data: Mapping, valid: typing.Iterable[str], origin: str, where: str) -> None:
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
    if not isinstance(data, Mapping):
        raise _fail(origin, f"the top level must be a mapping of study keys (got {_kind(data)}); see studies/densenet-mini.yaml")
    _check_keys(data, _TOP_KEYS, origin, "")

    name = _parse_name(data.get("name"), origin, stem)
    description = data.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise _fail(origin, f"description must be a string (got {_kind(description)})")

    dataset = _parse_dataset(data.get("dataset"), origin)
    space = _parse_space_ref(data.get("space"), origin, base_dir)
    objectives = _parse_objectives(data.get("objectives", ["val_accuracy"]), origin)
    epochs = _int(data, "epochs", DEFAULT_EPOCHS, 1, origin)
    n_trials = _int(data, "n_trials", DEFAULT_N_TRIALS, 1, origin)
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

    return StudyConfig(
        name=name,
        description=description,
        dataset=dataset,
        space=space,
        objectives=objectives,
        sampler=sampler,
        pruner=pruner,
        epochs=epochs,
        n_trials=n_trials,
        train=train,
        constraints=constraints,
        enqueue=enqueue,
        seed=seed,
        hypervolume_reference=hv_reference,
        checkpoints=checkpoints,
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


def _parse_dataset(raw: Any, origin: str) -> Any:
    from hpo.data import DatasetConfig

    if raw is None:
        raise _fail(origin, "dataset is required, e.g. dataset: {kind: minicifar, n_classes: 4, R: 5}")
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"dataset must be a mapping like {{kind: minicifar, n_classes: 4}} (got {_kind(raw)})")
    types_ = field_types(DatasetConfig)
    _check_keys(raw, types_, origin, "dataset")
    kind = raw.get("kind")
    if kind not in DATASET_KINDS:
        raise _fail(origin, f"dataset.kind must be one of {', '.join(DATASET_KINDS)} (got {kind!r})")
    for key, value in raw.items():
        if not conforms(value, types_[key]):
            raise _fail(origin, f"dataset.{key} must be {type_name(types_[key])} (got {value!r})")
    n_classes = raw.get("n_classes")
    if _number(n_classes):
        if kind == "minicifar" and not 2 <= n_classes <= 10:
            raise _fail(origin, f"dataset.n_classes must be between 2 and 10 for minicifar, the first classes of CIFAR-10 (got {n_classes})")
        if kind in _MAX_CLASSES and kind != "minicifar" and n_classes != _MAX_CLASSES[kind]:
            raise _fail(origin, f"dataset.n_classes applies only to kind: minicifar ({kind} has {_MAX_CLASSES[kind]} classes, got {n_classes}); remove it")
        if kind == "folder":
            raise _fail(origin, "dataset.n_classes applies only to kind: minicifar (a folder has one class per train/ subfolder); remove it")
    r = raw.get("R")
    if _number(r):
        if kind != "minicifar" and r != 1:
            raise _fail(origin, f"dataset.R applies only to kind: minicifar (got {r} for kind: {kind}); remove it or use kind: minicifar")
        if not 1 <= r <= _MAX_R:
            raise _fail(origin, f"dataset.R must be between 1 and {_MAX_R} (got {r})")
    train_size = raw.get("train_size")
    if _number(train_size) and not 0 < train_size < 1:
        raise _fail(origin, f"dataset.train_size must be a fraction between 0 and 1, exclusive (got {train_size})")
    image_size = raw.get("image_size")
    if _number(image_size) and image_size < 8:
        raise _fail(origin, f"dataset.image_size must be >= 8 pixels (got {image_size})")
    values = {k: (float(v) if types_[k] is float and isinstance(v, int) else v) for k, v in raw.items()}
    try:
        dataset = DatasetConfig(**values)
    except ConfigError as exc:
        raise _fail(origin, str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise _fail(origin, f"dataset is invalid: {exc}") from None
    return dataset


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
    if seen[0] != "val_accuracy":
        raise _fail(origin, f"objectives must start with val_accuracy (got {', '.join(seen)})")
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
    n_objectives = len(objectives)
    if sampler.name == "grid":
        try:
            grid_values(space)
        except ConfigError as exc:
            raise _fail(origin, str(exc)) from None
    sampler_registry = _optional_module("hpo.samplers")
    if sampler_registry is not None:
        _call_check(
            sampler_registry.check_sampler,
            (sampler.name, dict(sampler.args)),
            {"n_objectives": n_objectives, "space": space, "origin": origin, "constrained": constrained},
            origin,
            "sampler",
        )
    pruner_registry = _optional_module("hpo.pruning")
    if pruner_registry is not None:
        _call_check(
            pruner_registry.check_pruner,
            (pruner.name, dict(pruner.args)),
            {
                "n_objectives": n_objectives,
                "origin": origin,
                "space": space,
                "epochs": epochs,
                "objectives": list(objectives),
            },
            origin,
            "pruner",
        )


def _optional_module(name: str) -> Any:
    """The sampler/pruner registry module, or None while it does not exist yet."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def _call_check(check: Any, args: tuple, keywords: dict, origin: str, key: str) -> None:
    """Call a registry's validator with the keywords it accepts; its ConfigError names the file."""
    import inspect

    accepted = inspect.signature(check).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        keywords = {k: v for k, v in keywords.items() if k in accepted}
    try:
        check(*args, **keywords)
    except ConfigError as exc:
        message = str(exc)
        if message.startswith(f"{origin}:"):
            raise
        raise _fail(origin, f"{key}: {message}") from None


def _parse_train(raw: Any, origin: str) -> dict:
    from hpo.space import _try_train
    from hpo.train import TrainConfig

    if raw is None:
        return {}
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
        problem = _try_train(key, value)
        if problem:
            raise _fail(origin, f"train.{key} is not allowed ({value!r}): {problem}")
        train[key] = value
    return train


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


def _parse_hv_reference(raw: Any, origin: str) -> dict:
    if raw is None:
        return dict(DEFAULT_HYPERVOLUME_REFERENCE)
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"hypervolume_reference must be a mapping like {{params: 1.0e8, train_seconds: 600}} (got {_kind(raw)})")
    _check_keys(raw, DEFAULT_HYPERVOLUME_REFERENCE, origin, "hypervolume_reference")
    reference = dict(DEFAULT_HYPERVOLUME_REFERENCE)
    for key, value in raw.items():
        reference[key] = _positive(value, origin, f"hypervolume_reference.{key}", allow_none=False)
    if reference["params"] <= 1:
        raise _fail(origin, f"hypervolume_reference.params must be > 1 (its log10 is the reference; got {reference['params']})")
    return reference


def _parse_checkpoints(raw: Any, origin: str) -> dict:
    if raw is None:
        return dict(DEFAULT_CHECKPOINTS)
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"checkpoints must be a mapping like {{keep: front, disk_budget_mb: 2000}} (got {_kind(raw)})")
    _check_keys(raw, DEFAULT_CHECKPOINTS, origin, "checkpoints")
    checkpoints = dict(DEFAULT_CHECKPOINTS)
    if "keep" in raw:
        keep = raw["keep"]
        if keep is False:  # YAML reads a bare `none`-like `no`/`off` as false
            keep = "none"
        if keep not in CHECKPOINT_KEEP:
            raise _fail(origin, f"checkpoints.keep must be one of {', '.join(CHECKPOINT_KEEP)} (got {keep!r})")
        checkpoints["keep"] = keep
    if "disk_budget_mb" in raw:
        checkpoints["disk_budget_mb"] = _positive(raw["disk_budget_mb"], origin, "checkpoints.disk_budget_mb")
    return checkpoints


# ---------------------------------------------------------------------------------------------
# --set KEY=VALUE
# ---------------------------------------------------------------------------------------------


def parse_overrides(pairs: list[str], target: type | Mapping[str, Any], *, origin: str = "--set") -> dict:
    """Type ``KEY=VALUE`` strings by a dataclass's field annotations.

    ``VALUE`` is read as YAML (``0.1``, ``true``, ``[2, 2, 2, 2]``), then checked against the
    field's type; sequences may also be written ``0.5,0.75``; ``none`` gives None where allowed;
    a str field takes the text as written.

    Args:
        pairs: Strings like ``lr=0.1`` or ``blocks=2,2,2,2``.
        target: A dataclass type, or a mapping of key -> type annotation.
        origin: How messages name the source (``--set``).

    Returns:
        Key -> typed value (a later pair overrides an earlier one).

    Raises:
        ConfigError: malformed pair, unknown key (lists the valid ones), or a value of the wrong type.
    """
    if isinstance(target, Mapping):
        types_ = dict(target)
    elif dataclasses.is_dataclass(target):
        types_ = field_types(target)
    else:
        raise TypeError(f"parse_overrides needs a dataclass type or a mapping, not {target!r}")
    result: dict[str, Any] = {}
    for pair in pairs:
        if not isinstance(pair, str) or "=" not in pair:
            raise ConfigError(f"{origin} expects KEY=VALUE (got {pair!r})")
        key, text = pair.split("=", 1)
        key = key.strip()
        if key not in types_:
            raise ConfigError(f"{origin} {pair}: unknown key {key!r}; valid keys: {', '.join(sorted(types_))}")
        result[key] = _coerce(text.strip(), types_[key], f"{origin} {pair}")
    return result


def split_model_overrides(model: str, pairs: Sequence[str]) -> tuple[str, dict, dict]:
    """Route ``--set KEY=VALUE`` pairs to a model's knobs or the trainer's options, typed.

    Args:
        model: a model family or variant name.
        pairs: the ``--set`` strings.

    Returns:
        ``(family, knobs, trainer_options)``, typed by the family's config and by ``TrainConfig``.

    Raises:
        ConfigError: unknown model, a key that is neither a knob nor a trainer option, or a bad value.
    """
    from hpo.models import families, variants
    from hpo.train import TrainConfig

    family = variants()[model][0] if model in variants() else model
    if family not in families():
        raise ConfigError(f"--model {model!r} is not a model family or variant; choose one of: {', '.join(sorted(families()))} "
                          f"or a variant listed by `hpo models`")
    config_cls = families()[family].config_cls
    knob_names = {f.name for f in dataclasses.fields(config_cls)}
    option_names = {f.name for f in dataclasses.fields(TrainConfig)}
    knob_pairs, option_pairs = [], []
    for pair in pairs:
        key = pair.split("=", 1)[0].strip()
        if key in knob_names:
            knob_pairs.append(pair)
        elif key in option_names:
            option_pairs.append(pair)
        else:
            raise ConfigError(f"--set {pair}: {key!r} is neither a knob of {family} ({', '.join(sorted(knob_names))}) "
                              f"nor a trainer option ({', '.join(sorted(option_names))})")
    return family, parse_overrides(knob_pairs, config_cls), parse_overrides(option_pairs, TrainConfig)


def _coerce(text: str, tp: Any, label: str) -> Any:
    try:
        parsed = parse_yaml(text, label) if text else ""
    except ConfigError:
        parsed = text
    candidates = [parsed]
    if conforms(None, tp) and text.lower() in ("none", "null", "~"):
        candidates.insert(0, None)
    if tp is bool or (typing.get_origin(tp) in (typing.Union, _union_type()) and bool in typing.get_args(tp)):
        if text in ("0", "1"):
            candidates.insert(0, text == "1")
    if _is_sequence_type(tp) and isinstance(parsed, str):
        items = [item.strip() for item in text.strip("()[]").split(",") if item.strip()]
        parsed_items = []
        for item in items:
            try:
                parsed_items.append(parse_yaml(item, label))
            except ConfigError:
                parsed_items.append(item)
        candidates.append(parsed_items)
    candidates.append(text)  # a str field takes the text as written ("none" stays "none")
    for candidate in candidates:
        if isinstance(candidate, float) and not math.isfinite(candidate):
            continue
        if conforms(candidate, tp):
            return _convert(candidate, tp)
    raise ConfigError(f"{label}: the value must be {type_name(tp)} (got {text!r})")


def _union_type() -> Any:
    import types

    return types.UnionType


def _is_sequence_type(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, _union_type()):
        return any(_is_sequence_type(arm) for arm in typing.get_args(tp))
    return origin in (tuple, list) or tp in (tuple, list)


def _convert(value: Any, tp: Any) -> Any:
    """Make a conforming YAML value the field's own type: ints to floats, lists to tuples."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, _union_type()):
        arms = typing.get_args(tp)
        # Prefer an arm the value already is (int stays int in int | float).
        for arm in arms:
            if arm is not float and conforms(value, arm) and not (arm is Any):
                return _convert(value, arm)
        for arm in arms:
            if conforms(value, arm):
                return _convert(value, arm)
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple or tp is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if args:
            return tuple(_convert(v, a) for v, a in zip(value, args))
        return tuple(value)
    if origin is list or tp is list:
        args = typing.get_args(tp)
        return [_convert(v, args[0]) for v in value] if args else list(value)
    return value

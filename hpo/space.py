"""Search spaces: ``search_spaces/<name>.yaml`` -> Optuna suggestions.

A search space is an ordered mapping of parameter names to specs::

    params:
      model: densenet                                  # fixed: recorded, never sampled
      densenet.growth_rate: {type: int, low: 8, high: 32, step: 4}
      optimizer: {choices: [sgd, adamw]}               # categorical
      lr: {type: float, low: 1.0e-3, high: 0.3, log: true}
      momentum: {type: float, low: 0.8, high: 0.99, when: {optimizer: sgd}}

Names say where a value goes: ``model`` is the family, ``<family>.<knob>`` is a knob of that
family's config dataclass (sampled only when ``model`` is that family), and any other name is a
``TrainConfig`` field. ``model`` must come before the knobs that depend on it. ``when: {param:
value-or-list}`` makes a parameter conditional on earlier ones; a list means "any of these" (so a
condition on one list-valued choice is written ``when: {resnet.blocks: [[1, 1, 1, 1]]}``).

Optuna's categorical distributions hold only None/bool/int/float/str, so list- or mapping-valued
choices (``resnet.blocks: {choices: [[1,1,1,1], [2,2,2,2]]}``) are stored in Optuna as their JSON
text and decoded again by :func:`suggest` and :func:`decode_params`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpo.errors import ConfigError

KINDS = ("fixed", "categorical", "float", "int")

# Trainer fields a space may not sample: the study owns them (one budget, one seed per study).
STUDY_OWNED_TRAIN_KEYS = ("epochs", "seed")

_SPEC_KEYS = {"choices", "type", "low", "high", "log", "step", "when", "value"}

# Above this many values, expanding a range for the grid sampler is a mistake, not a plan.
_MAX_GRID_VALUES = 10_000


# ---------------------------------------------------------------------------------------------
# YAML reading
# ---------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float.

    YAML 1.1 (PyYAML) only treats exponent numbers with a dot (``1.0e-3``) as floats, so a
    learning rate written ``1e-3`` would silently become the string "1e-3".
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: Path, origin: str) -> Any:
    """Parse one YAML file safely (no Python objects), turning every failure into ConfigError.

    Args:
        path: The file to read.
        origin: How messages name the file (e.g. ``studies/densenet-mini.yaml``).

    Returns:
        The parsed document (any YAML value).

    Raises:
        ConfigError: the file is missing, unreadable, or not valid YAML (with the line).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{origin}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{origin}: cannot read the file ({exc})") from None
    return parse_yaml(text, origin)


def parse_yaml(text: str, origin: str) -> Any:
    """Parse YAML text with the safe loader; a syntax error becomes ConfigError naming the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{origin}: invalid YAML{where}: {problem}") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{origin}: invalid YAML ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------------------------------------
# Types of dataclass fields (shared with config.parse_overrides)
# ---------------------------------------------------------------------------------------------


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a dataclass (string annotations resolved)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an unresolvable annotation must not stop validation: check nothing
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def conforms(value: Any, tp: Any) -> bool:
    """Whether a plain YAML value fits a type annotation (int, float, str, unions, tuples, ...).

    Lists stand for tuples (YAML has no tuples) and ints for floats. Annotations this function
    does not understand accept everything: the dataclass itself is the last judge.
    """
    if tp is Any or tp is object:
        return True
    if tp is type(None) or tp is None:
        return value is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(conforms(value, arm) for arm in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return _is_number(value) and math.isfinite(value)
    if tp is str:
        return isinstance(value, str)
    if origin in (tuple, list, typing.Sequence) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(conforms(v, a) for v, a in zip(value, args))
        return all(conforms(v, args[0]) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, Mapping)
    return True


def type_name(tp: Any) -> str:
    """A short human name for a type annotation (``int``, ``tuple[float, ...]``, ``int | str``)."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def _accepts(tp: Any, base: type) -> bool:
    """Whether annotation ``tp`` admits values of ``base`` (int or float)."""
    probe = 1 if base is int else 0.5
    return conforms(probe, tp)


# ---------------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------------


def _encode_choice(value: Any) -> Any:
    """A choice as Optuna stores it: scalars as they are, lists/mappings as JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Param:
    """One search-space parameter.

    Attributes:
        name: ``model``, ``<family>.<knob>`` or a TrainConfig field.
        kind: ``fixed`` | ``categorical`` | ``float`` | ``int``.
        value: The value of a fixed parameter.
        choices: The values of a categorical parameter (decoded: lists stay lists).
        low: Lower bound of a float/int range (inclusive).
        high: Upper bound of a float/int range (inclusive).
        log: Sample the range on a log scale.
        step: Discretisation step of the range (None: continuous float, 1 for int).
        when: Conditions on earlier parameters: name -> tuple of accepted values.
    """

    name: str
    kind: str
    value: Any = None
    choices: tuple | None = None
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    when: dict[str, tuple] = field(default_factory=dict)

    @property
    def family(self) -> str | None:
        """The model family a ``<family>.<knob>`` parameter belongs to, else None."""
        return self.name.split(".", 1)[0] if "." in self.name else None

    @property
    def knob(self) -> str | None:
        """The knob name of a ``<family>.<knob>`` parameter, else None."""
        return self.name.split(".", 1)[1] if "." in self.name else None

    def optuna_choices(self) -> tuple:
        """The categorical choices as given to Optuna (non-scalars JSON-encoded)."""
        return tuple(_encode_choice(c) for c in self.choices or ())

    def decode(self, optuna_value: Any) -> Any:
        """A sampled Optuna value back to the search-space value (JSON choices decoded)."""
        if self.kind != "categorical":
            return optuna_value
        for encoded, original in zip(self.optuna_choices(), self.choices or ()):
            if encoded == optuna_value and type(encoded) is type(optuna_value):
                return original
        for encoded, original in zip(self.optuna_choices(), self.choices or ()):
            if encoded == optuna_value:
                return original
        return optuna_value

    def encode(self, value: Any) -> Any:
        """A search-space value as Optuna stores it (for ``enqueue_trial`` and grids)."""
        return _encode_choice(value) if self.kind == "categorical" else value

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a value this parameter can take."""
        if self.kind == "fixed":
            return _same(value, self.value)
        if self.kind == "categorical":
            return any(_same(value, c) for c in self.choices or ())
        if not _is_number(value) or not math.isfinite(value):
            return False
        if self.kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-8
        return True

    def values(self) -> list:
        """All values the parameter can take (ranges need a step, or int); for `when` checks."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices or ())
        raise ValueError("continuous range")

    def to_spec(self) -> Any:
        """The YAML/JSON spec that parses back to this parameter."""
        when = {k: (list(v) if len(v) != 1 else v[0]) for k, v in self.when.items()}
        if self.kind == "fixed":
            if not when and not isinstance(self.value, Mapping):
                return self.value
            spec: dict[str, Any] = {"value": self.value}
        elif self.kind == "categorical":
            spec = {"choices": list(self.choices or ())}
        else:
            spec = {"type": self.kind, "low": self.low, "high": self.high}
            if self.log:
                spec["log"] = True
            if self.step is not None:
                spec["step"] = self.step
        if when:
            spec["when"] = when
        return spec


def _same(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1, and treats lists and tuples alike."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


@dataclass(frozen=True)
class SearchSpace:
    """An ordered, validated search space.

    Attributes:
        params: Parameters in sampling order.
        description: One line saying what the space explores.
    """

    params: tuple[Param, ...]
    description: str = ""

    def __getitem__(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def names(self) -> list[str]:
        """Parameter names in order."""
        return [p.name for p in self.params]

    def families(self) -> list[str]:
        """The model families the space can select, in order."""
        try:
            return [str(v) for v in self["model"].values()]
        except KeyError:
            return []

    def to_dict(self) -> dict:
        """JSON-serialisable form that :meth:`from_dict` (and :func:`load_space`) read back."""
        return {
            "description": self.description,
            "params": {p.name: p.to_spec() for p in self.params},
        }

    @classmethod
    def from_dict(cls, data: Mapping, origin: str = "<database>") -> SearchSpace:
        """Validate and build a space from :meth:`to_dict` output (or a parsed YAML mapping)."""
        return load_space(data, origin=origin)


@dataclass(frozen=True)
class TrialConfig:
    """One trial's configuration, split by destination.

    Attributes:
        family: The model family (``resnet``, ...).
        model_knobs: Knobs for the family's config dataclass.
        train_overrides: TrainConfig fields to override.
    """

    family: str
    model_knobs: dict
    train_overrides: dict


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


def load_space(source: str | Path | Mapping, *, origin: str, key_prefix: str = "") -> SearchSpace:
    """Read and validate a search space.

    Args:
        source: A YAML file path, or an already parsed mapping (inline space, database copy).
        origin: How messages name the source, e.g. ``search_spaces/densenet.yaml``.
        key_prefix: Prepended to key paths in messages (``space.`` for a space inlined in a study).

    Returns:
        The validated SearchSpace.

    Raises:
        ConfigError: one sentence naming the origin, the key path and the fix.
    """
    data = read_yaml(Path(source), origin) if isinstance(source, (str, Path)) else source
    return _parse_space(data, origin, key_prefix)


def _fail(origin: str, message: str) -> ConfigError:
    return ConfigError(f"{origin}: {message}")


def _parse_space(data: Any, origin: str, prefix: str) -> SearchSpace:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(data, Mapping):
        raise _fail(origin, f"{where} must be a mapping with a params key (got {type(data).__name__})")
    for key in data:
        if key not in ("description", "params"):
            raise _fail(origin, f"unknown key {prefix}{key!s}; valid keys: description, params")
    description = data.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise _fail(origin, f"{prefix}description must be a string (got {type(description).__name__})")
    raw_params = data.get("params")
    if not isinstance(raw_params, Mapping) or not raw_params:
        raise _fail(origin, f"{prefix}params must be a non-empty mapping of parameter name -> spec")

    params: list[Param] = []
    for name, spec in raw_params.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", name):
            raise _fail(
                origin,
                f"{prefix}params has an invalid parameter name {name!r}; use model, <family>.<knob> or a trainer option",
            )
        params.append(_parse_param(name, spec, origin, f"{prefix}params.{name}", params))
    space = SearchSpace(tuple(params), description)
    _check_names(space, origin, f"{prefix}params")
    return space


def _parse_param(name: str, spec: Any, origin: str, key: str, earlier: list[Param]) -> Param:
    if not isinstance(spec, Mapping):
        if isinstance(spec, float) and not math.isfinite(spec):
            raise _fail(origin, f"{key} must be a finite number (got {spec})")
        return Param(name, "fixed", value=spec)
    for spec_key in spec:
        if spec_key not in _SPEC_KEYS:
            raise _fail(
                origin,
                f"{key} has an unknown key {spec_key!s}; valid keys: {', '.join(sorted(_SPEC_KEYS))}",
            )
    when = _parse_when(spec.get("when"), origin, f"{key}.when", earlier)
    forms = [k for k in ("value", "choices", "type") if k in spec]
    if not forms and ("low" in spec or "high" in spec):
        forms = ["type"]
    if len(forms) != 1:
        raise _fail(
            origin,
            f"{key} needs exactly one of value, choices or type/low/high"
            + (f" (got {', '.join(forms)})" if forms else ""),
        )
    form = forms[0]
    extra = [k for k in ("low", "high", "log", "step") if k in spec]
    if form == "value":
        if extra:
            raise _fail(origin, f"{key} is a fixed value, so {extra[0]} does not apply")
        return Param(name, "fixed", value=spec["value"], when=when)
    if form == "choices":
        if extra:
            raise _fail(origin, f"{key} is categorical, so {extra[0]} does not apply; drop it or use type/low/high")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise _fail(origin, f"{key}.choices must be a non-empty list (got {choices!r})")
        encoded = []
        for i, choice in enumerate(choices):
            if isinstance(choice, float) and not math.isfinite(choice):
                raise _fail(origin, f"{key}.choices[{i}] must be a finite number (got {choice})")
            try:
                enc = _encode_choice(choice)
            except (TypeError, ValueError):
                raise _fail(origin, f"{key}.choices[{i}] is not a plain YAML value (got {choice!r})") from None
            if any(_same(enc, e) for e in encoded):
                raise _fail(origin, f"{key}.choices lists {choice!r} twice")
            encoded.append(enc)
        return Param(name, "categorical", choices=tuple(choices), when=when)
    return _parse_range(name, spec, origin, key, when)


def _parse_range(name: str, spec: Mapping, origin: str, key: str, when: dict) -> Param:
    kind = spec.get("type")
    if kind is None:
        kind = _implied_range_type(name)
        if kind is None:
            raise _fail(origin, f"{key} needs type: float or type: int")
    if kind not in ("float", "int"):
        raise _fail(origin, f"{key}.type must be float or int (got {kind!r})")
    for bound in ("low", "high"):
        if bound not in spec:
            raise _fail(origin, f"{key}.{bound} is required for type: {kind}")
        value = spec[bound]
        if not _is_number(value) or not math.isfinite(value):
            raise _fail(origin, f"{key}.{bound} must be a number (got {value!r})")
        if kind == "int" and not isinstance(value, int):
            raise _fail(origin, f"{key}.{bound} must be an integer for type: int (got {value!r})")
    low, high = spec["low"], spec["high"]
    if kind == "float":
        low, high = float(low), float(high)
    if low > high:
        raise _fail(origin, f"{key}.low must be <= high (got low {low}, high {high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise _fail(origin, f"{key}.log must be true or false (got {log!r})")
    step = spec.get("step")
    if step is not None:
        if not _is_number(step) or not math.isfinite(step):
            raise _fail(origin, f"{key}.step must be a number (got {step!r})")
        if kind == "int" and not isinstance(step, int):
            raise _fail(origin, f"{key}.step must be an integer for type: int (got {step!r})")
        if step <= 0:
            raise _fail(origin, f"{key}.step must be > 0 (got {step})")
        if log:
            raise _fail(origin, f"{key} cannot have both log: true and step (Optuna refuses it); drop one")
        if kind == "float":
            step = float(step)
    if log and low <= 0:
        raise _fail(origin, f"{key}.low must be > 0 when log: true (got {spec['low']})")
    return Param(name, kind, low=low, high=high, log=log, step=step, when=when)


def _implied_range_type(name: str) -> str | None:
    """``type`` left out: take it from the trainer field's annotation when it is plainly int or float."""
    if "." in name or name == "model":
        return None
    try:
        from hpo.train import TrainConfig
    except ImportError:
        return None
    tp = field_types(TrainConfig).get(name)
    if tp is int:
        return "int"
    if tp is float:
        return "float"
    return None


def _parse_when(raw: Any, origin: str, key: str, earlier: list[Param]) -> dict[str, tuple]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not raw:
        raise _fail(origin, f"{key} must be a mapping of earlier parameter -> value or list of values")
    by_name = {p.name: p for p in earlier}
    when: dict[str, tuple] = {}
    for ref, accepted in raw.items():
        if ref not in by_name:
            raise _fail(
                origin,
                f"{key} names {ref!s}, which is not an earlier parameter"
                + (f"; earlier ones: {', '.join(by_name)}" if by_name else "; move it below the parameter it depends on"),
            )
        values = tuple(accepted) if isinstance(accepted, list) else (accepted,)
        if not values:
            raise _fail(origin, f"{key}.{ref} must name at least one value")
        target = by_name[ref]
        for value in values:
            if not target.contains(value):
                raise _fail(origin, f"{key}.{ref} is {value!r}, a value params.{ref} never takes")
        when[str(ref)] = values
    return when


def _check_names(space: SearchSpace, origin: str, prefix: str) -> None:
    """Check names against the model registry and TrainConfig, and values against their types."""
    from hpo.models.registry import families as registered_families
    from hpo.train import TrainConfig

    registered = registered_families()
    names = space.names()
    model = next((p for p in space.params if p.name == "model"), None)
    if model is None:
        raise _fail(origin, f"{prefix}.model is required: a family name or {{choices: [...]}} over {', '.join(sorted(registered))}")
    if model.kind not in ("fixed", "categorical"):
        raise _fail(origin, f"{prefix}.model must be a family name or {{choices: [...]}}, not a numeric range")
    if model.when:
        raise _fail(origin, f"{prefix}.model cannot have when: the family decides everything else")
    for family in model.values():
        if not isinstance(family, str) or family not in registered:
            raise _fail(
                origin,
                f"{prefix}.model names unknown family {family!r}; registered families: {', '.join(sorted(registered))}",
            )
    selectable = set(model.values())
    model_index = names.index("model")

    train_types = field_types(TrainConfig)
    train_keys = sorted(k for k in train_types if k not in STUDY_OWNED_TRAIN_KEYS)
    for index, param in enumerate(space.params):
        key = f"{prefix}.{param.name}"
        if param.name == "model":
            continue
        if param.family is not None:
            family, knob = param.family, param.knob
            if family not in registered:
                raise _fail(
                    origin,
                    f"{key} names unknown family {family!r}; registered families: {', '.join(sorted(registered))}",
                )
            if family not in selectable:
                raise _fail(origin, f"{key} is a knob of {family}, which {prefix}.model never selects")
            if index < model_index:
                raise _fail(origin, f"{key} must come after {prefix}.model, which it depends on")
            knob_types = field_types(registered[family].config_cls)
            if knob not in knob_types:
                raise _fail(
                    origin,
                    f"{key}: {family} has no knob {knob!r}; valid knobs: {', '.join(sorted(knob_types))}",
                )
            _check_values(param, knob_types[knob], origin, key, lambda v, f=family, k=knob: _try_knob(f, k, v))
        else:
            if param.name in STUDY_OWNED_TRAIN_KEYS:
                raise _fail(
                    origin,
                    f"{key}: {param.name} is set by the study (its {param.name} key), not by the search space",
                )
            if param.name not in train_types:
                raise _fail(
                    origin,
                    f"{key} is not a model family knob or trainer option; valid keys: model, <family>.<knob>, "
                    + ", ".join(train_keys),
                )
            _check_values(param, train_types[param.name], origin, key, lambda v, k=param.name: _try_train(k, v))


def _check_values(param: Param, tp: Any, origin: str, key: str, try_value) -> None:
    """Every concrete value a parameter can take must fit the field type and the field's own checks."""
    if param.kind in ("float", "int"):
        base = float if param.kind == "float" else int
        if not _accepts(tp, base):
            hint = "; use type: int" if param.kind == "float" and _accepts(tp, int) else ""
            raise _fail(origin, f"{key} is a range of {param.kind}, but the field takes {type_name(tp)}{hint}")
        candidates = [("low", param.low), ("high", param.high)]
    elif param.kind == "categorical":
        candidates = [(f"choices[{i}]", c) for i, c in enumerate(param.choices or ())]
    else:
        candidates = [("", param.value)]
    for where, value in candidates:
        label = f"{key}.{where}" if where else key
        if param.kind in ("categorical", "fixed") and not conforms(value, tp):
            raise _fail(origin, f"{label} must be {type_name(tp)} (got {value!r})")
        problem = try_value(value)
        if problem:
            raise _fail(origin, f"{label} is not allowed ({value!r}): {problem}")


def _try_knob(family: str, knob: str, value: Any) -> str | None:
    """Build the family config with this one knob: its own checks (``__post_init__``) judge the value."""
    from hpo.models.registry import families as registered_families

    config_cls = registered_families()[family].config_cls
    try:
        config_cls(**{knob: value})
    except (ValueError, TypeError, AssertionError, KeyError) as exc:
        return _one_line(exc)
    except ConfigError as exc:
        return _one_line(exc)
    return None


def _try_train(key: str, value: Any) -> str | None:
    """Build a TrainConfig with this one field and run its ``validate()`` when it has one."""
    from hpo.train import TrainConfig

    try:
        config = TrainConfig(**{key: value})
        validate = getattr(config, "validate", None)
        if callable(validate):
            validate()
    except (ValueError, TypeError, AssertionError, KeyError) as exc:
        return _one_line(exc)
    except ConfigError as exc:
        return _one_line(exc)
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


def is_active(param: Param, values: Mapping[str, Any]) -> bool:
    """Whether ``param`` applies given the values chosen so far (its family, then its ``when``)."""
    if param.family is not None and values.get("model") != param.family:
        return False
    for ref, accepted in param.when.items():
        if ref not in values or not any(_same(values[ref], a) for a in accepted):
            return False
    return True


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Sample one configuration, in space order, honouring conditions.

    Fixed values are returned but not sampled (so they never appear in ``trial.params``);
    inactive conditional parameters are neither sampled nor returned.

    Args:
        trial: An ``optuna.Trial`` (or anything with its ``suggest_*`` methods).
        space: The search space.

    Returns:
        Parameter name -> value, in space order, with list-valued choices decoded.
    """
    values: dict[str, Any] = {}
    for param in space.params:
        if not is_active(param, values):
            continue
        if param.kind == "fixed":
            values[param.name] = param.value
        elif param.kind == "categorical":
            sampled = trial.suggest_categorical(param.name, list(param.optuna_choices()))
            values[param.name] = param.decode(sampled)
        elif param.kind == "float":
            values[param.name] = trial.suggest_float(
                param.name, param.low, param.high, log=param.log, step=param.step
            )
        else:
            values[param.name] = trial.suggest_int(
                param.name, param.low, param.high, log=param.log, step=param.step or 1
            )
    return values


def decode_params(space: SearchSpace, optuna_params: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`suggest` returned, rebuilt from a finished trial's ``trial.params``.

    Args:
        space: The study's search space.
        optuna_params: ``FrozenTrial.params`` (JSON-encoded choices, no fixed values).

    Returns:
        Parameter name -> value in space order: active fixed values added, choices decoded.
    """
    values: dict[str, Any] = {}
    for param in space.params:
        if not is_active(param, values):
            continue
        if param.kind == "fixed":
            values[param.name] = param.value
        elif param.name in optuna_params:
            values[param.name] = param.decode(optuna_params[param.name])
    return values


def encode_params(space: SearchSpace, values: Mapping[str, Any]) -> dict[str, Any]:
    """Search-space values as Optuna stores them (for ``study.enqueue_trial``); fixed ones dropped.

    Args:
        space: The study's search space.
        values: Parameter name -> value (e.g. one ``enqueue`` entry of a study file).

    Returns:
        Parameter name -> Optuna value for the sampled parameters among ``values``.
    """
    by_name = {p.name: p for p in space.params}
    return {
        name: by_name[name].encode(value)
        for name, value in values.items()
        if name in by_name and by_name[name].kind != "fixed"
    }


def check_assignment(space: SearchSpace, values: Mapping[str, Any]) -> str | None:
    """Why a (partial) assignment is impossible in ``space``, or None if it is fine.

    Used for enqueued trials: every name must be a parameter, every value one it can take, and
    every named parameter must be active under the others (a parameter that is never sampled
    would be silently ignored).

    Args:
        space: The search space.
        values: Parameter name -> value; names left out are sampled as usual.

    Returns:
        A message fragment naming the parameter, or None.
    """
    by_name = {p.name: p for p in space.params}
    for name, value in values.items():
        if name not in by_name:
            return f"names {name!s}, which is not a parameter of the space (parameters: {', '.join(by_name)})"
        param = by_name[name]
        if not param.contains(value):
            return f"gives {name} = {value!r}, outside {_describe(param)}"
    # Activity is judged on the values the entry fixes plus the space's fixed values.
    chosen: dict[str, Any] = {}
    for param in space.params:
        if param.name in values:
            if not _could_be_active(param, chosen):
                return f"gives {param.name}, which is not sampled under the other values of the entry"
            chosen[param.name] = values[param.name]
        elif param.kind == "fixed" and is_active(param, chosen):
            chosen[param.name] = param.value
    return None


def _could_be_active(param: Param, chosen: Mapping[str, Any]) -> bool:
    """Active, or might be once unspecified earlier parameters are sampled."""
    conditions = dict(param.when)
    if param.family is not None:
        conditions = {"model": (param.family,), **conditions}
    for ref, accepted in conditions.items():
        if ref in chosen and not any(_same(chosen[ref], a) for a in accepted):
            return False
    return True


def _describe(param: Param) -> str:
    if param.kind == "fixed":
        return f"its fixed value {param.value!r}"
    if param.kind == "categorical":
        return f"its choices {list(param.choices or ())!r}"
    step = f" step {param.step}" if param.step is not None else ""
    return f"its {param.kind} range [{param.low}, {param.high}]{step}"


# ---------------------------------------------------------------------------------------------
# Splitting, grids, conditions
# ---------------------------------------------------------------------------------------------


def split_params(params: Mapping[str, Any]) -> TrialConfig:
    """Route one configuration to the model and the trainer.

    Args:
        params: ``model`` -> family, ``<family>.<knob>`` -> knob values, anything else -> trainer.

    Returns:
        The TrialConfig.

    Raises:
        ConfigError: ``model`` is missing, or a knob belongs to another family.
    """
    if "model" not in params:
        raise ConfigError("trial parameters have no model: add model: <family> to the search space")
    family = params["model"]
    if not isinstance(family, str):
        raise ConfigError(f"trial parameter model must be a family name (got {family!r})")
    knobs: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for name, value in params.items():
        if name == "model":
            continue
        if "." in name:
            prefix, knob = name.split(".", 1)
            if prefix != family:
                raise ConfigError(f"trial parameter {name} is a knob of {prefix}, but model is {family}")
            knobs[knob] = value
        else:
            train[name] = value
    return TrialConfig(family=family, model_knobs=knobs, train_overrides=train)


def grid_values(space: SearchSpace) -> dict[str, list]:
    """The search space as ``optuna.samplers.GridSampler`` wants it.

    Categorical parameters give their (Optuna-encoded) choices; int ranges expand with their step
    (1 by default); float ranges need a step. Fixed parameters are not sampled, so they are left out.

    Args:
        space: The search space.

    Returns:
        Parameter name -> list of values, in space order.

    Raises:
        ConfigError: a parameter has infinitely many values (names it).
    """
    grid: dict[str, list] = {}
    for param in space.params:
        if param.kind == "fixed":
            continue
        if param.kind == "categorical":
            grid[param.name] = list(param.optuna_choices())
            continue
        if param.kind == "float" and param.step is None:
            reason = "log: true" if param.log else "no step"
            raise ConfigError(
                f"grid sampler needs finite choices: params.{param.name} has {reason}; give it a step or choices"
            )
        step = param.step if param.step is not None else 1
        count = int(math.floor((param.high - param.low) / step + 1e-9)) + 1
        if count > _MAX_GRID_VALUES:
            raise ConfigError(
                f"grid sampler needs a small grid: params.{param.name} has {count} values; raise its step"
            )
        if param.kind == "int":
            grid[param.name] = [param.low + i * step for i in range(count)]
        else:
            # Rounding keeps 0.1 + 2 * 0.1 from turning into 0.30000000000000004 in reports.
            grid[param.name] = [round(param.low + i * step, 12) for i in range(count)]
    return grid


def is_conditional(space: SearchSpace) -> bool:
    """Whether some parameter is sampled only sometimes (a ``when``, or several families)."""
    return any(p.when for p in space.params) or len(space.families()) > 1

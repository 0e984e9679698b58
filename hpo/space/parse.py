"""Reading a search space: a YAML mapping -> a validated :class:`~hpo.space.SearchSpace`.

Every name is checked against the model registry and ``TrainConfig``, and every value a parameter
can take is put to the config dataclass it fills (a family's config, ``TrainConfig``), so a space
that would fail in the middle of a study fails when it is read, naming the file and the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo.errors import ConfigError
from hpo.space.search_space import STUDY_OWNED_TRAIN_KEYS, Param, SearchSpace, encode_choice, same_value
from hpo.typed import admits, conforms, field_types, is_number, problem_of, read_yaml, type_name

_SPEC_KEYS = {"choices", "type", "low", "high", "log", "step", "when", "value"}


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
                enc = encode_choice(choice)
            except (TypeError, ValueError):
                raise _fail(origin, f"{key}.choices[{i}] is not a plain YAML value (got {choice!r})") from None
            if any(same_value(enc, e) for e in encoded):
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
        if not is_number(value) or not math.isfinite(value):
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
        if not is_number(step) or not math.isfinite(step):
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
    from hpo.train_config import TrainConfig

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

    registered = registered_families()
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
    model_index = space.names().index("model")
    for index, param in enumerate(space.params):
        if param.name == "model":
            continue
        if param.family is None:
            _check_train_param(param, origin, prefix)
            continue
        key = f"{prefix}.{param.name}"
        if param.family not in registered:
            raise _fail(
                origin,
                f"{key} names unknown family {param.family!r}; registered families: {', '.join(sorted(registered))}",
            )
        if param.family not in model.values():
            raise _fail(origin, f"{key} is a knob of {param.family}, which {prefix}.model never selects")
        if index < model_index:
            raise _fail(origin, f"{key} must come after {prefix}.model, which it depends on")
        _check_knob_param(param, registered[param.family].config_cls, origin, key)


def _check_knob_param(param: Param, config_cls: type, origin: str, key: str) -> None:
    """A ``<family>.<knob>`` parameter: the knob exists, and the family's config takes its values."""
    from hpo.models.registry import make_config

    family, knob = param.family, param.knob
    knob_types = field_types(config_cls)
    if knob not in knob_types:
        raise _fail(origin, f"{key}: {family} has no knob {knob!r}; valid knobs: {', '.join(sorted(knob_types))}")
    _check_values(param, knob_types[knob], origin, key, lambda value: problem_of(lambda: make_config(family, **{knob: value})))


def _check_train_param(param: Param, origin: str, prefix: str) -> None:
    """A trainer parameter: a TrainConfig field the study does not own, whose values TrainConfig takes."""
    from hpo.train_config import TrainConfig, option_problem

    key = f"{prefix}.{param.name}"
    if param.name in STUDY_OWNED_TRAIN_KEYS:
        raise _fail(origin, f"{key}: {param.name} is set by the study (its {param.name} key), not by the search space")
    train_types = field_types(TrainConfig)
    if param.name not in train_types:
        train_keys = sorted(k for k in train_types if k not in STUDY_OWNED_TRAIN_KEYS)
        raise _fail(
            origin,
            f"{key} is not a model family knob or trainer option; valid keys: model, <family>.<knob>, " + ", ".join(train_keys),
        )
    _check_values(param, train_types[param.name], origin, key, lambda value: option_problem(param.name, value))


def _check_values(param: Param, tp: Any, origin: str, key: str, try_value) -> None:
    """Every concrete value a parameter can take must fit the field type and the field's own checks."""
    if param.kind in ("float", "int"):
        base = float if param.kind == "float" else int
        if not admits(tp, base):
            hint = "; use type: int" if param.kind == "float" and admits(tp, int) else ""
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

"""YAML and type helpers shared by study files, search spaces and ``--set KEY=VALUE``.

Study files (``hpo.config``), search spaces (``hpo.space``) and dataset sections
(``hpo.data.DatasetConfig``) are read with the same safe YAML loader, and their values are checked
against the annotations of the dataclasses they fill (``TrainConfig``, a model family's config):
:func:`conforms` says whether a YAML value fits an annotation, :func:`coerce` turns command-line
text into one, and :func:`problem_of` asks the dataclass itself whether it takes a value.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hpo.errors import ConfigError

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


class _DuplicateKey(Exception):
    """A YAML mapping holds one key twice (the loader would silently keep the last)."""

    def __init__(self, key: str, first_line: int, second_line: int):
        super().__init__(key)
        self.key, self.first_line, self.second_line = key, first_line, second_line


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[tuple[str, str], int] = {}
    for key_node, _value in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        line = key_node.start_mark.line + 1
        marker = (key_node.tag, key_node.value)
        if marker in seen:
            raise _DuplicateKey(key_node.value, seen[marker], line)
        seen[marker] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.construct_mapping = _construct_mapping  # type: ignore[method-assign]


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
    """Parse YAML text with the safe loader.

    Args:
        text: The YAML text.
        origin: How messages name where the text came from.

    Returns:
        The parsed value.

    Raises:
        ConfigError: a syntax error, naming the line and column.
    """
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except _DuplicateKey as exc:
        raise ConfigError(f"{origin}: key {exc.key} appears twice (lines {exc.first_line} and {exc.second_line}); "
                          "keep one") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{origin}: invalid YAML{where}: {problem}") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{origin}: invalid YAML ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------------------------------------
# Annotations of dataclass fields
# ---------------------------------------------------------------------------------------------


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a dataclass (string annotations resolved)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an unresolvable annotation must not stop validation: check nothing
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def jsonable(value: Any) -> Any:
    """Tuples to lists and mapping keys to strings, so a JSON round trip changes nothing."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or a float (``True`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is types.UnionType


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
    if _is_union(origin):
        return any(conforms(value, arm) for arm in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return is_number(value) and math.isfinite(value)
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


def admits(tp: Any, base: type) -> bool:
    """Whether annotation ``tp`` admits values of ``base`` (int or float): can a range fill it?"""
    probe = 1 if base is int else 0.5
    return conforms(probe, tp)


def type_name(tp: Any) -> str:
    """A short human name for a type annotation (``int``, ``tuple[float, ...]``, ``int | str``)."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def problem_of(build: Callable[[], Any]) -> str | None:
    """Run a constructor and return its complaint as one line, or None when it accepts.

    Used to ask a config dataclass (its ``__post_init__``, ``TrainConfig.validate``) whether it
    takes a value, so that the rule lives in one place: the dataclass.

    Args:
        build: Builds the config, e.g. ``lambda: TrainConfig.from_dict({"lr": 0.1})``.

    Returns:
        The error message on one line, without a trailing period, or None.
    """
    try:
        build()
    except (ValueError, TypeError, AssertionError, KeyError, ConfigError) as exc:
        text = str(exc).strip().rstrip(".") or type(exc).__name__
        return " ".join(text.split())
    return None


# ---------------------------------------------------------------------------------------------
# KEY=VALUE text -> typed values
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
        result[key] = coerce(text.strip(), types_[key], f"{origin} {pair}")
    return result


def coerce(text: str, tp: Any, label: str) -> Any:
    """Command-line text as a value of annotation ``tp``.

    The text is tried as YAML, then (for sequences) as comma-separated items, then as written;
    ``none``/``null`` give None where the type allows it and ``0``/``1`` give booleans.

    Args:
        text: The value as typed (``0.1``, ``2,2,2,2``, ``none``).
        tp: The field's annotation.
        label: How messages name the value (``--set lr=fast``).

    Returns:
        The value, converted to the field's own type (ints to floats, lists to tuples).

    Raises:
        ConfigError: no reading of the text fits the type.
    """
    try:
        parsed = parse_yaml(text, label) if text else ""
    except ConfigError:
        parsed = text
    candidates = [parsed]
    if conforms(None, tp) and text.lower() in ("none", "null", "~"):
        candidates.insert(0, None)
    if tp is bool or (_is_union(typing.get_origin(tp)) and bool in typing.get_args(tp)):
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


def _is_sequence_type(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if _is_union(origin):
        return any(_is_sequence_type(arm) for arm in typing.get_args(tp))
    return origin in (tuple, list) or tp in (tuple, list)


def _convert(value: Any, tp: Any) -> Any:
    """Make a conforming YAML value the field's own type: ints to floats, lists to tuples."""
    origin = typing.get_origin(tp)
    if _is_union(origin):
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

"""User-facing errors.

Every error a user can fix (a bad YAML key, missing data, an unreachable device) is an
``HpoError`` whose message is one sentence naming the file, key or value and how to fix it.
The CLI prints the message and exits with code 2, with no traceback; the library never exits.
"""

from collections.abc import Iterable, Mapping
from typing import Any


class HpoError(Exception):
    """An error the user can fix; the CLI prints it without a traceback and exits with ``exit_code``."""

    exit_code = 2  # a user mistake (a bad flag, file, key or value)


class EnvironmentFault(HpoError):
    """The machine, not the input, is at fault: a path that cannot be written, a database file that is
    read-only or corrupt, a port in use, a server down. The CLI prints it as one line and exits 1."""

    exit_code = 1


class ConfigError(HpoError):
    """A study or search-space file, or a command-line value, is invalid."""


class DataNotFoundError(HpoError):
    """The dataset is not where it was looked for."""


class WeightsNotFoundError(HpoError):
    """Pretrained weights are neither cached nor downloadable."""


class DeviceError(HpoError):
    """A requested device (e.g. cuda:3) does not exist or cannot be used."""


def exception_chain(exc: BaseException):
    """``exc`` and the exceptions it was raised from or during (``__cause__``/``__context__``), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def constructor_args(cls: type, *, exclude: Iterable[str] = (), unexpressible: Iterable[str] = ()) -> frozenset[str]:
    """The keyword arguments of a sampler or pruner class that a study file's ``args`` may set.

    Args:
        cls: The class whose ``__init__`` is read.
        exclude: Arguments hpo supplies itself (the study's epochs, objectives, seed...).
        unexpressible: Words of annotations no YAML value can have (``Callable``, ``FrozenTrial``...):
            arguments annotated with them are left out.

    Returns:
        The argument names.
    """
    import inspect

    words = tuple(unexpressible)
    names = set()
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if any(word in str(param.annotation) for word in words):
            continue
        names.add(param.name)
    return frozenset(names - set(exclude))


def registry_entry(registry: Mapping[str, Any], kind: str, name: str, origin: str) -> Any:
    """The entry ``name`` of a sampler or pruner registry, or one sentence listing the valid names.

    Raises:
        ConfigError: ``name`` is not registered.
    """
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(f"{origin}: unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}") from None


def reject_unknown_args(kind: str, name: str, args, arg_names, origin: str) -> None:
    """Refuse a study file's ``<kind>.args`` key that registry entry ``name`` does not take.

    Args:
        kind: ``sampler`` or ``pruner`` (the study file's key).
        name: The registry key.
        args: The study file's arguments.
        arg_names: The arguments the entry takes, or None when it does not declare them.
        origin: Where the setting came from, for the message.

    Raises:
        ConfigError: naming the first unknown argument and the valid ones.
    """
    if arg_names is None:
        return
    unknown = sorted(set(args) - set(arg_names))
    if unknown:
        valid = ", ".join(sorted(arg_names)) or "none"
        raise ConfigError(f"{origin}: {kind}.args.{unknown[0]} is not an argument of {kind} {name!r}; valid arguments: {valid}")


def require_positive(flag: str, value, *, seconds: bool = False) -> None:
    """Refuse a command-line count below 1 (or, with ``seconds``, a duration that is not above 0).

    Args:
        flag: The option as typed (``--threads``), for the message.
        value: Its value; None (not given) passes.
        seconds: The value is a number of seconds rather than a count.

    Raises:
        ConfigError: one sentence naming the flag and its value.
    """
    if value is None:
        return
    if seconds and not value > 0:
        raise ConfigError(f"{flag} must be a positive number of seconds (got {value:g}); leave it out for no limit")
    if not seconds and value < 1:
        raise ConfigError(f"{flag} must be at least 1 (got {value})")


def annotations_of(cls: type) -> dict[str, str]:
    """Each constructor argument of a sampler or pruner class with its annotation, as text (``"int"``,
    ``"bool | None"``), for :func:`check_arg_values`."""
    import inspect

    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.annotation.__name__ if isinstance(p.annotation, type) else str(p.annotation) for p in params}


def arg_value_problem(key: str, value: Any, annotation: str) -> str | None:
    """Why ``value`` does not fit a simple annotation (bool, int, float, str, each maybe ``| None``), or None.

    An ``int`` argument whose name starts with ``n_`` counts something, so it must be >= 0 too.
    """
    words = {word.strip().strip("'\"") for word in annotation.split("|")}
    if value is None:
        return None if "None" in words or not words & {"bool", "int", "float", "str"} else "must be given a value"
    simple = words - {"None"}
    if simple == {"bool"} and not isinstance(value, bool):
        return "must be true or false"
    if simple == {"int"}:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if key.startswith("n_") and value < 0:
            return "counts trials or candidates, so it must be an integer >= 0"
    if simple == {"float"} and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return "must be a number"
    if simple == {"str"} and not isinstance(value, str):
        return "must be a string"
    return None


def check_arg_values(kind: str, name: str, args: Mapping[str, Any], arg_types: Mapping[str, str], origin: str) -> None:
    """Refuse a study file's ``<kind>.args`` value of the wrong type for registry entry ``name``.

    Args:
        kind: ``sampler`` or ``pruner`` (the study file's key).
        name: The registry key.
        args: The study file's arguments.
        arg_types: Each argument's annotation as text (:func:`annotations_of`).
        origin: Where the setting came from, for the message.

    Raises:
        ConfigError: naming the argument, its value and what it must be.
    """
    for key, value in args.items():
        problem = arg_value_problem(key, value, arg_types[key]) if key in arg_types else None
        if problem:
            raise ConfigError(f"{origin}: {kind}.args.{key} is {value!r}, but for {kind} {name!r} it {problem}")

"""User-facing errors.

Every error a user can fix (a bad YAML key, missing data, an unreachable device) is an
``HpoError`` whose message is one sentence naming the file, key or value and how to fix it.
The CLI prints the message and exits with code 2, with no traceback; the library never exits.
"""

from collections.abc import Iterable, Mapping
from typing import Any


class HpoError(Exception):
    """An error the user can fix; the CLI prints it without a traceback and exits 2."""


class ConfigError(HpoError):
    """A study or search-space file, or a command-line value, is invalid."""


class DataNotFoundError(HpoError):
    """The dataset is not where it was looked for."""


class WeightsNotFoundError(HpoError):
    """Pretrained weights are neither cached nor downloadable."""


class DeviceError(HpoError):
    """A requested device (e.g. cuda:3) does not exist or cannot be used."""


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

"""Pieces shared by the model families: the activation factory and knob validation.

Knob values are checked when a family's config is built (``__post_init__``), so a bad value in a
search space or ``hpo train --set`` fails before any model is constructed, with a
:class:`~hpo.models.registry.ModelConfigError` (both a ``ConfigError`` and a ``ValueError``) naming
the family, the knob, the value and the valid range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from hpo.models.registry import ModelConfigError

ACTIVATIONS = ("relu", "leaky_relu", "selu", "gelu")


def make_activation(name: str, inplace: bool = False) -> nn.Module:
    """A fresh activation module by name.

    Args:
        name: one of ``relu``, ``leaky_relu`` (slope 0.01), ``selu``, ``gelu``.
        inplace: overwrite the input where the activation supports it (relu, leaky_relu, selu);
            only safe where the caller does not reuse the input.

    Returns:
        The activation module.

    Raises:
        ModelConfigError: unknown activation name.
    """
    if name == "relu":
        return nn.ReLU(inplace=inplace)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=inplace)
    if name == "selu":
        return nn.SELU(inplace=inplace)
    if name == "gelu":
        return nn.GELU()
    raise ModelConfigError(f"activation must be one of {', '.join(ACTIVATIONS)} (got {name!r})")


def check_choice(family: str, knob: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ModelConfigError unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        listed = ", ".join(str(c) for c in choices)
        raise ModelConfigError(f"model {family}: {knob} must be one of {listed} (got {value!r})")


def check_int(family: str, knob: str, value: Any, low: int = 1) -> None:
    """Raise ModelConfigError unless ``value`` is an int >= ``low`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ModelConfigError(f"model {family}: {knob} must be an integer >= {low} (got {value!r})")


def check_int_list(family: str, knob: str, value: Any, low: int = 1, min_len: int = 1) -> list[int]:
    """Validate a list of ints >= ``low`` with at least ``min_len`` items; return it as a list."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) >= min_len
    ok = ok and all(not isinstance(v, bool) and isinstance(v, int) and v >= low for v in value)
    if not ok:
        raise ModelConfigError(
            f"model {family}: {knob} must be a list of at least {min_len} integers >= {low} (got {value!r})"
        )
    return list(value)


def check_dropout(family: str, value: Any) -> None:
    """Raise ModelConfigError unless ``value`` is a probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ModelConfigError(f"model {family}: dropout must be a number in [0, 1) (got {value!r})")


def check_activation(family: str, value: Any) -> None:
    """Raise ModelConfigError unless ``value`` names a known activation."""
    check_choice(family, "activation", value, ACTIVATIONS)


def check_bool(family: str, knob: str, value: Any) -> None:
    """Raise ModelConfigError unless ``value`` is a bool (YAML ``true``/``false``)."""
    if not isinstance(value, bool):
        raise ModelConfigError(f"model {family}: {knob} must be true or false (got {value!r})")

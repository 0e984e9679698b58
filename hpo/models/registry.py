"""Model registry: family and variant names -> factories.

A *family* (``resnet``, ``densenet``, ...) is a generic class with a ``@dataclass`` config of
knobs (depth, width, ...). A *variant* (``resnet18``, ``densenet_cifar``) is one registered line
that calls the family with fixed knobs. Search spaces name families and their knobs; ``hpo models``
lists both.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from hpo.errors import ConfigError


class ModelConfigError(ConfigError, ValueError):
    """A bad model name, knob or knob value: a ConfigError for the CLI, a ValueError for Python callers."""


@dataclass(frozen=True)
class Family:
    """A model family: its knob dataclass and the builder taking (config, num_classes)."""

    name: str
    config_cls: type
    build: Callable[[Any, int], nn.Module]
    description: str = ""


_FAMILIES: dict[str, Family] = {}
_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {}


def register_family(name: str, config_cls: type, description: str = ""):
    """Decorator registering ``build(config, num_classes) -> nn.Module`` as family ``name``."""

    def decorator(build):
        _FAMILIES[name] = Family(name, config_cls, build, description)
        return build

    return decorator


def register_variant(name: str, family: str, **knobs: Any) -> None:
    """Register a named variant: a family with fixed knobs (e.g. resnet18 = resnet, depth 18)."""
    _VARIANTS[name] = (family, dict(knobs))


def _ensure_loaded() -> None:
    # Importing the family modules runs their registrations.
    from hpo.models import cnn, densenet, linear, mlp, preact_resnet, resnet, transfer, vgg  # noqa: F401


def families() -> dict[str, Family]:
    """All registered families by name."""
    _ensure_loaded()
    return dict(_FAMILIES)


def variants() -> dict[str, tuple[str, dict[str, Any]]]:
    """All registered variants: name -> (family, knobs)."""
    _ensure_loaded()
    return dict(_VARIANTS)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted family and variant names matching a shell-style pattern."""
    names = set(families()) | set(variants())
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def make_config(family: str, **knobs: Any):
    """The family's config dataclass filled with ``knobs``.

    Raises:
        ModelConfigError: (a ValueError and a ConfigError) unknown family, unknown knob or bad knob
            value, naming it and the valid ones.
    """
    fams = families()
    if family not in fams:
        raise ModelConfigError(f"unknown model family {family!r}; choose one of {', '.join(sorted(fams))}")
    cls = fams[family].config_cls
    valid = {f.name for f in dataclasses.fields(cls)}
    for key in knobs:
        if key not in valid:
            raise ModelConfigError(
                f"unknown knob {key!r} for model family {family!r}; valid knobs: {', '.join(sorted(valid))}"
            )
    return cls(**knobs)


def create_model(name: str, num_classes: int = 10, **knobs: Any) -> nn.Module:
    """Build a family (with knobs) or a variant (its knobs, overridden by ``knobs``).

    Args:
        name: a family (``resnet``) or variant (``resnet18``) name.
        num_classes: outputs of the classifier.
        **knobs: family knobs; for a variant they override its fixed ones.

    Returns:
        The model, freshly initialised (or with pretrained weights for transfer variants).

    Raises:
        ModelConfigError: unknown name, knob or knob value.
    """
    vs = variants()
    if name in vs:
        family, fixed = vs[name]
        knobs = {**fixed, **knobs}
    elif name in families():
        family = name
    else:
        raise ModelConfigError(
            f"unknown model {name!r}; choose a family ({', '.join(sorted(families()))}) or a variant "
            f"such as resnet18 (`hpo models` lists them all)"
        )
    config = make_config(family, **knobs)
    return families()[family].build(config, num_classes)

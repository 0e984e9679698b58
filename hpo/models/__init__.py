"""The model zoo: families of CIFAR-sized classifiers with knobs, and named variants.

``create_model("resnet18")`` builds a variant, ``create_model("resnet", depth=34, width=32)`` a
family with knobs; ``list_models("resnet*")`` lists names; ``count_params``/``count_macs`` measure a
model; ``describe_families()`` and ``reference_table()`` feed ``hpo models``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from hpo.models.registry import create_model, families, list_models, make_config, variants
from hpo.models.stats import count_macs, count_params, model_stats
from hpo.models.transfer import TransferNet

__all__ = [
    "TransferNet",
    "count_macs",
    "count_params",
    "create_model",
    "describe_families",
    "families",
    "list_models",
    "make_config",
    "model_stats",
    "reference_table",
    "variants",
]


def _default(field: dataclasses.Field) -> object:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def describe_families() -> list[tuple[str, str, list[tuple[str, str, object]]]]:
    """Every family with its description and knobs, sorted by family name.

    Returns:
        ``[(family, description, [(knob, type name, default), ...]), ...]``; type names are the
        annotations as written (e.g. ``"list[int] | None"``).
    """
    described = []
    for name, family in sorted(families().items()):
        knobs = [
            (f.name, f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)), _default(f))
            for f in dataclasses.fields(family.config_cls)
        ]
        described.append((name, family.description, knobs))
    return described


def reference_table(num_classes: int = 10, names: Iterable[str] | None = None) -> list[tuple[str, int, int]]:
    """Parameters and MACs per 32x32 image of registered variants.

    Models are built on the meta device (no weights allocated, none downloaded), and only for
    numbers not already in the cache (``hpo.models.stats_cache``): a repeated ``hpo models`` builds
    none. Transfer variants count at their default ``input_size``.

    Args:
        num_classes: outputs of the head.
        names: the variants (or families, at default knobs) to list, in this order; default every
            registered variant, sorted by name.

    Returns:
        ``[(variant, param_count, macs), ...]``.
    """
    from hpo.models.stats_cache import cached_stats

    listed = sorted(variants()) if names is None else list(names)
    return [(name, params, macs) for name, (params, macs) in zip(listed, cached_stats(listed, num_classes))]

"""Plug-ins: modules a study names (``plugins: [my_lab.models, my_lab.samplers]``), imported by every process.

A plug-in is an ordinary Python module that registers what it adds through hpo's public registries
when it is imported: a model family (``hpo.models.register_family``), a sampler
(``hpo.samplers.register_sampler``), a pruner (``hpo.pruners.register_pruner``), a tracker
(``hpo.tracking.register_tracker``) or a callback (``hpo.register_callback``).

The list is part of the study's definition, so it is stored with the study. Every process that
reads the definition imports the plug-ins first, before anything in it is checked: ``hpo run``
before it validates the study file (so that a plug-in's sampler, pruner or model family is known),
each worker process before its first trial (``hpo.workers.worker._prepare`` reads the stored
definition), and the reports. A module that cannot be imported stops that process with one
sentence naming it (exit code 2).

Modules are found like any import: on ``PYTHONPATH`` or installed, and in the current directory,
as ``python -m`` would find them (``hpo run``'s worker processes inherit both).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from hpo.errors import ConfigError

log = logging.getLogger("hpo")

PLUGINS_KEY = "plugins"
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def parse_module_names(raw: Any, origin: str, key: str = PLUGINS_KEY) -> tuple[str, ...]:
    """The ``plugins:`` list of a study file, checked for its form only (nothing is imported).

    Args:
        raw: The value as read from YAML (None: no plug-ins).
        origin: The file's name, prefixed to messages.
        key: The key named in messages.

    Raises:
        ConfigError: not a list of dotted module names, or a name given twice.
    """
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ConfigError(f"{origin}: {key} must be a list of module names like [my_lab.models] (got {raw!r})")
    names: list[str] = []
    for i, name in enumerate(raw):
        if not isinstance(name, str) or not _MODULE_RE.fullmatch(name):
            raise ConfigError(f"{origin}: {key}[{i}] must be an importable module name like my_lab.models (got {name!r})")
        if name in names:
            raise ConfigError(f"{origin}: {key} lists {name} twice")
        names.append(name)
    return tuple(names)


def import_module(name: str, label: str) -> ModuleType:
    """Import one module a study names, or one sentence naming it.

    Args:
        name: The dotted module name.
        label: How messages name where it was given (``study.yaml: plugins[0]``).

    Raises:
        ConfigError: the module (or something it imports) cannot be imported, or raised while importing.
    """
    _search_current_directory()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or name
        where = "" if missing == name else f" (it imports {missing}, which is missing)"
        raise ConfigError(f"{label}: module {name} cannot be imported{where}; put it on PYTHONPATH or install it on "
                          "every machine that runs the study's workers") from None
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        raise ConfigError(f"{label}: module {name} failed while being imported ({detail}); fix the module") from None


def import_plugins(names: Sequence[str], origin: str) -> list[ModuleType]:
    """Import a study's plug-in modules in order (each registers what it adds).

    Args:
        names: The module names (``plugins:``).
        origin: Where the list came from, prefixed to messages.

    Returns:
        The imported modules.

    Raises:
        ConfigError: one sentence naming the first module that cannot be imported.
    """
    modules = []
    for i, name in enumerate(names):
        already = name in sys.modules
        modules.append(import_module(name, f"{origin}: {PLUGINS_KEY}[{i}]"))
        if not already:
            log.debug("imported plug-in %s", name)
    return modules


def _search_current_directory() -> None:
    # `hpo` (a console script) does not put the working directory on sys.path, `python -m hpo` does:
    # append it, last, so that a plug-in beside the study is found the same way by both.
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)

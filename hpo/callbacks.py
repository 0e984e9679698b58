"""Optuna-style callbacks: ``fn(study, frozen_trial)`` after each trial a worker has told.

Two ways to attach one, both run by every worker after each trial it finishes (COMPLETE, PRUNED
or FAIL), once the result is in storage, like the ``callbacks=`` of Optuna's ``study.optimize``:

- name it in the study file, ``callbacks: [my_lab.hooks:notify]`` (``module:function``; the
  module is imported in every worker process, so it must be importable there, see
  :mod:`hpo.plugins`);
- register it from Python, ``hpo.register_callback(fn)`` (or as a decorator), for example in a
  plug-in module: it then runs in every process that imported that module.

A callback gets the ``optuna.Study`` and the trial's ``FrozenTrial`` as stored (its state, values
and hpo's record in ``user_attrs``, read with ``hpo.trials.TrialRecord.of``). Trials that never
ran (asked beyond the budget by a concurrent worker) and trials stopped by an interrupt get no call,
as in Optuna. A callback that raises is logged as a warning: the trial is already told, and the
study goes on. ``study.stop()`` has no effect on hpo's workers (they stop at the study's
``n_trials`` or time budget).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from hpo.errors import ConfigError

log = logging.getLogger("hpo")

CALLBACKS_KEY = "callbacks"

Callback = Callable[[Any, Any], Any]
"""``(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None``."""

_REGISTERED: list[Callback] = []


def register_callback(fn: Callback) -> Callback:
    """Call ``fn(study, frozen_trial)`` after every trial a worker of this process tells.

    Usable as a decorator. Registering the same function twice registers it once.

    Args:
        fn: The callback.

    Returns:
        ``fn`` itself.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"register_callback takes a callable (study, frozen_trial), got {fn!r}")
    if fn not in _REGISTERED:
        _REGISTERED.append(fn)
    return fn


def unregister_callback(fn: Callback) -> None:
    """Remove a callback :func:`register_callback` added (nothing happens if it was not registered)."""
    if fn in _REGISTERED:
        _REGISTERED.remove(fn)


def registered_callbacks() -> list[Callback]:
    """The callbacks registered in this process, in registration order."""
    return list(_REGISTERED)


def parse_callback_names(raw: Any, origin: str) -> tuple[str, ...]:
    """The ``callbacks:`` list of a study file, checked for its form only (nothing is imported).

    Raises:
        ConfigError: not a list of ``module:function`` names.
    """
    from hpo.plugins import parse_module_names

    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ConfigError(f"{origin}: {CALLBACKS_KEY} must be a list of module:function names (got {raw!r})")
    names = []
    for i, name in enumerate(raw):
        module, _, function = name.partition(":") if isinstance(name, str) else ("", "", "")
        if not function or not function.isidentifier():
            raise ConfigError(f"{origin}: {CALLBACKS_KEY}[{i}] must be module:function, like my_lab.hooks:notify "
                              f"(got {name!r})")
        parse_module_names([module], origin, key=f"{CALLBACKS_KEY}[{i}]")
        names.append(name)
    return tuple(names)


def resolve_callback(name: str, label: str) -> Callback:
    """The function ``module:function`` names, its module imported.

    Args:
        name: ``module:function``.
        label: How messages name where it was given (``study.yaml: callbacks[0]``).

    Raises:
        ConfigError: the module cannot be imported, or has no such callable.
    """
    from hpo.plugins import import_module

    module_name, _, function = name.partition(":")
    module = import_module(module_name, label)
    fn = getattr(module, function, None)
    if not callable(fn):
        found = "is not callable" if fn is not None else "does not exist"
        raise ConfigError(f"{label}: {module_name}.{function} {found}; name a function (study, frozen_trial) "
                          f"defined in {module_name}")
    return fn


def resolve_callbacks(names: Sequence[str], origin: str) -> list[Callback]:
    """Resolve a study's ``callbacks:`` in order (see :func:`resolve_callback`)."""
    return [resolve_callback(name, f"{origin}: {CALLBACKS_KEY}[{i}]") for i, name in enumerate(names)]


def run_callbacks(callbacks: Sequence[Callback], study: Any, trial: Any) -> None:
    """Call each callback with ``(study, trial)``; one that raises is logged and the others still run."""
    for fn in callbacks:
        try:
            fn(study, trial)
        except Exception as exc:  # the trial is told already: a callback's bug must not stop the study
            name = getattr(fn, "__qualname__", repr(fn))
            log.warning("callback %s failed after trial %s (%s: %s); the study goes on", name,
                        getattr(trial, "number", "?"), type(exc).__name__, exc)

"""A study's extensions: the ``plugins:``, ``callbacks:`` and ``tracking:`` keys of a study file.

::

    plugins: [my_lab.models]                       # imported first, in every process (hpo.plugins)
    callbacks: [my_lab.hooks:notify]               # fn(study, frozen_trial) after each trial (hpo.callbacks)
    tracking:                                      # where trials are logged (hpo.tracking)
      mlflow: sqlite:///mlflow.db
      wandb: {project: cifar, mode: offline}

They are part of the study's definition (:meth:`hpo.config.StudyConfig.to_dict` holds each key only
when it is set, so a study without them keeps the dict and hash it always had), so every worker
reads them from storage. The plug-ins are imported while the definition is read, before the rest
of it is checked, so that what they register (a model family, a sampler, a pruner, a tracker) is
known when the search space, sampler and pruner are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpo.callbacks import CALLBACKS_KEY, parse_callback_names
from hpo.plugins import PLUGINS_KEY, import_plugins, parse_module_names
from hpo.tracking.registry import TRACKING_KEY, TrackingConfig

EXTENSION_KEYS = (PLUGINS_KEY, CALLBACKS_KEY, TRACKING_KEY)


@dataclass(frozen=True)
class StudyExtensions:
    """What a study adds to hpo: plug-in modules, callbacks and trackers.

    Attributes:
        plugins: Module names, imported in order.
        callbacks: ``module:function`` names, resolved by each worker.
        tracking: The trackers (``tracking:``).
    """

    plugins: tuple[str, ...] = ()
    callbacks: tuple[str, ...] = ()
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str) -> StudyExtensions:
        """Read the three keys from a study's top-level mapping, importing the plug-ins.

        Args:
            data: The whole study file (or stored definition).
            origin: Its name, prefixed to messages.

        Raises:
            ConfigError: a malformed key, or a plug-in that cannot be imported (one sentence naming it).
        """
        plugins = parse_module_names(data.get(PLUGINS_KEY), origin)
        import_plugins(plugins, origin)  # first: a plug-in may register the tracker named below
        callbacks = parse_callback_names(data.get(CALLBACKS_KEY), origin)
        return cls(plugins, callbacks, TrackingConfig.from_dict(data.get(TRACKING_KEY), origin))

    def to_dict(self) -> dict[str, Any]:
        """The keys that are set, as a study file writes them (for the stored definition)."""
        definition: dict[str, Any] = {}
        if self.plugins:
            definition[PLUGINS_KEY] = list(self.plugins)
        if self.callbacks:
            definition[CALLBACKS_KEY] = list(self.callbacks)
        if self.tracking:
            definition[TRACKING_KEY] = self.tracking.to_dict()
        return definition

"""The tracker registry, and the ``tracking:`` section of a study file.

``tracking: {mlflow: sqlite:///mlflow.db, wandb: {project: cifar, mode: offline}}`` names the
trackers every worker of the study logs to, by registry name. The built-in entries are ``mlflow``
(:mod:`hpo.tracking.mlflow`) and ``wandb`` (:mod:`hpo.tracking.wandb`); a plug-in adds its own::

    from hpo.tracking import Tracker, register_tracker

    @register_tracker("jsonl", description="one JSON line per finished trial")
    def make(settings, study_name):
        return MyTracker(settings, study_name)

Each entry parses its section (``parse(raw, label) -> settings``, one sentence on bad input, no
import of the tracking package), may check it against the study's storage before any trial
(``check(settings, storage_url, label, study_name, connect)``), and builds the worker's
:class:`~hpo.tracking.base.Tracker` (``build(settings, study_name)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hpo.errors import ConfigError

TRACKING_KEY = "tracking"


def _any_settings(raw: Any, label: str) -> Any:
    return raw


def string_settings(raw: Any, label: str, keys: tuple[str, ...], *, form: str, example: str = "") -> dict[str, Any]:
    """A tracker's section written as its first key's value alone (``URI``) or as a mapping of
    non-empty strings (``{uri: URI, experiment: NAME}``): the helper a ``parse`` can build on.

    Args:
        raw: The section as read from YAML or the command line.
        label: Where it came from (``tracking.mlflow``, ``--mlflow``), named in messages.
        keys: The valid keys, the required one first.
        form: What the section must be, for the message on a wrong type.
        example: Appended to the message on a missing required key (``", e.g. sqlite:///mlflow.db"``).

    Returns:
        The mapping, with the required value stripped; optional keys may be absent or None.

    Raises:
        ConfigError: naming ``label`` and the key.
    """
    required = keys[0]
    if isinstance(raw, str):
        raw = {required: raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be {form} (got {raw!r})")
    for key, value in raw.items():
        if key not in keys:
            raise ConfigError(f"{label}: unknown key {key!s}; valid keys: {', '.join(keys)}")
        if not (isinstance(value, str) and value.strip()) and not (value is None and key != required):
            raise ConfigError(f"{label}.{key} must be a non-empty string (got {value!r})")
    if required not in raw:
        raise ConfigError(f"{label}.{required} is required{example}")
    return {**raw, required: raw[required].strip()}


@dataclass(frozen=True)
class TrackerEntry:
    """One registered tracker.

    Attributes:
        name: The key in ``tracking:``.
        build: ``(settings, study_name) -> Tracker``.
        parse: ``(raw, label) -> settings``; raises ConfigError naming ``label``.
        check: ``(settings, storage_url, label, study_name, connect) -> None``, or None; raises
            ConfigError. ``connect`` is False in workers (which only refuse what must be refused).
        description: One line for ``README`` and messages.
    """

    name: str
    build: Callable[[Any, str], Any]
    parse: Callable[[Any, str], Any] = _any_settings
    check: Callable[..., None] | None = None
    description: str = ""


_TRACKERS: dict[str, TrackerEntry] = {}


def register_tracker(name: str, *, description: str = "", parse: Callable[[Any, str], Any] | None = None,
                     check: Callable[..., None] | None = None):
    """Decorator registering ``build(settings, study_name) -> Tracker`` as tracker ``name``.

    Args:
        name: The key a study's ``tracking:`` section uses.
        description: One line.
        parse: Checks the section's value (default: any value, passed through).
        check: Checks the settings against the study's storage before any trial (optional).
    """

    def decorator(build):
        _TRACKERS[name] = TrackerEntry(name, build, parse or _any_settings, check, description)
        return build

    return decorator


def _ensure_loaded() -> None:
    from hpo.tracking import mlflow, wandb  # noqa: F401  (their registrations; no tracking package imported)


def trackers() -> dict[str, TrackerEntry]:
    """All registered trackers by name."""
    _ensure_loaded()
    return dict(_TRACKERS)


def tracker_entry(name: str, label: str) -> TrackerEntry:
    """The registered tracker ``name``.

    Raises:
        ConfigError: no such tracker, listing the registered ones.
    """
    registered = trackers()
    if name not in registered:
        raise ConfigError(f"{label}: unknown tracker {name!r}; registered trackers: {', '.join(sorted(registered))} "
                          "(a plug-in adds its own with hpo.tracking.register_tracker)")
    return registered[name]


@dataclass(frozen=True)
class TrackingConfig:
    """The trackers of a study (``tracking:``), possibly overridden on the command line.

    Attributes:
        raw: Each tracker's section as written (what the study's definition stores).
        settings: Each tracker's parsed settings.
        labels: Where each came from, for messages (``study.yaml: tracking.mlflow`` or ``--mlflow``).
    """

    raw: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, raw: Any, origin: str) -> TrackingConfig:
        """The ``tracking:`` value of a study file (None: no trackers).

        Raises:
            ConfigError: not a mapping, an unknown tracker, or a section its tracker refuses.
        """
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{origin}: {TRACKING_KEY} must be a mapping like {{mlflow: sqlite:///mlflow.db}} "
                              f"(got {raw!r})")
        config = cls()
        for name, section in raw.items():
            config = config.with_tracker(str(name), section, f"{origin}: {TRACKING_KEY}.{name}")
        return config

    def with_tracker(self, name: str, raw: Any, label: str) -> TrackingConfig:
        """A copy with tracker ``name`` set to ``raw`` (replacing the study's), checked by its entry."""
        settings = tracker_entry(name, label).parse(raw, label)
        return TrackingConfig({**self.raw, name: raw}, {**self.settings, name: settings}, {**self.labels, name: label})

    def __iter__(self) -> Iterator[tuple[str, Any, str]]:
        for name, settings in self.settings.items():
            yield name, settings, self.labels[name]

    def __bool__(self) -> bool:
        return bool(self.settings)

    def to_dict(self) -> dict[str, Any]:
        """The sections as written (JSON-serialisable)."""
        return dict(self.raw)

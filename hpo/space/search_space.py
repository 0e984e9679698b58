"""The search-space model: parameters, sampling them into a trial, and their grid.

:class:`SearchSpace` is an ordered tuple of :class:`Param`; :func:`suggest` samples one
configuration with an ``optuna.Trial``, :meth:`SearchSpace.sample` builds a typed
:class:`~hpo.trial_config.TrialConfig` from it, and :func:`decode_params` / :func:`encode_params`
translate between search-space values and what Optuna stores (list-valued choices as JSON text).
Reading a YAML space into this model is :mod:`hpo.space.parse`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo.errors import ConfigError
from hpo.typed import is_number

if TYPE_CHECKING:
    from hpo.train_config import TrainConfig
    from hpo.trial_config import TrialConfig

KINDS = ("fixed", "categorical", "float", "int")

# Trainer fields a space may not sample: the study owns them (one budget, one seed per study).
STUDY_OWNED_TRAIN_KEYS = ("epochs", "seed")

# Above this many values, expanding a range for the grid sampler is a mistake, not a plan.
_MAX_GRID_VALUES = 10_000


# ---------------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------------


def encode_choice(value: Any) -> Any:
    """A choice as Optuna stores it: scalars as they are, lists/mappings as JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Param:
    """One search-space parameter.

    Attributes:
        name: ``model``, ``<family>.<knob>`` or a TrainConfig field.
        kind: ``fixed`` | ``categorical`` | ``float`` | ``int``.
        value: The value of a fixed parameter.
        choices: The values of a categorical parameter (decoded: lists stay lists).
        low: Lower bound of a float/int range (inclusive).
        high: Upper bound of a float/int range (inclusive).
        log: Sample the range on a log scale.
        step: Discretisation step of the range (None: continuous float, 1 for int).
        when: Conditions on earlier parameters: name -> tuple of accepted values.
    """

    name: str
    kind: str
    value: Any = None
    choices: tuple | None = None
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    when: dict[str, tuple] = field(default_factory=dict)

    @property
    def family(self) -> str | None:
        """The model family a ``<family>.<knob>`` parameter belongs to, else None."""
        return self.name.split(".", 1)[0] if "." in self.name else None

    @property
    def knob(self) -> str | None:
        """The knob name of a ``<family>.<knob>`` parameter, else None."""
        return self.name.split(".", 1)[1] if "." in self.name else None

    def optuna_choices(self) -> tuple:
        """The categorical choices as given to Optuna (non-scalars JSON-encoded)."""
        return tuple(encode_choice(c) for c in self.choices or ())

    def decode(self, optuna_value: Any) -> Any:
        """A sampled Optuna value back to the search-space value (JSON choices decoded)."""
        if self.kind != "categorical":
            return optuna_value
        for encoded, original in zip(self.optuna_choices(), self.choices or ()):
            if encoded == optuna_value and type(encoded) is type(optuna_value):
                return original
        for encoded, original in zip(self.optuna_choices(), self.choices or ()):
            if encoded == optuna_value:
                return original
        return optuna_value

    def encode(self, value: Any) -> Any:
        """A search-space value as Optuna stores it (for ``enqueue_trial`` and grids)."""
        return encode_choice(value) if self.kind == "categorical" else value

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a value this parameter can take."""
        if self.kind == "fixed":
            return same_value(value, self.value)
        if self.kind == "categorical":
            return any(same_value(value, c) for c in self.choices or ())
        if not is_number(value) or not math.isfinite(value):
            return False
        if self.kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-8
        return True

    def values(self) -> list:
        """All values the parameter can take (ranges need a step, or int); for `when` checks."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices or ())
        raise ValueError("continuous range")

    def to_spec(self) -> Any:
        """The YAML/JSON spec that parses back to this parameter."""
        when = {k: (list(v) if len(v) != 1 else v[0]) for k, v in self.when.items()}
        if self.kind == "fixed":
            if not when and not isinstance(self.value, Mapping):
                return self.value
            spec: dict[str, Any] = {"value": self.value}
        elif self.kind == "categorical":
            spec = {"choices": list(self.choices or ())}
        else:
            spec = {"type": self.kind, "low": self.low, "high": self.high}
            if self.log:
                spec["log"] = True
            if self.step is not None:
                spec["step"] = self.step
        if when:
            spec["when"] = when
        return spec


def same_value(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1, and treats lists and tuples alike."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


@dataclass(frozen=True)
class SearchSpace:
    """An ordered, validated search space.

    Attributes:
        params: Parameters in sampling order.
        description: One line saying what the space explores.
    """

    params: tuple[Param, ...]
    description: str = ""

    def __getitem__(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def names(self) -> list[str]:
        """Parameter names in order."""
        return [p.name for p in self.params]

    def families(self) -> list[str]:
        """The model families the space can select, in order."""
        try:
            return [str(v) for v in self["model"].values()]
        except KeyError:
            return []

    def to_dict(self) -> dict:
        """JSON-serialisable form that :meth:`from_dict` (and :func:`load_space`) read back."""
        return {
            "description": self.description,
            "params": {p.name: p.to_spec() for p in self.params},
        }

    @classmethod
    def from_dict(cls, data: Mapping, origin: str = "<database>") -> SearchSpace:
        """Validate and build a space from :meth:`to_dict` output (or a parsed YAML mapping)."""
        from hpo.space.parse import load_space

        return load_space(data, origin=origin)

    def sample(self, trial: Any, base: TrainConfig, model_defaults: Mapping[str, Any] | None = None) -> TrialConfig:
        """Sample one trial's configuration: suggest every active parameter, then build the configs.

        Args:
            trial: An ``optuna.Trial`` (or anything with its ``suggest_*`` methods).
            base: The study's trainer config (``StudyConfig.base_train``); sampled values override it.
            model_defaults: Knobs the study gives every model that has them (``StudyConfig.model_defaults``).

        Returns:
            The typed TrialConfig, its ``params`` the values :func:`suggest` returned.
        """
        from hpo.trial_config import TrialConfig

        return TrialConfig.from_params(suggest(trial, self), base, model_defaults)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


def is_active(param: Param, values: Mapping[str, Any]) -> bool:
    """Whether ``param`` applies given the values chosen so far (its family, then its ``when``)."""
    if param.family is not None and values.get("model") != param.family:
        return False
    for ref, accepted in param.when.items():
        if ref not in values or not any(same_value(values[ref], a) for a in accepted):
            return False
    return True


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Sample one configuration, in space order, honouring conditions.

    Fixed values are returned but not sampled (so they never appear in ``trial.params``);
    inactive conditional parameters are neither sampled nor returned.

    Args:
        trial: An ``optuna.Trial`` (or anything with its ``suggest_*`` methods).
        space: The search space.

    Returns:
        Parameter name -> value, in space order, with list-valued choices decoded.
    """
    values: dict[str, Any] = {}
    for param in space.params:
        if not is_active(param, values):
            continue
        if param.kind == "fixed":
            values[param.name] = param.value
        elif param.kind == "categorical":
            sampled = trial.suggest_categorical(param.name, list(param.optuna_choices()))
            values[param.name] = param.decode(sampled)
        elif param.kind == "float":
            values[param.name] = trial.suggest_float(
                param.name, param.low, param.high, log=param.log, step=param.step
            )
        else:
            values[param.name] = trial.suggest_int(
                param.name, param.low, param.high, log=param.log, step=param.step or 1
            )
    return values


def decode_params(space: SearchSpace, optuna_params: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`suggest` returned, rebuilt from a finished trial's ``trial.params``.

    Args:
        space: The study's search space.
        optuna_params: ``FrozenTrial.params`` (JSON-encoded choices, no fixed values).

    Returns:
        Parameter name -> value in space order: active fixed values added, choices decoded.
    """
    values: dict[str, Any] = {}
    for param in space.params:
        if not is_active(param, values):
            continue
        if param.kind == "fixed":
            values[param.name] = param.value
        elif param.name in optuna_params:
            values[param.name] = param.decode(optuna_params[param.name])
    return values


def encode_params(space: SearchSpace, values: Mapping[str, Any]) -> dict[str, Any]:
    """Search-space values as Optuna stores them (for ``study.enqueue_trial``); fixed ones dropped.

    Args:
        space: The study's search space.
        values: Parameter name -> value (e.g. one ``enqueue`` entry of a study file).

    Returns:
        Parameter name -> Optuna value for the sampled parameters among ``values``.
    """
    by_name = {p.name: p for p in space.params}
    return {
        name: by_name[name].encode(value)
        for name, value in values.items()
        if name in by_name and by_name[name].kind != "fixed"
    }


def check_assignment(space: SearchSpace, values: Mapping[str, Any]) -> str | None:
    """Why a (partial) assignment is impossible in ``space``, or None if it is fine.

    Used for enqueued trials: every name must be a parameter, every value one it can take, and
    every named parameter must be active under the others (a parameter that is never sampled
    would be silently ignored).

    Args:
        space: The search space.
        values: Parameter name -> value; names left out are sampled as usual.

    Returns:
        A message fragment naming the parameter, or None.
    """
    by_name = {p.name: p for p in space.params}
    for name, value in values.items():
        if name not in by_name:
            return f"names {name!s}, which is not a parameter of the space (parameters: {', '.join(by_name)})"
        param = by_name[name]
        if not param.contains(value):
            return f"gives {name} = {value!r}, outside {describe_param(param)}"
    # Activity is judged on the values the entry fixes plus the space's fixed values.
    chosen: dict[str, Any] = {}
    for param in space.params:
        if param.name in values:
            if not _could_be_active(param, chosen):
                return f"gives {param.name}, which is not sampled under the other values of the entry"
            chosen[param.name] = values[param.name]
        elif param.kind == "fixed" and is_active(param, chosen):
            chosen[param.name] = param.value
    return None


def _could_be_active(param: Param, chosen: Mapping[str, Any]) -> bool:
    """Active, or might be once unspecified earlier parameters are sampled."""
    conditions = dict(param.when)
    if param.family is not None:
        conditions = {"model": (param.family,), **conditions}
    for ref, accepted in conditions.items():
        if ref in chosen and not any(same_value(chosen[ref], a) for a in accepted):
            return False
    return True


def describe_param(param: Param) -> str:
    """What a parameter allows, for messages: ``its choices [...]``, ``its float range [a, b] log scale``."""
    if param.kind == "fixed":
        return f"its fixed value {param.value!r}"
    if param.kind == "categorical":
        return f"its choices {list(param.choices or ())!r}"
    step = f" step {param.step}" if param.step is not None else ""
    log_scale = " log scale" if param.log else ""
    return f"its {param.kind} range [{param.low}, {param.high}]{step}{log_scale}"


def grid_values(space: SearchSpace) -> dict[str, list]:
    """The search space as ``optuna.samplers.GridSampler`` wants it.

    Categorical parameters give their (Optuna-encoded) choices; int ranges expand with their step
    (1 by default); float ranges need a step. Fixed parameters are not sampled, so they are left out.

    Args:
        space: The search space.

    Returns:
        Parameter name -> list of values, in space order.

    Raises:
        ConfigError: a parameter has infinitely many values (names it).
    """
    grid: dict[str, list] = {}
    for param in space.params:
        if param.kind == "fixed":
            continue
        if param.kind == "categorical":
            grid[param.name] = list(param.optuna_choices())
            continue
        if param.kind == "float" and param.step is None:
            reason = "log: true" if param.log else "no step"
            raise ConfigError(
                f"grid sampler needs finite choices: params.{param.name} has {reason}; give it a step or choices"
            )
        step = param.step if param.step is not None else 1
        count = int(math.floor((param.high - param.low) / step + 1e-9)) + 1
        if count > _MAX_GRID_VALUES:
            raise ConfigError(
                f"grid sampler needs a small grid: params.{param.name} has {count} values; raise its step"
            )
        if param.kind == "int":
            grid[param.name] = [param.low + i * step for i in range(count)]
        else:
            # Rounding keeps 0.1 + 2 * 0.1 from turning into 0.30000000000000004 in reports.
            grid[param.name] = [round(param.low + i * step, 12) for i in range(count)]
    return grid


def is_conditional(space: SearchSpace) -> bool:
    """Whether some parameter is sampled only sometimes (a ``when``, or several families)."""
    return any(p.when for p in space.params) or len(space.families()) > 1

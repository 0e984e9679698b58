"""One trial's configuration, typed: the model family's config and the trainer's ``TrainConfig``.

A search space names where each value goes (``model`` is the family, ``<family>.<knob>`` a knob
of the family's config dataclass, anything else a ``TrainConfig`` field).
:meth:`TrialConfig.from_params` routes a trial's values by those names and builds both configs
through the constructors that refuse unknown keys (``hpo.models.make_config`` and
``TrainConfig.from_dict``), so a misspelt key fails loudly instead of being dropped.
:func:`split_model_overrides` routes ``hpo train --set KEY=VALUE`` pairs the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.errors import ConfigError
from hpo.train_config import TrainConfig
from hpo.typed import parse_overrides

if TYPE_CHECKING:
    from torch import nn

__all__ = ["TrialConfig", "split_model_overrides"]


def split_model_overrides(model: str, pairs: Sequence[str]) -> tuple[str, dict, dict]:
    """Route ``--set KEY=VALUE`` pairs to a model's knobs or the trainer's options, typed.

    Args:
        model: a model family or variant name.
        pairs: the ``--set`` strings.

    Returns:
        ``(family, knobs, trainer_options)``, typed by the family's config and by ``TrainConfig``.

    Raises:
        ConfigError: unknown model, a key that is neither a knob nor a trainer option, or a bad value.
    """
    from hpo.models.registry import families, variants

    family = variants()[model][0] if model in variants() else model
    if family not in families():
        raise ConfigError(f"--model {model!r} is not a model family or variant; choose one of: {', '.join(sorted(families()))} "
                          f"or a variant listed by `hpo models`")
    config_cls = families()[family].config_cls
    knob_names = {f.name for f in dataclasses.fields(config_cls)}
    option_names = {f.name for f in dataclasses.fields(TrainConfig)}
    knob_pairs, option_pairs = [], []
    for pair in pairs:
        key = pair.split("=", 1)[0].strip()
        if key in knob_names:
            knob_pairs.append(pair)
        elif key in option_names:
            option_pairs.append(pair)
        else:
            raise ConfigError(f"--set {pair}: {key!r} is neither a knob of {family} ({', '.join(sorted(knob_names))}) "
                              f"nor a trainer option ({', '.join(sorted(option_names))})")
    return family, parse_overrides(knob_pairs, config_cls), parse_overrides(option_pairs, TrainConfig)


@dataclass(frozen=True)
class TrialConfig:
    """What one trial trains: a model family's config and the trainer's config.

    Attributes:
        family: The model family (``resnet``, ...).
        model: The family's config dataclass (e.g. ``ResNetConfig``), built by ``make_config``.
        train: The trainer's config: the study's base with the trial's values over it.
        params: The search-space values this was built from, in space order (what the trial records).
    """

    family: str
    model: Any
    train: TrainConfig
    params: dict

    @classmethod
    def from_params(cls, params: Mapping[str, Any], base: TrainConfig,
                    model_defaults: Mapping[str, Any] | None = None) -> TrialConfig:
        """Build a trial's configuration from its (decoded) search-space values.

        Args:
            params: Parameter name -> value, as :func:`hpo.space.suggest` returns them.
            base: The study's trainer config (``StudyConfig.base_train``); the values override it.
            model_defaults: Knobs for families whose config has them, unless ``params`` sets them
                (``StudyConfig.model_defaults``: the image size of an image-folder study).

        Returns:
            The TrialConfig.

        Raises:
            ConfigError: no ``model``, a knob of another family, an unknown knob or trainer option,
                or a value the model config or ``TrainConfig`` refuses.
        """
        from hpo.models.registry import families, make_config

        if "model" not in params:
            raise ConfigError("trial parameters have no model: add model: <family> to the search space")
        family = params["model"]
        if not isinstance(family, str):
            raise ConfigError(f"trial parameter model must be a family name (got {family!r})")
        knobs: dict[str, Any] = {}
        train: dict[str, Any] = base.to_dict()
        for name, value in params.items():
            if name == "model":
                continue
            if "." in name:
                prefix, knob = name.split(".", 1)
                if prefix != family:
                    raise ConfigError(f"trial parameter {name} is a knob of {prefix}, but model is {family}")
                knobs[knob] = value
            else:
                train[name] = value
        registered = families().get(family)  # an unknown family is refused by make_config, with the valid names
        knob_names = {f.name for f in dataclasses.fields(registered.config_cls)} if registered else set()
        knobs = {**{k: v for k, v in (model_defaults or {}).items() if k in knob_names}, **knobs}
        return cls(family=family, model=make_config(family, **knobs), train=TrainConfig.from_dict(train),
                   params=dict(params))

    def build_model(self, num_classes: int) -> nn.Module:
        """The freshly initialised model, seeded with ``train.seed`` first.

        Seeding before building gives the same initial weights to the same configuration and
        seed, on every worker and when a trial is evaluated or reproduced later.

        Args:
            num_classes: Outputs of the classifier (the study's dataset classes).

        Returns:
            The model, built by the family's registered builder from :attr:`model`, exactly as
            ``hpo.models.create_model(family, num_classes=..., **knobs)`` builds it.
        """
        from hpo.models.registry import families
        from hpo.train import seed_everything

        seed_everything(self.train.seed)
        return families()[self.family].build(self.model, num_classes)

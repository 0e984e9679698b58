"""Search spaces: ``search_spaces/<name>.yaml`` -> Optuna suggestions.

A search space is an ordered mapping of parameter names to specs::

    params:
      model: densenet                                  # fixed: recorded, never sampled
      densenet.growth_rate: {type: int, low: 8, high: 32, step: 4}
      optimizer: {choices: [sgd, adamw]}               # categorical
      lr: {type: float, low: 1.0e-3, high: 0.3, log: true}
      momentum: {type: float, low: 0.8, high: 0.99, when: {optimizer: sgd}}

Names say where a value goes: ``model`` is the family, ``<family>.<knob>`` is a knob of that
family's config dataclass (sampled only when ``model`` is that family), and any other name is a
``TrainConfig`` field. ``model`` must come before the knobs that depend on it. ``when: {param:
value-or-list}`` makes a parameter conditional on earlier ones; a list means "any of these" (so a
condition on one list-valued choice is written ``when: {resnet.blocks: [[1, 1, 1, 1]]}``).

Optuna's categorical distributions hold only None/bool/int/float/str, so list- or mapping-valued
choices (``resnet.blocks: {choices: [[1,1,1,1], [2,2,2,2]]}``) are stored in Optuna as their JSON
text and decoded again by :func:`suggest` and :func:`decode_params`.

:func:`load_space` (``hpo.space.parse``) reads and validates a space; the model and its sampling
live in ``hpo.space.search_space``: ``space.sample(trial, base_train)`` suggests one trial's values
and returns them as a typed :class:`~hpo.trial_config.TrialConfig`.
"""

from hpo.space.parse import load_space
from hpo.space.search_space import (
    KINDS,
    STUDY_OWNED_TRAIN_KEYS,
    Param,
    SearchSpace,
    check_assignment,
    decode_params,
    encode_params,
    grid_values,
    is_active,
    is_conditional,
    suggest,
)

__all__ = [
    "KINDS",
    "STUDY_OWNED_TRAIN_KEYS",
    "Param",
    "SearchSpace",
    "check_assignment",
    "decode_params",
    "encode_params",
    "grid_values",
    "is_active",
    "is_conditional",
    "load_space",
    "suggest",
]

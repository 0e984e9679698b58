"""How many images each split of a dataset holds, from its definition alone (no image is read).

A trial's accuracy carries an interval whose width depends on the number of images it was
measured on (``hpo.analysis.intervals``). Trials store that number since it was added; for trials
stored before, :func:`split_sizes` derives it from the study's ``dataset:`` section with the same
arithmetic ``load_dataset`` splits by:

- MINICIFAR keeps ``n_init // R`` images of each of the first ``n_classes`` classes, from train
  (``n_init`` = 5000 in CIFAR-10) and from test (1000);
- CIFAR-10 and CIFAR-100 keep all 50,000 training and 10,000 test images;
- the kept training images split into ``round(train_size * n)`` for training, the rest validate
  (:func:`train_count`).

An image folder's counts are not in its definition, so it has none (None). Nor can the derivation
know that a data folder holds fewer images than the real CIFAR (a test fake): the reports therefore
use a derived count only when the stored accuracies are whole numbers of images out of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo.errors import ConfigError

# Images per class of CIFAR-10, and in all of CIFAR-10 and CIFAR-100.
CIFAR10_TRAIN_PER_CLASS = 5000
CIFAR10_TEST_PER_CLASS = 1000
CIFAR_TRAIN_IMAGES = 50_000
CIFAR_TEST_IMAGES = 10_000
KIND_CLASSES = {"cifar10": 10, "cifar100": 100}  # fixed class counts; minicifar chooses, a folder counts its own


@dataclass(frozen=True)
class SplitSizes:
    """Images in each split."""

    train: int
    val: int
    test: int


def train_count(train_size: float, kept: int) -> int:
    """Of ``kept`` training images, how many train (the rest validate): ``round(train_size * kept)``."""
    return int(round(train_size * kept))


def split_sizes(config: Any, per_class: tuple[int, int] = (CIFAR10_TRAIN_PER_CLASS, CIFAR10_TEST_PER_CLASS)
                ) -> SplitSizes | None:
    """The split sizes a :class:`~hpo.data.DatasetConfig` gives on the real CIFAR data.

    Args:
        config: The dataset config.
        per_class: MINICIFAR only: the training and test images per class of the source
            (CIFAR-10's 5000 and 1000; a smaller source, such as a test fake, has fewer).

    Returns:
        The sizes, or None for an image folder (not countable from its definition) and for a
        split that would leave no training or no validation image (``load_dataset`` refuses it).
    """
    if config.kind == "minicifar":
        kept_train = config.n_classes * (per_class[0] // config.R)
        test = config.n_classes * (per_class[1] // config.R)
    elif config.kind in ("cifar10", "cifar100"):
        kept_train, test = CIFAR_TRAIN_IMAGES, CIFAR_TEST_IMAGES
    else:
        return None
    train = train_count(config.train_size, kept_train)
    if train == 0 or train == kept_train or test == 0:
        return None
    return SplitSizes(train=train, val=kept_train - train, test=test)


def split_sizes_of(section: Mapping[str, Any] | None) -> SplitSizes | None:
    """:func:`split_sizes` of a stored ``dataset:`` section, or None when it is absent or invalid."""
    from hpo.data.dataset import DatasetConfig

    if not isinstance(section, Mapping) or not section:
        return None
    try:
        return split_sizes(DatasetConfig.from_dict(section))
    except ConfigError:
        return None

"""Data: CIFAR-10/100, the lab's MINICIFAR and image folders, decoded once and cached on disk.

Other modules import these names from ``hpo.data``; augmentation and batching live in
``hpo.data.augment`` and ``hpo.data.loader``.
"""

from hpo.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from hpo.data.dataset import (
    DATASET_KINDS,
    Dataset,
    DatasetConfig,
    Split,
    dataset_num_classes,
    load_dataset,
    resolve_data_dir,
)
from hpo.data.sizes import SplitSizes, split_sizes, split_sizes_of

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "DATASET_KINDS",
    "Dataset",
    "DatasetConfig",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Split",
    "SplitSizes",
    "dataset_num_classes",
    "load_dataset",
    "resolve_data_dir",
    "split_sizes",
    "split_sizes_of",
]

"""Datasets for studies: CIFAR-10/100, the lab's MINICIFAR and image folders, split and fingerprinted.

``load_dataset`` finds the data in ``data_dir`` (pickled batches first, then an image folder, then a
download), decodes it once into the on-disk cache (``hpo.data.cache``), selects the images the
config keeps, splits training from validation with the study's seed, and fingerprints the result
so that workers on other machines can prove they train on the same data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpo.data import cache, cifar, folder
from hpo.data.cifar import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD
from hpo.data.sizes import KIND_CLASSES, train_count
from hpo.errors import ConfigError, DataNotFoundError
from hpo.typed import conforms, field_types, is_number, type_name

DATASET_KINDS = ("minicifar", "cifar10", "cifar100", "folder")
CIFAR_IMAGE_SIZE = 32
_MAX_R = 1000  # MINICIFAR keeps n_init // R images per class, n_init = 1000 for the test split
_FINGERPRINT_VERSION = 1
_STATS_CHUNK = 2048  # images per step when computing mean/std (bounds the float64 temporary)


@dataclass(frozen=True)
class DatasetConfig:
    """Which data a study trains on; the ``dataset:`` section of a study YAML.

    Invalid values raise ``ConfigError`` on construction, naming the ``dataset.<key>``.
    """

    kind: str = "minicifar"  # minicifar | cifar10 | cifar100 | folder
    n_classes: int = 4  # minicifar only: keep the first n_classes classes
    R: int = 5  # minicifar only: reduction factor, keeps 5000 // R train and 1000 // R test images per class
    train_size: float = 0.8  # fraction of the kept training images used for training; the rest is validation
    image_size: int = 32  # folder only: side in pixels images are resized to when decoded

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise ConfigError(f"dataset.kind must be one of {', '.join(DATASET_KINDS)} (got {self.kind!r})")
        for key in ("n_classes", "R", "image_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"dataset.{key} must be an integer >= 1 (got {value!r})")
        if isinstance(self.train_size, bool) or not isinstance(self.train_size, (int, float)):
            raise ConfigError(f"dataset.train_size must be a number in (0, 1) (got {self.train_size!r})")
        if not 0.0 < self.train_size < 1.0:
            raise ConfigError(
                f"dataset.train_size must be in (0, 1), the fraction of training images kept for training "
                f"(got {self.train_size})"
            )
        if self.kind != "folder" and self.image_size != CIFAR_IMAGE_SIZE:
            raise ConfigError(
                f"dataset.image_size applies only to kind: folder, CIFAR images are 32x32 (got {self.image_size} "
                f"for kind: {self.kind}); remove it, or use the model's input-size knob"
            )

    @classmethod
    def from_dict(cls, section: Mapping[str, Any]) -> DatasetConfig:
        """The ``dataset:`` section of a study file, validated key by key.

        Stricter than the constructor, which also serves Python callers and tests: a study must
        name its ``kind``, may give only the keys that apply to that kind, and MINICIFAR keeps 2
        to 10 classes.

        Args:
            section: The section as read from YAML (or from a stored definition).

        Returns:
            The config.

        Raises:
            ConfigError: naming ``dataset.<key>``, what it must be and the value given.
        """
        types_ = field_types(cls)
        for key in section:
            if key not in types_:
                raise ConfigError(f"unknown key dataset.{key!s}; valid keys: {', '.join(types_)}")
        kind = section.get("kind")
        if kind not in DATASET_KINDS:
            raise ConfigError(f"dataset.kind must be one of {', '.join(sorted(DATASET_KINDS))} (got {kind!r})")
        for key, value in section.items():
            if not conforms(value, types_[key]):
                raise ConfigError(f"dataset.{key} must be {type_name(types_[key])} (got {value!r})")
        _check_section_values(kind, section)
        values = {k: (float(v) if types_[k] is float and isinstance(v, int) else v) for k, v in section.items()}
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"dataset is invalid: {exc}") from None


def _check_section_values(kind: str, section: Mapping[str, Any]) -> None:
    """The rules of a study's ``dataset:`` beyond each field's type (see ``DatasetConfig.from_dict``)."""
    n_classes = section.get("n_classes")
    if is_number(n_classes):
        if kind == "minicifar" and not 2 <= n_classes <= 10:
            raise ConfigError(f"dataset.n_classes must be between 2 and 10 for minicifar, the first classes of CIFAR-10 (got {n_classes})")
        if kind in KIND_CLASSES and n_classes != KIND_CLASSES[kind]:
            raise ConfigError(f"dataset.n_classes applies only to kind: minicifar ({kind} has {KIND_CLASSES[kind]} classes, got {n_classes}); remove it")
        if kind == "folder":
            raise ConfigError("dataset.n_classes applies only to kind: minicifar (a folder has one class per train/ subfolder); remove it")
    r = section.get("R")
    if is_number(r):
        if kind != "minicifar" and r != 1:
            raise ConfigError(f"dataset.R applies only to kind: minicifar (got {r} for kind: {kind}); remove it or use kind: minicifar")
        if not 1 <= r <= _MAX_R:
            raise ConfigError(f"dataset.R must be between 1 and {_MAX_R} (got {r})")
    train_size = section.get("train_size")
    if is_number(train_size) and not 0 < train_size < 1:
        raise ConfigError(f"dataset.train_size must be a fraction between 0 and 1, exclusive (got {train_size})")
    image_size = section.get("image_size")
    if is_number(image_size) and image_size < 8:
        raise ConfigError(f"dataset.image_size must be >= 8 pixels (got {image_size})")


@dataclass
class Split:
    """One split's images and labels, in the split's order."""

    images: torch.Tensor  # uint8, (N, 3, H, W), CPU, contiguous
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    """A loaded dataset: the three splits, class names, normalisation and fingerprint."""

    kind: str
    classes: list[str]
    train: Split
    val: Split
    test: Split
    mean: tuple[float, float, float]  # per channel, in [0, 1] pixel units
    std: tuple[float, float, float]
    fingerprint: str  # sha256 hex, see dataset_fingerprint
    indices: dict[str, list[int]]  # 'train'/'val' -> indices into the source's training images, 'test' -> test images
    layout: str = ""  # where the pixels came from: cifar-10-batches-py | cifar-100-python | folder


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data folder: the explicit argument, else ``$HPO_DATA_DIR``, else ``./data``.

    Args:
        data_dir: ``--data-dir`` as given, or None.

    Returns:
        The folder, with ``~`` expanded (it may not exist yet).
    """
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get("HPO_DATA_DIR") or "data"
    return Path(data_dir).expanduser()


def dataset_num_classes(config: DatasetConfig, data_dir: str | os.PathLike | None = None) -> int:
    """Number of classes a model for this dataset must output.

    Args:
        config: The dataset config.
        data_dir: Needed only for ``kind: folder`` (class folders are counted); None resolves it
            like ``resolve_data_dir``.

    Returns:
        10 for cifar10, 100 for cifar100, ``n_classes`` for minicifar, the number of class folders
        in ``<data_dir>/train`` for folder.

    Raises:
        DataNotFoundError: ``kind: folder`` and there is no ``train/`` folder.
    """
    if config.kind in KIND_CLASSES:
        return KIND_CLASSES[config.kind]
    if config.kind == "minicifar":
        return config.n_classes
    train_dir = resolve_data_dir(data_dir) / "train"
    if not train_dir.is_dir():
        raise DataNotFoundError(
            f"no image folder at {train_dir.resolve()}; put the images in train/<class>/ and test/<class>/ "
            "there, or point HPO_DATA_DIR or --data-dir at a folder that has them"
        )
    return len(folder._class_dirs(train_dir))


def _pickle_entry_name(batches_dir: Path, cifar100: bool) -> str:
    train_names, test_names, meta_name = cifar.pickle_files(cifar100)
    digest = hashlib.sha256(b"hpo-cifar-pickles-v1")
    for name in (*train_names, *test_names, meta_name):
        st = os.stat(batches_dir / name) if (batches_dir / name).is_file() else None
        digest.update(json.dumps([name, st and st.st_size, st and st.st_mtime_ns]).encode())
    return f"{batches_dir.name}-{digest.hexdigest()[:20]}"


def _as_source(parts: tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray], layout: str):
    classes, train_images, train_labels, test_images, test_labels = parts
    arrays = {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }
    return {"classes": classes, "layout": layout}, arrays


def _missing_data_message(config: DatasetConfig, data_dir: Path, reason: str | None) -> str:
    where = data_dir.resolve()
    if not data_dir.exists():
        about = f" ({reason})" if reason else ""
        return (
            f"the data folder {where} does not exist{about}; point --data-dir (or HPO_DATA_DIR) at the folder that "
            "holds cifar-10-batches-py/ or train/ and test/ class folders, or create it and unpack the data there"
        )
    folders = f"{where / 'train'}/ and {where / 'test'}/ class folders"
    if config.kind == "folder":
        return (
            f"no image folder in {where}: looked for {folders}; put the images in train/<class>/ and "
            "test/<class>/ there, or point HPO_DATA_DIR or --data-dir at a folder that has them"
        )
    name = "CIFAR-100" if config.kind == "cifar100" else "CIFAR-10"
    pickles = where / cifar.pickle_dir_name(config.kind == "cifar100")
    return (
        f"no {name} data in {where}: looked for {pickles}/ and for {folders}, and {reason}; "
        f"unpack the data there (e.g. an image folder with train/ and test/), or point HPO_DATA_DIR or "
        "--data-dir at a folder that has it"
    )


def _load_source(config: DatasetConfig, data_dir: Path, download: bool = True) -> tuple[dict, dict[str, np.ndarray], Path | None]:
    """Find, decode (once) and cache the whole source; returns (meta, arrays, cache entry)."""
    cifar100 = config.kind == "cifar100"
    batches_dir = data_dir / cifar.pickle_dir_name(cifar100)
    if config.kind != "folder" and not batches_dir.is_dir() and not folder.has_image_folder(data_dir):
        if not download:
            raise DataNotFoundError(_missing_data_message(config, data_dir, None))
        reason = cifar.download_cifar(data_dir, cifar100)
        if reason is not None or not batches_dir.is_dir():
            raise DataNotFoundError(_missing_data_message(config, data_dir, reason or "the download gave no data"))
    if config.kind != "folder" and batches_dir.is_dir():
        entry_name = _pickle_entry_name(batches_dir, cifar100)
        return cache.cached_source(
            data_dir,
            entry_name,
            lambda: _as_source(cifar.read_cifar_pickles(batches_dir, cifar100), batches_dir.name),
        )
    if not folder.has_image_folder(data_dir):
        raise DataNotFoundError(_missing_data_message(config, data_dir, None))
    image_size = config.image_size if config.kind == "folder" else CIFAR_IMAGE_SIZE
    classes, listing, key = folder.list_image_folder(data_dir)
    entry_name = f"folder-{image_size}px-{key[:20]}"
    return cache.cached_source(
        data_dir,
        entry_name,
        lambda: _as_source(folder.read_image_folder(data_dir, image_size, (classes, listing)), "folder"),
    )


def _check_class_count(config: DatasetConfig, classes: list[str], data_dir: Path, layout: str) -> None:
    expected = KIND_CLASSES.get(config.kind)
    if expected is not None and len(classes) != expected:
        raise ConfigError(
            f"dataset.kind is {config.kind} but {(data_dir / layout).resolve()} has {len(classes)} classes "
            f"(expected {expected}); use kind: folder for other image folders"
        )
    if config.kind == "minicifar" and config.n_classes > len(classes):
        raise ConfigError(
            f"dataset.n_classes = {config.n_classes} but {data_dir.resolve()} has only {len(classes)} classes; "
            f"choose dataset.n_classes between 1 and {len(classes)}"
        )


def _minicifar_kept(config: DatasetConfig, labels: np.ndarray, classes: list[str], split: str) -> np.ndarray:
    for class_id in range(config.n_classes):
        n_init = int(np.count_nonzero(labels == class_id))
        if n_init // config.R == 0:
            raise ConfigError(
                f"dataset.R = {config.R} keeps no {split} image of class {classes[class_id]!r}, which has "
                f"{n_init}; choose dataset.R <= {max(n_init, 1)}"
            )
    return cifar.minicifar_indices(labels, config.n_classes, config.R)


def _split_train_val(kept: np.ndarray, train_size: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    # A seeded shuffle of the kept indices, unstratified, as the lab: the first round(train_size * n)
    # train, the rest validate. RandomState.permutation of an array = the array indexed by
    # permutation(len(array)): the same stream either way.
    shuffled = np.random.RandomState(split_seed).permutation(kept)
    n_train = train_count(train_size, kept.size)
    if n_train == 0 or n_train == kept.size:
        raise ConfigError(
            f"dataset.train_size = {train_size} leaves {'no training' if n_train == 0 else 'no validation'} "
            f"image out of {kept.size} kept training images; choose a train_size nearer 0.5 or keep more images"
        )
    return shuffled[:n_train], shuffled[n_train:]


def _take(images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> Split:
    # Fancy indexing copies out of the memory map into a fresh, writable, contiguous array.
    return Split(
        images=torch.from_numpy(np.ascontiguousarray(images[indices])),
        labels=torch.from_numpy(np.ascontiguousarray(labels[indices], dtype=np.int64)),
    )


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and (population) standard deviation of uint8 images, in [0, 1] units.

    Args:
        images: uint8 (N, 3, H, W).

    Returns:
        (mean, std), three floats each.
    """
    pixels = images.numpy()
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for start in range(0, pixels.shape[0], _STATS_CHUNK):
        chunk = pixels[start : start + _STATS_CHUNK].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        total_sq += (chunk * chunk).sum(axis=(0, 2, 3))
    count = max(1, pixels.shape[0] * pixels.shape[2] * pixels.shape[3])
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)  # type: ignore[return-value]


def dataset_fingerprint(kind: str, classes: list[str], indices: dict[str, list[int]], splits: dict[str, Split]) -> str:
    """sha256 over the dataset kind, class names, index lists, labels and pixel bytes of every split.

    It depends only on values, never on paths, times or the machine, so two workers get the same
    fingerprint exactly when they would train, validate and test on the same images.

    Args:
        kind: ``DatasetConfig.kind``.
        classes: Class names of the dataset (after MINICIFAR's selection).
        indices: 'train', 'val', 'test' -> indices into the source.
        splits: 'train', 'val', 'test' -> the split's images and labels.

    Returns:
        64 hex digits.
    """
    digest = hashlib.sha256()
    header = {
        "version": _FINGERPRINT_VERSION,
        "kind": kind,
        "classes": list(classes),
        "indices": {name: [int(i) for i in indices[name]] for name in ("train", "val", "test")},
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name in ("train", "val", "test"):
        split = splits[name]
        digest.update(json.dumps([name, list(split.images.shape)]).encode())
        digest.update(split.labels.numpy().astype("<i8").tobytes())
        digest.update(np.ascontiguousarray(split.images.numpy()).tobytes())
    return digest.hexdigest()


def load_dataset(config: DatasetConfig, data_dir: str | os.PathLike | None, split_seed: int = 0, *,
                 download: bool = True) -> Dataset:
    """Load the dataset a study trains on.

    ``data_dir`` directly holds ``cifar-10-batches-py/`` (``cifar-100-python/`` for cifar100) or
    ``train/<class>/*`` and ``test/<class>/*``, checked in that order (``kind: folder`` reads only the
    image folder). When neither is there, CIFAR kinds are downloaded into ``data_dir`` unless
    ``HPO_OFFLINE=1``. The whole source is decoded once and cached (see ``hpo.data.cache``).

    Selection: ``minicifar`` keeps, for each of the first ``n_classes`` classes, the lab's
    ``RandomState(42)`` choice of ``n_init // R`` images (``cifar.minicifar_indices``), from train
    and from test. ``cifar10``/``cifar100``/``folder`` keep every image. The kept training images are
    shuffled with ``RandomState(split_seed)``; the first ``round(train_size * n)`` train, the rest
    validate. The test split is the kept test images, in dataset order.

    Normalisation: CIFAR-10 statistics for cifar10/minicifar and for a folder whose classes are the
    ten CIFAR-10 classes; CIFAR-100 statistics for cifar100; otherwise the training split's own
    mean/std, computed once and cached beside the decoded images.

    Args:
        config: The dataset config.
        data_dir: The data folder (None: ``$HPO_DATA_DIR``, else ``./data``; see ``resolve_data_dir``).
        split_seed: Seed of the train/validation shuffle (the study's seed).
        download: Whether missing CIFAR data may be downloaded (False for commands that read a stored
            study: they use the study's data, and create no folder).

    Returns:
        The dataset, with uint8 CPU image tensors.

    Raises:
        DataNotFoundError: The data is not in ``data_dir`` and cannot be downloaded.
        ConfigError: The config does not fit the data (too many classes, R too large, ...).
    """
    data_dir = resolve_data_dir(data_dir)
    meta, arrays, entry = _load_source(config, data_dir, download)
    source_classes = list(meta["classes"])
    _check_class_count(config, source_classes, data_dir, meta["layout"])
    if config.kind == "minicifar":
        classes = source_classes[: config.n_classes]
        kept_train = _minicifar_kept(config, arrays["train_labels"], source_classes, "training")
        kept_test = _minicifar_kept(config, arrays["test_labels"], source_classes, "test")
    else:
        classes = source_classes
        kept_train = np.arange(arrays["train_labels"].shape[0], dtype=np.int64)
        kept_test = np.arange(arrays["test_labels"].shape[0], dtype=np.int64)
    train_idx, val_idx = _split_train_val(kept_train, config.train_size, split_seed)
    splits = {
        "train": _take(arrays["train_images"], arrays["train_labels"], train_idx),
        "val": _take(arrays["train_images"], arrays["train_labels"], val_idx),
        "test": _take(arrays["test_images"], arrays["test_labels"], kept_test),
    }
    indices = {"train": train_idx.tolist(), "val": val_idx.tolist(), "test": kept_test.tolist()}

    if config.kind == "cifar100":
        mean, std = CIFAR100_MEAN, CIFAR100_STD
    elif config.kind in ("cifar10", "minicifar") or tuple(source_classes) == CIFAR10_CLASSES:
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    else:
        # Depends on which images train, so the file is keyed by the training indices.
        key = hashlib.sha256(np.asarray(train_idx, dtype="<i8").tobytes()).hexdigest()[:20]
        stats = cache.cached_json(
            entry, f"stats-{key}.json", lambda: dict(zip(("mean", "std"), channel_stats(splits["train"].images)))
        )
        mean, std = tuple(stats["mean"]), tuple(stats["std"])

    return Dataset(
        kind=config.kind,
        classes=classes,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        mean=mean,
        std=std,
        fingerprint=dataset_fingerprint(config.kind, classes, indices, splits),
        indices=indices,
        layout=meta["layout"],
    )

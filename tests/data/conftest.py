"""Small fake CIFAR data, written by the tests in the real on-disk formats (never the network)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 10


@dataclass
class FakeSource:
    """What a fake was written from: images uint8 (N, 3, H, W) and int labels, in dataset order."""

    classes: list[str]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def make_source(
    classes: list[str] = CIFAR10_NAMES,
    train_per_class: int = TRAIN_PER_CLASS,
    test_per_class: int = TEST_PER_CLASS,
    size: int = 32,
    seed: int = 0,
    interleaved: bool = True,
) -> FakeSource:
    """Random images; labels interleaved like the real batches (or sorted by class)."""
    rng = np.random.RandomState(seed)
    n_classes = len(classes)
    train_labels = np.repeat(np.arange(n_classes), train_per_class)
    test_labels = np.repeat(np.arange(n_classes), test_per_class)
    if interleaved:
        train_labels = rng.permutation(train_labels)
        test_labels = rng.permutation(test_labels)
    return FakeSource(
        classes=list(classes),
        train_images=rng.randint(0, 256, size=(train_labels.size, 3, size, size), dtype=np.uint8),
        train_labels=train_labels,
        test_images=rng.randint(0, 256, size=(test_labels.size, 3, size, size), dtype=np.uint8),
        test_labels=test_labels,
    )


def _dump(path: Path, entry: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def write_cifar10_pickles(data_dir: Path, source: FakeSource, bytes_keys: bool = False) -> Path:
    """torchvision's cifar-10-batches-py layout: data_batch_1..5, test_batch, batches.meta."""
    batches_dir = data_dir / "cifar-10-batches-py"
    batches_dir.mkdir(parents=True, exist_ok=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    n = source.train_labels.size
    bounds = np.linspace(0, n, 6).astype(int)
    for b in range(5):
        sl = slice(bounds[b], bounds[b + 1])
        _dump(
            batches_dir / f"data_batch_{b + 1}",
            {
                key("batch_label"): f"training batch {b + 1} of 5",
                key("labels"): source.train_labels[sl].tolist(),
                key("data"): source.train_images[sl].reshape(-1, 3072),
                key("filenames"): [f"img_{i}.png" for i in range(sl.start, sl.stop)],
            },
        )
    _dump(
        batches_dir / "test_batch",
        {
            key("batch_label"): "testing batch 1 of 1",
            key("labels"): source.test_labels.tolist(),
            key("data"): source.test_images.reshape(-1, 3072),
            key("filenames"): [f"test_{i}.png" for i in range(source.test_labels.size)],
        },
    )
    _dump(
        batches_dir / "batches.meta",
        {key("num_cases_per_batch"): int(bounds[1]), key("label_names"): source.classes, key("num_vis"): 3072},
    )
    return batches_dir


def write_cifar100_pickles(data_dir: Path, source: FakeSource) -> Path:
    """torchvision's cifar-100-python layout: train, test, meta with fine labels."""
    batches_dir = data_dir / "cifar-100-python"
    batches_dir.mkdir(parents=True, exist_ok=True)
    for name, images, labels in (
        ("train", source.train_images, source.train_labels),
        ("test", source.test_images, source.test_labels),
    ):
        _dump(
            batches_dir / name,
            {
                "filenames": [f"{name}_{i}.png" for i in range(labels.size)],
                "batch_label": f"{name} batch",
                "fine_labels": labels.tolist(),
                "coarse_labels": (labels // 5).tolist(),
                "data": images.reshape(-1, 3072),
            },
        )
    _dump(
        batches_dir / "meta",
        {"fine_label_names": source.classes, "coarse_label_names": [f"super{i}" for i in range(20)]},
    )
    return batches_dir


def write_image_folder(data_dir: Path, source: FakeSource, suffix: str = ".png") -> Path:
    """train/<class>/NNNN.png and test/<class>/NNNN.png, numbered by rank within the class."""
    for split, images, labels in (
        ("train", source.train_images, source.train_labels),
        ("test", source.test_images, source.test_labels),
    ):
        rank = {c: 0 for c in range(len(source.classes))}
        for image, label in zip(images, labels):
            class_dir = data_dir / split / source.classes[label]
            class_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(class_dir / f"{rank[label]:04d}{suffix}")
            rank[label] += 1
    return data_dir


@pytest.fixture(autouse=True)
def _offline_and_private_cache(monkeypatch, tmp_path):
    # Never touch the network, and keep any fallback cache inside the test's own folder.
    monkeypatch.setenv("HPO_OFFLINE", "1")
    monkeypatch.setenv("HPO_CACHE_DIR", str(tmp_path / "fallback-cache"))
    monkeypatch.delenv("HPO_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def fake_source() -> FakeSource:
    """10 CIFAR-10 classes x (20 train + 10 test) random images, labels interleaved."""
    return make_source()


@pytest.fixture
def pickle_dir(tmp_path, fake_source) -> Path:
    """A data folder holding the fake in the pickled layout."""
    data_dir = tmp_path / "pickles"
    write_cifar10_pickles(data_dir, fake_source)
    return data_dir


@pytest.fixture
def image_dir(tmp_path, fake_source) -> Path:
    """A data folder holding the same fake as PNG class folders (lossless, so pixels match)."""
    return write_image_folder(tmp_path / "images", fake_source)


@pytest.fixture(scope="session")
def fakes() -> SimpleNamespace:
    """The writers above, for tests that build their own variant (tests never import conftest)."""
    return SimpleNamespace(
        CIFAR10_NAMES=CIFAR10_NAMES,
        make_source=make_source,
        write_cifar10_pickles=write_cifar10_pickles,
        write_cifar100_pickles=write_cifar100_pickles,
        write_image_folder=write_image_folder,
    )

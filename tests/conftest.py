"""Shared fixtures: small real-format datasets and real database servers.

The servers (PostgreSQL 127.0.0.1:5432, MariaDB 127.0.0.1:3306, Redis 127.0.0.1:6379) run on the
development and CI machines. Tests that need one skip when it is down, except under CI (``CI`` set),
where a missing server fails the run: those tests must not silently disappear.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import uuid
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HPO_OFFLINE", "1")  # never try to download data or weights in tests

POSTGRES_URL = os.environ.get("HPO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("HPO_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("HPO_TEST_REDIS", "redis://127.0.0.1:6379/0")

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def class_images(rng: np.random.Generator, label: int, count: int) -> np.ndarray:
    """Learnable fake images: each class has its own mean colour, plus noise. (count, 32, 32, 3) uint8."""
    base = np.array([(label * 53) % 256, (label * 97 + 40) % 256, (label * 151 + 80) % 256], dtype=np.float64)
    noise = rng.normal(0, 40, size=(count, 32, 32, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_fake_cifar10(root: Path, train_per_class: int = 30, test_per_class: int = 10, seed: int = 0) -> Path:
    """Write CIFAR-10 in torchvision's pickled layout (root/cifar-10-batches-py), interleaved classes."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(per_class: int):
        labels = np.tile(np.arange(10), per_class)
        images = np.concatenate([class_images(rng, int(lbl), 1) for lbl in labels])
        data = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)  # CIFAR rows: 1024 R, 1024 G, 1024 B
        return data, labels

    train_data, train_labels = batch(train_per_class)
    chunks = np.array_split(np.arange(len(train_labels)), 5)
    for i, idx in enumerate(chunks, start=1):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({"batch_label": f"training batch {i} of 5", "labels": train_labels[idx].tolist(),
                         "data": train_data[idx], "filenames": [f"{j}.png" for j in idx]}, f)
    test_data, test_labels = batch(test_per_class)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"batch_label": "testing batch 1 of 1", "labels": test_labels.tolist(), "data": test_data,
                     "filenames": [f"{j}.png" for j in range(len(test_labels))]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_cases_per_batch": len(train_labels) // 5, "num_vis": 3072}, f)
    return root


@pytest.fixture(scope="session")
def fake_cifar(tmp_path_factory) -> Path:
    """A data folder holding a small pickled CIFAR-10 (30 train / 10 test images per class)."""
    return write_fake_cifar10(tmp_path_factory.mktemp("fake-cifar"))


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _require_server(name: str, port: int) -> None:
    if _reachable("127.0.0.1", port):
        return
    message = f"{name} is not running on 127.0.0.1:{port}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the {name} tests (start it in .ci/run)")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> str:
    _require_server("PostgreSQL", 5432)
    return POSTGRES_URL


@pytest.fixture
def mysql_url() -> str:
    _require_server("MariaDB", 3306)
    return MYSQL_URL


@pytest.fixture
def redis_url() -> str:
    _require_server("Redis", 6379)
    return REDIS_URL


@pytest.fixture(autouse=True)
def _restore_hpo_logger():
    """Give the "hpo" logger back after each test: a worker run in this process
    (``hpo.workers.configure_logging``) replaces its handlers and stops propagation, which would
    hide later tests' messages from ``caplog``."""
    log = logging.getLogger("hpo")
    handlers, level, propagate = log.handlers[:], log.level, log.propagate
    yield
    log.handlers[:], log.level, log.propagate = handlers, level, propagate


@pytest.fixture
def unique_name() -> str:
    """A study name no other test run uses (shared database servers keep old studies)."""
    return f"t-{uuid.uuid4().hex[:10]}"

"""CIFAR-10/100 in torchvision's pickled layout, the download, and the lab's MINICIFAR selection.

The pickled batches are read by this module's own reader rather than torchvision's ``CIFAR10``
class: torchvision md5-checks every file, which rejects the small fake batches the tests write.
"""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import numpy as np

from hpo.errors import DataNotFoundError

# Normalisation statistics in [0, 1] pixel units (per RGB channel).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # for pretrained backbones
IMAGENET_STD = (0.229, 0.224, 0.225)

# CIFAR-10's label order; sorted by name it is the same order, so an image folder sorted by class
# name gets the official labels.
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
_CIFAR10_TRAIN = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
_CIFAR10_TEST = ("test_batch",)
_CIFAR100_TRAIN = ("train",)
_CIFAR100_TEST = ("test",)

# Seconds a download attempt may wait on the network before giving up, so that an offline machine
# fails within seconds instead of hanging on a TCP connect.
DOWNLOAD_SOCKET_TIMEOUT_S = 10.0


def pickle_dir_name(cifar100: bool) -> str:
    """The folder torchvision unpacks the pickled batches into.

    Args:
        cifar100: True for CIFAR-100, False for CIFAR-10.

    Returns:
        ``cifar-100-python`` or ``cifar-10-batches-py``.
    """
    return CIFAR100_DIR if cifar100 else CIFAR10_DIR


def pickle_files(cifar100: bool) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """File names of the pickled layout, in dataset order.

    Args:
        cifar100: True for CIFAR-100, False for CIFAR-10.

    Returns:
        (training batch names, test batch names, meta file name).
    """
    if cifar100:
        return _CIFAR100_TRAIN, _CIFAR100_TEST, "meta"
    return _CIFAR10_TRAIN, _CIFAR10_TEST, "batches.meta"


def _text_keys(entry: dict) -> dict:
    # Batches pickled by Python 2 load with str keys under encoding="latin1"; batches pickled by
    # Python 3 from bytes keys keep b'data'. Accept both.
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        entry = _text_keys(pickle.load(f, encoding="latin1"))
    if "data" not in entry or label_key not in entry:
        raise DataNotFoundError(
            f"{path} is not a CIFAR batch: it lacks the key 'data' or '{label_key}'; "
            "replace it with the original file or delete its folder to download again"
        )
    data = entry["data"]
    # np.frombuffer over the raw bytes: no per-image Python work, and a fixed uint8 layout.
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    images = np.frombuffer(raw, dtype=np.uint8)
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if images.size != labels.size * 3 * 32 * 32:
        raise DataNotFoundError(
            f"{path} holds {images.size} pixel bytes for {labels.size} labels "
            f"(expected {labels.size} x 3072); replace it with the original file"
        )
    return images.reshape(-1, 3, 32, 32), labels  # (N, 3, 32, 32): CIFAR stores channel-major rows


def read_cifar_pickles(
    batches_dir: str | os.PathLike, cifar100: bool = False
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read CIFAR-10 or CIFAR-100 from torchvision's pickled layout.

    Args:
        batches_dir: The ``cifar-10-batches-py`` or ``cifar-100-python`` folder.
        cifar100: Read CIFAR-100 (``train``/``test``/``meta``, ``fine_labels``) instead of
            CIFAR-10 (``data_batch_1..5``/``test_batch``/``batches.meta``, ``labels``).

    Returns:
        (class names, train images, train labels, test images, test labels): images are uint8
        (N, 3, 32, 32), labels int64 (N,), in batch order (training batches 1..5, then the test batch).

    Raises:
        DataNotFoundError: A batch or the meta file is missing or malformed.
    """
    batches_dir = Path(batches_dir)
    train_names, test_names, meta_name = pickle_files(cifar100)
    missing = [n for n in (*train_names, *test_names, meta_name) if not (batches_dir / n).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{batches_dir} lacks {', '.join(missing)}; delete the folder so that the data is "
            "downloaded again, or unpack a complete copy there"
        )
    label_key = "fine_labels" if cifar100 else "labels"
    names_key = "fine_label_names" if cifar100 else "label_names"

    def read_all(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_read_batch(batches_dir / n, label_key) for n in names]
        images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
        return images, np.concatenate([p[1] for p in parts])

    train_images, train_labels = read_all(train_names)
    test_images, test_labels = read_all(test_names)
    with open(batches_dir / meta_name, "rb") as f:
        meta = _text_keys(pickle.load(f, encoding="latin1"))
    if names_key not in meta:
        raise DataNotFoundError(f"{batches_dir / meta_name} lacks '{names_key}'; replace it with the original file")
    classes = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    for split, labels in (("training", train_labels), ("test", test_labels)):
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataNotFoundError(
                f"{batches_dir}: {split} labels run from {labels.min()} to {labels.max()} but "
                f"{meta_name} names {len(classes)} classes; replace the files with a consistent copy"
            )
    return classes, train_images, train_labels, test_images, test_labels


def download_cifar(data_dir: str | os.PathLike, cifar100: bool = False) -> str | None:
    """Try torchvision's download of CIFAR into ``data_dir``, failing fast when offline.

    Skipped when ``HPO_OFFLINE=1``.

    Args:
        data_dir: Folder to download into; ``cifar-10-batches-py/`` (or ``cifar-100-python/``)
            appears in it on success.
        cifar100: Download CIFAR-100 instead of CIFAR-10.

    Returns:
        None on success, otherwise a short reason why there is no download. A failed download
        leaves no folder behind that was not there before.
    """
    if os.environ.get("HPO_OFFLINE", "") not in ("", "0"):
        return "download skipped because HPO_OFFLINE is set"
    import shutil

    import torchvision  # deferred: only a download needs it

    existed = Path(data_dir).exists()

    dataset_class = torchvision.datasets.CIFAR100 if cifar100 else torchvision.datasets.CIFAR10
    # torchvision's urlopen() has no timeout of its own; it takes the socket default.
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT_S)
    try:
        dataset_class(root=str(data_dir), train=True, download=True)
    except Exception as exc:  # any failure (DNS, refused, md5, disk) means "no data": say why
        if not existed:
            shutil.rmtree(data_dir, ignore_errors=True)  # torchvision made it; an empty folder would mislead
        return f"the download failed ({type(exc).__name__}: {exc})".replace("\n", " ")
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return None


def minicifar_keep(n_init: int, R: int) -> np.ndarray:
    """The within-class positions the lab's MINICIFAR keeps.

    ``np.random.RandomState(42).choice(n_init, n_init // R, replace=False)`` with a fresh
    RandomState(42) on each call, exactly as the lab.

    Args:
        n_init: Images per class in the source (5000 for CIFAR-10 train, 1000 for test).
        R: Reduction factor.

    Returns:
        int64 array of ``n_init // R`` distinct positions in [0, n_init), in draw order.
    """
    return np.random.RandomState(42).choice(n_init, n_init // R, replace=False).astype(np.int64)


def minicifar_indices(labels: np.ndarray, n_classes: int, R: int) -> np.ndarray:
    """Indices MINICIFAR keeps from one split (train or test) of the source.

    For each of the first ``n_classes`` classes, in class order: ``indices_of_class[keep]``, where
    ``indices_of_class`` are the positions of that class in dataset order and
    ``keep = minicifar_keep(n_init, R)``. ``n_init`` is the number of images of that class found in
    the split: 5000 (train) and 1000 (test) for CIFAR-10, as in the lab, and whatever smaller
    count a test fake or another image folder has. Classes with the same count share the same
    ``keep``; classes with different counts each draw with their own count.

    Args:
        labels: int labels of the split, in dataset order.
        n_classes: How many of the first classes to keep.
        R: Reduction factor (keeps ``n_init // R`` images per class).

    Returns:
        int64 indices into the split, classes stacked in order.
    """
    kept = []
    for class_id in range(n_classes):
        indices_of_class = np.flatnonzero(labels == class_id)
        kept.append(indices_of_class[minicifar_keep(indices_of_class.size, R)])
    return np.concatenate(kept).astype(np.int64) if kept else np.zeros(0, np.int64)

"""Image folders: ``train/<class>/*`` and ``test/<class>/*``, decoded once to uint8 arrays.

Class folders are sorted by name, and files by name within a class; that order is the dataset
order. Decoding runs in a process pool for large folders (60k small JPEGs take ~13 s on one core).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from hpo import progress
from hpo.errors import DataNotFoundError, HpoError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")

# Below this many images a pool costs more (process start-up) than it saves.
_PARALLEL_MIN_IMAGES = 4096
_MAX_DECODE_WORKERS = 16

# Images decoded by this process (not served from the cache); the tests read it to prove reuse.
images_decoded = 0


def has_image_folder(data_dir: str | os.PathLike) -> bool:
    """Whether ``data_dir`` has the image-folder layout (both ``train/`` and ``test/`` folders).

    Args:
        data_dir: The data folder.

    Returns:
        True when ``data_dir/train`` and ``data_dir/test`` are folders.
    """
    return (Path(data_dir) / "train").is_dir() and (Path(data_dir) / "test").is_dir()


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def _image_names(class_dir: Path) -> list[str]:
    return sorted(
        e.name
        for e in os.scandir(class_dir)
        if not e.name.startswith(".") and e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file()
    )


def list_image_folder(data_dir: str | os.PathLike) -> tuple[list[str], dict[str, list[tuple[str, list[str]]]], str]:
    """List an image folder and compute the key that identifies its content for the cache.

    The key covers the class names, every file name and each class folder's modification time
    (which changes whenever a file is added, removed or renamed there). It deliberately does not
    stat the 60k files themselves (0.4 s, more than the whole cached load); a file overwritten in
    place under the same name is therefore not noticed: delete ``.hpo-cache`` after doing that.

    Args:
        data_dir: Folder holding ``train/<class>/*`` and ``test/<class>/*``.

    Returns:
        (class names, {'train'|'test': [(class name, sorted file names), ...]}, content key).

    Raises:
        DataNotFoundError: A split has no class folders (or only one), a class has no images, or the test
            classes differ from the training classes.
    """
    data_dir = Path(data_dir)
    listing: dict[str, list[tuple[str, list[str]]]] = {}
    digest = hashlib.sha256(b"hpo-image-folder-v1")
    classes: list[str] = []
    for split in ("train", "test"):
        split_dir = data_dir / split
        split_classes = _class_dirs(split_dir)
        if not split_classes:
            raise DataNotFoundError(
                f"{split_dir} has no class folders; put the images of each class in {split_dir}/<class>/"
            )
        if split == "train":
            classes = split_classes
            if len(classes) < 2:
                raise DataNotFoundError(
                    f"{split_dir} has {len(classes)} class folder ({classes[0]}); a classifier needs at least 2, "
                    f"so add a folder per class under {split_dir}/"
                )
        elif split_classes != classes:
            only_train = sorted(set(classes) - set(split_classes))
            only_test = sorted(set(split_classes) - set(classes))
            raise DataNotFoundError(
                f"{split_dir} and {data_dir / 'train'} must have the same class folders "
                f"(only in train: {only_train}, only in test: {only_test}); add or remove folders to match"
            )
        listing[split] = []
        for class_name in split_classes:
            class_dir = split_dir / class_name
            names = _image_names(class_dir)
            if not names:
                raise DataNotFoundError(
                    f"{class_dir} has no images ({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder"
                )
            listing[split].append((class_name, names))
            header = json.dumps([split, class_name, os.stat(class_dir).st_mtime_ns, len(names)])
            digest.update(header.encode())
            digest.update("\0".join(names).encode("utf-8", "surrogateescape"))
    return classes, listing, digest.hexdigest()


def _decode_one(path: str, image_size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.size != (image_size, image_size):
                # JPEG only (a no-op otherwise): decode at a reduced DCT scale, still >= image_size.
                im.draft("RGB", (image_size, image_size))
            rgb = im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise HpoError(f"{path} cannot be decoded as an image ({exc}); remove or replace the file") from None
    if rgb.size != (image_size, image_size):
        # Squashed to a square, not cropped: the folder's images are the whole sample.
        rgb = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(rgb).transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def _decode_chunk(paths: list[str], image_size: int) -> np.ndarray:
    out = np.empty((len(paths), 3, image_size, image_size), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = _decode_one(path, image_size)
    return out


def _default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_DECODE_WORKERS))


def decode_images(paths: list[str], image_size: int, workers: int | None = None) -> np.ndarray:
    """Decode image files to RGB uint8 arrays of one size.

    Args:
        paths: Image files, in the order wanted.
        image_size: Side of the square output; other sizes are resized (bilinear).
        workers: Processes to decode with; None picks one per available core for large lists
            and decodes in this process for small ones.

    Returns:
        uint8 array (len(paths), 3, image_size, image_size).

    Raises:
        HpoError: A file cannot be decoded.
    """
    global images_decoded
    if workers is None:
        workers = _default_workers() if len(paths) >= _PARALLEL_MIN_IMAGES else 1
    if progress.shown() and len(paths) >= _PARALLEL_MIN_IMAGES:
        images = _decode_with_progress(paths, image_size, workers)
    elif workers <= 1 or len(paths) < 2:
        images = _decode_chunk(paths, image_size)
    else:
        # fork where there is one: the children need only PIL/numpy, already imported, and skip the
        # seconds a spawned interpreter takes to import torch through hpo.data.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        n_chunks = min(len(paths), workers * 4)
        bounds = np.linspace(0, len(paths), n_chunks + 1).astype(int)
        chunks = [paths[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            images = np.concatenate(list(pool.map(_decode_chunk, chunks, [image_size] * len(chunks))))
    images_decoded += len(paths)
    return images


def _decode_with_progress(paths: list[str], image_size: int, workers: int) -> np.ndarray:
    """As decode_images, in smaller chunks whose completion moves a progress bar (hpo.progress)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    bounds = np.linspace(0, len(paths), min(len(paths), max(1, workers) * 32) + 1).astype(int)
    chunks = [paths[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    parts = []
    with contextlib.ExitStack() as stack:
        advance = stack.enter_context(progress.task(f"decoding {len(paths):,} images (once, then cached)", len(paths)))
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, mp_context=context))
            decoded = pool.map(_decode_chunk, chunks, [image_size] * len(chunks))
        else:
            decoded = (_decode_chunk(chunk, image_size) for chunk in chunks)
        for part in decoded:
            parts.append(part)
            advance(len(part))
    return np.concatenate(parts)


def read_image_folder(
    data_dir: str | os.PathLike,
    image_size: int,
    listing: tuple[list[str], dict[str, list[tuple[str, list[str]]]]] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode an image folder.

    Args:
        data_dir: Folder holding ``train/<class>/*`` and ``test/<class>/*``.
        image_size: Side of the square images returned.
        listing: (classes, per-split listing) from ``list_image_folder``, to avoid listing twice.

    Returns:
        (class names, train images, train labels, test images, test labels): images uint8
        (N, 3, image_size, image_size), labels int64 (N,), in dataset order (class folders sorted
        by name, then file names sorted).
    """
    data_dir = Path(data_dir)
    if listing is None:
        classes, per_split, _ = list_image_folder(data_dir)
    else:
        classes, per_split = listing
    paths: list[str] = []
    labels: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for split in ("train", "test"):
        split_labels = []
        for class_id, (class_name, names) in enumerate(per_split[split]):
            class_dir = data_dir / split / class_name
            paths.extend(str(class_dir / n) for n in names)
            split_labels.append(np.full(len(names), class_id, dtype=np.int64))
        labels[split] = np.concatenate(split_labels)
        counts[split] = labels[split].size
    # One pool for both splits: the start-up cost is paid once.
    images = decode_images(paths, image_size)
    n_train = counts["train"]
    return classes, images[:n_train], labels["train"], images[n_train:], labels["test"]

"""On-disk cache of decoded datasets: one folder of ``.npy`` files per source, written atomically.

Layout: ``<data_dir>/.hpo-cache/<entry>/`` holding ``train_images.npy``, ``train_labels.npy``,
``test_images.npy``, ``test_labels.npy`` and ``meta.json``. An entry is built in a temporary folder
next to it and renamed into place, so workers that start together never see a half-written entry:
the first rename wins and the others use the winner's copy. Images are memory-mapped on load, so
taking a MINICIFAR subset from the 60k-image cache reads only the kept images.

When ``data_dir`` is not writable (a read-only mount), the cache lives under ``$HPO_CACHE_DIR`` or
``~/.cache/hpo``, in a folder named after a hash of ``data_dir``'s real path. Stale entries (from
data that has since changed) are not deleted automatically; ``rm -r <data_dir>/.hpo-cache`` is safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

CACHE_DIR_NAME = ".hpo-cache"
ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")
_STALE_TMP_SECONDS = 24 * 3600  # a temporary folder this old belongs to a process that died


def cache_roots(data_dir: str | os.PathLike) -> list[Path]:
    """Folders that may hold cache entries for ``data_dir``, in the order they are tried.

    Args:
        data_dir: The data folder.

    Returns:
        ``[<data_dir>/.hpo-cache, <$HPO_CACHE_DIR or ~/.cache/hpo>/<hash of data_dir>]``.
    """
    data_dir = Path(data_dir)
    fallback_base = Path(os.environ.get("HPO_CACHE_DIR") or Path.home() / ".cache" / "hpo")
    path_hash = hashlib.sha256(str(data_dir.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return [data_dir / CACHE_DIR_NAME, fallback_base / path_hash]


def _read_entry(entry: Path) -> tuple[dict, dict[str, np.ndarray]] | None:
    try:
        meta = json.loads((entry / "meta.json").read_text())
        arrays = {
            name: np.load(entry / f"{name}.npy", mmap_mode="r" if name.endswith("images") else None)
            for name in ARRAY_NAMES
        }
    except (OSError, ValueError):
        return None
    return meta, arrays


def _remove_stale_tmp(root: Path) -> None:
    now = time.time()
    for tmp in root.glob("*.tmp-*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def _write_entry(root: Path, entry_name: str, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root)
    tmp = Path(tempfile.mkdtemp(prefix=f"{entry_name}.tmp-", dir=root))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; other users of a shared data folder read it too
        for name in ARRAY_NAMES:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name]))
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, root / entry_name)
        except OSError:
            # Another worker renamed its copy first (the target exists and is not empty): use it.
            if not (root / entry_name / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / entry_name


def cached_source(
    data_dir: str | os.PathLike,
    entry_name: str,
    build: Callable[[], tuple[dict, dict[str, np.ndarray]]],
) -> tuple[dict, dict[str, np.ndarray], Path | None]:
    """Load a decoded source from the cache, or build it once and cache it.

    Args:
        data_dir: The data folder the source comes from.
        entry_name: Cache entry name; it must change whenever the source's content does.
        build: Decodes the source; returns (JSON-able meta, arrays named as ``ARRAY_NAMES``).

    Returns:
        (meta, arrays, entry folder or None when no cache location is writable). Image arrays are
        read-only memory maps when they come from the cache.
    """
    roots = cache_roots(data_dir)
    for root in roots:
        found = _read_entry(root / entry_name)
        if found is not None:
            return found[0], found[1], root / entry_name
    meta, arrays = build()
    errors = []
    for root in roots:
        try:
            entry = _write_entry(root, entry_name, meta, arrays)
        except OSError as exc:  # read-only mount, disk full, permission: try the next location
            errors.append(f"{root}: {exc}")
            continue
        found = _read_entry(entry)
        if found is not None:
            return found[0], found[1], entry
    warnings.warn(
        f"no writable cache location for {data_dir} ({'; '.join(errors)}); "
        "the images will be decoded again next time (set HPO_CACHE_DIR to a writable folder)",
        stacklevel=2,
    )
    return meta, arrays, None


def cached_json(entry: Path | None, name: str, compute: Callable[[], dict]) -> dict:
    """A small JSON value cached beside a source entry (e.g. normalisation statistics).

    Args:
        entry: The source's cache entry folder, or None (then nothing is cached).
        name: File name inside the entry.
        compute: Computes the value when it is not cached.

    Returns:
        The cached or computed value.
    """
    if entry is not None:
        try:
            return json.loads((entry / name).read_text())
        except (OSError, ValueError):
            pass
    value = compute()
    if entry is not None:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f"{name}.tmp-", dir=entry)
            with os.fdopen(fd, "w") as f:
                json.dump(value, f)
            os.replace(tmp, entry / name)
        except OSError:
            pass  # a read-only cache still serves the arrays; the value is recomputed next time
    return value

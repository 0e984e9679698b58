"""A cache of the parameters and MACs of named variants, so ``hpo models`` builds no model twice.

Counting a variant means building it (on the meta device) and running one forward pass under
PyTorch's FLOP counter: about a second for a DenseNet-161. The numbers only change with the code
that builds the model, so each entry is keyed by the variant's name, knobs and number of classes,
and by a fingerprint of what builds it: the torch version, hpo's model package and the source
file of the variant's family (a plug-in family's own module included). Anything else changed
gives a new key, and the variant is counted again.

The cache is one JSON file, ``$HPO_CACHE_DIR/model-stats.json`` (default
``$XDG_CACHE_HOME/hpo`` or ``~/.cache/hpo``). A cache that cannot be read or written is ignored:
the table is then computed, as without one.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import tempfile
from pathlib import Path

CACHE_FILE = "model-stats.json"

# Models this process built to count them (the tests read it to prove that a cached table builds none).
models_built = 0


def cache_dir() -> Path:
    """Where the cache lives: ``$HPO_CACHE_DIR``, else ``$XDG_CACHE_HOME/hpo``, else ``~/.cache/hpo``."""
    if os.environ.get("HPO_CACHE_DIR"):
        return Path(os.environ["HPO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hpo"


@functools.lru_cache(maxsize=None)
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "?"


def _package_digest() -> str:
    import torch

    package = Path(__file__).resolve().parent
    parts = [torch.__version__, *(f"{p.name}:{_file_digest(str(p))}" for p in sorted(package.glob("*.py")))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _entry_key(name: str, num_classes: int, package: str) -> str:
    from hpo.models.registry import families, variants

    family, knobs = variants()[name] if name in variants() else (name, {})
    build = families()[family].build if family in families() else None
    source = inspect.getsourcefile(build) if build is not None else None
    return json.dumps([name, num_classes, family, repr(sorted(knobs.items())), package,
                       _file_digest(source) if source else "?"])


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path, entries: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
            json.dump(entries, tmp)
        os.replace(tmp.name, path)  # another `hpo models` reading at the same time sees the old or the new file
    except OSError:
        pass  # a read-only home: the next call counts again


def cached_stats(names: list[str], num_classes: int) -> list[tuple[int, int]]:
    """``(param_count, macs)`` of each variant (or family at default knobs), from the cache where it holds them.

    Args:
        names: Registered variant or family names.
        num_classes: Outputs of the head.

    Returns:
        One pair per name, in order.

    Raises:
        ValueError: an unknown name.
    """
    global models_built
    from hpo.models.stats import model_stats

    path = cache_dir() / CACHE_FILE
    entries = _load(path)
    package = _package_digest()
    result, changed = [], False
    for name in names:
        key = _entry_key(name, num_classes, package)
        cached = entries.get(key)
        if not (isinstance(cached, list) and len(cached) == 2 and all(isinstance(v, int) for v in cached)):
            cached = list(model_stats(name, num_classes))
            models_built += 1
            entries[key], changed = cached, True
        result.append((cached[0], cached[1]))
    if changed:
        _save(path, entries)
    return result

"""Finding study files: a name is looked up in ``./studies``, then in the shipped ``studies/``.

A local file hides a shipped one of the same name, so a user can copy a shipped study into
``./studies`` and edit it. Reading and validating a file is :func:`hpo.config.load_study`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from hpo.errors import ConfigError
from hpo.typed import read_yaml


def _shipped_studies_dir() -> Path:
    import hpo

    return Path(hpo.__file__).resolve().parent.parent / "studies"


def _default_search_dirs() -> list[Path]:
    dirs = [Path.cwd() / "studies", _shipped_studies_dir()]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def find_study_file(name_or_path: str | Path, search_dirs: list[Path] | None = None) -> Path:
    """Resolve a study argument to a file.

    A value containing a path separator or ending in ``.yaml``/``.yml`` is a path. Otherwise it
    is a study name, looked up as ``<dir>/<name>.yaml`` in ``./studies`` and then in the
    repository's ``studies/``.

    Args:
        name_or_path: ``densenet-mini`` or ``path/to/study.yaml``.
        search_dirs: Directories to search for names (default: ./studies, the shipped studies/).

    Returns:
        The study file.

    Raises:
        ConfigError: not found (lists the available names).
    """
    text = str(name_or_path)
    if not text or "\x00" in text:
        raise ConfigError(f"study {text!r} is not a valid study name or path")
    looks_like_path = isinstance(name_or_path, Path) or os.sep in text or "/" in text or text.endswith((".yaml", ".yml"))
    if looks_like_path:
        path = Path(text)
        if path.is_file():
            return path
        _refuse_folder(path)
        raise ConfigError(f"study file {text} does not exist; give an existing file or a study name")
    dirs = search_dirs if search_dirs is not None else _default_search_dirs()
    for directory in dirs:
        for suffix in (".yaml", ".yml"):
            candidate = Path(directory) / f"{text}{suffix}"
            if candidate.is_file():
                return candidate
    _refuse_folder(Path(text))
    available = sorted({p.stem for d in dirs for p in _study_files(Path(d))})
    listing = ", ".join(available) if available else "none"
    raise ConfigError(f"no study named {text!r} in {', '.join(display_path(Path(d)) for d in dirs)}; available: {listing}")


def _refuse_folder(path: Path) -> None:
    # `hpo validate studies/` names a folder: say so rather than "does not exist".
    if path.is_dir():
        yamls = _study_files(path)
        example = f" such as {path / yamls[0].name}" if yamls else ""
        raise ConfigError(f"study file {path} is a folder, not a file; give one study YAML file in it{example}, "
                          "or a study name")


def _study_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def list_studies(search_dirs: list[Path] | None = None) -> list[tuple[str, str]]:
    """Study names and descriptions, local ``./studies`` first (a local file hides a shipped one).

    Args:
        search_dirs: Directories to list (default: ./studies, the shipped studies/).

    Returns:
        Sorted (name, description) pairs; an unreadable file says so in its description.
    """
    found: dict[str, str] = {}
    for directory in search_dirs if search_dirs is not None else _default_search_dirs():
        for path in _study_files(Path(directory)):
            if path.stem in found:
                continue
            try:
                data = read_yaml(path, display_path(path))
                description = data.get("description", "") if isinstance(data, Mapping) else ""
                found[path.stem] = description if isinstance(description, str) else ""
            except ConfigError as exc:
                found[path.stem] = f"(unreadable: {exc})"
    return sorted(found.items())

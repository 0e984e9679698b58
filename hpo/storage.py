"""Where studies live: storage URLs, password masking, and the artifact store for checkpoints.

Storage URLs:

- ``sqlite:///hpo.db`` (default): one file, no server; fine for the workers of one machine.
- ``postgresql://user@host/db`` or ``mysql://user@host/db``: for workers on many machines
  (drivers: psycopg 3 and PyMySQL, chosen here so plain URLs work).
- ``journal:///path/study.log``: Optuna's journal file; ``redis://host:6379/0``: Optuna's journal on
  Redis. Liveness is kept by hpo's own heartbeats (see ``hpo.workers``), so killed workers are
  detected on every storage, journals included.

The URL comes from ``--storage``, else ``--storage-file PATH`` (a file holding the URL, so the
password stays out of ``ps``), else ``$HPO_STORAGE``, else the SQLite default. Every URL shown to a
user goes through :func:`mask_url`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore

from hpo.errors import ConfigError

DEFAULT_STORAGE = "sqlite:///hpo.db"
DEFAULT_ARTIFACTS = "artifacts"

_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


def resolve_storage_url(storage: str | None = None, storage_file: str | os.PathLike | None = None) -> str:
    """The storage URL from the command line, a file, ``$HPO_STORAGE`` or the default.

    Args:
        storage: an explicit URL (``--storage``).
        storage_file: a file whose first non-empty line is the URL (``--storage-file``).

    Returns:
        The URL, stripped.
    """
    if storage:
        return storage.strip()
    if storage_file:
        path = Path(storage_file)
        try:
            lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        except OSError as exc:
            raise ConfigError(f"--storage-file {path}: cannot read it ({exc.strerror}); give a readable file holding the storage URL") from None
        if not lines:
            raise ConfigError(f"--storage-file {path}: the file is empty; write the storage URL on its first line")
        return lines[0]
    env = os.environ.get("HPO_STORAGE", "").strip()
    return env or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print or log)."""
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


def mask_text(text: str, url: str) -> str:
    """``text`` with the password of ``url`` masked wherever it appears (errors quote URLs)."""
    match = re.search(r"//[^/:@]*:([^@/]*)@", url)
    if match and match.group(1):
        text = text.replace(match.group(1), "***")
    return re.sub(r"(//[^/:@\s]*:)[^@/\s]*@", r"\1***@", text)


def _sqlalchemy_url(url: str) -> str:
    # Plain postgresql:// would pick psycopg2 and mysql:// MySQLdb; we ship psycopg 3 and PyMySQL.
    for plain, explicit in (("postgresql://", "postgresql+psycopg://"), ("postgres://", "postgresql+psycopg://"),
                            ("mysql://", "mysql+pymysql://"), ("mariadb://", "mysql+pymysql://")):
        if url.startswith(plain):
            return explicit + url[len(plain):]
    return url


def storage_kind(url: str) -> str:
    """One of ``sqlite``, ``postgresql``, ``mysql``, ``journal``, ``redis``."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("postgres", "postgresql"):
        return "postgresql"
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    if scheme in ("sqlite", "journal", "redis"):
        return scheme
    raise ConfigError(
        f"storage URL {mask_url(url)!r} has an unknown scheme {scheme!r}; use sqlite:///FILE, postgresql://..., "
        "mysql://..., journal:///FILE or redis://HOST:PORT/DB"
    )


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``.

    SQLite gets a long busy timeout so that several local workers wait for the file lock instead of
    failing with "database is locked"; server databases get ``pool_pre_ping`` so that a connection
    broken by a database restart is replaced instead of failing the next query.

    Raises:
        ConfigError: unknown scheme, or the database cannot be reached (password masked).
    """
    kind = storage_kind(url)
    try:
        if kind == "journal":
            # Like SQLite: journal:///rel/path.log is relative, journal:////abs/path.log absolute.
            if not url.startswith("journal:///") or len(url) <= len("journal:///"):
                raise ConfigError(f"storage URL {url!r} needs a file: journal:///FILE (relative) or journal:////ABS/FILE")
            path = url[len("journal:///"):]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(
                path, lock_obj=optuna.storages.journal.JournalFileOpenLock(path)
            )
            return optuna.storages.JournalStorage(backend)
        if kind == "redis":
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalRedisBackend(url))
        engine_kwargs: dict = {}
        if kind == "sqlite":
            engine_kwargs = {"connect_args": {"timeout": 120}}
            db = url.split(":///", 1)[1] if ":///" in url else ""
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
        else:
            engine_kwargs = {"pool_pre_ping": True, "pool_recycle": 300}
        return optuna.storages.RDBStorage(_sqlalchemy_url(url), engine_kwargs=engine_kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # driver errors carry the URL: mask it
        raise ConfigError(
            f"cannot open storage {mask_url(url)}: {mask_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, url)}; "
            "check that the database server is running and the URL is right"
        ) from None


def open_artifact_store(path: str | os.PathLike | None = None) -> FileSystemArtifactStore:
    """The artifact store for checkpoints: ``--artifacts DIR``, ``$HPO_ARTIFACTS`` or ``./artifacts``.

    Several machines must share this folder (NFS, a cluster's scratch) for retried trials and
    ``hpo evaluate`` to find checkpoints written elsewhere.
    """
    root = Path(path or os.environ.get("HPO_ARTIFACTS") or DEFAULT_ARTIFACTS)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--artifacts {root}: cannot create the folder ({exc.strerror}); choose a writable folder") from None
    return FileSystemArtifactStore(str(root))


def safe_component(name: str, what: str = "study name") -> str:
    """``name`` if it can be used as one path component (no separators, ``..``, NUL or leading dot).

    Raises:
        ConfigError: naming the value and what is allowed.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name or "") or ".." in name:
        raise ConfigError(
            f"{what} {name!r} cannot be used in a path; use letters, digits, '.', '_' and '-' only, "
            "starting with a letter or digit"
        )
    return name

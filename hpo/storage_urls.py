"""Storage URLs: where the URL comes from, what kind of storage it names, and how it is shown.

- ``sqlite:///hpo.db`` (the default), ``postgresql://user@host/db``, ``mysql://user@host/db``
  (``mysql://`` and ``mariadb://`` mean PyMySQL, ``postgresql://`` psycopg 3: the drivers hpo ships);
- a plain file path such as ``study.log``: an Optuna journal file, the form ``optuna`` and
  ``optuna-dashboard`` take; hpo's older ``journal:///study.log`` names the same file;
- ``redis://host:6379/0``: Optuna's journal on Redis.

The URL comes from ``--storage``, else ``--storage-file``, else ``$HPO_STORAGE``, else
``$OPTUNA_STORAGE``, else the SQLite default (:func:`resolve_storage_url`, the one place that reads
them). Every URL shown to a user goes through :func:`mask_url`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hpo.errors import ConfigError

DEFAULT_STORAGE = "sqlite:///hpo.db"
STORAGE_ENV_VARS = ("HPO_STORAGE", "OPTUNA_STORAGE")  # read in this order when no URL is given
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")  # a bare path with these is a SQLite file, not a journal


def resolve_storage_url(storage: str | None = None, storage_file: str | os.PathLike | None = None) -> str:
    """The storage URL from the command line, a file, ``$HPO_STORAGE``, ``$OPTUNA_STORAGE`` or the default.

    Args:
        storage: an explicit URL (``--storage``).
        storage_file: a file whose first non-empty line is the URL (``--storage-file``).

    Returns:
        The URL, stripped.

    Raises:
        ConfigError: both ``storage`` and ``storage_file`` are given, or the file cannot be read.
    """
    if storage and storage_file:
        raise ConfigError(f"--storage {mask_url(storage.strip())} and --storage-file {storage_file} both name the storage; "
                          "give one of them")
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
    for variable in STORAGE_ENV_VARS:
        env = os.environ.get(variable, "").strip()
        if env:
            return env
    return DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print or log)."""
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


def mask_text(text: str, url: str) -> str:
    """``text`` with the password of ``url`` masked wherever it appears (errors quote URLs)."""
    match = re.search(r"//[^/:@]*:([^@/]*)@", url)
    if match and match.group(1):
        text = text.replace(match.group(1), "***")
    return re.sub(r"(//[^/:@\s]*:)[^@/\s]*@", r"\1***@", text)


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy is given: plain ``postgresql://`` and ``mysql://`` with the drivers hpo ships."""
    # Plain postgresql:// would pick psycopg2 and mysql:// MySQLdb; we ship psycopg 3 and PyMySQL.
    for plain, explicit in (("postgresql://", "postgresql+psycopg://"), ("postgres://", "postgresql+psycopg://"),
                            ("mysql://", "mysql+pymysql://"), ("mariadb://", "mysql+pymysql://")):
        if url.startswith(plain):
            return explicit + url[len(plain):]
    return url


def storage_kind(url: str) -> str:
    """One of ``sqlite``, ``postgresql``, ``mysql``, ``journal``, ``redis``.

    A plain file path (no ``scheme://``) is a journal file, as Optuna's CLI and optuna-dashboard
    take it; one ending in ``.db``/``.sqlite`` is refused, since it is almost surely a SQLite file.
    """
    if "://" not in url:
        if not url.strip():
            raise ConfigError("the storage URL is empty; use sqlite:///FILE, postgresql://..., mysql://..., "
                              "a journal file path (study.log) or redis://HOST:PORT/DB")
        if url.lower().endswith(_SQLITE_SUFFIXES):
            raise ConfigError(f"storage {url!r} is a file path ending in {Path(url).suffix}: for a SQLite file write "
                              f"sqlite:///{url}; a plain path is a journal file (e.g. study.log)")
        return "journal"
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("postgres", "postgresql"):
        return "postgresql"
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    if scheme in ("sqlite", "journal", "redis"):
        return scheme
    raise ConfigError(
        f"storage URL {mask_url(url)!r} has an unknown scheme {scheme!r}; use sqlite:///FILE, postgresql://..., "
        "mysql://..., a journal file path (study.log) or redis://HOST:PORT/DB"
    )


def journal_path(url: str) -> str:
    """The file of a journal storage: the plain path (Optuna's form), or ``FILE`` of ``journal:///FILE``
    (hpo's older form: ``journal:///rel/path.log`` is relative, ``journal:////abs/path.log`` absolute).

    Raises:
        ConfigError: a ``journal:`` URL without a file.
    """
    if "://" not in url:
        return url
    if not url.startswith("journal:///") or len(url) <= len("journal:///"):
        raise ConfigError(f"storage URL {url!r} needs a file: write the journal file's path (study.log), "
                          "or journal:///FILE")
    return url[len("journal:///"):]


def is_sqlite_file(path: str) -> bool:
    """Whether ``path`` is a SQLite database file (its header), e.g. given where a journal file is expected."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False

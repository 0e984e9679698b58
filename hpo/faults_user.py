"""What a user sees for a fault: one sentence and an exit code, for anything a command raises.

This is the one place that maps exceptions to what the terminal shows. The CLI wrapper
(``user_errors`` in the CLI's common module) and the worker entry point (``python -m hpo.workers``) call
:func:`describe`; :func:`storage_fault` classifies a database error where the storage URL is known.

============  ===============================================================================
exit code     meaning
============  ===============================================================================
0             done
1             an environment fault: a path that cannot be written, a database file that is
              read-only or corrupt, a port in use, a database server down, an unexpected error
2             a user mistake: a bad flag, file, key or value (``hpo.errors.HpoError``)
130           interrupted (Ctrl-C, SIGTERM)
============  ===============================================================================

Each prints one line and no traceback, unless ``hpo --debug`` (or ``HPO_DEBUG=1``) is given; then
the traceback comes first, and the line and the exit code stay the same.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import traceback
from dataclasses import dataclass
from pathlib import Path

from hpo.errors import ConfigError, EnvironmentFault, HpoError, exception_chain

EXIT_ENVIRONMENT = 1
EXIT_USER = 2
EXIT_INTERRUPTED = 130

DEBUG_ENV = "HPO_DEBUG"


@dataclass(frozen=True)
class Fault:
    """What the terminal shows for an exception: ``message`` on one line, then exit ``exit_code``."""

    exit_code: int
    message: str


def debug_enabled() -> bool:
    """Whether tracebacks are shown (``hpo --debug`` sets ``HPO_DEBUG=1``, which workers inherit)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(text: str) -> str:
    """``text`` on one line (parser messages and keys may hold line breaks)."""
    return " ".join(str(text).split())


def describe(exc: BaseException) -> Fault:
    """The line and exit code for ``exc``, whatever it is.

    Args:
        exc: What a command raised.

    Returns:
        ``HpoError``: its own exit code (2, or 1 for an :class:`~hpo.errors.EnvironmentFault`);
        ``KeyboardInterrupt``: 130; an ``OSError`` or a database error anywhere in the chain: 1,
        naming the file or the storage; anything else: 1, with the exception's first line and how
        to see the traceback.
    """
    from hpo.trials import StopReason

    if isinstance(exc, KeyboardInterrupt):
        summary = getattr(exc, "summary", None)  # a worker's: which trial, and the command that resumes it
        return Fault(EXIT_INTERRUPTED, summary() if callable(summary) else str(StopReason.INTERRUPTED))
    if isinstance(exc, HpoError):
        return Fault(exc.exit_code, f"error: {one_line(exc)}")
    os_error = _in_chain(exc, OSError)
    if os_error is not None and not _is_database_error(exc):
        fault = os_fault(os_error)
        return Fault(fault.exit_code, f"error: {one_line(fault)}")
    if _is_database_error(exc):
        fault = storage_fault("", exc)
        return Fault(fault.exit_code, f"error: {one_line(fault)}")
    detail = one_line(str(exc)) or "no message"
    return Fault(EXIT_ENVIRONMENT, f"error: unexpected {type(exc).__name__}: {detail[:300]}; run the command again "
                                   "with `hpo --debug ...` to see the traceback, and report it")


def format_traceback(exc: BaseException) -> str:
    """The traceback ``hpo --debug`` prints before the line."""
    return "".join(traceback.format_exception(exc)).rstrip()


# ---------------------------------------------------------------------------------------------
# Files and folders
# ---------------------------------------------------------------------------------------------


def os_fault(exc: OSError) -> EnvironmentFault:
    """One sentence for a file-system error, naming the path and how to fix it (exit 1)."""
    path = exc.filename
    reason = exc.strerror or type(exc).__name__
    if path is None:
        if exc.errno == errno.EADDRINUSE:
            return EnvironmentFault(f"the address is in use ({reason}); choose another --port")
        return EnvironmentFault(f"{reason}; check the paths and devices this command uses")
    where = Path(os.fsdecode(path))
    if exc.errno == errno.ENOENT and not where.parent.exists():
        return EnvironmentFault(f"cannot write {where}: the folder {where.parent} does not exist; create it "
                                f"(mkdir -p {where.parent}) or choose a path in an existing folder")
    if exc.errno == errno.ENOENT:
        return EnvironmentFault(f"{where} does not exist; check the path")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return EnvironmentFault(f"cannot write {where} ({reason}); choose a writable path")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return EnvironmentFault(f"cannot write {where}: the disk is full ({reason}); free space or choose another disk")
    if exc.errno == errno.EISDIR:
        return EnvironmentFault(f"{where} is a folder; give a file path")
    if exc.errno == errno.EEXIST and where.is_file():
        return EnvironmentFault(f"{where} is a file, so it cannot be a folder; choose another path")
    if exc.errno == errno.ENOTDIR:
        return EnvironmentFault(f"{where}: part of the path is a file, not a folder; choose another path")
    return EnvironmentFault(f"{where}: {reason}; check the path")


# ---------------------------------------------------------------------------------------------
# Databases
# ---------------------------------------------------------------------------------------------

# Substrings of driver messages, most specific first: (pattern, user mistake?, what it means and the fix).
_STORAGE_FAULTS: tuple[tuple[str, bool, str], ...] = (
    (r"readonly database|read-only file system",  False,
     "the SQLite file {file} is read-only; make it writable, or copy the study to a writable folder with "
     "`sqlite3 {file} \".backup copy.db\"` and use --storage sqlite:///copy.db"),
    (r"unable to open database file", False,
     "cannot open the SQLite file {file}: its folder is missing or not writable (SQLite writes {file}-wal and "
     "{file}-shm beside it); use a file in a writable folder"),
    (r"file is not a database|database disk image is malformed|file is encrypted", False,
     "{file} is not a SQLite database, or it is corrupt; restore it from a backup, or point --storage at another file"),
    (r"database is locked", False,
     "the SQLite file {file} stays locked by another program; stop it, or use PostgreSQL for many workers"),
    (r"password authentication failed|access denied|authentication failed|role .* does not exist", True,
     "the server refused the user or password; check them in the storage URL (or in --storage-file)"),
    (r"database .* does not exist|unknown database", True,
     "the database named in the storage URL does not exist on the server; create it, or fix the URL"),
    (r"could not translate host name|name or service not known|unknown mysql server host|nodename nor servname", True,
     "the host in the storage URL is unknown; check its spelling"),
    (r"connection refused|can't connect|could not connect|connection failed|timeout expired|timed out|"
     r"server closed the connection|lost connection|connection reset", False,
     "the database server is not reachable; check that it is running and that the URL's host and port are right"),
)


def storage_fault(url: str, exc: BaseException) -> HpoError:
    """One sentence for a database error, naming the storage (password masked) and the fix.

    Args:
        url: The storage URL ("" when unknown).
        exc: The driver's or Optuna's exception (its causes are searched too).

    Returns:
        An :class:`~hpo.errors.EnvironmentFault` (exit 1: read-only, missing or corrupt file, server
        down), or a :class:`~hpo.errors.ConfigError` (exit 2: wrong password, database or host name).
    """
    from hpo.storage import mask_text, mask_url

    detail = mask_text(_chain_message(exc), url)
    file = _sqlite_file(url) or "the database file"
    where = f"storage {mask_url(url)}: " if url else ""
    for pattern, mistake, meaning in _STORAGE_FAULTS:
        if re.search(pattern, detail, re.IGNORECASE):
            text = f"{where}{meaning.format(file=file)} ({detail})"
            return ConfigError(text) if mistake else EnvironmentFault(text)
    advice = ("check that the file is on a local disk and readable" if url.startswith("sqlite")
              else "check the storage URL and that the database is reachable")
    return EnvironmentFault(f"{where}cannot use the storage ({detail}); {advice}" if where
                            else f"the storage failed ({detail}); {advice}")


def _sqlite_file(url: str) -> str | None:
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    return path if path and path != ":memory:" else None


def _is_database_error(exc: BaseException) -> bool:
    import optuna

    try:
        import sqlalchemy.exc as sa_exc

        kinds: tuple[type[BaseException], ...] = (sa_exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency of optuna
        kinds = (optuna.exceptions.StorageInternalError,)
    return _in_chain(exc, kinds) is not None


def _in_chain(exc: BaseException, kinds) -> BaseException | None:
    return next((link for link in exception_chain(exc) if isinstance(link, kinds)), None)


def _chain_message(exc: BaseException) -> str:
    # The innermost exception names what happened ("attempt to write a readonly database"); SQLAlchemy
    # appends the statement and a link after a blank line: keep the first line only.
    last = list(exception_chain(exc))[-1]
    lines = [line for line in str(last).splitlines() if line.strip()]
    text = lines[0] if lines else type(last).__name__
    return one_line(re.sub(r"^\([\w.]+\)\s*", "", text))


# ---------------------------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------------------------


def check_port(host: str, port: int, flag: str = "--port") -> None:
    """Refuse a port out of range (exit 2) or already in use on ``host`` (exit 1) before serving.

    Raises:
        ConfigError: ``port`` is not within 1..65535.
        EnvironmentFault: the address is taken, or ``host`` cannot be bound here.
    """
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"{flag} {port} is out of range; give a port from 1 to 65535 (e.g. 8080)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: unknown address ({exc.strerror}); use 127.0.0.1, localhost or this "
                          "machine's address") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EnvironmentFault(f"{flag} {port}: the port is already in use on {host}; stop what serves it, "
                                       f"or choose another port (e.g. {flag} {port + 1 if port < 65535 else 8080})") from None
            raise EnvironmentFault(f"--host {host} {flag} {port}: cannot listen there ({exc.strerror}); "
                                   "use 127.0.0.1 or an address of this machine") from None


# ---------------------------------------------------------------------------------------------
# Paths a command will write
# ---------------------------------------------------------------------------------------------


def require_writable_file(path: str | os.PathLike, flag: str) -> None:
    """Refuse, before any work, a file path whose folder is missing or cannot be written (exit 1).

    ``access()`` reports a read-only mount (EROFS) even to root, for whom file modes do not count.

    Raises:
        EnvironmentFault: naming the option, the path and the fix.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ConfigError(f"{flag} {target}: that is a folder; give a file path")
    if not folder.is_dir():
        raise EnvironmentFault(f"{flag} {target}: the folder {folder} does not exist; create it (mkdir -p {folder}) "
                               "or choose a path in an existing folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise EnvironmentFault(f"{flag} {target}: cannot write there (read-only or no permission); choose a "
                               "path in a writable folder")

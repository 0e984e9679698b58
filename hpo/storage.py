"""Where studies live: storage URLs, password masking, and the artifact store for checkpoints.

Storage URLs:

- ``sqlite:///hpo.db`` (default): one file, no server; fine for the workers of one machine.
- ``postgresql://user@host/db`` or ``mysql://user@host/db``: for workers on many machines
  (drivers: psycopg 3 and PyMySQL, chosen here so plain URLs work).
- ``study.log`` (a plain file path, as ``optuna`` and ``optuna-dashboard`` take it): Optuna's journal
  file; hpo's older ``journal:///study.log`` names the same file and still works.
  ``redis://host:6379/0``: Optuna's journal on Redis. Liveness is kept by hpo's own heartbeats (see ``hpo.workers.liveness``), so killed workers are
  detected on every storage, journals included.

The URL comes from ``--storage``, else ``--storage-file PATH`` (a file holding the URL, so the
password stays out of ``ps``), else ``$HPO_STORAGE``, else ``$OPTUNA_STORAGE``, else the SQLite
default. Every URL shown to a user goes through :func:`mask_url`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore

from hpo import compat
from hpo.errors import ConfigError, HpoError, exception_chain
from hpo.storage_urls import (  # noqa: F401  (URLs are parsed there; re-exported)
    DEFAULT_STORAGE, STORAGE_ENV_VARS, is_sqlite_file, journal_path, mask_text, mask_url, resolve_storage_url,
    sqlalchemy_url, storage_kind,
)

DEFAULT_ARTIFACTS = "artifacts"


def open_storage(url: str, *, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``.

    With ``must_exist`` (read-only commands), a SQLite or journal file that is not there is refused
    instead of being created, together with its folder.

    SQLite gets a long busy timeout so that several local workers wait for the file lock instead of
    failing with "database is locked"; server databases get ``pool_pre_ping`` so that a connection
    broken by a database restart is replaced instead of failing the next query.

    Raises:
        ConfigError: unknown scheme, a wrong password or database name (password masked), or with
            ``must_exist`` its file is missing.
        EnvironmentFault: the server is down, or the SQLite file is read-only (for a command that
            writes), corrupt or in a folder that cannot be written (see ``hpo.faults_user``).
    """
    kind = storage_kind(url)
    if must_exist:
        _require_storage_file(url, kind)
    try:
        if kind == "journal":
            path = journal_path(url)
            if is_sqlite_file(path):
                raise ConfigError(f"storage {url!r} is a SQLite file, not a journal; write sqlite:///{path}")
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
                _require_sqlite_header(url, db.split("?", 1)[0])
                if not must_exist:
                    _require_writable_sqlite(url, db.split("?", 1)[0])
        else:
            engine_kwargs = {"pool_pre_ping": True, "pool_recycle": 300}
        storage = optuna.storages.RDBStorage(sqlalchemy_url(url), engine_kwargs=engine_kwargs)
        if kind == "sqlite" and db not in ("", ":memory:"):  # an in-memory database lives in its one connection
            _use_sqlite_wal(storage.engine)
        return storage
    except HpoError:
        raise
    except Exception as exc:  # driver errors carry the URL: mask it
        from hpo.faults_user import storage_fault

        # Read-only, missing or corrupt SQLite file, server down: exit 1; wrong password or name: exit 2.
        raise storage_fault(url, exc) from None


def _require_storage_file(url: str, kind: str) -> None:
    """Refuse a SQLite or journal URL whose file does not exist (a read-only command would create it)."""
    if kind == "journal":
        path = journal_path(url)
    elif kind == "sqlite" and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
    else:
        return
    if path and path != ":memory:" and not Path(path).is_file():
        raise ConfigError(f"storage {mask_url(url)}: the database file {path} does not exist; check --storage "
                          "(or $HPO_STORAGE), or create the study there with `hpo run --study NAME`")


SQLITE_MIN_PAGE_BYTES = 512


def _require_sqlite_header(url: str, path: str) -> None:
    """Refuse a file that is not a SQLite database before SQLite sees it: for some contents (a few bytes)
    SQLite would take it for an empty database and Optuna would write its tables over it."""
    from hpo.errors import EnvironmentFault

    # Only a file smaller than SQLite's smallest page is read. Closing any descriptor of a file drops every
    # POSIX lock this process holds on it, SQLite's included (its documented "how to corrupt" case 2.2): a
    # process that has the database open already, and opens it again, would then let another process
    # delete the -wal and -shm files under it and go on reading a stale snapshot. A SQLite database is at
    # least one 512-byte page (an empty new one is 0 bytes), and SQLite itself refuses a larger file that
    # is not a database; the few-byte files it would take for an empty database are the ones read here.
    try:
        size = os.stat(path).st_size
        if size == 0 or size >= SQLITE_MIN_PAGE_BYTES:
            return
        with open(path, "rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise EnvironmentFault(f"storage {mask_url(url)}: cannot read the SQLite file {path} ({exc.strerror}); "
                               "check its permissions and disk") from None
    if head and head != b"SQLite format 3\x00":
        raise EnvironmentFault(f"storage {mask_url(url)}: {path} is not a SQLite database, or it is corrupt; "
                               "restore it from a backup, or point --storage at another file")


def _require_writable_sqlite(url: str, path: str) -> None:
    """Refuse, naming the file, a SQLite file that a command which writes could only fail on later."""
    from hpo.errors import EnvironmentFault

    # access() reports a read-only mount (EROFS) even to root, for whom chmod does not count.
    if Path(path).is_file() and not os.access(path, os.W_OK):
        raise EnvironmentFault(f"storage {mask_url(url)}: the SQLite file {path} is read-only; make it writable, or "
                               f"copy the study to a writable folder (sqlite3 {path} \".backup copy.db\") and use that copy")


def _use_sqlite_wal(engine) -> None:
    """Put a SQLite file in write-ahead-log mode, keeping full disk syncs.

    In the default rollback-journal mode every commit syncs the journal and the database file
    several times, and readers block the writer; a trial makes a few dozen commits. In WAL mode a
    commit appends to the ``-wal`` file and syncs it once (``synchronous=FULL`` keeps a committed
    trial through a power cut), and readers no longer block writers, so local workers wait less
    for the lock. WAL needs every process on the same machine (no network filesystem), which is
    already the rule for SQLite here. The mode is stored in the file; ``synchronous`` is per
    connection, hence the connect hook. ``hpo.db-wal`` and ``hpo.db-shm`` appear beside the file
    while a process has it open: copy the study with ``sqlite3 hpo.db ".backup copy.db"``.
    """
    import sqlalchemy

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # a no-op once the file is in WAL mode
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    sqlalchemy.event.listen(engine, "connect", on_connect)
    engine.dispose()  # the connection RDBStorage opened to create the tables predates the hook


def open_artifact_store(path: str | os.PathLike | None = None, *, create: bool = True) -> FileSystemArtifactStore | None:
    """The artifact store for checkpoints: ``--artifacts DIR``, ``$HPO_ARTIFACTS`` or ``./artifacts``.

    Several machines must share this folder (NFS, a cluster's scratch) for retried trials and
    ``hpo evaluate`` to find checkpoints written elsewhere. Without ``create`` (read-only commands),
    a folder that does not exist gives None instead of being created.
    """
    root = Path(path or os.environ.get("HPO_ARTIFACTS") or DEFAULT_ARTIFACTS)
    if not create and not root.is_dir():
        return None
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


# ---------------------------------------------------------------------------------------------
# Riding out storage outages (a restarted database server, a busy SQLite file)
# ---------------------------------------------------------------------------------------------

DEFAULT_STORAGE_RETRY_SECONDS = 120.0
MAX_RETRY_DELAY_SECONDS = 10.0  # the longest wait between two tries of a failing call (the backoff doubles up to it)


def storage_retry_seconds() -> float:
    """How long a worker retries a failing storage call (``HPO_STORAGE_RETRY_SECONDS``, default 120)."""
    return float(os.environ.get("HPO_STORAGE_RETRY_SECONDS", DEFAULT_STORAGE_RETRY_SECONDS))


def is_transient_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) means "the database is unreachable or busy for now".

    Lost connections, refused connections, a server shutting down and SQLite's "database is
    locked" are transient; invalid data, integrity errors and Optuna's own errors are not.
    """
    import sqlalchemy.exc as sa_exc

    transient: tuple[type[BaseException], ...] = (
        sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError, ConnectionError,
    )
    try:
        import redis.exceptions as redis_exc

        transient += (redis_exc.ConnectionError, redis_exc.TimeoutError)
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    return any(isinstance(link, transient) for link in exception_chain(exc))


class RetryingStorage(optuna.storages.BaseStorage):
    """An Optuna storage whose calls ride out outages: transient errors are retried with backoff.

    Every call that fails with a transient error (see :func:`is_transient_storage_error`) is
    retried after 0.5 s, 1 s, 2 s, ... (at most 10 s apart), logging a warning, until it succeeds or
    ``retry_seconds`` have passed; then an ``EnvironmentFault`` (exit 1) names the storage (password masked) and, for
    a SQLite file that stays locked, points to PostgreSQL or the journal file. A trial's final state
    is retried like everything else, so a finished trial is not lost to a database restart.

    ``last_error_time`` is the time of the last transient failure this process saw: a worker that
    has just lived through an outage knows that the other workers' heartbeats could not be written
    either, and must not take their trials for lost (see ``hpo.workers.liveness.reap_stale_trials``).
    """

    def __init__(self, backend: optuna.storages.BaseStorage, url: str, retry_seconds: float | None = None) -> None:
        self._backend = backend
        self._url = url
        self._retry_seconds = storage_retry_seconds() if retry_seconds is None else float(retry_seconds)
        self.last_error_time = 0.0

    def __getattr__(self, name: str):  # backend-specific helpers (e.g. RDBStorage.engine)
        if name.startswith("__") or name in ("_backend", "_url", "_retry_seconds"):
            raise AttributeError(name)
        return getattr(self._backend, name)

    def _call(self, name: str, *args, **kwargs):
        return self._retry(name, getattr(self._backend, name), *args, **kwargs)

    def _retry_reconciling(self, name: str, attempt, reconcile):
        """``_retry`` for a call that is not safe to repeat: before each repeat, ``reconcile()`` looks for
        the effect of an earlier attempt that committed before its connection dropped, and returns it
        (not None) instead of doing it twice."""
        import logging

        tries = [0]

        def call():
            tries[0] += 1
            if tries[0] > 1:
                found = reconcile()
                if found is not None:
                    logging.getLogger("hpo").warning("storage call %s had committed before its connection dropped; "
                                                     "not repeated", name)
                    return found
            return attempt()

        return self._retry(name, call)

    def _retry(self, name: str, method, *args, **kwargs):
        import logging
        import time

        log = logging.getLogger("hpo")
        deadline = time.monotonic() + self._retry_seconds
        delay, failures = 0.5, 0
        while True:
            try:
                result = method(*args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                if failures and name == "set_trial_state_values":
                    # The attempt that "failed" had committed before the connection dropped.
                    trial = self._backend.get_trial(args[0] if args else kwargs["trial_id"])
                    wanted = args[1] if len(args) > 1 else kwargs.get("state")
                    if trial.state == wanted:
                        return True
                raise
            except Exception as exc:
                if not is_transient_storage_error(exc):
                    raise
                self.last_error_time = time.time()
                failures += 1
                detail = mask_text(_root_message(exc), self._url)
                if time.monotonic() + delay > deadline:
                    advice = ("check that the database file is on a local disk and that no other program holds it"
                              if storage_kind(self._url) == "sqlite" else
                              "check that the database server is running and reachable")
                    if storage_kind(self._url) == "sqlite" and "locked" in detail:
                        advice = ("SQLite cannot serve this many workers; use PostgreSQL (postgresql://...) or the "
                                  "journal file (journal:///FILE) for this load")
                    from hpo.errors import EnvironmentFault

                    raise EnvironmentFault(
                        f"storage {mask_url(self._url)} unreachable for {self._retry_seconds:.0f} s "
                        f"(HPO_STORAGE_RETRY_SECONDS; last error: {detail}); {advice}"
                    ) from None
                log.warning("storage call %s failed (%s); retry %d in %.1f s", name, detail, failures, delay)
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)
                continue
            if failures:
                self.last_error_time = time.time()
                log.warning("storage call %s succeeded after %d retries", name, failures)
            return result

    # Every BaseStorage method goes through _call (abstract ones, and the defaults a backend may speed up).
    def create_new_study(self, directions, study_name=None):
        return self._call("create_new_study", directions, study_name)

    def delete_study(self, study_id):
        return self._call("delete_study", study_id)

    def set_study_user_attr(self, study_id, key, value):
        return self._call("set_study_user_attr", study_id, key, value)

    def set_study_system_attr(self, study_id, key, value):
        return self._call("set_study_system_attr", study_id, key, value)

    def get_study_id_from_name(self, study_name):
        return self._call("get_study_id_from_name", study_name)

    def get_study_name_from_id(self, study_id):
        return self._call("get_study_name_from_id", study_id)

    def get_study_directions(self, study_id):
        return self._call("get_study_directions", study_id)

    def get_study_user_attrs(self, study_id):
        return self._call("get_study_user_attrs", study_id)

    def get_study_system_attrs(self, study_id):
        return self._call("get_study_system_attrs", study_id)

    def get_all_studies(self):
        return self._call("get_all_studies")

    def create_new_trial(self, study_id, template_trial=None):
        # Not safe to repeat: a create that committed before its connection dropped would leave an orphan
        # RUNNING trial holding a budget slot until reaped. The new trial carries a token to be found by.
        import uuid

        from hpo.trials import SYS_CREATE_TOKEN

        token = uuid.uuid4().hex
        template = _with_system_attr(template_trial, SYS_CREATE_TOKEN, token)

        def find():
            for trial in self._backend.get_all_trials(study_id, deepcopy=False):
                if trial.system_attrs.get(SYS_CREATE_TOKEN) == token:
                    return compat.trial_id(trial)
            return None

        return self._retry_reconciling("create_new_trial", lambda: self._backend.create_new_trial(study_id, template), find)

    def set_trial_param(self, trial_id, param_name, param_value_internal, distribution):
        return self._call("set_trial_param", trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id, trial_number):
        return self._call("get_trial_id_from_study_id_trial_number", study_id, trial_number)

    def get_trial_number_from_id(self, trial_id):
        return self._call("get_trial_number_from_id", trial_id)

    def get_trial_param(self, trial_id, param_name):
        return self._call("get_trial_param", trial_id, param_name)

    def set_trial_state_values(self, trial_id, state, values=None):
        from optuna.trial import TrialState

        rdb = compat.rdb_storage(self._backend)
        if state != TrialState.RUNNING or values is not None or rdb is None:
            return self._call("set_trial_state_values", trial_id, state, values)
        # Taking a WAITING trial (ask) is not safe to repeat either: a retry of a take that committed would
        # answer False and leave the trial RUNNING with nobody training it. The take writes a token with it.
        import uuid

        from hpo.trials import SYS_TAKE_TOKEN

        token = uuid.uuid4().hex

        def take():
            taken = compat.take_waiting_rdb_trial(rdb, trial_id, SYS_TAKE_TOKEN, token)
            return self._backend.set_trial_state_values(trial_id, state) if taken is None else taken

        def mine():
            trial = self._backend.get_trial(trial_id)
            return True if trial.state == TrialState.RUNNING and trial.system_attrs.get(SYS_TAKE_TOKEN) == token else None

        return self._retry_reconciling("take_waiting_trial", take, mine)

    def set_trial_intermediate_value(self, trial_id, step, intermediate_value):
        return self._call("set_trial_intermediate_value", trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id, key, value):
        return self._call("set_trial_user_attr", trial_id, key, value)

    def set_trial_system_attr(self, trial_id, key, value):
        return self._call("set_trial_system_attr", trial_id, key, value)

    def get_trial(self, trial_id):
        return self._call("get_trial", trial_id)

    def get_all_trials(self, study_id, deepcopy=True, states=None):
        return self._call("get_all_trials", study_id, deepcopy=deepcopy, states=states)

    def get_n_trials(self, study_id, state=None):
        return self._call("get_n_trials", study_id, state)

    def get_best_trial(self, study_id):
        return self._call("get_best_trial", study_id)

    def get_trial_params(self, trial_id):
        return self._call("get_trial_params", trial_id)

    def get_trial_user_attrs(self, trial_id):
        return self._call("get_trial_user_attrs", trial_id)

    def get_trial_system_attrs(self, trial_id):
        return self._call("get_trial_system_attrs", trial_id)

    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Set several user attributes of a running trial, in one transaction on SQL databases.

        Every Optuna call is one transaction (one commit, one disk sync); a trial's results are
        about ten attributes, so writing them together is what keeps the service's overhead per
        trial small on SQLite and PostgreSQL (``bench/overhead.py``). Other storages get one call
        per attribute. The write is an upsert per key, so a retry after a dropped connection is safe.
        """
        self._retry("set_trial_user_attrs", write_trial_user_attrs, self._backend, trial_id, dict(attrs))

    def remove_session(self):
        return self._backend.remove_session()

    def check_trial_is_updatable(self, trial_id, trial_state):
        return self._backend.check_trial_is_updatable(trial_id, trial_state)


def write_trial_user_attrs(storage: optuna.storages.BaseStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Write ``attrs`` as user attributes of trial ``trial_id``: one transaction on an RDB storage.

    The RDB path uses Optuna's own per-attribute statement (an upsert, after checking that the trial
    is still running) inside a single session, so the rows are exactly those ``set_trial_user_attr``
    writes. Where that internal API is missing (another Optuna version), or for other storages, it
    falls back to one ``set_trial_user_attr`` per key.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has finished (nothing is written).
    """
    rdb = compat.rdb_storage(storage)
    if rdb is not None and len(attrs) > 1 and compat.write_rdb_user_attrs(rdb, trial_id, dict(attrs)):
        return
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def fail_running_trial(storage: optuna.storages.BaseStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """End a running trial as FAIL with ``attrs`` (its stop reason), only if it is still running.

    On SQL databases the attributes and the state are one transaction (``compat``), so a trial that
    its owner completes meanwhile keeps no label of a verdict that never took effect. Other storages
    (the journal) check the state just before the two writes. Through a :class:`RetryingStorage` a
    retry after a dropped connection recognises its own committed write.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has finished; nothing is written.
    """
    from optuna.trial import TrialState

    attrs, attempts = dict(attrs), [0]

    def write(backend: optuna.storages.BaseStorage) -> None:
        attempts[0] += 1
        try:
            rdb = compat.rdb_storage(backend)
            if rdb is not None and compat.fail_rdb_trial_with_user_attrs(rdb, trial_id, attrs):
                return
            if backend.get_trial(trial_id).state.is_finished():
                raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial_id} has finished")
            write_trial_user_attrs(backend, trial_id, attrs)
            if not backend.set_trial_state_values(trial_id, TrialState.FAIL):
                raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial_id} has finished")
        except optuna.exceptions.UpdateFinishedTrialError:
            stored = backend.get_trial(trial_id) if attempts[0] > 1 else None
            if stored is not None and stored.state == TrialState.FAIL and all(
                    stored.user_attrs.get(key) == value for key, value in attrs.items()):
                return  # the earlier attempt committed before its connection dropped
            raise

    if isinstance(storage, RetryingStorage):
        storage._retry("fail_running_trial", write, storage._backend)
    else:
        write(storage)


def set_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """``trial.set_user_attr`` for several attributes at once (see ``RetryingStorage.set_trial_user_attrs``)."""
    if not attrs:
        return
    storage = trial.storage
    if isinstance(storage, RetryingStorage):
        storage.set_trial_user_attrs(compat.trial_id(trial), attrs)
    else:
        write_trial_user_attrs(storage, compat.trial_id(trial), attrs)
    compat.update_cached_user_attrs(trial, dict(attrs))  # what trial.user_attrs returns, as set_user_attr does


def _with_system_attr(template: optuna.trial.FrozenTrial | None, key: str, value: Any) -> optuna.trial.FrozenTrial:
    """A copy of ``template`` (None: a plain new RUNNING trial, as Optuna creates one) with one more
    system attribute."""
    import copy

    from optuna.trial import TrialState

    if template is None:
        return optuna.trial.create_trial(state=TrialState.RUNNING, system_attrs={key: value})
    trial = copy.deepcopy(template)
    trial.system_attrs = {**trial.system_attrs, key: value}
    return trial


def _root_message(exc: BaseException) -> str:
    # The innermost exception says what happened ("connection refused", "database is locked").
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def open_retrying_storage(url: str) -> RetryingStorage:
    """:func:`open_storage` wrapped in :class:`RetryingStorage` (what workers use).

    Opening is not retried: a wrong URL or password fails at once with its message.
    """
    return RetryingStorage(optuna.storages.get_storage(open_storage(url)), url)

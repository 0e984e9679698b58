"""MLflow: one run per trial, in an experiment named after the study.

``--mlflow URI`` or ``tracking: {mlflow: URI}`` (or ``{uri: URI, experiment: NAME, artifacts: DIR}``)
in a study. Each trial's run (``trial-N``) holds its configuration as parameters, every epoch's
curves as metrics (step = epoch), its final metrics with the ends of the accuracies' 95%
intervals, its state and stop reason as tags, and its last checkpoint as the artifact
``checkpoint.pt``. COMPLETE and PRUNED trials end FINISHED, FAIL trials FAILED (KILLED
when interrupted).

For a SQLite store the artifacts go to ``mlruns/`` beside the database file, unless ``artifacts:``
names a folder (MLflow itself would use the working directory of whichever worker made the
experiment). MLflow never tracks into the study's own database: both keep an ``alembic_version``
table there, and each would take the other's schema for its own
(:func:`refuse_study_database`). MLflow is imported only when a study tracks to it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.errors import ConfigError
from hpo.tracking.base import EPOCH_CURVES, STOP_REASON_TAG, Tracker, TrialEnd, TrialStart, epoch_values
from hpo.tracking.registry import register_tracker, string_settings
from hpo.trials import EPOCHS_RUN, EpochMetrics, StopReason

log = logging.getLogger("hpo")

_KEYS = ("uri", "experiment", "artifacts")
_SERVER_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "mssql")
_OPTUNA_TABLES = {"studies", "trials", "version_info"}  # Optuna's RDB schema (beside its alembic_version)
_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter's value


@dataclass(frozen=True)
class MlflowSettings:
    """Where a study's runs go.

    Attributes:
        uri: The tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``, ``postgresql://...``).
        experiment: The experiment's name; None: the study's name.
        artifacts: The artifact location of a new experiment; None: see the module docstring.
    """

    uri: str
    experiment: str | None = None
    artifacts: str | None = None


def parse_settings(raw: Any, label: str) -> MlflowSettings:
    """``URI`` or ``{uri: URI, experiment: NAME, artifacts: DIR}``.

    Raises:
        ConfigError: naming ``label``.
    """
    raw = string_settings(raw, label, _KEYS, form="a tracking URI like sqlite:///mlflow.db or {uri: URI, experiment: NAME}",
                          example=", e.g. sqlite:///mlflow.db")
    return MlflowSettings(raw["uri"], raw.get("experiment"), raw.get("artifacts"))


# ---------------------------------------------------------------------------------------------
# Never the study's own database
# ---------------------------------------------------------------------------------------------


def _scheme(uri: str) -> str:
    return uri.split(":", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""


def _local_path(uri: str) -> Path | None:
    """The file a SQLite URL, a ``file:`` URI, a plain path or a journal storage names."""
    from hpo.storage_urls import journal_path

    scheme = _scheme(uri)
    if scheme == "sqlite":
        database = uri.split("://", 1)[1][1:].split("?", 1)[0]  # sqlite:///rel.db -> rel.db, sqlite:////abs -> /abs
        return Path(database).resolve() if database and database != ":memory:" else None
    if scheme == "file":
        return Path(uri.split("://", 1)[1]).resolve()
    if scheme in ("", "journal"):
        try:
            return Path(journal_path(uri)).resolve()
        except ConfigError:
            return None
    return None


def _server_identity(uri: str) -> tuple | None:
    from sqlalchemy.engine import make_url

    from hpo.storage_urls import sqlalchemy_url

    if _scheme(uri) not in _SERVER_SCHEMES:
        return None
    try:
        url = make_url(sqlalchemy_url(uri))
    except Exception:
        return None
    family = url.get_backend_name()
    host = "localhost" if url.host in (None, "", "127.0.0.1", "::1") else url.host
    return family, host, url.port, url.database


def _table_names(uri: str) -> set[str]:
    """The tables of the database ``uri`` names, without creating it; empty when it cannot be read."""
    path = _local_path(uri) if _scheme(uri) == "sqlite" else None
    if path is not None:
        if not path.is_file():
            return set()
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error:
            return set()
    if _scheme(uri) not in _SERVER_SCHEMES:
        return set()
    import sqlalchemy

    from hpo.storage_urls import sqlalchemy_url

    try:
        engine = sqlalchemy.create_engine(sqlalchemy_url(uri), connect_args={"connect_timeout": 5})
        try:
            return set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception:  # unreachable or no such database: MLflow will say so itself
        return set()


def refuse_study_database(uri: str, storage_url: str | None, label: str) -> None:
    """Refuse a tracking URI that is the study's own database, or any database holding Optuna's tables.

    Raises:
        ConfigError: one sentence naming the URI and what to use instead.
    """
    from hpo.storage_urls import mask_url

    same = False
    if storage_url:
        here, there = _local_path(uri), _local_path(storage_url)
        same = here is not None and here == there
        same = same or (_server_identity(uri) is not None and _server_identity(uri) == _server_identity(storage_url))
    if same or _OPTUNA_TABLES <= _table_names(uri):
        what = "the study's own database" if same else "a database that holds Optuna studies"
        raise ConfigError(f"{label} {mask_url(uri)} is {what}: MLflow and Optuna both keep an alembic_version table "
                          "there and would take each other's schema for their own; give MLflow a database of its "
                          "own, e.g. sqlite:///mlflow.db")


# ---------------------------------------------------------------------------------------------
# The tracker
# ---------------------------------------------------------------------------------------------


def _client(settings: MlflowSettings) -> Any:
    for name in ("mlflow", "alembic"):  # their INFO lines (schema migrations) are noise in a worker's output
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("MLflow is not installed; pip install 'hpo[tracking]' (or mlflow-skinny)") from None
    return MlflowClient(tracking_uri=settings.uri)


def _artifact_location(settings: MlflowSettings) -> str | None:
    if settings.artifacts:
        return Path(settings.artifacts).resolve().as_uri()
    path = _local_path(settings.uri) if _scheme(settings.uri) == "sqlite" else None
    return (path.parent / "mlruns").as_uri() if path is not None else None


def experiment_id(client: Any, settings: MlflowSettings, study_name: str) -> str:
    """The id of the study's experiment, created (or restored from MLflow's trash) when needed."""
    name = settings.experiment or study_name
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(settings))
        except Exception:  # another worker created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def check(settings: MlflowSettings, storage_url: str | None, label: str, study_name: str, connect: bool) -> None:
    """Before any trial: refuse the study's database and, with ``connect``, open the experiment.

    Raises:
        ConfigError: the URI is the study's database, MLflow is missing, or the store cannot be opened.
    """
    from hpo.storage_urls import mask_url

    refuse_study_database(settings.uri, storage_url, label)
    if not connect:
        return
    client = _client(settings)
    try:
        experiment_id(client, settings, study_name)
    except Exception as exc:
        first = str(exc).strip().split(". ")[0].splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{label} {mask_url(settings.uri)}: MLflow cannot open it ({first}); give a tracking URI "
                          "MLflow accepts, e.g. sqlite:///mlflow.db or http://HOST:5000") from None


def _text(value: Any) -> str:
    return str(value)[:MAX_PARAM_LENGTH]


@register_tracker("mlflow", description="one MLflow run per trial (parameters, curves, final metrics, checkpoint)",
                  parse=parse_settings, check=check)
class MlflowTracker(Tracker):
    """Logs each trial as an MLflow run (see the module docstring)."""

    name = "mlflow"
    wants_checkpoint = True

    def __init__(self, settings: MlflowSettings, study_name: str) -> None:
        self.settings, self.study_name = settings, study_name
        self.client = _client(settings)
        self.experiment_id = experiment_id(self.client, settings, study_name)
        self.run_id: str | None = None

    def on_trial_start(self, start: TrialStart) -> None:
        from mlflow.entities import Param

        tags = {"hpo.study": start.study, "hpo.trial": str(start.number), "hpo.worker": start.worker_id,
                "hpo.objectives": ",".join(start.objectives)}
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{start.number}", tags=tags)
        self.run_id = run.info.run_id
        params = [Param(str(k)[:250], _text(v)) for k, v in sorted(start.params.items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def on_epoch(self, metrics: EpochMetrics) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = [Metric(k, v, now, int(metrics.epoch)) for k, v in epoch_values(metrics).items()]
        self.client.log_batch(self.run_id, metrics=values)

    def on_trial_end(self, end: TrialEnd) -> None:
        from mlflow.entities import Metric, RunTag

        now, step = int(time.time() * 1000), int(end.metrics.get(EPOCHS_RUN, 0))
        # The curves' last epoch already holds their final values (val_accuracy, losses).
        finals = {k: v for k, v in {**end.metrics, **end.values}.items() if k not in EPOCH_CURVES or not step}
        tags = [RunTag("hpo.state", end.state), RunTag(STOP_REASON_TAG, end.stop_reason or "none")]
        if end.error:
            tags.append(RunTag("hpo.error", _text(end.error)))
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in finals.items()],
                              tags=tags)
        if end.checkpoint is not None:
            self.client.log_artifact(self.run_id, str(end.checkpoint))  # the run's checkpoint.pt
        status = "KILLED" if StopReason.parse(end.stop_reason) == StopReason.INTERRUPTED else _STATUS.get(end.state, "KILLED")
        self.client.set_terminated(self.run_id, status)
        self.run_id = None

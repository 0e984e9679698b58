"""The study keys ``plugins:``, ``callbacks:`` and ``tracking:``, and what is refused before any trial.

Each bad value is one sentence naming the file and the key. A study without the keys keeps its
definition dict and hash; a study with them stores them and reads them back. An MLflow tracking
URI is refused when it is the study's own database: the same SQLite file, the same PostgreSQL
database, or any database that holds Optuna's tables (both keep an ``alembic_version`` table).
"""

from __future__ import annotations

import re
import sys
import textwrap

import optuna
import pytest

from hpo.errors import ConfigError

SPACE = "params:\n  model: linear\n  lr: 0.05\n  batch_size: 32\n  augment: none\n"


def write(tmp_path, extra: str = "", name: str = "ext"):
    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        dataset: {{kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}}
        space: space.yaml
        sampler: random
        pruner: none
        epochs: 1
        n_trials: 1
        """) + textwrap.dedent(extra))
    return path


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path holding lab_hooks.py (a callback module); removed from sys.modules afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "lab_hooks.py").write_text("CALLS = []\n\ndef notify(study, trial):\n    CALLS.append(trial.number)\n\n"
                                         "NOT_A_FUNCTION = 3\n")
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("lab_hooks", None)


def test_a_study_without_the_keys_keeps_its_definition(tmp_path):
    from hpo.config import StudyConfig, load_study

    config = load_study(write(tmp_path))
    assert not {"plugins", "callbacks", "tracking"} & set(config.to_dict())
    plain = StudyConfig.from_dict(config.to_dict())
    assert plain.definition_hash() == config.definition_hash()


def test_the_keys_are_stored_with_the_study_and_read_back(tmp_path, plugin_dir):
    from hpo.config import StudyConfig, load_study

    config = load_study(write(tmp_path, """\
        plugins: [lab_hooks]
        callbacks: [lab_hooks:notify]
        tracking: {mlflow: sqlite:///mlflow.db, wandb: {project: cifar, mode: offline}}
        """))
    stored = config.to_dict()
    assert stored["plugins"] == ["lab_hooks"] and stored["callbacks"] == ["lab_hooks:notify"]
    assert stored["tracking"] == {"mlflow": "sqlite:///mlflow.db", "wandb": {"project": "cifar", "mode": "offline"}}
    again = StudyConfig.from_dict(stored)
    assert again.extensions == config.extensions and again.definition_hash() == config.definition_hash()
    assert again.definition_hash() != load_study(write(tmp_path, name="ext")).definition_hash()
    assert again.extensions.tracking.settings["wandb"].mode == "offline"


@pytest.mark.parametrize("extra, message", [
    ("plugins: [no_such_plugin_module]\n",
     "ext.yaml: plugins[0]: module no_such_plugin_module cannot be imported; put it on PYTHONPATH"),
    ("plugins: [not-a-module]\n", "plugins[0] must be an importable module name"),
    ("plugins: {a: 1}\n", "plugins must be a list of module names"),
    ("callbacks: [lab_hooks.notify]\n", "callbacks[0] must be module:function"),
    ("tracking: {neptune: x}\n", "tracking.neptune: unknown tracker 'neptune'; registered trackers: mlflow, wandb"),
    ("tracking: [mlflow]\n", "tracking must be a mapping"),
    ("tracking: {mlflow: {experiment: e}}\n", "tracking.mlflow.uri is required"),
    ("tracking: {mlflow: {uri: u, colour: red}}\n", "tracking.mlflow: unknown key colour; valid keys: uri, experiment"),
    ("tracking: {wandb: {project: p, mode: sometimes}}\n", "tracking.wandb.mode must be one of online, offline, disabled"),
    ("tracking: {wandb: {project: '  '}}\n", "tracking.wandb.project must be a non-empty string (got '  ')"),
    ("tracking: {wandb: 3}\n", "tracking.wandb must be a project name or {project: P, mode: offline} (got 3)"),
])
def test_bad_values_are_one_sentence_naming_the_key(tmp_path, plugin_dir, extra, message):
    from hpo.config import load_study

    with pytest.raises(ConfigError) as caught:
        load_study(write(tmp_path, extra))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_plugin_tracker_section_is_one_string_or_a_mapping_of_strings():
    from hpo.tracking import string_settings

    keys = ("url", "token")
    assert string_settings(" http://lab:8080 ", "tracking.mine", keys, form="a URL") == {"url": "http://lab:8080"}
    assert string_settings({"url": "u", "token": None}, "tracking.mine", keys, form="a URL") == {"url": "u", "token": None}
    for raw, message in [({"token": "t"}, "tracking.mine.url is required, e.g. http://lab:8080"),
                         ({"url": "u", "tokn": "t"}, "tracking.mine: unknown key tokn; valid keys: url, token"),
                         ({"url": None}, "tracking.mine.url must be a non-empty string (got None)"),
                         (["u"], "tracking.mine must be a URL or {url: URL} (got ['u'])")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            string_settings(raw, "tracking.mine", keys, form="a URL or {url: URL}", example=", e.g. http://lab:8080")


def test_callbacks_resolve_before_any_trial(tmp_path, plugin_dir):
    from hpo.config import load_study
    from hpo.tracking import check_run

    url = f"sqlite:///{tmp_path}/study.db"
    for name, message in [("lab_hooks:missing", "lab_hooks.missing does not exist"),
                          ("lab_hooks:NOT_A_FUNCTION", "lab_hooks.NOT_A_FUNCTION is not callable"),
                          ("absent_hooks:notify", "module absent_hooks cannot be imported")]:
        config = load_study(write(tmp_path, f"callbacks: ['{name}']\n"))
        with pytest.raises(ConfigError, match=message):
            check_run(config, url)
    config = load_study(write(tmp_path, "callbacks: ['lab_hooks:notify']\n"))
    assert check_run(config, url).settings == {}


def _optuna_database(url: str) -> None:
    from hpo.storage import open_storage

    optuna.create_study(study_name="s", storage=open_storage(url), load_if_exists=True)  # hpo's drivers


def test_mlflow_refuses_the_study_database(tmp_path):
    from hpo.tracking.mlflow import refuse_study_database

    study_db = tmp_path / "hpo.db"
    _optuna_database(f"sqlite:///{study_db}")
    with pytest.raises(ConfigError, match=r"--mlflow sqlite:///.*hpo.db is the study's own database: MLflow and "
                                          r"Optuna both keep an alembic_version table"):
        refuse_study_database(f"sqlite:///{study_db}", f"sqlite:///{study_db}", "--mlflow")
    other = tmp_path / "other.db"
    _optuna_database(f"sqlite:///{other}")  # another study database, not this study's: refused all the same
    with pytest.raises(ConfigError, match="is a database that holds Optuna studies"):
        refuse_study_database(f"sqlite:///{other}", f"sqlite:///{study_db}", "tracking.mlflow")
    refuse_study_database(f"sqlite:///{tmp_path}/mlflow.db", f"sqlite:///{study_db}", "--mlflow")  # a new file: fine
    assert not (tmp_path / "mlflow.db").exists()  # and the check created nothing


def test_mlflow_accepts_its_own_database_and_opens_it(tmp_path):
    from mlflow.tracking import MlflowClient

    from hpo.tracking.mlflow import check, parse_settings

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    settings = parse_settings({"uri": uri, "experiment": "lab"}, "--mlflow")
    check(settings, f"sqlite:///{tmp_path}/hpo.db", "--mlflow", "ext", True)  # creates MLflow's schema + experiment
    check(settings, f"sqlite:///{tmp_path}/hpo.db", "--mlflow", "ext", True)  # its own alembic_version: not refused
    assert MlflowClient(tracking_uri=uri).get_experiment_by_name("lab") is not None


@pytest.mark.postgres
def test_mlflow_refuses_the_study_database_on_postgresql(postgres_url):
    from hpo.tracking.mlflow import refuse_study_database

    _optuna_database(postgres_url)  # the shared test database holds Optuna's tables
    with pytest.raises(ConfigError, match="is the study's own database"):
        refuse_study_database(postgres_url.replace("127.0.0.1", "localhost"), postgres_url, "--mlflow")


def test_hpo_run_refuses_mlflow_in_the_study_database_before_any_trial(tmp_path, fake_cifar, monkeypatch):
    from typer.testing import CliRunner

    from hpo.cli import app
    from hpo.storage import open_storage

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/hpo.db"
    _optuna_database(url)
    result = CliRunner().invoke(app, ["run", "--study", str(write(tmp_path)), "--storage", url, "--devices", "cpu",
                                      "--data-dir", str(fake_cifar), "--mlflow", url])
    assert result.exit_code == 2, result.output
    assert "--mlflow sqlite:///" in result.output and "is the study's own database" in result.output
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))] == ["s"]  # no study created, no trial run

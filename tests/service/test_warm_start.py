"""Warm start: a CIFAR-10 study begins with the best configurations of a MINICIFAR study.

The source studies are stored by hpo itself (``create_or_load``) with trials whose accuracies the
test chooses, so which configurations are "best" is known; the new studies run under real ``hpo
run`` processes on SQLite and PostgreSQL, and the reports are read back from storage.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.cli import app
from hpo.config import load_study
from hpo.errors import ConfigError
from hpo.space import suggest
from hpo.storage import open_storage
from hpo.study import create_or_load, enqueue_retry
from hpo.trials import SYS_WARM_FROM, WARM_START_KEY, write_record
from hpo.warm_start import WarmStart, rank_trials, with_options

HPO = [sys.executable, "-m", "hpo"]
runner = CliRunner()

SOURCE_SPACE = """\
params:
  model: {choices: [linear, mlp]}
  mlp.hidden: {choices: [[16], [32]]}
  lr: {type: float, low: 1.0e-3, high: 0.5, log: true}
  optimizer: sgd
  batch_size: 32
  augment: none
"""

# The new space: lr narrower than the source's, and weight_decay the source never had.
TARGET_SPACE = """\
params:
  model: {choices: [linear, mlp]}
  mlp.hidden: {choices: [[16], [32]]}
  lr: {type: float, low: 1.0e-3, high: 0.3, log: true}
  weight_decay: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
  optimizer: sgd
  batch_size: 32
  augment: none
"""

# Source trials: (values the space samples, validation accuracy, state). Ranked by accuracy among the
# COMPLETE ones: 1 (0.8), 3 (0.7), 2 (0.6, lr outside the new space), 0 (0.5); the PRUNED 4 never counts.
SOURCE_TRIALS = [
    ({"model": "linear", "lr": 0.01}, 0.5, TrialState.COMPLETE),
    ({"model": "mlp", "mlp.hidden": "[32]", "lr": 0.05}, 0.8, TrialState.COMPLETE),
    ({"model": "mlp", "mlp.hidden": "[16]", "lr": 0.4}, 0.6, TrialState.COMPLETE),
    ({"model": "linear", "lr": 0.02}, 0.7, TrialState.COMPLETE),
    ({"model": "mlp", "mlp.hidden": "[16]", "lr": 0.1}, 0.95, TrialState.PRUNED),
]


def write_files(folder, name, *, dataset, space, n_trials=3, objectives="[val_accuracy]", extra=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}-space.yaml").write_text(space)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        description: warm-start test study
        dataset: {dataset}
        space: {name}-space.yaml
        objectives: {objectives}
        sampler: random
        pruner: none
        epochs: 1
        n_trials: {n_trials}
        seed: 0
        """) + extra)
    return path


def make_source(folder, name, storage, trials=SOURCE_TRIALS, objectives="[val_accuracy]"):
    """A MINICIFAR study stored by hpo, its trials told the given values (no training)."""
    config = load_study(write_files(folder, name, dataset="{kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}",
                                    space=SOURCE_SPACE, objectives=objectives))
    study = create_or_load(config, storage, n_trials=len(trials), dataset_fingerprint="source")
    for params, value, state in trials:
        study.enqueue_trial(params)
        trial = study.ask()
        suggest(trial, config.space)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    return study


def make_target(folder, name, source, top, n_trials=3):
    warm = f"warm_start: {{from: {source}, top: {top}}}\n" if source else ""
    return write_files(folder, name, dataset="{kind: cifar10, train_size: 0.8}", space=TARGET_SPACE,
                       n_trials=n_trials, extra=warm)


def hpo_run(env, cwd, *args):
    result = subprocess.run(HPO + ["run", "--devices", "cpu", "--workers", "1", *args], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_cifar10_study_runs_the_minicifar_studys_best_configurations_first(tmp_path, worker_env, unique_name):
    url = f"sqlite:///{tmp_path}/warm.db"
    source = f"{unique_name}-mini"
    make_source(tmp_path, source, open_storage(url))
    target = make_target(tmp_path, f"{unique_name}-c10", source, top=2)

    hpo_run(worker_env, tmp_path, "--study", str(target), "--storage", url)
    study = optuna.load_study(study_name=target.stem, storage=url)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert trials[0].datetime_start <= trials[1].datetime_start <= trials[2].datetime_start  # one worker, in order
    # The two best complete source trials, best first, with their own values; weight_decay is sampled.
    assert [t.system_attrs.get(SYS_WARM_FROM) for t in trials] == [f"{source}#1", f"{source}#3", None]
    assert {k: trials[0].params[k] for k in ("model", "mlp.hidden", "lr")} == {"model": "mlp", "mlp.hidden": "[32]", "lr": 0.05}
    assert {k: trials[1].params[k] for k in ("model", "lr")} == {"model": "linear", "lr": 0.02}
    assert all("weight_decay" in t.params for t in trials)
    assert study.user_attrs[WARM_START_KEY] == {"from": source, "top": 2, "storage": None,
                                                "trials": [f"{source}#1", f"{source}#3"]}

    status = runner.invoke(app, ["status", target.stem, "--storage", url])
    assert status.exit_code == 0, status.output
    assert f"warm start: trials 0, 1 warm-started from {source} (its trials 1, 3)" in status.output


def test_a_source_trial_outside_the_new_space_is_refused_with_its_parameter_and_value(tmp_path, fake_cifar, unique_name):
    url = f"sqlite:///{tmp_path}/warm.db"
    source = f"{unique_name}-mini"
    make_source(tmp_path, source, open_storage(url))
    target = make_target(tmp_path, f"{unique_name}-c10", source, top=2, n_trials=3)
    # The file asks for 2; the command line's 3 wins and reaches trial 2, whose lr 0.4 is above 0.3.
    result = runner.invoke(app, ["run", "--study", str(target), "--storage", url, "--devices", "cpu",
                                 "--warm-start-top", "3", "--data-dir", str(fake_cifar)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    message = result.output
    assert f"trial 2 of study {source!r}" in message and "lr = 0.4" in message and "[0.001, 0.3]" in message
    # Refused before anything was stored: no study, so nothing queued.
    assert target.stem not in optuna.get_all_study_names(open_storage(url))


def test_a_parameter_the_new_space_lacks_is_refused(tmp_path, unique_name):
    storage = open_storage(f"sqlite:///{tmp_path}/warm.db")
    source = f"{unique_name}-mini"
    make_source(tmp_path, source, storage)
    narrow = TARGET_SPACE.replace("  mlp.hidden: {choices: [[16], [32]]}\n", "").replace("[linear, mlp]", "[linear]")
    config = load_study(write_files(tmp_path, f"{unique_name}-c10", dataset="{kind: cifar10, train_size: 0.8}",
                                    space=narrow, extra=f"warm_start: {{from: {source}, top: 1}}\n"))
    with pytest.raises(ConfigError) as refused:
        create_or_load(config, storage, n_trials=None, dataset_fingerprint="target")
    message = str(refused.value)
    assert f"trial 1 of study {source!r}" in message and "model = 'mlp'" in message and "['linear']" in message
    assert config.name not in optuna.get_all_study_names(storage)


@pytest.mark.slow
@pytest.mark.postgres
def test_source_in_postgresql_chosen_on_the_command_line(tmp_path, worker_env, postgres_url, unique_name):
    source = f"{unique_name}-mini"
    pg = open_storage(postgres_url)
    try:
        make_source(tmp_path, source, pg)
        # The file names a study that does not exist; the command line wins.
        target = make_target(tmp_path, f"{unique_name}-c10", "no-such-study", top=3, n_trials=1)
        url = f"sqlite:///{tmp_path}/target.db"
        hpo_run(worker_env, tmp_path, "--study", str(target), "--storage", url, "--warm-start-from", source,
                "--warm-start-top", "1", "--warm-start-storage", postgres_url)
        study = optuna.load_study(study_name=target.stem, storage=url)
        (trial,) = study.get_trials(deepcopy=False)
        assert trial.state == TrialState.COMPLETE and trial.system_attrs[SYS_WARM_FROM] == f"{source}#1"
        assert study.user_attrs[WARM_START_KEY]["storage"] == postgres_url  # no password to mask here
    finally:
        optuna.delete_study(study_name=source, storage=pg)


def reported_study(tmp_path, unique_name):
    """A warm-started study whose front holds warm trial 0 (the most accurate) and sampled trial 2 (the
    smallest); warm trial 1 is dominated. Returns (storage URL, study name, source name)."""
    url = f"sqlite:///{tmp_path}/warm.db"
    storage = open_storage(url)
    source = f"{unique_name}-mini"
    make_source(tmp_path, source, storage)
    config = load_study(make_target(tmp_path, f"{unique_name}-c10", source, top=2))
    study = create_or_load(config, storage, n_trials=None, dataset_fingerprint="target")
    for accuracy, params in ((0.9, 1000), (0.5, 5000), (0.6, 100)):
        trial = study.ask()
        suggest(trial, config.space)
        write_record(trial, param_count=params, train_seconds=1.0, val_accuracy=accuracy, n_val_images=60)
        study.tell(trial, accuracy)
    return url, config.name, source


def test_reports_mark_warm_trials_with_their_source(tmp_path, unique_name):
    url, name, source = reported_study(tmp_path, unique_name)

    table = json.loads(runner.invoke(app, ["pareto", "--study", name, "--storage", url, "--format", "json"]).output)
    assert {row["trial"]: row["warm_from"] for row in table["front"]} == {0: f"{source}#1", 2: None}
    csv_text = runner.invoke(app, ["pareto", "--study", name, "--storage", url, "--format", "csv"]).output
    assert "warm_from" in csv_text.splitlines()[0] and f"{source}#1" in csv_text
    rich = runner.invoke(app, ["pareto", "--study", name, "--storage", url])
    assert f"{source}#1" in rich.output and "warm-start trial" in rich.output, rich.output
    for fmt in ("md", "html", "tex", "csv"):
        out = tmp_path / f"report.{fmt}"
        result = runner.invoke(app, ["export", "--study", name, "--storage", url, "--format", fmt, "--out", str(out)])
        assert result.exit_code == 0, result.output
        text = out.read_text()
        assert (f"{source}\\#1" if fmt == "tex" else f"{source}#1") in text, fmt
        if fmt in ("md", "html"):
            assert "Warm from" in text and f"trials 0, 1 warm-started from {source} (its trials 1, 3)" in text, fmt


@pytest.mark.browser
def test_the_deck_marks_warm_trials(tmp_path, unique_name):
    from pptx import Presentation

    from hpo.analysis.export import find_browser
    from hpo.errors import HpoError

    try:
        find_browser()
    except HpoError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no Chromium to render the deck's figures")
    url, name, source = reported_study(tmp_path, unique_name)
    out = tmp_path / "report.pptx"
    result = runner.invoke(app, ["export", "--study", name, "--storage", url, "--format", "pptx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    texts, tables = [], []
    for slide in Presentation(str(out)).slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                texts.append(shape.text_frame.text)
            if shape.has_table:
                tables.append([[cell.text for cell in row.cells] for row in shape.table.rows])
    assert any(f"Warm start: trials 0, 1 warm-started from {source} (its trials 1, 3)." in text for text in texts)
    front = next(table for table in tables if "Warm from" in table[0])
    column = front[0].index("Warm from")
    assert {row[0]: row[column] for row in front[1:]} == {"0": f"{source}#1", "2": "-"}


def test_resume_never_warm_starts_again_and_refuses_another_source(tmp_path, unique_name):
    storage = open_storage(f"sqlite:///{tmp_path}/warm.db")
    source = f"{unique_name}-mini"
    make_source(tmp_path, source, storage)
    config = load_study(make_target(tmp_path, f"{unique_name}-c10", source, top=2))
    study = create_or_load(config, storage, n_trials=None, dataset_fingerprint="target")
    again = create_or_load(config, storage, n_trials=None, dataset_fingerprint="target")
    assert [t.system_attrs.get(SYS_WARM_FROM) for t in again.get_trials()] == [f"{source}#1", f"{source}#3"]
    assert len(study.get_trials()) == 2
    with pytest.raises(ConfigError, match="was warm-started from"):
        create_or_load(dataclasses.replace(config, warm_start=WarmStart(source, top=3)), storage, n_trials=None,
                       dataset_fingerprint="target")
    plain = load_study(make_target(tmp_path / "plain", f"{unique_name}-plain", None, top=0))
    create_or_load(plain, storage, n_trials=None, dataset_fingerprint="target")
    with pytest.raises(ConfigError, match="was not warm-started"):
        create_or_load(dataclasses.replace(plain, warm_start=WarmStart(source, top=1)), storage, n_trials=None,
                       dataset_fingerprint="target")


def test_a_retried_warm_trial_keeps_its_mark(tmp_path, unique_name):
    storage = open_storage(f"sqlite:///{tmp_path}/warm.db")
    source = f"{unique_name}-mini"
    make_source(tmp_path, source, storage)
    config = load_study(make_target(tmp_path, f"{unique_name}-c10", source, top=1))
    study = create_or_load(config, storage, n_trials=None, dataset_fingerprint="target")
    trial = study.ask()
    values = suggest(trial, config.space)
    assert values["lr"] == 0.05 and values["mlp.hidden"] == [32]  # the queued values, not sampled ones
    study.tell(trial, state=TrialState.FAIL)
    assert enqueue_retry(study, study.get_trials()[0], "interrupted")
    retry = study.get_trials()[-1]
    assert retry.state == TrialState.WAITING and retry.system_attrs[SYS_WARM_FROM] == f"{source}#1"


def _frozen(number, values, state=TrialState.COMPLETE):
    return optuna.trial.FrozenTrial(
        number=number, state=state, value=None, values=values if state == TrialState.COMPLETE else None,
        datetime_start=None, datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
        intermediate_values={}, trial_id=number,
    )


def test_multi_objective_source_ranks_the_front_first_spread_by_crowding():
    # (accuracy up, parameters down). Front: 0, 1, 2, 3; 4 and 5 are dominated (by 1 and 2).
    points = {0: [0.9, 1000], 1: [0.8, 100], 2: [0.7, 50], 3: [0.85, 500], 4: [0.75, 200], 5: [0.6, 60]}
    trials = [_frozen(n, v) for n, v in points.items()]
    ranked = [t.number for t in rank_trials(trials, ["maximize", "minimize"])]
    # The front's extremes first (infinite crowding; 0 is the more accurate), then its inner points by
    # crowding (3: 0.5 + 0.95 against 1: 0.75 + 0.47), then the next front (both its extremes, by accuracy).
    assert ranked == [0, 2, 3, 1, 4, 5]


def test_single_objective_source_ranks_by_accuracy():
    trials = [_frozen(n, [v]) for n, v in enumerate([0.5, 0.8, 0.6, 0.8])] + [_frozen(4, None, TrialState.PRUNED)]
    assert [t.number for t in rank_trials(trials, ["maximize"])] == [1, 3, 2, 0]  # ties by number; pruned left out


@pytest.mark.parametrize("warm_start,fragment", [
    ("{from: 3}", "warm_start.from"),
    ("{from: resnet-mini, top: 0}", "warm_start.top"),
    ("{from: resnet-mini, best: 2}", "warm_start.best"),
    ("{from: resnet-mini, storage: 'ftp://x'}", "ftp"),
    ("[resnet-mini]", "warm_start must be a mapping"),
])
def test_bad_warm_start_keys_exit_2_naming_the_key(tmp_path, warm_start, fragment):
    path = make_target(tmp_path, "bad", None, top=0)
    path.write_text(path.read_text() + f"warm_start: {warm_start}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and fragment in result.output and "bad.yaml" in result.output, result.output


def test_command_line_options_win_and_need_a_source():
    configured = WarmStart("resnet-mini", top=5)
    assert with_options(configured, None, 2, None) == WarmStart("resnet-mini", 2)
    assert with_options(configured, "other", None, None) == WarmStart("other", 5)
    assert with_options(None, None, None, None) is None
    with pytest.raises(ConfigError, match="--warm-start-top needs --warm-start-from"):
        with_options(None, None, 2, None)
    with pytest.raises(ConfigError, match="--warm-start-top must be"):
        with_options(None, "x", 0, None)


def test_a_missing_source_is_named_with_the_studies_there(tmp_path, unique_name):
    storage = open_storage(f"sqlite:///{tmp_path}/warm.db")
    make_source(tmp_path, f"{unique_name}-mini", storage)
    config = load_study(make_target(tmp_path, f"{unique_name}-c10", "no-such-study", top=1))
    with pytest.raises(ConfigError, match=f"no study named 'no-such-study' in this storage .*{unique_name}-mini"):
        create_or_load(config, storage, n_trials=None, dataset_fingerprint="target")
    assert config.name not in optuna.get_all_study_names(storage)


def test_top_above_the_trial_budget_is_refused(tmp_path, unique_name):
    storage = open_storage(f"sqlite:///{tmp_path}/warm.db")
    config = load_study(make_target(tmp_path, unique_name, "anything", top=4, n_trials=3))
    with pytest.raises(ConfigError, match="top is 4 but .* runs only 3 trials"):
        create_or_load(config, storage, n_trials=None, dataset_fingerprint="target")


def test_warm_start_is_no_part_of_the_definition():
    warm, plain = load_study("cifar10-resnet-warm"), load_study("cifar10-resnet")
    assert warm.warm_start == WarmStart("resnet-mini", top=5)
    assert WARM_START_KEY not in warm.to_dict() and plain.warm_start is None
    assert json.loads(json.dumps(warm.to_dict()))["space"] == plain.to_dict()["space"]

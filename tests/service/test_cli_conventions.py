"""The conventions of Typer/Click tools: --version, shell completion, environment variables and defaults
in --help, --study on every command that takes a study, one accuracy format, `hpo models` from its cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import typer
from typer.testing import CliRunner

import hpo
from hpo.cli import app
from hpo.storage import DEFAULT_STORAGE, STORAGE_ENV_VARS

HPO = [sys.executable, "-m", "hpo"]
WIDE = {"COLUMNS": "400"}  # Rich wraps help text at the terminal's width


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HPO_STORAGE", "OPTUNA_STORAGE")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


def _commands() -> dict:
    group = typer.main.get_command(app)
    return dict(group.commands)


def test_version_in_process_and_as_a_real_process():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"hpo {hpo.__version__}"
    proc = subprocess.run(HPO + ["--version"], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"hpo {hpo.__version__}"


def test_shell_completion_completes_command_names_in_a_real_process():
    proc = subprocess.run(HPO, env=_env(_HPO_COMPLETE="complete_bash", COMP_WORDS="hpo sta", COMP_CWORD="1"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["status"]
    script = subprocess.run(HPO + ["--show-completion", "bash"], env=_env(), capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and "complete -o default -F _hpo_completion hpo" in script.stdout, script.stderr
    assert "--install-completion" in CliRunner().invoke(app, ["--help"], env=WIDE).output


def test_help_shows_the_storage_environment_variables_and_default_and_the_data_folder_variable():
    for name, command in _commands().items():
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        if not options & {"--storage", "--data-dir"}:
            continue
        text = " ".join(CliRunner().invoke(app, [name, "--help"], env=WIDE).output.split())
        if "--storage" in options:
            assert all(var in text for var in STORAGE_ENV_VARS) and DEFAULT_STORAGE in text, name
            assert text.index(STORAGE_ENV_VARS[0]) < text.index(STORAGE_ENV_VARS[1]), name  # in the order they are read
        if "--data-dir" in options:
            assert "HPO_DATA_DIR" in text and "./data" in text, name


def test_every_command_that_takes_a_study_accepts_study():
    taking = {name: command for name, command in _commands().items()
              if any(param.name in ("study", "study_opt") for param in command.params)}
    assert {"run", "worker", "status", "pareto", "export", "validate", "evaluate"} <= set(taking)
    for name, command in taking.items():
        assert any("--study" in getattr(param, "opts", []) for param in command.params), name


def test_status_and_validate_take_study_as_an_option_or_positionally(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="named", storage=url)
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, values=[0.25]))
    runner = CliRunner()
    by_option = runner.invoke(app, ["status", "--study", "named", "--storage", url], env=WIDE)
    positional = runner.invoke(app, ["status", "named", "--storage", url], env=WIDE)
    assert by_option.exit_code == positional.exit_code == 0, by_option.output
    assert by_option.output == positional.output and "named" in by_option.output
    twice = runner.invoke(app, ["status", "named", "--study", "other", "--storage", url])
    assert twice.exit_code == 2 and "named twice" in twice.output
    assert runner.invoke(app, ["validate", "--study", "cpu-quick"]).output == runner.invoke(app, ["validate", "cpu-quick"]).output
    missing = runner.invoke(app, ["validate"])
    assert missing.exit_code == 2 and "hpo validate --study NAME" in missing.output


def test_a_false_parameter_reads_no_while_an_unset_mark_stays_blank():
    from hpo.analysis.formatting import KNEE, TIES_KNEE, format_cell

    assert format_cell("cnn.batch_norm", False) == "no" and format_cell("cnn.batch_norm", True) == "yes"
    assert format_cell(KNEE, False) == format_cell(TIES_KNEE, False) == "" and format_cell(KNEE, True) == "yes"
    assert format_cell("cnn.batch_norm", None) == "-"  # a parameter the trial's family does not have
    assert format_cell("peak_memory_bytes", 1_707_000_000) == "1.59 GiB" and format_cell("peak_memory_bytes", 512) == "512 B"


def test_one_accuracy_format_in_status_lines_tables_and_commands():
    from hpo import monitor
    from hpo.analysis.formatting import display_cell
    from hpo.analysis.intervals import format_accuracy, format_interval, wilson_interval

    accuracy, interval = 0.7, wilson_interval(0.7, 800)
    expected = "70.00% [66.7, 73.1]"
    assert format_accuracy(accuracy, interval) == format_interval(accuracy, interval) == expected
    assert display_cell({"val_accuracy": accuracy, "val_accuracy_lower": interval[0],
                         "val_accuracy_upper": interval[1]}, "val_accuracy") == expected
    snapshot = monitor.Progress(name="s", n_trials=3, counts={s.name: 0 for s in optuna.trial.TrialState},
                                stop_reasons={}, best=[{"number": 0, "values": [accuracy], "params": {},
                                                        "interval": interval}], objectives=("val_accuracy",))
    assert f"val_accuracy={expected}" in monitor.summary_line(snapshot)
    assert format_accuracy(None) == "-" and format_accuracy(0.5) == "50.00%"


def test_models_table_comes_from_its_cache_without_building_a_model(tmp_path, monkeypatch):
    from hpo.models import reference_table, stats_cache

    monkeypatch.setenv("HPO_CACHE_DIR", str(tmp_path / "cache"))
    names = ["resnet10", "vgg11", "densenet_cifar"]
    before = stats_cache.models_built
    first = reference_table(names=names)
    assert stats_cache.models_built - before == len(names)
    assert reference_table(names=names) == first  # the second table builds nothing
    assert stats_cache.models_built - before == len(names)
    reference_table(num_classes=100, names=names[:1])  # another head is another model
    assert stats_cache.models_built - before == len(names) + 1
    assert [row[0] for row in first] == names and all(p > 0 and m > 0 for _name, p, m in first)


def test_optuna_log_lines_only_with_verbose(tmp_path):
    url = f"sqlite:///{tmp_path / 'v.db'}"
    optuna.create_study(study_name="quiet", storage=url).add_trial(
        optuna.trial.create_trial(params={}, distributions={}, values=[0.5]))
    code = ("import optuna, sys; from hpo.cli import app; "
            "sys.argv = ['hpo'] + sys.argv[1:]; app(prog_name='hpo')")
    quiet = subprocess.run([sys.executable, "-c", code, "status", "--storage", url], env=_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert re.search(r"quiet: 1 finished", quiet.stdout)
    # -v lets Optuna's INFO lines through: a study created under it says so, as Optuna does.
    verbose = subprocess.run([sys.executable, "-c", "import optuna, hpo.cli.common as c; c._app_options(verbose=True); "
                              f"optuna.create_study(study_name='loud', storage={url!r})"],
                             env=_env(), capture_output=True, text=True, timeout=120)
    assert "A new study created" in verbose.stderr
    silent = subprocess.run([sys.executable, "-c", "import optuna, hpo.cli.common as c; c._app_options(verbose=False); "
                             f"optuna.create_study(study_name='hush', storage={url!r})"],
                            env=_env(), capture_output=True, text=True, timeout=120)
    assert "A new study created" not in silent.stderr

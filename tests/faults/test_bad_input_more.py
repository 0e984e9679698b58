"""More bad input (issue 13): duplicate YAML keys, bad flags, missing databases, one-class folders,
sampler arguments of the wrong type or sign.

Every case goes through the real CLI in-process (``CliRunner``) on real files and folders, and
asserts what a user sees: exit code 2, one line starting ``error:`` that names the culprit, no
traceback, and (for read-only commands) nothing created on disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import hpo.cli

pytestmark = pytest.mark.faults

STUDY = {
    "name": "more",
    "description": "bad input study",
    "dataset": {"kind": "minicifar", "n_classes": 4, "R": 5, "train_size": 0.8},
    "space": "more-space.yaml",
    "objectives": ["val_accuracy"],
    "sampler": {"name": "tpe", "args": {"multivariate": True}},
    "pruner": {"name": "median"},
    "epochs": 2,
    "n_trials": 2,
    "seed": 0,
}
SPACE = {"params": {"model": "cnn", "lr": {"type": "float", "low": 1.0e-3, "high": 0.3, "log": True}}}


def _one_error_line(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _write_study(folder: Path, study: dict) -> Path:
    (folder / "more-space.yaml").write_text(yaml.safe_dump(SPACE))
    path = folder / "more.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


# --- 1. duplicate keys -------------------------------------------------------------------------

def test_a_duplicate_key_is_refused_with_both_lines(tmp_path):
    path = _write_study(tmp_path, STUDY)
    path.write_text(path.read_text() + "epochs: 5\n")
    first = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("epochs:"))
    last = len(path.read_text().splitlines())
    line = _one_error_line(CliRunner().invoke(hpo.cli.app, ["validate", str(path)]), "more.yaml")
    assert f"key epochs appears twice (lines {first} and {last}); keep one" in line


def test_a_duplicate_key_in_a_nested_space_mapping_is_refused(tmp_path):
    path = _write_study(tmp_path, STUDY)
    (tmp_path / "more-space.yaml").write_text("params:\n  model: cnn\n  lr:\n    type: float\n    low: 0.001\n"
                                              "    high: 0.3\n    low: 0.01\n")
    _one_error_line(CliRunner().invoke(hpo.cli.app, ["validate", str(path)]),
                    "more-space.yaml", "key low appears twice (lines 5 and 7)")


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    from hpo.typed import parse_yaml

    assert parse_yaml("a: &a {x: 1}\nb:\n  <<: *a\n  y: 2\n", "t.yaml") == {"a": {"x": 1}, "b": {"x": 1, "y": 2}}


# --- 2. hpo train flags ------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--threads", "--epochs"])
def test_train_counts_below_one_name_their_flag(flag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_error_line(CliRunner().invoke(hpo.cli.app, ["train", flag, "0", "--data-dir", str(tmp_path / "none")]),
                           f"{flag} must be at least 1 (got 0)")
    assert "--set" not in line
    assert not (tmp_path / "none").exists()


def test_worker_threads_below_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_error_line(CliRunner().invoke(hpo.cli.app, ["worker", "--study", "x", "--threads", "0"]), "--threads")


# --- 3. hpo run flags --------------------------------------------------------------------------

@pytest.mark.parametrize("timeout", ["-5", "0"])
def test_run_timeout_must_be_positive(timeout, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write_study(tmp_path, STUDY)
    _one_error_line(CliRunner().invoke(hpo.cli.app, ["run", "--study", str(path), "--timeout", timeout, "--devices", "cpu",
                                                     "--storage", f"sqlite:///{tmp_path}/s.db"]),
                    "--timeout must be a positive number of seconds")
    assert not (tmp_path / "s.db").exists()


def test_storage_and_storage_file_together(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write_study(tmp_path, STUDY)
    (tmp_path / "url.txt").write_text(f"sqlite:///{tmp_path}/b.db\n")
    _one_error_line(CliRunner().invoke(hpo.cli.app, ["run", "--study", str(path), "--devices", "cpu", "--storage",
                                                     f"sqlite:///{tmp_path}/a.db", "--storage-file", str(tmp_path / "url.txt")]),
                    "--storage", "--storage-file", "give one of them")
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "b.db").exists()


# --- 4. read-only commands on a missing database -----------------------------------------------

@pytest.mark.parametrize("command", [["status"], ["status", "x"], ["pareto", "--study", "x"], ["export", "--study", "x"],
                                     ["evaluate", "--study", "x"], ["dashboard"]])
@pytest.mark.parametrize("how", ["default", "option"])
def test_read_only_commands_never_create_a_database(command, how, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    args = command + (["--storage", "sqlite:///sub/dir/hpo.db"] if how == "option" else [])
    name = "sub/dir/hpo.db" if how == "option" else "hpo.db"
    _one_error_line(CliRunner().invoke(hpo.cli.app, args), f"the database file {name} does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- 5. one-class image folders ----------------------------------------------------------------

def test_a_one_class_image_folder_is_refused(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    for split in ("train", "test"):
        folder = tmp_path / "images" / split / "cat"
        folder.mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i}.png")
    _one_error_line(CliRunner().invoke(hpo.cli.app, ["train", "--dataset", "folder", "--data-dir", str(tmp_path / "images"),
                                                     "--epochs", "1", "--device", "cpu"]),
                    "has 1 class folder (cat)", "at least 2")


# --- 6. sampler arguments of the wrong type or sign --------------------------------------------

@pytest.mark.parametrize("sampler, key, value, words", [
    ("tpe", "n_startup_trials", -1, "integer >= 0"),
    ("tpe", "n_startup_trials", 2.5, "must be an integer"),
    ("tpe", "multivariate", "maybe", "true or false"),
    ("tpe", "constant_liar", 1, "true or false"),
    ("random", "seed", "abc", "must be an integer"),
    ("gp", "n_startup_trials", -3, "integer >= 0"),
    ("qmc", "scramble", "yes please", "true or false"),
])
def test_sampler_args_of_the_wrong_type_or_sign(sampler, key, value, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write_study(tmp_path, {**STUDY, "sampler": {"name": sampler, "args": {key: value}}})
    _one_error_line(CliRunner().invoke(hpo.cli.app, ["validate", str(path)]),
                    "more.yaml", f"sampler.args.{key} is {value!r}", words)


def test_good_sampler_args_still_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = {"n_startup_trials": 0, "multivariate": True, "seed": 3, "n_ei_candidates": 8}
    path = _write_study(tmp_path, {**STUDY, "sampler": {"name": "tpe", "args": args}})
    result = CliRunner().invoke(hpo.cli.app, ["validate", str(path)])
    assert result.exit_code == 0, result.output

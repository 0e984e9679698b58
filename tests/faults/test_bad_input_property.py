"""Property-based: every command, given generated bad arguments or bad files, refuses them the same way.

Hypothesis draws a command and a bad value for one of its flags (or a bad study file, or a file that
is not a database), and the real CLI runs in-process (``CliRunner``). Whatever is drawn, the user sees
the documented exit code (2 for a user mistake, 1 for a storage file that is not a database), exactly
one line on stderr, starting ``error:``, and no traceback. Every case is refused before any data is
read or any model trained: a second guaranteed-bad flag that every command checks first keeps a
drawn value that happens to be valid from starting work.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import hpo.cli

pytestmark = pytest.mark.faults

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text a user might type where a value goes: words, numbers, paths, punctuation, unicode, line breaks.
typed = st.one_of(
    st.text(min_size=0, max_size=30),
    st.text(alphabet=string.ascii_letters + string.digits + "-_./:", min_size=1, max_size=20),
    st.integers(min_value=-10**6, max_value=10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
not_positive = st.integers(min_value=-10**6, max_value=0).map(str)
non_positive_seconds = st.one_of(st.integers(min_value=-10**6, max_value=0).map(str), st.just("-0.5"), st.just("0.0"))
bad_port = st.one_of(st.integers(max_value=0, min_value=-10**6), st.integers(min_value=65536, max_value=10**7)).map(str)


def _refused(result, code: int = 2) -> str:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working folder (no hpo.db, no data): anything a command creates there is seen."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.setenv("HPO_DATA_DIR", str(tmp_path / "no-data"))
    return tmp_path


def _missing_db(workdir: Path) -> list[str]:
    return ["--storage", f"sqlite:///{workdir}/missing.db"]


# Each entry: the command line with one drawn value, and a guaranteed-bad flag checked before any work.
def _command_lines(workdir: Path, value: str, count: str, seconds: str, port: str) -> list[list[str]]:
    missing = _missing_db(workdir)
    return [
        ["run", "--study", value, "--n-trials", count],
        ["run", "--study", "cpu-quick", "--budget", value, "--n-trials", count],
        ["run", "--study", "cpu-quick", "--timeout", seconds],
        ["run", "--study", "cpu-quick", "--devices", value, "--per-device", count],
        ["worker", "--study", value, "--threads", count],
        ["worker", "--study", "x", "--workers", count, "--storage", value],
        ["status", value, *missing],
        ["pareto", "--study", value, "--format", value, *missing],
        ["export", "--study", value, "--format", value, "--out", value, *missing],
        ["evaluate", "--study", value, "--trial", count, *missing],
        ["reproduce", "--study", value, "--trial", count, *missing],
        ["dashboard", "--port", port, "--host", value],
        ["dashboard", "--port", port, *missing],
        ["validate", value if value.strip() else "."],
        ["train", "--model", value, "--epochs", count],
        ["train", "--set", value, "--threads", count],
        ["train", "--device", value, "--epochs", count],
        ["studies", "--" + (value.strip("-").replace("\n", "") or "x")],
        ["models", "--classes", count],
    ]


@SETTINGS
@given(index=st.integers(min_value=0, max_value=18), value=typed, count=not_positive, seconds=non_positive_seconds,
       port=bad_port)
def test_every_command_refuses_bad_arguments_with_one_line_and_exit_2(workdir, index, value, count, seconds, port):
    before = sorted(os.listdir(workdir))
    args = _command_lines(workdir, value, count, seconds, port)[index]
    _refused(CliRunner().invoke(hpo.cli.app, args))
    assert sorted(os.listdir(workdir)) == before, f"{args} created files"  # no database, data or log folder


# --- bad files -------------------------------------------------------------------------------------

yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
STUDY_KEYS = ["name", "description", "dataset", "space", "objectives", "sampler", "pruner", "epochs", "n_trials",
              "seed", "constraints", "budget"]
GOOD = {"name": "prop", "description": "d", "dataset": {"kind": "minicifar", "n_classes": 4, "R": 5},
        "space": {"params": {"model": "linear", "lr": 0.01}}, "objectives": ["val_accuracy"], "sampler": "random",
        "pruner": "none", "epochs": 1, "n_trials": 1, "seed": 0}


@st.composite
def bad_study_text(draw) -> str:
    """A study file that is broken somehow: not YAML, not a mapping, a key of the wrong type, an
    unknown key, a duplicate key."""
    kind = draw(st.sampled_from(["garbage", "not-a-mapping", "wrong-value", "unknown-key", "duplicate"]))
    if kind == "garbage":
        return draw(st.sampled_from(["{", "a: [1, 2", "\t- x", ": :", "key: 'open", "[]]"])) + draw(st.text(max_size=10))
    if kind == "not-a-mapping":
        return yaml.safe_dump(draw(st.one_of(st.lists(yaml_values, max_size=3), st.integers(), st.text(min_size=1))))
    study = dict(GOOD)
    if kind == "wrong-value":
        key = draw(st.sampled_from(["dataset", "space", "objectives", "sampler", "pruner", "epochs", "n_trials"]))
        value = draw(yaml_values)
        study[key] = value if value != GOOD[key] else "certainly-wrong"
        if key in ("epochs", "n_trials") and isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            study[key] = -value
    elif kind == "unknown-key":
        key = draw(st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=10).filter(lambda k: k not in STUDY_KEYS))
        study[key] = draw(yaml_values)
    text = yaml.safe_dump(study, sort_keys=False)
    if kind == "duplicate":
        text += f"epochs: {draw(st.integers(1, 9))}\n"
    return text


@SETTINGS
@given(text=bad_study_text(), command=st.sampled_from(["validate", "run"]))
def test_bad_study_files_are_one_line_and_exit_2(workdir, text, command):
    path = workdir / "prop.yaml"
    path.write_text(text)
    args = ["validate", str(path)] if command == "validate" else ["run", "--study", str(path), "--n-trials", "0"]
    _refused(CliRunner().invoke(hpo.cli.app, args))
    path.unlink()
    assert os.listdir(workdir) == []


@SETTINGS
@given(content=st.binary(min_size=1, max_size=300).filter(lambda b: not b.startswith(b"SQLite format 3")),
       index=st.integers(min_value=0, max_value=5))
def test_a_file_that_is_no_database_is_one_line_and_exit_1(workdir, content, index):
    db = workdir / "broken.db"
    db.write_bytes(content)
    storage = ["--storage", f"sqlite:///{db}"]
    args = [["status", *storage], ["pareto", "--study", "s", *storage], ["export", "--study", "s", *storage],
            ["evaluate", "--study", "s", "--trial", "0", *storage], ["reproduce", "--study", "s", "--trial", "0", *storage],
            ["dashboard", "--port", "1", *storage]][index]
    if args[0] == "dashboard":
        args[2] = "65000"  # a free high port; the storage is opened (and refused) before serving
    line = _refused(CliRunner().invoke(hpo.cli.app, args), code=1)
    assert str(db) in line
    assert db.read_bytes() == content  # not "repaired", not overwritten

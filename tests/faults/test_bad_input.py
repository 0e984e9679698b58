"""Bad input and security: malformed YAML, hostile names, dashboard binding, passwords, checkpoints.

Every case goes through the real CLI in-process (``CliRunner``) and asserts what a user sees: exit
code 2 and one line naming the file (never a traceback), or a valid study.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import hpo.cli
from hpo.checkpoints import CheckpointError, load_checkpoint

pytestmark = pytest.mark.faults

VALID_STUDY = {
    "name": "fuzz",
    "description": "fuzzed study",
    "dataset": {"kind": "minicifar", "n_classes": 4, "R": 5, "train_size": 0.8},
    "space": "fuzz-space.yaml",
    "objectives": ["val_accuracy", "param_count"],
    "sampler": {"name": "tpe", "args": {"multivariate": True}},
    "pruner": {"name": "mo_asha", "args": {"min_resource": 1, "reduction_factor": 3}},
    "epochs": 3,
    "n_trials": 4,
    "train": {"batch_size": 64},
    "constraints": {"max_params": 1.0e6},
    "seed": 0,
}
VALID_SPACE = {
    "params": {
        "model": {"choices": ["cnn", "resnet"]},
        "cnn.channels": {"choices": [[8, 16], [16, 32]]},
        "resnet.depth": 10,
        "resnet.width": {"choices": [8, 16]},
        "lr": {"type": "float", "low": 1.0e-3, "high": 0.3, "log": True},
        "optimizer": {"choices": ["sgd", "adamw"]},
        "momentum": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": "sgd"}},
        "batch_size": {"choices": [64, 128]},
    }
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["", "..", "/abs", "a\x00b", "-1", "1e400", "nan", ".inf"]))
keys = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
yaml_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(keys, inner, max_size=4)),
                           max_leaves=12)


def _paths(document: dict | list) -> list[tuple]:
    """Every key path into a nested document (for choosing what to break)."""
    found = []
    items = document.items() if isinstance(document, dict) else enumerate(document)
    for key, value in items:
        found.append((key,))
        if isinstance(value, (dict, list)) and value:
            found += [(key, *rest) for rest in _paths(value)]
    return found


@st.composite
def mutated(draw, valid: dict) -> object:
    """``valid`` with one to three keys replaced, removed or added, or something else entirely."""
    import copy

    kind = draw(st.sampled_from(["mutate", "mutate", "mutate", "anything"]))
    if kind == "anything":
        return draw(yaml_values)
    document = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(yaml_values)
            elif action == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(keys.filter(bool))] = draw(yaml_values)
        except (KeyError, IndexError, TypeError):
            pass
    return document


def _assert_user_facing(result, *file_names: str) -> None:
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert any(name in lines[0] for name in file_names), lines[0]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(study=mutated(VALID_STUDY))
def test_malformed_study_files_end_in_one_clear_line_or_a_valid_study(fuzz_dir, study):
    (fuzz_dir / "fuzz-space.yaml").write_text(yaml.safe_dump(VALID_SPACE, sort_keys=False))
    path = fuzz_dir / "fuzz.yaml"
    path.write_text(yaml.safe_dump(study, allow_unicode=True, sort_keys=False))
    _assert_user_facing(CliRunner().invoke(hpo.cli.app, ["validate", str(path)]), "fuzz.yaml", "fuzz-space.yaml")


@FUZZ
@given(space=mutated(VALID_SPACE))
def test_malformed_search_spaces_end_in_one_clear_line_or_a_valid_study(fuzz_dir, space):
    (fuzz_dir / "fuzz-space.yaml").write_text(yaml.safe_dump(space, allow_unicode=True, sort_keys=False))
    path = fuzz_dir / "fuzz.yaml"
    path.write_text(yaml.safe_dump(VALID_STUDY, sort_keys=False))
    _assert_user_facing(CliRunner().invoke(hpo.cli.app, ["validate", str(path)]), "fuzz.yaml", "fuzz-space.yaml")


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n\t:-[]{}!&*#|>'\""),
                    max_size=200))
def test_arbitrary_text_as_a_study_file(fuzz_dir, text):
    path = fuzz_dir / "text-study.yaml"
    path.write_text(text, encoding="utf-8")
    _assert_user_facing(CliRunner().invoke(hpo.cli.app, ["validate", str(path)]), "text-study.yaml")


def test_control_characters_in_a_study_file(tmp_path):
    path = tmp_path / "control.yaml"
    path.write_text("\x1f")
    _assert_user_facing(CliRunner().invoke(hpo.cli.app, ["validate", str(path)]), "control.yaml")


def test_a_key_with_a_line_break(tmp_path):
    (tmp_path / "fuzz-space.yaml").write_text(yaml.safe_dump(VALID_SPACE, sort_keys=False))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**VALID_STUDY, "bad\rkey": 1}, sort_keys=False))
    _assert_user_facing(CliRunner().invoke(hpo.cli.app, ["validate", str(tmp_path / "s.yaml")]), "s.yaml")


def test_a_space_file_holding_a_nul_string(tmp_path):
    (tmp_path / "fuzz-space.yaml").write_text(yaml.safe_dump("a\x00b"))
    (tmp_path / "fuzz.yaml").write_text(yaml.safe_dump(VALID_STUDY, sort_keys=False))
    _assert_user_facing(CliRunner().invoke(hpo.cli.app, ["validate", str(tmp_path / "fuzz.yaml")]), "fuzz-space.yaml")


def test_the_valid_fuzz_base_is_valid(fuzz_dir):
    (fuzz_dir / "fuzz-space.yaml").write_text(yaml.safe_dump(VALID_SPACE, sort_keys=False))
    (fuzz_dir / "fuzz.yaml").write_text(yaml.safe_dump(VALID_STUDY, sort_keys=False))
    result = CliRunner().invoke(hpo.cli.app, ["validate", str(fuzz_dir / "fuzz.yaml")])
    assert result.exit_code == 0 and "ok" in result.output, result.output


def test_an_unknown_key_is_named(tmp_path):
    (tmp_path / "fuzz-space.yaml").write_text(yaml.safe_dump(VALID_SPACE, sort_keys=False))
    (tmp_path / "fuzz.yaml").write_text(yaml.safe_dump({**VALID_STUDY, "n_trails": 5}, sort_keys=False))
    result = CliRunner().invoke(hpo.cli.app, ["validate", str(tmp_path / "fuzz.yaml")])
    assert result.exit_code == 2 and "fuzz.yaml" in result.output and "n_trails" in result.output


def test_yaml_is_read_with_a_safe_loader(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.yaml").write_text(f'name: evil\nspace: !!python/object/apply:os.system ["touch {marker}"]\n')
    result = CliRunner().invoke(hpo.cli.app, ["validate", str(tmp_path / "evil.yaml")])
    assert result.exit_code == 2 and "evil.yaml" in result.output
    assert not marker.exists()


HOSTILE = ["../x", "/abs", "a\x00b", "..", "a/../../b", ".hidden"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_study_names_are_refused_by_worker(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPO_STORAGE", f"sqlite:///{tmp_path}/hpo.db")
    result = CliRunner().invoke(hpo.cli.app, ["worker", "--study", name, "--devices", "cpu", "--log-dir", "logs"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "cannot be used in a path" in result.output
    assert not (tmp_path / "logs").exists() and not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_inside_study_files_are_refused_by_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPO_STORAGE", f"sqlite:///{tmp_path}/hpo.db")
    (tmp_path / "fuzz-space.yaml").write_text(yaml.safe_dump(VALID_SPACE, sort_keys=False))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**VALID_STUDY, "name": name}, sort_keys=False))
    result = CliRunner().invoke(hpo.cli.app, ["run", "--study", str(tmp_path / "s.yaml"), "--devices", "cpu",
                                              "--log-dir", "logs"])
    assert result.exit_code == 2 and "s.yaml" in result.output and "Traceback" not in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fuzz-space.yaml", "s.yaml"]  # nothing written anywhere


@pytest.mark.parametrize("name", ["../x", "/abs", "a\x00b"])
def test_hostile_study_arguments_to_run_are_refused(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPO_STORAGE", f"sqlite:///{tmp_path}/hpo.db")
    result = CliRunner().invoke(hpo.cli.app, ["run", "--study", name, "--devices", "cpu", "--log-dir", "logs"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not (tmp_path / "logs").exists()


@pytest.fixture
def served(monkeypatch, tmp_path):
    """optuna-dashboard's server replaced by a recorder: we test hpo's binding and warning, not the server.

    The test's ``hpo.db`` is created first: the dashboard, a read-only command, refuses a missing one.
    """
    import optuna
    import optuna_dashboard

    optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/hpo.db")

    calls = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **kwargs: calls.append(kwargs))
    return calls


def test_dashboard_binds_localhost_by_default(served, tmp_path):
    result = CliRunner().invoke(hpo.cli.app, ["dashboard", "--storage", f"sqlite:///{tmp_path}/hpo.db",
                                              "--artifacts", str(tmp_path / "artifacts")])
    assert result.exit_code == 0, result.output
    assert served[0]["host"] == "127.0.0.1" and "warning" not in result.output


def test_dashboard_warns_when_it_binds_elsewhere(served, tmp_path):
    result = CliRunner().invoke(hpo.cli.app, ["dashboard", "--host", "0.0.0.0", "--storage",
                                              f"sqlite:///{tmp_path}/hpo.db", "--artifacts", str(tmp_path / "artifacts")])
    assert result.exit_code == 0, result.output
    assert served[0]["host"] == "0.0.0.0"
    assert "warning: binding 0.0.0.0" in result.output


@pytest.mark.parametrize("how", ["option", "env", "file"])
def test_passwords_never_reach_the_output(how, tmp_path, monkeypatch):
    url = "postgresql://postgres:s3cretpw@127.0.0.1:1/x"  # nothing listens on port 1
    args = ["status"]
    if how == "option":
        args += ["--storage", url]
    elif how == "env":
        monkeypatch.setenv("HPO_STORAGE", url)
    else:
        (tmp_path / "url").write_text(url + "\n")
        args += ["--storage-file", str(tmp_path / "url")]
    result = CliRunner().invoke(hpo.cli.app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output  # a server down is an environment fault
    assert "s3cretpw" not in result.output and "postgres:***@127.0.0.1" in result.output


class _Payload:
    """An arbitrary object that would run code when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoints_with_arbitrary_objects_are_refused(tmp_path, fake_cifar):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        torch.save({"model": {}, "optimizer": {}, "schedule": {}, "epoch": 1, "history": [], "rng": {},
                    "config": {}, "payload": _Payload(marker)}, handle)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(evil)
    assert not marker.exists()
    # The same file through the CLI: refused with one line, nothing executed.
    result = CliRunner().invoke(hpo.cli.app, ["train", "--model", "linear", "--dataset", "minicifar", "--R", "1",
                                              "--epochs", "1", "--device", "cpu", "--data-dir", str(fake_cifar),
                                              "--resume", str(evil)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "evil.pt" in result.output.strip().splitlines()[-1]
    assert not marker.exists()

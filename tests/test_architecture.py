"""The layout's promises, checked on the source: room sizes, and one owner for the trial vocabulary.

- No module under hpo/ over 600 lines; no function over 80 lines, except flat registration
  tables (a function whose body only registers decorated factories).
- Trial user-attribute names, stop-reason values and hpo's system-attribute keys are spelled as
  string literals only in hpo/trials.py; objective directions are defined only there.
- Optuna's private attributes are touched only in hpo/compat.py; bench/ uses only public names of hpo.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from hpo import trials

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hpo"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules(folder: Path = PACKAGE) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _is_registration_table(node: ast.FunctionDef) -> bool:
    """A body of imports, aliases and decorated registrations only (samplers' and pruners' built-ins)."""
    registered = 0
    for statement in node.body:
        if isinstance(statement, (ast.Import, ast.ImportFrom, ast.Assign)):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # docstring
        if isinstance(statement, ast.FunctionDef) and statement.decorator_list and all(
            isinstance(d, ast.Call) and getattr(d.func, "id", getattr(d.func, "attr", "")).startswith("register_")
            for d in statement.decorator_list
        ):
            registered += 1
            continue
        return False
    return registered > 0


def test_no_module_over_600_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in _modules()}
    too_long = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_no_function_over_80_lines():
    too_long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and not _is_registration_table(node):
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not too_long, "functions over 80 lines: " + ", ".join(too_long)


def _string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant that is not a docstring, with its line."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


RECORD_NAMES = {f.name for f in dataclasses.fields(trials.TrialRecord)} - {"extra"}
STOP_REASONS = {reason.value for reason in trials.StopReason}
SYSTEM_KEYS = {trials.SYS_RETRY_OF, trials.SYS_RETRIES, trials.SYS_RESUME, trials.SYS_WORKER, trials.SYS_HEARTBEAT,
               trials.WORKER_PRESENCE_PREFIX, trials.CHECKPOINT_REMOVED_PREFIX, trials.TEST_ACCURACY_PREFIX,
               trials.TEST_IMAGES_PREFIX, trials.SYS_WARM_FROM}


# The same word in another role: CheckpointError.reason names the kind of failure (such a trial
# records stop_reason "error"), not an attribute.
HOMONYMS = {("hpo/checkpoints/format.py", "checkpoint")}


def test_trial_vocabulary_is_spelled_only_in_trials_module():
    forbidden = RECORD_NAMES | STOP_REASONS | SYSTEM_KEYS | {trials.MAXIMIZE, trials.MINIMIZE}
    offenders = []
    for path in _modules():
        if path == PACKAGE / "trials.py":
            continue
        for line, text in _string_literals(path):
            if text in forbidden and (str(path.relative_to(ROOT)), text) not in HOMONYMS:
                offenders.append(f"{path.relative_to(ROOT)}:{line} {text!r}")
    assert not offenders, "trial vocabulary spelled outside hpo/trials.py: " + ", ".join(offenders)


_PRIVATE = re.compile(r"\._(storage|study_id|trial_id|cached_frozen_trial|backend_path|base_path|get_unvisited_grid_ids)\b")


@pytest.mark.parametrize("folder", ["hpo", "bench"])
def test_optuna_privates_only_in_compat(folder):
    offenders = []
    for path in _modules(ROOT / folder):
        if path == PACKAGE / "compat.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _PRIVATE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offenders, "Optuna private attributes outside hpo/compat.py: " + ", ".join(offenders)


def test_bench_uses_public_names_of_hpo():
    offenders = []
    for path in _modules(ROOT / "bench"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hpo"):
                offenders += [f"{path.name}: from {node.module} import {a.name}" for a in node.names if a.name.startswith("_")]
                if any(part.startswith("_") for part in node.module.split(".")):
                    offenders.append(f"{path.name}: from {node.module}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and base.id == "hpo":
                    offenders.append(f"{path.name}:{node.lineno} hpo...{node.attr}")
    assert not offenders, "bench/ uses private names of hpo: " + ", ".join(offenders)


def test_the_cli_is_not_re_entered_by_the_library():
    offenders = []
    for path in _modules():
        if (path.name == "__main__.py" and path.parent == PACKAGE) or path.parent == PACKAGE / "cli":
            continue
        text = path.read_text()
        if re.search(r"""["']-m["'],\s*["']hpo["']""", text) or "hpo.cli" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, "library modules that start or import the CLI: " + ", ".join(offenders)

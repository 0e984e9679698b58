"""Print pip constraints that pin every dependency of pyproject.toml to the lowest version it admits.

CI installs the project with these constraints into a second fresh environment and runs the fast
tests there, so a floor such as ``optuna>=4.2`` under code that needs Optuna 5 fails CI instead of a
user's install. The constraints cover the direct dependencies and the ``test`` extra; what they pull
in is resolved as pip resolves it for a user. torch and torchvision are pinned to the given local
builds instead (older builds are not on these machines), so their floors are not tried.

Usage: python .ci/floors.py torch==2.14.1 torchvision==0.29.1 > floors.txt

A requirement without a lower bound (``>=`` or ``==``) is an error: its floor would be "anything".
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


def floor(requirement: str) -> tuple[str, str]:
    """``(name, lowest version)`` of one PEP 508 requirement with a ``>=`` or ``==`` bound."""
    match = _NAME.match(requirement.split(";", 1)[0])
    if not match:
        raise SystemExit(f"pyproject.toml: cannot read the requirement {requirement!r}")
    name, specs = match.group(1), match.group(3)
    for spec in specs.split(","):
        spec = spec.strip()
        if spec.startswith((">=", "==")) and not spec.startswith("==="):
            return name, spec[2:].strip()
    raise SystemExit(f"pyproject.toml: {requirement!r} has no lower bound (>= or ==); give it one")


def main(argv: list[str]) -> int:
    project = tomllib.loads(Path(__file__).resolve().parents[1].joinpath("pyproject.toml").read_text())["project"]
    pinned = dict(pin.split("==", 1) for pin in argv)
    requirements = [*project["dependencies"], *project.get("optional-dependencies", {}).get("test", [])]
    for requirement in requirements:
        name, version = floor(requirement)
        print(f"{name}=={pinned.pop(name.lower(), version)}")
    for name, version in pinned.items():
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Helpers of the end-to-end suite: the shared study's definition, headless Chromium, system tools.

Imported by tests/e2e/conftest.py and the tests (pytest puts this folder on ``sys.path``), like
tests/faults/faultkit.py.
"""

from __future__ import annotations

import contextlib
import html.parser
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from hpo.storage import open_storage

HPO = [sys.executable, "-m", "hpo"]
REPO_ROOT = Path(__file__).resolve().parents[2]

STUDY_NAME = "e2e-tiny"
N_TRIALS = 6
EPOCHS = 2
N_CLASSES = 4
TEST_PER_CLASS = 10  # tests/conftest.py write_fake_cifar10's default

TINY_SPACE = """\
params:
  model: cnn
  cnn.channels: {choices: [[4], [8], [8, 16]]}
  cnn.kernel_size: 3
  lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
  optimizer: sgd
  batch_size: 32
  augment: none
"""

STUDY_YAML = f"""\
name: {STUDY_NAME}
description: end-to-end test study (tiny CNN, fake CIFAR)
dataset: {{kind: minicifar, n_classes: {N_CLASSES}, R: 1, train_size: 0.75}}
space: tiny.yaml
objectives: [val_accuracy, param_count, train_seconds]
sampler: random
pruner: none
epochs: {EPOCHS}
n_trials: {N_TRIALS}
seed: 0
"""

# Flags that keep a headless Chromium off the network and inside its own profile folder.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1200",
]


@dataclass(frozen=True)
class E2EStudy:
    """Where the shared study lives, and the environment of the `hpo` processes that use it."""

    name: str
    folder: Path
    db_path: Path
    data_dir: Path
    artifacts: Path
    env: dict

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def load(self, url: str | None = None) -> optuna.Study:
        return optuna.load_study(study_name=self.name, storage=open_storage(url or self.url))


def run_study(data_dir: Path, folder: Path) -> E2EStudy:
    """Run the shared study with a real `hpo run` process (one CPU worker).

    Args:
        data_dir: A folder holding the fake ``cifar-10-batches-py``.
        folder: An empty folder for the study file, SQLite database, artifacts and logs.

    Returns:
        The study's locations.
    """
    (folder / "tiny.yaml").write_text(TINY_SPACE)
    study_path = folder / f"{STUDY_NAME}.yaml"
    study_path.write_text(STUDY_YAML)
    study = E2EStudy(
        name=STUDY_NAME,
        folder=folder,
        db_path=folder / "study.db",
        data_dir=data_dir,
        artifacts=folder / "artifacts",
        env={
            **os.environ,
            "HPO_OFFLINE": "1",
            "HPO_DATA_DIR": str(data_dir),
            "HPO_ARTIFACTS": str(folder / "artifacts"),
            # One thread in every process: the worker and `hpo reproduce` then compute the same
            # sums in the same order, and the 2-core CI machine is not oversubscribed.
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        },
    )
    proc = subprocess.run(
        HPO + ["run", "--study", str(study_path), "--devices", "cpu", "--storage", study.url,
               "--log-dir", str(folder / "logs")],
        env=study.env, cwd=folder, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return study


def require_tool(what: str, *names: str, env_var: str | None = None) -> str:
    """Path of a system program; skip without it, except under CI where that fails the test.

    Args:
        what: The program's name for the message.
        *names: Executable names to look for on ``PATH``, in order.
        env_var: An environment variable that names the executable first, if set.

    Returns:
        The executable's path.
    """
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = f"{what} is not installed (looked for {', '.join(names)})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the end-to-end tests")
    pytest.skip(message)


def dump_dom(chromium: str, url: str, profile_dir: Path, virtual_time_ms: int) -> str:
    """The DOM of ``url`` after its scripts ran for ``virtual_time_ms`` of virtual time.

    Args:
        chromium: The browser executable.
        url: A file:// or http:// address.
        profile_dir: A folder for the browser profile (created if missing).
        virtual_time_ms: Virtual time budget: the page's timers and requests run until it is spent.

    Returns:
        The serialised DOM.
    """
    profile_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", f"--virtual-time-budget={virtual_time_ms}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-3000:]
    return proc.stdout


class _VisibleText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0  # depth inside <script>/<style>

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden and data.strip():
            self.parts.append(data.strip())


def visible_text(dom: str) -> str:
    """The text a reader sees in a DOM (scripts and styles left out), whitespace collapsed.

    Args:
        dom: Serialised HTML.

    Returns:
        The text, one space between pieces.
    """
    parser = _VisibleText()
    parser.feed(dom)
    return " ".join(" ".join(parser.parts).split())


DASHBOARD_START_SECONDS = 120  # a cold start imports optuna-dashboard and the storage on a loaded 2-core machine


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 10):
    """The JSON an HTTP GET of ``url`` answers."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def running_dashboard(storage_url: str, env: Mapping[str, str], cwd: Path, log_path: Path) -> Iterator[str]:
    """A real ``hpo dashboard`` process on ``storage_url``, once its API answers: yields its base URL,
    and stops it (SIGTERM, then SIGKILL after 15 s) on leaving. Its output goes to ``log_path``,
    quoted when it exits early or does not answer within :data:`DASHBOARD_START_SECONDS`."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(HPO + ["dashboard", "--storage", storage_url, "--port", str(port)], env=env,
                                cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + DASHBOARD_START_SECONDS
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"hpo dashboard exited with code {proc.returncode}: {log_path.read_text()}")
                try:
                    get_json(f"{base}/api/studies")
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        pytest.fail(f"hpo dashboard did not answer on {base} within {DASHBOARD_START_SECONDS} s: "
                                    f"{log_path.read_text()}")
                    time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

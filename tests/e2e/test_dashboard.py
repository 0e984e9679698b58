"""`hpo dashboard` as a real server process: its JSON API, and its React pages in headless Chromium."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from e2ekit import HPO, N_TRIALS, E2EStudy, dump_dom, visible_text

pytestmark = pytest.mark.slow

START_SECONDS = 120  # a cold start imports optuna-dashboard and the storage on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def dashboard(e2e_study: E2EStudy, tmp_path_factory):
    """Base URL of a running `hpo dashboard` on the shared study; the process ends with the module."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(HPO + ["dashboard", "--storage", e2e_study.url, "--port", str(port)],
                            env=e2e_study.env, cwd=e2e_study.folder, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"hpo dashboard exited with code {proc.returncode}: {log_path.read_text()}")
            try:
                _get_json(f"{base}/api/studies")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"hpo dashboard did not answer on {base} within {START_SECONDS} s: {log_path.read_text()}")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def _study_id(base: str, name: str) -> int:
    summaries = _get_json(f"{base}/api/studies")["study_summaries"]
    (summary,) = [s for s in summaries if s["study_name"] == name]
    return summary["study_id"]


def test_dashboard_api_lists_the_study_and_its_trials(e2e_study: E2EStudy, dashboard: str):
    summaries = _get_json(f"{dashboard}/api/studies")["study_summaries"]
    assert [s["study_name"] for s in summaries] == [e2e_study.name]
    assert summaries[0]["directions"] == ["maximize", "minimize", "minimize"]
    detail = _get_json(f"{dashboard}/api/studies/{summaries[0]['study_id']}")
    assert len(detail["trials"]) == N_TRIALS
    assert sorted(t["number"] for t in detail["trials"]) == list(range(N_TRIALS))
    assert all(t["state"] == "Complete" for t in detail["trials"])
    assert detail["objective_names"] == ["val_accuracy", "param_count", "train_seconds"]
    assert sorted(t["number"] for t in detail["best_trials"]) == sorted(t.number for t in e2e_study.load().best_trials)


@pytest.mark.browser
def test_dashboard_pages_show_the_study_and_its_trials(e2e_study: E2EStudy, dashboard: str, chromium, tmp_path):
    # The pages are a React app: the study and its trials exist in the DOM only after its scripts
    # fetched the API and rendered, which --dump-dom waits for within the virtual time budget.
    home = visible_text(dump_dom(chromium, f"{dashboard}/dashboard/", tmp_path / "p1", virtual_time_ms=10000))
    assert e2e_study.name in home and "Direction: MAXIMIZE, MINIMIZE, MINIMIZE" in home, home[:2000]

    study_id = _study_id(dashboard, e2e_study.name)
    page = visible_text(dump_dom(chromium, f"{dashboard}/dashboard/studies/{study_id}/trials", tmp_path / "p2",
                                 virtual_time_ms=10000))
    assert f"{N_TRIALS} Trials" in page, page[:2000]
    listed = {int(m[1]): bool(m[2]) for m in re.finditer(r"Trial (\d+) Complete( Best Trial)?", page)}
    assert sorted(listed) == list(range(N_TRIALS)), page[:2000]
    assert {n for n, is_best in listed.items() if is_best} == {t.number for t in e2e_study.load().best_trials}

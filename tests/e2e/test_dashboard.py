"""`hpo dashboard` as a real server process: its JSON API, and its React pages in headless Chromium."""

from __future__ import annotations

import re

import pytest

from e2ekit import N_TRIALS, E2EStudy, dump_dom, get_json, running_dashboard, visible_text

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def dashboard(e2e_study: E2EStudy, tmp_path_factory):
    """Base URL of a running `hpo dashboard` on the shared study; the process ends with the module."""
    with running_dashboard(e2e_study.url, e2e_study.env, e2e_study.folder,
                           tmp_path_factory.mktemp("dashboard") / "dashboard.log") as base:
        yield base


def _study_id(base: str, name: str) -> int:
    summaries = get_json(f"{base}/api/studies")["study_summaries"]
    (summary,) = [s for s in summaries if s["study_name"] == name]
    return summary["study_id"]


def test_dashboard_api_lists_the_study_and_its_trials(e2e_study: E2EStudy, dashboard: str):
    summaries = get_json(f"{dashboard}/api/studies")["study_summaries"]
    assert [s["study_name"] for s in summaries] == [e2e_study.name]
    assert summaries[0]["directions"] == ["maximize", "minimize", "minimize"]
    detail = get_json(f"{dashboard}/api/studies/{summaries[0]['study_id']}")
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

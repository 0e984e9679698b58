"""Fixtures of the fault suite (helpers live in faultkit.py)."""

from __future__ import annotations

import pytest

from faultkit import stop_all


@pytest.fixture
def procs():
    """Processes started by a test; any still alive at its end are killed."""
    started: list = []
    yield started
    stop_all(started)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/hpo.db"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request, tmp_path) -> str:
    """SQLite file and the local PostgreSQL: every fault case must hold on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hpo.db"
    return request.getfixturevalue("postgres_url")

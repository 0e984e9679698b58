"""Fixtures of the end-to-end suite: one tiny real study per session, shared by every test.

The study trains a tiny CNN for 2 epochs on MINICIFAR drawn from the fake CIFAR-10 batches
(tests/conftest.py), with three objectives (val_accuracy, param_count, train_seconds), so the
exports have a real front of several trials. Chromium, LibreOffice and pdftoppm are the system's:
tests skip without them on a developer machine and fail under CI (``CI`` set).
"""

from __future__ import annotations

import pytest

from e2ekit import E2EStudy, require_tool, run_study


@pytest.fixture(scope="session")
def e2e_study(fake_cifar, tmp_path_factory) -> E2EStudy:
    """The shared study, run once by a real `hpo run` process (see e2ekit.STUDY_YAML)."""
    return run_study(fake_cifar, tmp_path_factory.mktemp("e2e-study"))


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium for headless runs (``BROWSER_PATH`` first, as Kaleido does)."""
    return require_tool("Chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
                        env_var="BROWSER_PATH")


@pytest.fixture(scope="session")
def libreoffice() -> str:
    """Path of LibreOffice's command line."""
    return require_tool("LibreOffice", "libreoffice", "soffice")


@pytest.fixture(scope="session")
def pdftoppm() -> str:
    """Path of poppler's ``pdftoppm``."""
    return require_tool("pdftoppm (poppler-utils)", "pdftoppm")

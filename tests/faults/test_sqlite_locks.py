"""A process that opens its SQLite storage again keeps seeing other processes' writes.

Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's own
included. If opening the storage a second time read the file's header with open()/close(), another
process could then take the file for unused, delete its -wal and -shm files on close, and leave this
process reading a stale snapshot for good (a study created elsewhere stays invisible). Found through
`hpo refit` run beside a test process that had run a worker in-process.
"""

from __future__ import annotations

import subprocess
import sys

import optuna

from hpo.storage import open_storage


def _names(url: str) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(open_storage(url)))


def test_a_second_open_keeps_the_locks_so_other_processes_writes_stay_visible(tmp_path):
    url = f"sqlite:///{tmp_path}/hpo.db"
    first = open_storage(url)
    optuna.create_study(study_name="here", storage=first)  # this process holds the file open from now on
    assert _names(url) == ["here"]  # opens the storage again while `first` keeps its connection
    code = ("import optuna; from hpo.storage import open_storage; "
            f"optuna.create_study(study_name='there', storage=open_storage({url!r}))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)  # writes, then closes its connections
    assert _names(url) == ["here", "there"]
    assert [s.study_name for s in optuna.get_all_study_summaries(first)] == ["here", "there"]

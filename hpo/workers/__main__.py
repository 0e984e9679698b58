"""``python -m hpo.workers``: one worker process, configured by ``HPO_WORKER_OPTIONS`` and ``HPO_STORAGE``."""

from hpo.workers.launch import entry_point

raise SystemExit(entry_point())

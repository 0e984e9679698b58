"""The training path runs without the report stack: no plotly, kaleido or Chromium (issue 16, item 0).

The GPU machine has its own torch and none of the report packages; hpo is installed there with
``--no-deps`` plus carried wheels (bench/gpu.py). This test starts a Python in which importing
plotly, kaleido, choreographer (kaleido's Chromium driver), python-pptx or optuna-dashboard fails, imports
the training rooms and runs a real worker on a tiny study to its end.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("plotly", "kaleido", "choreographer", "pptx", "optuna_dashboard")

SCRIPT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` now raises ImportError
import hpo.data, hpo.models, hpo.train, hpo.workers
from hpo.config import load_study
from hpo.data import load_dataset
from hpo.storage import open_storage
from hpo.study import create_or_load

config = load_study({study!r})
dataset = load_dataset(config.dataset, {data!r}, split_seed=config.seed)
create_or_load(config, open_storage({url!r}), n_trials=None, dataset_fingerprint=dataset.fingerprint)
options = hpo.workers.WorkerOptions(study_name=config.name, storage_url={url!r}, device="cpu", data_dir={data!r},
                                    artifacts={artifacts!r}, threads=1)
print(hpo.workers.run_worker(options))
loaded = sorted(name for name in {blocked!r} if sys.modules.get(name) is not None)
print("loaded:", loaded)
"""


def test_a_worker_trains_without_plotly_kaleido_or_chromium(tmp_path, fake_cifar):
    (tmp_path / "space.yaml").write_text("params:\n  model: linear\n  lr: 0.05\n  batch_size: 32\n  augment: none\n")
    study = tmp_path / "bare.yaml"
    study.write_text(textwrap.dedent("""\
        name: bare
        dataset: {kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}
        space: space.yaml
        sampler: random
        pruner: none
        epochs: 1
        n_trials: 1
        """))
    script = SCRIPT.format(blocked=BLOCKED, study=str(study), data=str(fake_cifar), url=f"sqlite:///{tmp_path}/bare.db",
                           artifacts=str(tmp_path / "artifacts"))
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "{'COMPLETE': 1}" in done.stdout
    assert "loaded: []" in done.stdout

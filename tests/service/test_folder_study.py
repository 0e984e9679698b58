"""An image-folder study of 40x40 images runs end to end under `hpo run` and `hpo worker`, real processes.

Its stored definition reads back (a folder has no n_classes or R), every worker accepts it, and
each trial's MACs are counted at the folder's image size, so `max_macs` judges what is trained.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pytest
from PIL import Image

from hpo.models import count_macs, create_model
from hpo.trials import TrialRecord

HPO = [sys.executable, "-m", "hpo"]
SIZE = 40  # not 32: MACs and the model input follow the folder's images


def write_folder(root, classes=("ant", "bee", "cow"), train=12, test=4, seed=0):
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                colour = np.array([80 * label, 255 - 80 * label, 40 + 60 * label], dtype=float)
                pixels = np.clip(colour + rng.normal(0, 30, size=(SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


STUDY = """\
name: {name}
dataset: {{kind: folder, image_size: {size}, train_size: 0.75}}
space:
  params:
    model: cnn
    cnn.channels: {{choices: [[4], [8]]}}
    lr: {{type: float, low: 1.0e-2, high: 0.1, log: true}}
    batch_size: 8
    augment: none
sampler: random
pruner: none
epochs: 1
n_trials: {n}
seed: 0
"""


@pytest.mark.slow
def test_folder_study_runs_under_run_and_worker(tmp_path, worker_env, unique_name):
    data = write_folder(tmp_path / "folder-data")
    study_file = tmp_path / f"{unique_name}.yaml"
    study_file.write_text(textwrap.dedent(STUDY.format(name=unique_name, size=SIZE, n=2)))
    url = f"sqlite:///{tmp_path}/folder.db"
    env = {**worker_env, "HPO_DATA_DIR": str(data)}
    run = subprocess.run(HPO + ["run", "--study", str(study_file), "--devices", "cpu", "--storage", url], env=env,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    # A second worker joins the stored study with a larger budget: the stored definition must load.
    join = subprocess.run(HPO + ["worker", "--study", unique_name, "--n-trials", "3", "--devices", "cpu",
                                 "--storage", url], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert join.returncode == 0, join.stdout + join.stderr

    trials = optuna.load_study(study_name=unique_name, storage=url).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    for trial in trials:
        record = TrialRecord.of(trial)
        channels = [int(c) for c in trial.params["cnn.channels"].strip("[]").split(",")]
        model = create_model("cnn", num_classes=3, channels=channels, image_size=SIZE)  # built for the folder's images
        at_32 = create_model("cnn", num_classes=3, channels=channels)
        assert record.macs == count_macs(model, (3, SIZE, SIZE)) > count_macs(at_32, (3, 32, 32))
        assert record.param_count == sum(p.numel() for p in model.parameters())
        assert record.epochs_run == 1 and record.val_accuracy is not None

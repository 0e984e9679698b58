"""The benchmark scripts (bench/): the seed-style baseline sees the trainer's images; the scripts run end to end.

The data is a small image folder of PNG files written here (exact pixels), never the real archive.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH_DIR))  # the scripts import their helpers as `common`

import common  # noqa: E402
import time_to_accuracy  # noqa: E402
import trainer as trainer_bench  # noqa: E402

from hpo.data import CIFAR10_MEAN, CIFAR10_STD  # noqa: E402
from hpo.errors import ConfigError, DataNotFoundError  # noqa: E402

CLASSES = ["airplane", "automobile", "bird", "cat"]
TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 5


def _class_images(rng: np.random.Generator, label: int, count: int) -> np.ndarray:
    # Each class its own mean colour plus noise, so a small CNN learns it in an epoch or two.
    base = np.array([(label * 53) % 256, (label * 97 + 40) % 256, (label * 151 + 80) % 256], dtype=np.float64)
    return np.clip(base + rng.normal(0, 40, size=(count, 32, 32, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """train/<class>/NNNN.png and test/<class>/NNNN.png for 4 classes."""
    root = tmp_path_factory.mktemp("bench-images")
    rng = np.random.default_rng(0)
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, pixels in enumerate(_class_images(rng, label, per_class)):
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def one_thread():
    """``--threads 1`` for the scripts (fast on a busy 2-core runner); torch's setting restored after."""
    threads = torch.get_num_threads()
    yield ["--threads", "1"]
    torch.set_num_threads(threads)


def _args(image_folder: Path, *extra: str):
    return trainer_bench.parse_args(["--data-dir", str(image_folder), "--R", "1", "--device", "cpu", *extra])


def test_seed_style_dataset_serves_the_trainers_training_images(image_folder):
    data, _ = common.load_minicifar(_args(image_folder))
    subset = common.seed_style_dataset(image_folder, data.indices["train"], data.train.labels, augment=False)

    assert len(subset) == len(data.train)
    mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(3, 1, 1)
    for i in range(len(subset)):
        image, label = subset[i]
        expected = (data.train.images[i].float() / 255 - mean) / std
        assert label == int(data.train.labels[i])
        torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)


def test_seed_style_dataset_refuses_labels_that_do_not_match(image_folder):
    data, _ = common.load_minicifar(_args(image_folder))
    wrong = (data.train.labels + 1) % len(CLASSES)
    with pytest.raises(DataNotFoundError, match="orders its"):
        common.seed_style_dataset(image_folder, data.indices["train"], wrong, augment=True)


def test_seed_style_train_counts_every_image_and_evaluates(image_folder):
    data, _ = common.load_minicifar(_args(image_folder))
    train_set = common.seed_style_dataset(image_folder, data.indices["train"], data.train.labels, augment=True)
    val_set = common.seed_style_dataset(image_folder, data.indices["val"], data.val.labels, augment=False)
    model = common.fresh_model("cnn_stride", len(CLASSES), {})
    before = [p.detach().clone() for p in model.parameters()]
    seen = []

    records = common.seed_style_train(
        model, common.seed_style_loader(train_set, shuffle=True), 2, torch.device("cpu"),
        val_loader=common.seed_style_loader(val_set, shuffle=False), on_epoch=seen.append,
    )

    assert [r.epoch for r in records] == [1, 2] and seen == records
    assert all(r.images == len(data.train) for r in records)  # DataLoader keeps the last partial batch
    assert all(0.0 <= r.val_accuracy <= 1.0 and np.isfinite(r.train_loss) for r in records)
    assert records[1].elapsed_seconds > records[0].elapsed_seconds > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_fresh_model_gives_equal_weights_every_call():
    first = common.fresh_model("cnn_stride", 4, {})
    second = common.fresh_model("cnn_stride", 4, {})
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_split_overrides_routes_knobs_and_trainer_options():
    knobs, options = common.split_overrides("cnn_stride", ["kernel_size=3", "lr=0.1", "batch_size=64"])
    assert knobs == {"kernel_size": 3}
    assert options == {"lr": 0.1, "batch_size": 64}
    with pytest.raises(ConfigError, match="'bogus' is neither a knob of cnn"):
        common.split_overrides("cnn_stride", ["bogus=1"])
    with pytest.raises(ConfigError, match="not a model family or variant"):
        common.split_overrides("no_such_model", [])


def test_image_folder_root_names_the_missing_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path.resolve()))):
        common.image_folder_root(tmp_path)


def test_time_to_target_is_the_first_epoch_at_or_above_it():
    curve = [(1.0, 0.40), (2.5, 0.60), (4.0, 0.55), (5.0, 0.70)]
    assert time_to_accuracy.time_to_target(curve, 0.60) == (2.5, 2)
    assert time_to_accuracy.time_to_target(curve, 0.65) == (5.0, 4)
    assert time_to_accuracy.time_to_target(curve, 0.80) is None
    assert time_to_accuracy.time_to_target([], 0.10) is None


def test_speedup_line_is_seed_time_over_trainer_time_or_names_the_miss():
    trainer_run, seed_run = time_to_accuracy.TRAINER_RUN, time_to_accuracy.SEED_RUN
    line = time_to_accuracy.speedup_line({trainer_run: (4.0, 3), seed_run: (10.0, 2)}, 0.6, 10)
    assert line == "time-to-accuracy speedup: 2.50"
    line = time_to_accuracy.speedup_line({trainer_run: (4.0, 3), seed_run: None}, 0.6, 10)
    assert line == f"time-to-accuracy speedup: n/a ({seed_run} did not reach val_accuracy 0.60 in 10 epochs)"


def test_trainer_bench_end_to_end(image_folder, tmp_path, capsys, one_thread):
    out = tmp_path / "trainer.json"
    status = trainer_bench.main([
        "--data-dir", str(image_folder), "--R", "1", "--device", "cpu", *one_thread,
        "--epochs", "1", "--warmup-epochs", "1", "--out", str(out),
    ])

    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    match = re.fullmatch(r"speedup at default batch: (\d+\.\d\d)", lines[-1])
    assert match, lines[-1]
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert [r["name"] for r in runs] == [trainer_bench.SEED_RUN, "hpo trainer", "hpo trainer (default batch)"]
    assert [r["batch_size"] for r in runs] == [32, 32, 256]
    assert all(r["images_per_second"] > 0 and r["wall_seconds"] > 0 for r in runs)
    assert runs[0]["images_per_epoch"] == 64  # 80 kept training images at R=1, train_size 0.8
    expected = runs[2]["images_per_second"] / runs[0]["images_per_second"]
    assert report["speedup_at_default_batch"] == pytest.approx(expected)
    assert match.group(1) == f"{expected:.2f}"
    assert report["machine"]["torch_threads"] == 1


def test_trainer_bench_reports_a_user_error_with_status_2(tmp_path, capsys):
    status = trainer_bench.main(["--data-dir", str(tmp_path), "--device", "cpu"])
    assert status == 2
    assert "no image folder in" in capsys.readouterr().err


def test_time_to_accuracy_end_to_end(image_folder, tmp_path, capsys, monkeypatch, one_thread):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-browser"))  # skip the PNG: no Chromium start
    status = time_to_accuracy.main([
        "--data-dir", str(image_folder), "--R", "1", "--device", "cpu", *one_thread,
        "--target", "0.01", "--max-epochs", "2", "--out-dir", str(tmp_path),
    ])

    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    assert re.fullmatch(r"time-to-accuracy speedup: \d+\.\d\d", lines[-1]), lines[-1]
    assert (tmp_path / "time_to_accuracy.html").stat().st_size > 0
    assert any(line.startswith("no PNG:") for line in lines)
    report = json.loads((tmp_path / "time_to_accuracy.json").read_text())
    for name in (time_to_accuracy.TRAINER_RUN, time_to_accuracy.SEED_RUN):
        assert report["time_to_target"][name]["epoch"] == 1  # any accuracy reaches 0.01: stops after epoch 1
        assert len(report["curves"][name]) == 1
    assert report["trainer_config"]["epochs"] == 2


def test_quickstart_figures_of_a_stored_study(tmp_path):
    """bench/quickstart.py's reading of a study: front, architectures, decades, sampled, best vs reference."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    import quickstart

    url = f"sqlite:///{tmp_path}/q.db"
    study = optuna.create_study(study_name="q", storage=url, directions=["maximize", "minimize", "minimize"])
    dist = {"model": CategoricalDistribution(["cnn", "linear"]), "cnn.channels": CategoricalDistribution(["[4]", "[8]"])}

    def add(params, acc, size, seconds, enqueued=False, state=TrialState.COMPLETE):
        study.add_trial(create_trial(
            state=state, values=[acc, size, seconds] if state == TrialState.COMPLETE else None, params=params,
            distributions={k: dist[k] for k in params},
            user_attrs={"val_accuracy": acc, "param_count": size, "train_seconds": seconds, "n_val_images": 800},
            system_attrs={"fixed_params": params} if enqueued else {}))

    add({"model": "cnn", "cnn.channels": "[8]"}, 0.70, 8000, 2.0, enqueued=True)  # the reference, dominated
    add({"model": "cnn", "cnn.channels": "[4]"}, 0.72, 3000, 1.0)  # dominates the reference
    add({"model": "linear"}, 0.55, 12000, 0.2)  # the fastest: on the 3-d front, not on acc x params
    add({"model": "cnn", "cnn.channels": "[4]"}, 0.60, 3000, 1.5)  # dominated
    add({"model": "linear"}, 0.10, 12000, 0.1, state=TrialState.PRUNED)
    figures = quickstart.analyse(url, "q")
    assert (figures["trials"], figures["complete"], figures["front"]) == (5, 4, 2)
    assert figures["front_architectures"] == 2 and figures["front_decades"] == pytest.approx(0.6, abs=0.01)
    assert figures["front_also_acc_x_params"] == 1 and figures["front_sampled"] == 2
    assert figures["reference"][0] == 0.70 and figures["best_sampled"][0] == 0.72
    assert figures["best_sampled_ok"] is True
    # The knee hpo's reports show: the 72% CNN (3,000 parameters), which the fast linear model does not tie.
    assert figures["knee"] == [1, 0.72, 3000, 0]

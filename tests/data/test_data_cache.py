"""The decode-once cache: reuse, invalidation, fallback location, concurrent writers, decoding."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hpo.data import DatasetConfig, folder, load_dataset
from hpo.errors import HpoError

REPO = Path(__file__).resolve().parents[2]


def test_second_load_reads_the_cache_without_decoding(image_dir):
    config = DatasetConfig(kind="cifar10")
    before = folder.images_decoded
    first = load_dataset(config, image_dir)
    assert folder.images_decoded - before == 300  # every image, once
    entries = list((image_dir / ".hpo-cache").iterdir())
    assert len(entries) == 1 and (entries[0] / "train_images.npy").is_file()
    mtime = (entries[0] / "train_images.npy").stat().st_mtime_ns

    second = load_dataset(DatasetConfig(kind="minicifar"), image_dir)  # another selection, same source
    third = load_dataset(config, image_dir)
    assert folder.images_decoded - before == 300
    assert (entries[0] / "train_images.npy").stat().st_mtime_ns == mtime
    assert third.fingerprint == first.fingerprint
    assert torch.equal(third.train.images, first.train.images)
    assert len(second.classes) == 4


def test_a_changed_folder_is_decoded_again(image_dir):
    config = DatasetConfig(kind="cifar10")
    first = load_dataset(config, image_dir)
    extra = image_dir / "train" / "cat" / "9999.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(extra)
    before = folder.images_decoded
    second = load_dataset(config, image_dir)
    assert folder.images_decoded - before == 301
    assert len(second.train) + len(second.val) == 201
    assert second.fingerprint != first.fingerprint


def test_unwritable_data_dir_falls_back_to_HPO_CACHE_DIR(image_dir, tmp_path):
    # A file where the cache folder would go makes the data folder's cache unwritable, even for root.
    (image_dir / ".hpo-cache").write_text("not a folder")
    config = DatasetConfig(kind="cifar10")
    first = load_dataset(config, image_dir)
    fallback = tmp_path / "fallback-cache"
    assert list(fallback.glob("*/folder-*/train_images.npy"))
    before = folder.images_decoded
    assert load_dataset(config, image_dir).fingerprint == first.fingerprint
    assert folder.images_decoded == before


def test_concurrent_first_loads_agree_and_leave_one_entry(pickle_dir):
    # Fresh interpreters with different str-hash seeds, started together on an empty cache: they
    # race to write it, and must still agree with each other and with this process.
    code = (
        "import sys; from hpo.data import DatasetConfig, load_dataset; "
        "print(load_dataset(DatasetConfig(kind='minicifar', n_classes=4, R=5), sys.argv[1], split_seed=5).fingerprint)"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(pickle_dir)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=dict(os.environ, PYTHONHASHSEED=str(seed)),
        )
        for seed in (1, 2)
    ]
    outputs = [w.communicate()[0].strip() for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    assert len(set(outputs)) == 1 and len(outputs[0]) == 64
    entries = sorted(p.name for p in (pickle_dir / ".hpo-cache").iterdir())
    assert len(entries) == 1 and entries[0].startswith("cifar-10-batches-py-")  # no temporary folder left
    config = DatasetConfig(kind="minicifar", n_classes=4, R=5)
    assert load_dataset(config, pickle_dir, split_seed=5).fingerprint == outputs[0]


def test_parallel_decode_equals_serial(image_dir):
    paths = sorted(str(p) for p in (image_dir / "train").glob("*/*.png"))[:40]
    serial = folder.decode_images(paths, 32, workers=1)
    parallel = folder.decode_images(paths, 32, workers=2)
    assert serial.shape == (40, 3, 32, 32) and serial.dtype == np.uint8
    np.testing.assert_array_equal(serial, parallel)


def test_undecodable_image_is_named(image_dir):
    bad = image_dir / "test" / "dog" / "0003.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(HpoError, match="0003.png"):
        load_dataset(DatasetConfig(kind="cifar10"), image_dir)


def test_test_classes_must_match_train_classes(image_dir):
    os.rename(image_dir / "test" / "truck", image_dir / "test" / "lorry")
    with pytest.raises(HpoError, match="lorry"):
        load_dataset(DatasetConfig(kind="cifar10"), image_dir)


def test_losing_the_rename_race_keeps_the_winners_entry(tmp_path):
    from hpo.data import cache

    def arrays(fill):
        return {
            "train_images": np.full((2, 3, 4, 4), fill, np.uint8),
            "train_labels": np.array([0, 1]),
            "test_images": np.full((1, 3, 4, 4), fill, np.uint8),
            "test_labels": np.array([1]),
        }

    winner = cache._write_entry(tmp_path, "entry", {"classes": ["a", "b"], "layout": "x"}, arrays(1))
    loser = cache._write_entry(tmp_path, "entry", {"classes": ["a", "b"], "layout": "x"}, arrays(2))
    assert loser == winner and [p.name for p in tmp_path.iterdir()] == ["entry"]
    assert int(np.load(winner / "train_images.npy")[0, 0, 0, 0]) == 1

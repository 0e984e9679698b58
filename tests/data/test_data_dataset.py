"""load_dataset: MINICIFAR and full selections, splits, layouts, fingerprints, stats and errors."""

import numpy as np
import pytest
import torch

from hpo.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    DatasetConfig,
    dataset_num_classes,
    load_dataset,
    resolve_data_dir,
)
from hpo.errors import ConfigError, DataNotFoundError


def _expected_minicifar(source, n_classes, R, train_size, seed):
    """The selection written out with plain loops, straight from DECISIONS.md."""

    def kept(labels, n_init_of_class):
        out = []
        for class_id in range(n_classes):
            positions = [i for i, label in enumerate(labels.tolist()) if label == class_id]
            n_init = n_init_of_class
            keep = np.random.RandomState(42).choice(n_init, n_init // R, replace=False)
            for k in keep.tolist():
                out.append(positions[k])
        return out

    kept_train = kept(source.train_labels, 20)
    kept_test = kept(source.test_labels, 10)
    order = np.random.RandomState(seed).permutation(len(kept_train)).tolist()
    shuffled = [kept_train[j] for j in order]
    n_train = round(train_size * len(kept_train))
    return shuffled[:n_train], shuffled[n_train:], kept_test


def test_minicifar_matches_the_hand_written_selection(pickle_dir, fake_source):
    config = DatasetConfig(kind="minicifar", n_classes=3, R=4, train_size=0.8)
    dataset = load_dataset(config, pickle_dir, split_seed=7)
    train, val, test = _expected_minicifar(fake_source, n_classes=3, R=4, train_size=0.8, seed=7)
    assert (len(train), len(val), len(test)) == (12, 3, 6)  # 3 classes x 20 // 4, 3 x 10 // 4
    assert dataset.indices == {"train": train, "val": val, "test": test}
    assert dataset.classes == ["airplane", "automobile", "bird"]
    for name, indices, images, labels in (
        ("train", train, fake_source.train_images, fake_source.train_labels),
        ("val", val, fake_source.train_images, fake_source.train_labels),
        ("test", test, fake_source.test_images, fake_source.test_labels),
    ):
        split = getattr(dataset, name)
        assert split.images.dtype == torch.uint8 and split.images.is_contiguous()
        assert split.labels.dtype == torch.int64
        assert torch.equal(split.images, torch.from_numpy(images[indices]))
        assert split.labels.tolist() == labels[indices].tolist()
    assert dataset.mean == CIFAR10_MEAN and dataset.std == CIFAR10_STD


def test_both_layouts_give_the_same_minicifar(pickle_dir, image_dir):
    config = DatasetConfig(kind="minicifar", n_classes=4, R=5)
    from_pickles = load_dataset(config, pickle_dir, split_seed=3)
    from_folder = load_dataset(config, image_dir, split_seed=3)
    assert from_pickles.layout == "cifar-10-batches-py" and from_folder.layout == "folder"
    assert from_pickles.classes == from_folder.classes == ["airplane", "automobile", "bird", "cat"]
    # Interleaved batches vs class-sorted folders: other positions, the same images in the same order.
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(from_pickles, name).images, getattr(from_folder, name).images)
        assert torch.equal(getattr(from_pickles, name).labels, getattr(from_folder, name).labels)


def test_class_sorted_pickles_and_folder_give_the_same_indices_and_fingerprint(tmp_path, fakes):
    source = fakes.make_source(interleaved=False)
    fakes.write_cifar10_pickles(tmp_path / "p", source)
    fakes.write_image_folder(tmp_path / "f", source)
    config = DatasetConfig(kind="minicifar", n_classes=4, R=5)
    from_pickles = load_dataset(config, tmp_path / "p")
    from_folder = load_dataset(config, tmp_path / "f")
    assert from_pickles.indices == from_folder.indices
    assert from_pickles.fingerprint == from_folder.fingerprint


def test_split_is_reproducible_and_depends_on_the_seed(pickle_dir):
    config = DatasetConfig(kind="minicifar", n_classes=10, R=2, train_size=0.75)
    first = load_dataset(config, pickle_dir, split_seed=1)
    again = load_dataset(config, pickle_dir, split_seed=1)
    other = load_dataset(config, pickle_dir, split_seed=2)
    assert first.indices == again.indices and first.fingerprint == again.fingerprint
    assert first.indices["train"] != other.indices["train"]
    assert first.fingerprint != other.fingerprint
    # The same kept images, only split differently; train and val are disjoint.
    kept = sorted(first.indices["train"] + first.indices["val"])
    assert kept == sorted(other.indices["train"] + other.indices["val"])
    assert not set(first.indices["train"]) & set(first.indices["val"])
    assert len(first.train) == 75 and len(first.val) == 25  # 10 classes x 20 // 2 = 100 kept
    assert first.indices["test"] == other.indices["test"]


def test_full_cifar10_keeps_every_image(pickle_dir, fake_source):
    dataset = load_dataset(DatasetConfig(kind="cifar10", train_size=0.9), pickle_dir, split_seed=0)
    assert len(dataset.train) == 180 and len(dataset.val) == 20
    assert sorted(dataset.indices["train"] + dataset.indices["val"]) == list(range(200))
    assert dataset.indices["test"] == list(range(100))
    assert torch.equal(dataset.test.images, torch.from_numpy(fake_source.test_images))
    assert len(dataset.classes) == 10


def test_fingerprint_covers_the_kept_pixels_only(tmp_path, fakes):
    config = DatasetConfig(kind="minicifar", n_classes=2, R=4)
    source = fakes.make_source()
    fakes.write_cifar10_pickles(tmp_path / "a", source)
    base = load_dataset(config, tmp_path / "a")

    kept_index = base.indices["val"][0]
    changed = fakes.make_source()
    changed.train_images[kept_index, 1, 5, 5] ^= 1  # one bit of one kept pixel
    fakes.write_cifar10_pickles(tmp_path / "b", changed)
    assert load_dataset(config, tmp_path / "b").fingerprint != base.fingerprint

    dropped_index = int(np.flatnonzero(source.train_labels == 9)[0])  # class 9 is not kept
    untouched = fakes.make_source()
    untouched.train_images[dropped_index] = 0
    fakes.write_cifar10_pickles(tmp_path / "c", untouched)
    assert load_dataset(config, tmp_path / "c").fingerprint == base.fingerprint


def test_fingerprint_depends_on_the_selection(pickle_dir):
    base = load_dataset(DatasetConfig(kind="minicifar", n_classes=2, R=4), pickle_dir)
    assert load_dataset(DatasetConfig(kind="minicifar", n_classes=2, R=5), pickle_dir).fingerprint != base.fingerprint
    assert load_dataset(DatasetConfig(kind="minicifar", n_classes=3, R=4), pickle_dir).fingerprint != base.fingerprint
    assert (
        load_dataset(DatasetConfig(kind="minicifar", n_classes=2, R=4, train_size=0.7), pickle_dir).fingerprint
        != base.fingerprint
    )


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(DataNotFoundError) as error:
        load_dataset(DatasetConfig(), empty)
    message = str(error.value)
    assert str(empty.resolve() / "cifar-10-batches-py") in message
    assert str(empty.resolve() / "train") in message and str(empty.resolve() / "test") in message
    assert "HPO_OFFLINE" in message and "HPO_DATA_DIR" in message and "--data-dir" in message
    assert "\n" not in message
    # A folder that is not there at all is named as missing, and not created (issue 13).
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DataNotFoundError, match="does not exist") as error:
        load_dataset(DatasetConfig(), missing)
    assert str(missing.resolve()) in str(error.value) and "--data-dir" in str(error.value)
    assert not missing.exists()


def test_folder_kind_does_not_read_pickles(pickle_dir):
    with pytest.raises(DataNotFoundError, match="no image folder"):
        load_dataset(DatasetConfig(kind="folder"), pickle_dir)


def test_too_many_classes_names_the_key(pickle_dir):
    with pytest.raises(ConfigError, match=r"dataset\.n_classes = 11 .* 10 classes"):
        load_dataset(DatasetConfig(kind="minicifar", n_classes=11), pickle_dir)


def test_R_that_keeps_nothing_is_refused(pickle_dir):
    with pytest.raises(ConfigError, match=r"dataset\.R = 11"):
        load_dataset(DatasetConfig(kind="minicifar", R=11), pickle_dir)  # 10 test images per class


def test_train_size_that_leaves_no_validation_is_refused(pickle_dir):
    with pytest.raises(ConfigError, match="no validation"):
        load_dataset(DatasetConfig(kind="minicifar", n_classes=1, R=5, train_size=0.9), pickle_dir)  # 4 kept


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(kind="imagenet"), "dataset.kind"),
        (dict(R=0), "dataset.R"),
        (dict(n_classes=0), "dataset.n_classes"),
        (dict(train_size=1.0), "dataset.train_size"),
        (dict(train_size=0), "dataset.train_size"),
        (dict(image_size=64), "dataset.image_size"),  # CIFAR kinds are 32x32
        (dict(kind="folder", image_size=0), "dataset.image_size"),
    ],
)
def test_invalid_config_is_refused_on_construction(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        DatasetConfig(**kwargs)


def test_cifar10_kind_refuses_a_folder_of_other_classes(tmp_path, fakes):
    fakes.write_image_folder(tmp_path, fakes.make_source(classes=["a", "b", "c"], train_per_class=4, test_per_class=2))
    with pytest.raises(ConfigError, match="kind: folder"):
        load_dataset(DatasetConfig(kind="cifar10"), tmp_path)


def test_folder_of_other_classes_gets_its_own_cached_stats(tmp_path, fakes):
    source = fakes.make_source(classes=["cats", "dogs", "fish"], train_per_class=8, test_per_class=2, size=16)
    fakes.write_image_folder(tmp_path, source)
    config = DatasetConfig(kind="folder", image_size=16, train_size=0.75)
    dataset = load_dataset(config, tmp_path, split_seed=4)
    pixels = dataset.train.images.double() / 255.0  # only the training split counts
    expected_mean = pixels.mean(dim=(0, 2, 3))
    expected_std = pixels.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False)
    assert dataset.mean == pytest.approx(expected_mean.tolist(), abs=1e-9)
    assert dataset.std == pytest.approx(expected_std.tolist(), abs=1e-9)
    assert list((tmp_path / ".hpo-cache").glob("*/stats-*.json"))
    assert load_dataset(config, tmp_path, split_seed=4).mean == dataset.mean
    assert dataset_num_classes(config, tmp_path) == 3


def test_folder_with_cifar10_classes_uses_cifar_stats(image_dir):
    dataset = load_dataset(DatasetConfig(kind="folder"), image_dir)
    assert dataset.mean == CIFAR10_MEAN and dataset.std == CIFAR10_STD


def test_folder_images_are_resized_to_image_size(tmp_path, fakes):
    source = fakes.make_source(classes=["x", "y"], train_per_class=5, test_per_class=2, size=40)
    fakes.write_image_folder(tmp_path, source, suffix=".jpg")
    dataset = load_dataset(DatasetConfig(kind="folder", image_size=24), tmp_path)
    assert dataset.train.images.shape[1:] == (3, 24, 24) and dataset.test.images.shape == (4, 3, 24, 24)


def test_cifar100_from_pickles(tmp_path, fakes):
    source = fakes.make_source(classes=[f"c{i:03d}" for i in range(100)], train_per_class=2, test_per_class=1)
    fakes.write_cifar100_pickles(tmp_path, source)
    dataset = load_dataset(DatasetConfig(kind="cifar100", train_size=0.5), tmp_path)
    assert len(dataset.train) == 100 and len(dataset.val) == 100 and len(dataset.test) == 100
    assert dataset.mean == CIFAR100_MEAN and len(dataset.classes) == 100
    assert dataset_num_classes(DatasetConfig(kind="cifar100")) == 100


def test_num_classes():
    assert dataset_num_classes(DatasetConfig(kind="cifar10")) == 10
    assert dataset_num_classes(DatasetConfig(kind="minicifar", n_classes=6)) == 6


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HPO_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("HPO_DATA_DIR")
    assert str(resolve_data_dir(None)) == "data"

"""The pickled-batch reader and the MINICIFAR selection, on fakes in the real format."""

import numpy as np
import pytest

from hpo.data import cifar
from hpo.errors import DataNotFoundError


def test_reader_returns_batches_in_order_with_shapes_and_dtypes(pickle_dir, fake_source):
    classes, train_images, train_labels, test_images, test_labels = cifar.read_cifar_pickles(
        pickle_dir / "cifar-10-batches-py"
    )
    assert classes == fake_source.classes
    assert train_images.dtype == np.uint8 and train_images.shape == (200, 3, 32, 32)
    assert test_images.dtype == np.uint8 and test_images.shape == (100, 3, 32, 32)
    assert train_labels.dtype == np.int64 and test_labels.dtype == np.int64
    # data_batch_1..5 in order, then test_batch: exactly what was written.
    np.testing.assert_array_equal(train_images, fake_source.train_images)
    np.testing.assert_array_equal(train_labels, fake_source.train_labels)
    np.testing.assert_array_equal(test_images, fake_source.test_images)
    np.testing.assert_array_equal(test_labels, fake_source.test_labels)


def test_reader_accepts_bytes_keys(tmp_path, fake_source, fakes):
    fakes.write_cifar10_pickles(tmp_path, fake_source, bytes_keys=True)
    classes, train_images, train_labels, _, _ = cifar.read_cifar_pickles(tmp_path / "cifar-10-batches-py")
    assert classes == fake_source.classes
    np.testing.assert_array_equal(train_images, fake_source.train_images)
    np.testing.assert_array_equal(train_labels, fake_source.train_labels)


def test_reader_reads_cifar100_fine_labels(tmp_path, fakes):
    source = fakes.make_source(classes=[f"c{i:03d}" for i in range(100)], train_per_class=2, test_per_class=1)
    fakes.write_cifar100_pickles(tmp_path, source)
    classes, train_images, train_labels, test_images, test_labels = cifar.read_cifar_pickles(
        tmp_path / "cifar-100-python", cifar100=True
    )
    assert classes == source.classes
    np.testing.assert_array_equal(train_labels, source.train_labels)  # fine, not coarse, labels
    np.testing.assert_array_equal(test_images, source.test_images)


def test_reader_names_the_missing_batch(pickle_dir):
    (pickle_dir / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_3"):
        cifar.read_cifar_pickles(pickle_dir / "cifar-10-batches-py")


def test_reader_refuses_truncated_pixels(pickle_dir):
    import pickle

    path = pickle_dir / "cifar-10-batches-py" / "test_batch"
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    entry["data"] = entry["data"][:, :100]
    with open(path, "wb") as f:
        pickle.dump(entry, f)
    with pytest.raises(DataNotFoundError, match="test_batch"):
        cifar.read_cifar_pickles(pickle_dir / "cifar-10-batches-py")


def test_minicifar_keep_is_the_labs_draw_and_fresh_each_call():
    first = cifar.minicifar_keep(5000, 5)
    assert first.shape == (1000,) and len(set(first.tolist())) == 1000
    assert first.min() >= 0 and first.max() < 5000
    np.testing.assert_array_equal(first, cifar.minicifar_keep(5000, 5))  # fresh RandomState(42)
    np.testing.assert_array_equal(first, np.random.RandomState(42).choice(5000, 1000, replace=False))


def test_minicifar_indices_by_hand():
    # Three classes, 6 images each, interleaved; keep = RandomState(42).choice(6, 6 // 2).
    labels = np.array([2, 0, 1, 0, 2, 1, 1, 0, 2, 0, 1, 2, 0, 2, 1, 0, 2, 1])
    keep = np.random.RandomState(42).choice(6, 3, replace=False).tolist()
    expected = []
    for class_id in range(2):  # n_classes=2: classes 0 and 1 only
        positions = []
        for i, label in enumerate(labels.tolist()):
            if label == class_id:
                positions.append(i)
        for k in keep:
            expected.append(positions[k])
    assert cifar.minicifar_indices(labels, n_classes=2, R=2).tolist() == expected

"""DeviceLoader / FeatureLoader: batching, normalisation, shuffling, formats."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from hpo.data.loader import DeviceLoader, FeatureLoader


def _split(n: int = 50, size: int = 8) -> SimpleNamespace:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    return SimpleNamespace(images=images, labels=torch.arange(n, dtype=torch.long))


MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def test_batches_are_normalised_in_order_without_shuffle():
    split = _split()
    loader = DeviceLoader(split, 16, device="cpu", mean=MEAN, std=STD)
    batches = list(loader)
    assert len(loader) == len(batches) == 4  # 16, 16, 16, 2
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    expected = (split.images.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(y, split.labels)


def test_data_stays_uint8_on_the_device():
    loader = DeviceLoader(_split(), 16, device="cpu", mean=MEAN, std=STD)
    assert loader.images.dtype == torch.uint8


def test_shuffle_visits_every_image_once_and_changes_each_epoch():
    split = _split()
    loader = DeviceLoader(split, 16, device="cpu", mean=MEAN, std=STD, shuffle=True,
                          generator=torch.Generator().manual_seed(3))
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert sorted(first.tolist()) == list(range(50)) == sorted(second.tolist())
    assert not torch.equal(first, second)
    again = DeviceLoader(split, 16, device="cpu", mean=MEAN, std=STD, shuffle=True,
                         generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.cat([y for _, y in again]), first)


def test_images_follow_their_labels_when_shuffled():
    split = _split()
    loader = DeviceLoader(split, 16, device="cpu", mean=(0, 0, 0), std=(1 / 255,) * 3, shuffle=True,
                          generator=torch.Generator().manual_seed(1))
    for x, y in loader:
        assert torch.equal(x.round().to(torch.uint8), split.images[y])


def test_drop_last_drops_the_partial_batch_but_never_everything():
    assert len(DeviceLoader(_split(50), 16, device="cpu", mean=MEAN, std=STD, drop_last=True)) == 3
    small = DeviceLoader(_split(10), 16, device="cpu", mean=MEAN, std=STD, drop_last=True)
    assert len(small) == 1 and small.num_images == 10
    assert sum(len(y) for _, y in small) == 10


def test_channels_last_and_augmentation():
    loader = DeviceLoader(_split(), 16, device="cpu", mean=MEAN, std=STD, channels_last=True,
                          augment_level="crop+flip", generator=torch.Generator().manual_seed(0))
    x, _ = next(iter(loader))
    assert x.is_contiguous(memory_format=torch.channels_last)
    plain = next(iter(DeviceLoader(_split(), 16, device="cpu", mean=MEAN, std=STD)))[0]
    assert not torch.equal(x, plain)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="augment level"):
        DeviceLoader(_split(), 16, device="cpu", mean=MEAN, std=STD, augment_level="mixup")
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(_split(), 0, device="cpu", mean=MEAN, std=STD)


def test_feature_loader_shuffles_rows_with_their_labels():
    features = torch.arange(20, dtype=torch.float32).view(10, 2)
    labels = torch.arange(10)
    loader = FeatureLoader(features, labels, 4, device="cpu", shuffle=True,
                           generator=torch.Generator().manual_seed(0))
    seen = []
    for f, y in loader:
        assert torch.equal(f, features[y])
        seen += y.tolist()
    assert sorted(seen) == list(range(10)) and len(loader) == 3

"""Batches from a dataset held whole on the training device (airbench style).

The images of a split move to the device once, as uint8 (a quarter of float32's memory: CIFAR-10's
50,000 training images take 150 MB). Each batch is then an index into that tensor, augmented,
converted to float and normalised on the device; there are no worker processes and no per-image
Python work. Shuffling draws ``torch.randperm`` from the trainer's CPU generator, so the data order
is the same on every device for a given seed.
"""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence

import torch

from hpo.data.augment import AUGMENT_LEVELS, augment


class _SplitLike(Protocol):
    images: torch.Tensor  # uint8 (N, 3, H, W)
    labels: torch.Tensor  # int64 (N,)


def _batch_count(n: int, batch_size: int, drop_last: bool) -> int:
    # drop_last never drops everything: a split smaller than one batch still gives one batch.
    if drop_last and n >= batch_size:
        return n // batch_size
    return -(-n // batch_size)


class DeviceLoader:
    """Iterate over (images, labels) batches of a split kept on the device.

    Args:
        split: an object with ``images`` (uint8 (N, 3, H, W)) and ``labels`` (int64 (N,)).
        batch_size: images per batch.
        device: where the split is stored and the batches are made.
        mean: per-channel mean of the [0, 1]-scaled pixels, used to normalise.
        std: per-channel standard deviation of the [0, 1]-scaled pixels.
        shuffle: draw a new random order every epoch (from ``generator``).
        augment_level: one of ``AUGMENT_LEVELS``, applied to each batch.
        generator: CPU generator driving shuffling and augmentation; None uses the global RNG.
        channels_last: yield images in channels-last memory format (faster convolutions on CUDA).
        drop_last: drop the last incomplete batch, unless the split is smaller than one batch.
        dtype: float dtype of the yielded images.

    Yields:
        ``(x, y)``: x float (B, 3, H, W) normalised images, y int64 (B,) labels, both on ``device``.
    """

    def __init__(
        self,
        split: _SplitLike,
        batch_size: int,
        *,
        device: str | torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        shuffle: bool = False,
        augment_level: str = "none",
        generator: torch.Generator | None = None,
        channels_last: bool = False,
        drop_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        if augment_level not in AUGMENT_LEVELS:
            raise ValueError(f"unknown augment level {augment_level!r}; choose one of {', '.join(AUGMENT_LEVELS)}")
        if split.images.shape[0] != split.labels.shape[0]:
            raise ValueError(
                f"split has {split.images.shape[0]} images but {split.labels.shape[0]} labels"
            )
        self.device = torch.device(device)
        self.images = split.images.to(self.device)  # kept uint8: converted per batch
        self.labels = split.labels.to(self.device, dtype=torch.long)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment_level = augment_level
        self.generator = generator
        self.channels_last = channels_last
        self.drop_last = drop_last
        self.dtype = dtype
        channels = self.images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean and std need {channels} values each (got {len(mean)} and {len(std)})")
        # Pixels stay in 0..255, so fold the 1/255 scaling into the statistics: (x/255 - m)/s = (x - 255m)/(255s).
        self._shift = (torch.tensor(mean, dtype=torch.float32) * 255).view(1, -1, 1, 1).to(self.device)
        self._scale = (1.0 / (torch.tensor(std, dtype=torch.float32) * 255)).view(1, -1, 1, 1).to(self.device)

    def __len__(self) -> int:
        return _batch_count(self.images.shape[0], self.batch_size, self.drop_last)

    @property
    def num_images(self) -> int:
        """Images yielded per pass (fewer than the split's when ``drop_last`` drops a batch)."""
        return min(self.images.shape[0], len(self) * self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.images.shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.device, non_blocking=True)
        else:
            order = None
        for b in range(len(self)):
            start, stop = b * self.batch_size, min(n, (b + 1) * self.batch_size)
            if order is None:
                images, labels = self.images[start:stop], self.labels[start:stop]
            else:
                index = order[start:stop]
                images, labels = self.images[index], self.labels[index]
            images = augment(images, self.augment_level, self.generator)
            x = (images.to(torch.float32) - self._shift) * self._scale
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x.to(self.dtype), labels


class FeatureLoader:
    """Iterate over (features, labels) batches of precomputed features kept on the device.

    Used to train the head of a frozen transfer model on cached backbone features.

    Args:
        features: float (N, D) features.
        labels: int64 (N,) labels.
        batch_size: rows per batch.
        device: where the features are stored and the batches are made.
        shuffle: draw a new random order every epoch (from ``generator``).
        generator: CPU generator driving shuffling; None uses the global RNG.
        drop_last: drop the last incomplete batch, unless there are fewer rows than one batch.
    """

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        device: str | torch.device,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        self.device = torch.device(device)
        self.features = features.to(self.device, dtype=torch.float32)
        self.labels = labels.to(self.device, dtype=torch.long)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last

    def __len__(self) -> int:
        return _batch_count(self.features.shape[0], self.batch_size, self.drop_last)

    @property
    def num_images(self) -> int:
        """Rows yielded per pass."""
        return min(self.features.shape[0], len(self) * self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.features.shape[0]
        order = torch.randperm(n, generator=self.generator).to(self.device) if self.shuffle else None
        for b in range(len(self)):
            start, stop = b * self.batch_size, min(n, (b + 1) * self.batch_size)
            if order is None:
                yield self.features[start:stop], self.labels[start:stop]
            else:
                index = order[start:stop]
                yield self.features[index], self.labels[index]

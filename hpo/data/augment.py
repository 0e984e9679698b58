"""Batched, on-device data augmentation for CIFAR-sized images (airbench style).

Every operation works on a whole batch of uint8 images at once, on the images' device, with no
Python loop over images: the random choices are drawn as small tensors and applied through index
grids and masks. Levels are cumulative: ``crop+flip+cutout`` applies all three.

- crop: a random translation by up to ``CROP_PADDING`` pixels in each direction, as a random crop of
  the image padded by reflection (airbench's choice: reflected borders look like image content,
  whereas zero borders teach the network about black frames that never occur at test time);
- flip: a horizontal flip of each image with probability 1/2;
- cutout: one square of zeros (black pixels) per image, half the image's side (16x16 on 32 px),
  placed uniformly at random entirely inside the image.
"""

from __future__ import annotations

import torch

AUGMENT_LEVELS = ("none", "flip", "crop+flip", "crop+flip+cutout")
CROP_PADDING = 4  # pixels of translation each way at 32 px, as in the standard CIFAR recipe
CUTOUT_FRACTION = 0.5  # cutout square side / image side: 16 px on 32 px images


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    # Draw on the generator's device (CPU for the trainer: reproducible across machines), then move.
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device).to(device, non_blocking=True)


def _randint(high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randint(0, high, shape, generator=generator, device=gen_device).to(device, non_blocking=True)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map out-of-range indices into [0, size) by reflection without repeating the edge (like F.pad 'reflect')."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def augment(images: torch.Tensor, level: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly augment a batch of images.

    Args:
        images: (N, C, H, W) tensor, usually uint8, on any device; it is not modified.
        level: one of ``AUGMENT_LEVELS``.
        generator: the random source; random choices are drawn on its device and moved to the
            images' device, so a seeded CPU generator gives the same augmentation on every device.

    Returns:
        A new (N, C, H, W) tensor of the same dtype and device (the input itself for ``none``).

    Raises:
        ValueError: unknown level, naming it and the valid ones.
    """
    if level not in AUGMENT_LEVELS:
        raise ValueError(f"unknown augment level {level!r}; choose one of {', '.join(AUGMENT_LEVELS)}")
    if images.dim() != 4:
        raise ValueError(f"augment expects a (N, C, H, W) batch, got shape {tuple(images.shape)}")
    if level == "none" or images.shape[0] == 0:
        return images
    n, _, height, width = images.shape
    device = images.device
    rows = torch.arange(height, device=device).expand(n, height)  # (N, H) source row of each output row
    cols = torch.arange(width, device=device).expand(n, width)  # (N, W) source column of each output column

    if "crop" in level:
        # Scale the 4-px padding with the image size so the relative shift matches CIFAR's at 32 px.
        pad = max(1, round(CROP_PADDING * min(height, width) / 32))
        shift = _randint(2 * pad + 1, (n, 2), generator, device) - pad  # (N, 2) in [-pad, pad]
        rows = _reflect(rows + shift[:, :1], height)
        cols = _reflect(cols + shift[:, 1:], width)

    flip = _rand((n,), generator, device) < 0.5  # (N,)
    cols = torch.where(flip[:, None], width - 1 - cols, cols)

    # Two gathers do crop and flip together: out[n, c, i, j] = images[n, c, rows[n, i], cols[n, j]].
    shape = images.shape
    out = images
    if "crop" in level:
        out = out.gather(2, rows[:, None, :, None].expand(shape))
    out = out.gather(3, cols[:, None, None, :].expand(shape))

    if "cutout" in level:
        size_h = max(1, round(height * CUTOUT_FRACTION))
        size_w = max(1, round(width * CUTOUT_FRACTION))
        top = _randint(height - size_h + 1, (n, 1), generator, device)
        left = _randint(width - size_w + 1, (n, 1), generator, device)
        r = torch.arange(height, device=device)
        c = torch.arange(width, device=device)
        in_rows = (r >= top) & (r < top + size_h)  # (N, H)
        in_cols = (c >= left) & (c < left + size_w)  # (N, W)
        square = in_rows[:, :, None] & in_cols[:, None, :]  # (N, H, W)
        out = out.masked_fill(square[:, None], 0)
    return out

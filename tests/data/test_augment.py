"""Batched augmentation: each operation checked against what it must do to each image."""

from __future__ import annotations

import pytest
import torch

from hpo.data.augment import AUGMENT_LEVELS, augment


def _images(n: int = 32, size: int = 32, low: int = 0, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(low, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shift_of(out: torch.Tensor, src: torch.Tensor, pad: int) -> tuple[int, int] | None:
    """The (dy, dx) with |dy|, |dx| <= pad such that out[:, i, j] == src[:, i + dy, j + dx] wherever in range."""
    h, w = src.shape[-2:]
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            o = out[:, max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
            s = src[:, max(0, dy): h + min(0, dy), max(0, dx): w + min(0, dx)]
            if torch.equal(o, s):
                return dy, dx
    return None


@pytest.mark.parametrize("level", AUGMENT_LEVELS)
def test_shape_dtype_and_device_are_kept_and_input_untouched(level):
    images = _images()
    before = images.clone()
    out = augment(images, level, _gen())
    assert out.shape == images.shape and out.dtype == torch.uint8 and out.device == images.device
    assert torch.equal(images, before)


def test_none_is_identity():
    images = _images()
    assert torch.equal(augment(images, "none", _gen()), images)


def test_flip_mirrors_exactly_the_masked_images():
    images = _images(n=64)
    out = augment(images, "flip", _gen(5))
    # The flip level draws one uniform per image from the generator; < 0.5 means flipped.
    expected_mask = torch.rand(64, generator=_gen(5)) < 0.5
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, images)])
    unchanged = torch.tensor([torch.equal(o, i) for o, i in zip(out, images)])
    assert torch.equal(flipped, expected_mask)
    assert torch.equal(unchanged, ~expected_mask)
    assert 0 < int(flipped.sum()) < 64


def test_crop_shifts_content_by_at_most_four_pixels():
    images = _images(n=48)
    out = augment(images, "crop+flip", _gen(3))
    shifts = []
    for o, i in zip(out, images):
        shift = _shift_of(o, i, 4)
        if shift is None:
            shift = _shift_of(o, i.flip(-1), 4)
        assert shift is not None, "output is not a <= 4 px translation of the (possibly flipped) input"
        shifts.append(shift)
    assert any(s != (0, 0) for s in shifts)
    assert max(max(abs(dy), abs(dx)) for dy, dx in shifts) <= 4


def test_crop_pads_by_reflection():
    # A translated image's border comes from the image itself, never a constant fill.
    images = _images(n=32, low=1)  # no zero pixels in the source
    out = augment(images, "crop+flip", _gen(4))
    assert (out > 0).all()


def test_cutout_zeroes_one_half_size_square_per_image():
    images = _images(n=32, low=1)  # zero pixels can only come from cutout
    out = augment(images, "crop+flip+cutout", _gen(7))
    for o in out:
        zero = (o == 0)
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # all channels
        rows = zero[0].any(1).nonzero().flatten()
        cols = zero[0].any(0).nonzero().flatten()
        assert int(zero[0].sum()) == 16 * 16
        assert rows.max() - rows.min() + 1 == 16 and cols.max() - cols.min() + 1 == 16
    positions = {tuple((o[0] == 0).nonzero()[0].tolist()) for o in out}
    assert len(positions) > 1  # the square moves from image to image


def test_cutout_and_crop_scale_with_image_size():
    images = _images(n=16, size=64, low=1)
    out = augment(images, "crop+flip+cutout", _gen(2))
    for o in out:
        assert int((o[0] == 0).sum()) == 32 * 32
    crops = augment(images, "crop+flip", _gen(2))
    for o, i in zip(crops, images):
        assert _shift_of(o, i, 8) is not None or _shift_of(o, i.flip(-1), 8) is not None


@pytest.mark.parametrize("level", AUGMENT_LEVELS[1:])
def test_seeded_generator_is_deterministic(level):
    images = _images()
    first = augment(images, level, _gen(11))
    assert torch.equal(first, augment(images, level, _gen(11)))
    assert not torch.equal(first, augment(images, level, _gen(12)))


def test_empty_batch():
    images = torch.zeros((0, 3, 32, 32), dtype=torch.uint8)
    assert augment(images, "crop+flip+cutout", _gen()).shape == (0, 3, 32, 32)


def test_unknown_level_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"'rotate'.*crop\+flip\+cutout"):
        augment(_images(), "rotate", _gen())

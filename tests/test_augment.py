"""Batch augmentation: geometry (a heatmap's peak follows the image feature), ranges, modes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeloc.train.augment import (
    AffineParams,
    augment_batch,
    forward_points,
    identity_params,
    sample_params,
    warp,
)

S = 64


def _spot(x: float, y: float, sigma: float = 2.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(
        torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij"
    )
    return torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))


def _peak(a: torch.Tensor) -> tuple[float, float]:
    """Centroid of the top values (x, y)."""
    w = torch.clamp(a - 0.5 * a.max(), min=0)
    yy, xx = torch.meshgrid(
        torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij"
    )
    return float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum())


def _params(angle, tx, ty, scale) -> AffineParams:
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
    return AffineParams(t(angle), t(tx), t(ty), t(scale))


@settings(max_examples=25, deadline=None)
@given(
    angle=st.floats(-45, 45),
    tx=st.integers(-9, 9),
    ty=st.integers(-9, 9),
    scale=st.floats(0.85, 1.15),
    x=st.floats(24, 40),
    y=st.floats(24, 40),
)
def test_heatmap_peak_follows_image_feature(angle, tx, ty, scale, x, y):
    image = _spot(x, y)[None, None]  # a bright blob in the image
    maps = torch.zeros(1, 10, S, S)
    maps[0, 3] = _spot(x, y, sigma=3.0)  # its heatmap in label 3
    params = _params(angle, tx, ty, scale)
    out_image, out_maps = augment_batch(
        image, maps, torch.tensor([0]), params, interpolation="bilinear"
    )
    expected = forward_points(params, torch.tensor([[x, y]], dtype=torch.float64), S)[0]
    ix, iy = _peak(out_image[0, 0])
    hx, hy = _peak(out_maps[0, 3])
    assert math.hypot(ix - hx, iy - hy) < 0.5
    assert math.hypot(ix - float(expected[0]), iy - float(expected[1])) < 0.75
    assert float(out_maps[0, [0, 1, 2, 4]].abs().max()) == 0.0


def test_same_parameters_for_each_item_and_its_maps():
    # two items with different parameters; the annotated one is item 1
    g = torch.Generator().manual_seed(4)
    params = sample_params(2, S, g)
    images = torch.stack([_spot(20, 30), _spot(40, 28)])[:, None]
    maps = torch.zeros(1, 10, S, S)
    maps[0, 0] = _spot(40, 28)
    out_images, out_maps = augment_batch(
        images, maps, torch.tensor([1]), params, interpolation="nearest"
    )
    assert torch.equal(out_images[1, 0], out_maps[0, 0])
    assert not torch.equal(
        out_images[0, 0], warp(images[:1], params.select(torch.tensor([1])))[0, 0]
    )


def test_rotation_direction_and_translation():
    # +90° turns the image counter-clockwise on screen: a point right of centre goes up
    c = (S - 1) / 2
    p = forward_points(_params(90, 0, 0, 1), torch.tensor([[c + 10, c]], dtype=torch.float64), S)
    assert torch.allclose(p, torch.tensor([[c, c - 10]], dtype=torch.float64), atol=1e-9)
    image = torch.zeros(1, 1, S, S)
    image[0, 0, 10, 12] = 1.0
    moved = warp(image, _params(0, 5, -3, 1.0), "nearest")
    assert moved[0, 0, 7, 17] == 1.0 and moved.sum() == 1.0


def test_identity_is_exact():
    x = torch.rand(3, 2, S, S)
    assert torch.equal(warp(x, identity_params(3), "nearest"), x)
    assert torch.allclose(warp(x, identity_params(3), "bilinear"), x, atol=1e-4)


def test_sampled_ranges_and_determinism():
    a = sample_params(4000, 512, torch.Generator().manual_seed(1))
    b = sample_params(4000, 512, torch.Generator().manual_seed(1))
    assert torch.equal(a.angle, b.angle) and torch.equal(a.tx, b.tx)
    assert a.angle.abs().max() <= 45 and a.angle.abs().max() > 44
    assert a.tx.abs().max() <= round(0.15 * 512) and torch.equal(a.tx, a.tx.round())
    assert a.ty.abs().max() > 70
    assert 0.85 <= a.scale.min() < 0.86 and 1.14 < a.scale.max() <= 1.15


def test_binary_maps_stay_binary_with_bilinear():
    mask = torch.zeros(1, 10, S, S)
    mask[0, 2, 20:40, 15:35] = 1.0
    image = torch.rand(1, 1, S, S)
    params = _params(30, 4, 2, 1.1)
    out_image, out_mask = augment_batch(
        image, mask, torch.tensor([0]), params, interpolation="bilinear", binary_maps=True
    )
    assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
    assert not set(out_image.unique().tolist()) <= {0.0, 1.0}


def test_no_maps_and_bad_mode():
    images = torch.rand(2, 1, S, S)
    empty = torch.zeros(0, 10, S, S)
    out_images, out_maps = augment_batch(
        images, empty, torch.zeros(0, dtype=torch.long), identity_params(2)
    )
    assert out_maps.shape == (0, 10, S, S) and out_images.shape == images.shape
    with pytest.raises(ValueError, match="interpolation"):
        warp(images, identity_params(2), "bicubic")
    with pytest.raises(ValueError, match="parameter sets"):
        warp(images, identity_params(3))

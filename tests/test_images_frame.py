"""The square frame: geometry (hand-computed and properties), rounding, DCT-scaled decoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gazeloc.errors import DataFormatError
from gazeloc.images.frame import (
    frame_array,
    frame_geometry,
    load_frame,
    load_frame_plain,
    psnr,
)


@pytest.mark.parametrize(
    ("width", "height", "size", "expected"),
    [
        # s = 512/3000; w = round(426.67) = 427; left = (512 - 427) // 2 = 42
        (2500, 3000, 512, (427, 512, 42, 0)),
        # s = 512/3056; h = round(426.22) = 426; top = (512 - 426) // 2 = 43
        (3056, 2544, 512, (512, 426, 0, 43)),
        (1000, 1000, 64, (64, 64, 0, 0)),
        # s = 0.5; h = round(2.5) = 2 (Python rounds half to even); top = 1
        (10, 5, 5, (5, 2, 0, 1)),
        # s = 0.32; h = round(20.48) = 20; top = 6
        (100, 64, 32, (32, 20, 0, 6)),
    ],
)
def test_geometry_hand_computed(width, height, size, expected):
    g = frame_geometry(width, height, size)
    assert (g.w, g.h, g.left, g.top) == expected


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(1, 5000),
    height=st.integers(1, 5000),
    size=st.integers(8, 1024),
)
def test_geometry_properties(width, height, size):
    g = frame_geometry(width, height, size)
    assert max(g.w, g.h) == size
    assert 1 <= g.w <= size and 1 <= g.h <= size
    assert g.left == (size - g.w) // 2 and g.top == (size - g.h) // 2
    assert g.left + g.w <= size and g.top + g.h <= size
    # centred: the two pads differ by at most one pixel
    assert 0 <= (size - g.w - g.left) - g.left <= 1
    if width * g.scale >= 1:
        assert abs(g.w - width * g.scale) <= 0.5 + 1e-9
    if height * g.scale >= 1:
        assert abs(g.h - height * g.scale) <= 0.5 + 1e-9


def test_frame_array_pads_with_zeros():
    image = np.arange(1, 9, dtype=np.uint8).reshape(2, 4)  # W = 4, H = 2
    out = frame_array(image, 4)  # s = 1: no resize; top = 1
    assert out.dtype == np.uint8 and out.shape == (4, 4)
    assert (out[1:3] == image).all()
    assert (out[0] == 0).all() and (out[3] == 0).all()


def test_uint8_by_rounding_not_truncation():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(300, 200), dtype=np.uint8)
    ours = frame_array(image, 64)
    g = frame_geometry(200, 300, 64)
    exact = np.asarray(
        Image.fromarray(image.astype(np.float32), mode="F").resize(
            (g.w, g.h), Image.Resampling.BILINEAR
        )
    )
    window = ours[g.top : g.top + g.h, g.left : g.left + g.w].astype(np.float64)
    assert (window == np.rint(exact)).all()
    assert np.abs(window - exact).max() <= 0.5 + 1e-4
    assert abs(np.mean(window - exact)) < 0.02  # truncation would be about -0.5


def _jpeg(path, image, quality=95):
    Image.fromarray(image).save(path, format="JPEG", quality=quality)
    return path


def _chest(width: int, height: int, seed: int = 0) -> np.ndarray:
    from gazeloc.synthetic.anatomy import sample_anatomy
    from gazeloc.synthetic.render import render_frontal

    rng = np.random.default_rng(seed)
    return render_frontal(sample_anatomy(width, height, rng), [], [], rng)


@pytest.mark.parametrize(("width", "height", "size"), [(2500, 3000, 512), (1100, 900, 128)])
def test_dct_scaling_quality(tmp_path, width, height, size):
    """DCT-scaled decoding against the plain path: PSNR >= 40 dB (the issue's bar)."""
    path = _jpeg(tmp_path / "a.jpg", _chest(width, height))
    fast = load_frame(path, size)
    plain = load_frame_plain(path, size)
    assert fast.shape == plain.shape == (size, size)
    assert psnr(fast, plain) >= 40.0
    exact = load_frame(path, size, dct_scaling=False)  # float resize, rounded
    assert np.abs(exact.astype(int) - plain).max() <= 1


def _centroid(a: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(a.shape)
    w = a.astype(np.float64)
    return float((xs * w).sum() / w.sum()), float((ys * w).sum() / w.sum())


@pytest.mark.parametrize("dct_scaling", [False, True])
def test_pixel_mapping(tmp_path, dct_scaling):
    """A bright block lands where the frame mapping (docs/method.md#the-square-frame) says,
    with or without DCT scaling.

    Width 2003 is not a multiple of the DCT scale, so a resize that ignored the partial last
    block would shift the right edge.
    """
    width, height, size = 2003, 1501, 256
    image = np.zeros((height, width), dtype=np.uint8)
    x0, x1, y0, y1 = 1800, 1960, 300, 420
    image[y0:y1, x0:x1] = 200
    path = _jpeg(tmp_path / "b.jpg", image, quality=100)
    frame = load_frame(path, size, dct_scaling=dct_scaling)
    g = frame_geometry(width, height, size)
    # the mapped centre of the block: ((x + 0.5)·w/W − 0.5 + left, ...)
    cx = ((x0 + x1 - 1) / 2 + 0.5) * g.w / width - 0.5 + g.left
    cy = ((y0 + y1 - 1) / 2 + 0.5) * g.h / height - 0.5 + g.top
    got = _centroid(frame)
    assert got[0] == pytest.approx(cx, abs=0.05)
    assert got[1] == pytest.approx(cy, abs=0.05)


def test_small_images_skip_dct_scaling(tmp_path):
    image = (np.arange(100 * 80) % 251).astype(np.uint8).reshape(80, 100)
    path = _jpeg(tmp_path / "c.jpg", image)
    # 100 < 2 × 64: no DCT scaling: the full decode, resized in float and rounded
    expected = frame_array(np.asarray(Image.open(path)), 64)
    assert (load_frame(path, 64) == expected).all()
    assert (load_frame(path, 64, dct_scaling=False) == expected).all()


# --- bad input -----------------------------------------------------------------------------


def _good(tmp_path):
    return _jpeg(tmp_path / "good.jpg", _chest(400, 500))


def _missing(tmp_path):
    return tmp_path / "absent.jpg"


def _empty(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    return path


def _truncated(tmp_path):
    data = _good(tmp_path).read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupt(tmp_path):
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20)
    return path


def _rgb(tmp_path):
    path = tmp_path / "rgb.jpg"
    Image.new("RGB", (400, 500), (10, 20, 30)).save(path, format="JPEG")
    return path


def _sixteen_bit(tmp_path):
    path = tmp_path / "sixteen.jpg"  # a 16-bit PNG under a .jpg name
    Image.fromarray(np.full((500, 400), 4000, dtype=np.uint16)).save(path, format="PNG")
    return path


BAD = {
    "missing": (_missing, "not found"),
    "empty": (_empty, "empty"),
    "truncated": (_truncated, "truncated"),
    "corrupt": (_corrupt, "corrupt"),
    "rgb": (_rgb, "RGB"),
    "16-bit": (_sixteen_bit, "16-bit"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_images_name_the_file(tmp_path, kind):
    make, reason = BAD[kind]
    path = make(tmp_path)
    with pytest.raises(DataFormatError) as info:
        load_frame(path, 64, expect_size=(400, 500))
    assert str(path) in str(info.value)
    assert reason in str(info.value)


def test_size_unlike_the_metadata(tmp_path):
    path = _good(tmp_path)
    with pytest.raises(DataFormatError, match="metadata says 500x400"):
        load_frame(path, 64, expect_size=(500, 400))
    assert load_frame(path, 64, expect_size=(400, 500)).shape == (64, 64)

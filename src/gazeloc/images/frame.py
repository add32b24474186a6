"""One chest x-ray into the square frame (docs/method.md#the-square-frame), fast and checked.

For an image of width ``W`` and height ``H`` and a frame side ``S`` (pixels):
scale ``s = S / max(W, H)``, resized size ``w = round(W·s)``, ``h = round(H·s)`` (Python
``round``), antialiased bilinear resize (Pillow ``resize(..., BILINEAR)``), zero padding with
``left = (S − w) // 2`` and ``top = (S − h) // 2``. The resize runs in 32-bit float (Pillow
mode ``F``) and the result is rounded to the nearest integer (docs/method.md#the-square-frame;
never truncated, and without the intermediate 8-bit rounding of Pillow's two-pass 8-bit
resampling).

Speed: when the JPEG is at least twice the resized size in both directions, it is decoded at a
reduced DCT scale (1/2, 1/4 or 1/8, the largest that keeps it at least ``w × h``; Pillow
``Image.draft``) and only then resized. The resize's ``box`` is the original extent in the
reduced grid (``W/k × H/k``), so the geometry is exactly that of the full-resolution path; the
pixel difference is negligible (PSNR ≥ 40 dB against the plain path, measured in
``bench/bench_images.py`` and asserted in the tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gazeloc.errors import DataFormatError

RESAMPLE = "bilinear, antialiased (Pillow resize in 32-bit float)"
"""How images are resized (recorded in the shard attributes)."""


@dataclass(frozen=True)
class FrameGeometry:
    """Where an image of ``width × height`` lands in the ``size × size`` frame (pixels)."""

    width: int
    height: int
    size: int
    w: int
    """Resized width."""
    h: int
    """Resized height."""
    left: int
    top: int

    @property
    def scale(self) -> float:
        """``S / max(W, H)``: frame pixels per image pixel."""
        return self.size / max(self.width, self.height)


def frame_geometry(width: int, height: int, size: int) -> FrameGeometry:
    """The frame rules for an image of ``width × height`` and frame side ``size``.

    The rules: docs/method.md#the-square-frame.
    """
    if width < 1 or height < 1 or size < 1:
        raise ValueError(f"sizes must be positive, not {width}x{height} into {size}")
    s = size / max(width, height)
    w = max(1, round(width * s))
    h = max(1, round(height * s))
    return FrameGeometry(width, height, size, w, h, (size - w) // 2, (size - h) // 2)


def pad_to_frame(resized: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """Place a ``h × w`` uint8 array in a zero ``S × S`` frame."""
    g = geometry
    if resized.shape != (g.h, g.w):
        raise ValueError(f"expected a {g.h}x{g.w} array, got {resized.shape}")
    out = np.zeros((g.size, g.size), dtype=np.uint8)
    out[g.top : g.top + g.h, g.left : g.left + g.w] = resized
    return out


def resize_rounded(
    image: Image.Image,
    size: tuple[int, int],
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Antialiased bilinear resize of an 8-bit image in float, rounded to uint8 (``h × w``)."""
    resized = image.convert("F").resize(size, Image.Resampling.BILINEAR, box=box)
    return np.rint(np.asarray(resized)).clip(0, 255).astype(np.uint8)


def frame_array(image: np.ndarray, size: int) -> np.ndarray:
    """An in-memory 2-D uint8 image (``H × W``) into the frame (no DCT scaling)."""
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got {image.dtype} {image.shape}")
    g = frame_geometry(image.shape[1], image.shape[0], size)
    return pad_to_frame(resize_rounded(Image.fromarray(image), (g.w, g.h)), g)


def _describe_mode(mode: str) -> str:
    names = {
        "RGB": "RGB (3 channels)",
        "RGBA": "RGBA (4 channels)",
        "CMYK": "CMYK (4 channels)",
        "YCbCr": "YCbCr (3 channels)",
        "LA": "grayscale with alpha (2 channels)",
        "P": "palette",
        "1": "1-bit",
        "I": "32-bit integer",
        "I;16": "16-bit",
        "I;16B": "16-bit",
        "I;16L": "16-bit",
        "F": "32-bit float",
    }
    return f"mode {mode!r}" + (f" ({names[mode]})" if mode in names else "")


def load_frame(
    path: str | Path,
    size: int,
    *,
    dct_scaling: bool = True,
    expect_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read an 8-bit grayscale JPEG and return its ``size × size`` uint8 frame.

    ``dct_scaling`` decodes at a reduced DCT scale when the image is at least twice the
    resized size (module docstring). ``expect_size`` is the ``(width, height)`` the metadata
    gives (``Columns, Rows``); a different JPEG size is an error, because heatmaps and
    ellipses are placed in the frame from the metadata size.

    Raises :class:`~gazeloc.errors.DataFormatError` naming the file for a missing, empty,
    truncated or corrupt file, a mode other than 8-bit grayscale (``L``: RGB, 16-bit, ...) or
    a size that differs from ``expect_size``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "image file not found")
    if os.path.getsize(path) == 0:
        raise DataFormatError(path, "image file is empty")
    try:
        with Image.open(path) as im:
            if im.mode != "L":
                raise DataFormatError(
                    path, f"{_describe_mode(im.mode)}: expected 8-bit grayscale (mode 'L')"
                )
            _check_format(path, im.format)
            width, height = im.size
            if expect_size is not None and (width, height) != tuple(expect_size):
                raise DataFormatError(
                    path,
                    f"image is {width}x{height} but the metadata says "
                    f"{expect_size[0]}x{expect_size[1]} (Columns x Rows)",
                )
            g = frame_geometry(width, height, size)
            box = None
            if dct_scaling and im.format == "JPEG" and width >= 2 * g.w and height >= 2 * g.h:
                drafted = im.draft("L", (g.w, g.h))
                if drafted is not None:
                    box = drafted[1]
            resized = resize_rounded(im, (g.w, g.h), box)
    except DataFormatError:
        raise
    except UnidentifiedImageError as exc:
        raise DataFormatError(path, "not a readable image (corrupt or unknown format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataFormatError(path, f"cannot decode the image: {exc}") from exc
    return pad_to_frame(resized, g)


def _check_format(path: Path, fmt: str | None) -> None:
    if path.suffix.lower() in (".jpg", ".jpeg") and fmt != "JPEG":
        raise DataFormatError(
            path, f"a {fmt or 'non-JPEG'} file named .jpg: expected a JPEG (MIMIC-CXR-JPG)"
        )


def check_image_file(path: str | Path, expect_size: tuple[int, int] | None = None) -> None:
    """Open an image's header without decoding it: the checks of :func:`load_frame` that need
    no pixels (exists, not empty, a JPEG when named .jpg, 8-bit grayscale, metadata size).

    Corrupt entropy data is not seen here (decoding every image would take hours at MIMIC
    scale); the checksums of ``SHA256SUMS.txt`` catch it (``data.verify_checksums``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "image file not found")
    if os.path.getsize(path) == 0:
        raise DataFormatError(path, "image file is empty")
    try:
        with Image.open(path) as im:
            _check_format(path, im.format)
            if im.mode != "L":
                raise DataFormatError(
                    path, f"{_describe_mode(im.mode)}: expected 8-bit grayscale (mode 'L')"
                )
            if expect_size is not None and tuple(im.size) != tuple(expect_size):
                raise DataFormatError(
                    path,
                    f"image is {im.size[0]}x{im.size[1]} but the metadata says "
                    f"{expect_size[0]}x{expect_size[1]} (Columns x Rows)",
                )
    except DataFormatError:
        raise
    except UnidentifiedImageError as exc:
        raise DataFormatError(path, "not a readable image (corrupt or unknown format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataFormatError(path, f"cannot read the image header: {exc}") from exc


def load_frame_plain(path: str | Path, size: int) -> np.ndarray:
    """The plain path: full decode, then ``resize(..., BILINEAR)`` to the frame (benchmarks)."""
    with Image.open(path) as im:
        g = frame_geometry(*im.size, size)
        resized = im.resize((g.w, g.h), Image.Resampling.BILINEAR)
    return pad_to_frame(np.asarray(resized), g)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 arrays; ``inf`` when identical."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))

"""Reading new chest x-rays (JPEG, PNG, DICOM) into the training frame.

What the model saw in training were MIMIC-CXR-JPG images: 8-bit grayscale JPEGs that were
made from the hospital's DICOMs by scaling the pixel values to 0–255, inverting MONOCHROME1
images (where a high value is dark) and equalising the histogram. Files are read here so that
they look like those JPEGs:

* **8-bit grayscale JPEG or PNG**: used as they are, through the very function the image stage
  uses (:func:`gazeloc.images.frame.load_frame`, including the reduced-scale JPEG decoding when
  the model's ``images.dct_scaling`` was on), so a training JPEG gives the training frame;
* **RGB (or palette, or with alpha) JPEG/PNG**: converted to luma (Pillow's ``convert("L")``,
  ITU-R 601: ``L = 0.299 R + 0.587 G + 0.114 B``), then framed;
* **16-bit (or 32-bit) grayscale PNG**: mapped to 8 bits like a DICOM (below, without the
  inversion);
* **DICOM** (pydicom): the modality LUT (``RescaleSlope``, ``RescaleIntercept``) is applied,
  the values are min-max scaled to 0–255 (``round(255 (v − min) / (max − min))``; a constant
  image becomes 0), MONOCHROME1 is inverted (``255 − v``), then the 8-bit histogram is
  equalised (:func:`equalize`). The VOI LUT / window in the header is not applied and the
  in-memory image is not JPEG-compressed (MIMIC-CXR-JPG used quality 95). Single-frame
  MONOCHROME1/2 images only; uncompressed transfer syntaxes always work, compressed ones when
  pydicom has a decoder for them installed.

Anything else — a missing, empty, truncated or corrupt file, another format (TIFF, BMP, text),
a colour or multi-frame DICOM, a transfer syntax without a decoder — raises
:class:`UnsupportedImage` with the reason; the caller lists the file as skipped.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gazeloc.errors import DataFormatError
from gazeloc.images.frame import frame_array, load_frame

FORMATS = ("JPEG", "PNG")
"""Formats read through Pillow (besides DICOM)."""
COLOUR_MODES = ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr", "1")
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class UnsupportedImage(Exception):
    """A file that cannot be used as an input image; ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self):  # picklable (image-reading worker processes)
        return (type(self), (self.path, self.reason))


@dataclass
class LoadedImage:
    """One input image: its original size, the frame, the 8-bit image for the overlay."""

    path: Path
    width: int
    height: int
    kind: str
    """What was read, e.g. ``JPEG L``, ``PNG I;16``, ``DICOM MONOCHROME1``."""
    frame: np.ndarray
    """``S × S`` uint8, the model's input."""
    display: np.ndarray
    """8-bit gray image scaled to the overlay size (long side ``≤ display_size``)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """``read`` (decoding, conversion to 8 bits) and ``preprocess`` (the frame)."""


def min_max_8bit(values: np.ndarray) -> np.ndarray:
    """``round(255 (v − min) / (max − min))`` as uint8; a constant image gives zeros."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def equalize(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation of a uint8 image (the classic cumulative-histogram mapping).

    With ``h`` the 256-bin histogram, ``c`` its cumulative sum, ``n`` the pixel count and
    ``i`` the lowest occupied value: ``v → round(255 (c[v] − h[i]) / (n − h[i]))``; the lowest
    value maps to 0 and the highest to 255. A constant image is returned unchanged.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"equalize takes uint8, not {image.dtype}")
    hist = np.bincount(image.ravel(), minlength=256).astype(np.int64)
    first = int(np.flatnonzero(hist)[0])
    total = int(image.size)
    if hist[first] == total:
        return image.copy()
    cdf = np.cumsum(hist)
    lut = np.rint((cdf - hist[first]) * (255.0 / (total - hist[first]))).clip(0, 255)
    lut[:first] = 0
    return lut.astype(np.uint8)[image]


def to_mimic_8bit(values: np.ndarray, *, invert: bool = False) -> np.ndarray:
    """Wide-range pixel values to a MIMIC-CXR-JPG-like 8-bit image (module doc)."""
    gray = min_max_8bit(values)
    if invert:
        gray = 255 - gray
    return equalize(gray)


def is_dicom(path: Path) -> bool:
    """A ``DICM`` marker at byte 128 (DICOM Part 10), or a ``.dcm`` name."""
    with open(path, "rb") as f:
        head = f.read(132)
    return head[128:132] == b"DICM" or path.suffix.lower() == ".dcm"


def read_dicom(path: Path) -> tuple[np.ndarray, str]:
    """The 8-bit image of a DICOM file (module doc) and a description."""
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut
    except ImportError as exc:  # pragma: no cover
        raise UnsupportedImage(path, "pydicom is not installed (pip install pydicom)") from exc
    try:
        with open(path, "rb") as f:
            preamble = f.read(132)[128:132] == b"DICM"
        ds = pydicom.dcmread(path, force=not preamble)
    except Exception as exc:
        raise UnsupportedImage(path, f"not a readable DICOM file: {exc}") from exc
    if "PixelData" not in ds:
        raise UnsupportedImage(path, "DICOM without pixel data")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedImage(
            path,
            f"DICOM photometric interpretation {photometric or 'missing'} "
            "(only MONOCHROME1 and MONOCHROME2 grayscale images)",
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise UnsupportedImage(path, f"multi-frame DICOM ({frames} frames)")
    file_meta = getattr(ds, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    syntax_name = getattr(syntax, "name", str(syntax)) if syntax is not None else "unknown"
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        raise UnsupportedImage(
            path, f"cannot decode the pixel data (transfer syntax {syntax_name}): {exc}"
        ) from exc
    if pixels.ndim != 2:
        raise UnsupportedImage(path, f"DICOM pixel data of shape {pixels.shape}, not 2-D")
    values = apply_modality_lut(pixels, ds)
    return to_mimic_8bit(values, invert=photometric == "MONOCHROME1"), f"DICOM {photometric}"


def display_size(width: int, height: int, limit: int) -> tuple[int, int]:
    """The overlay's size: the image scaled so that its long side is at most ``limit``
    (``limit`` 0: the original size)."""
    if limit <= 0 or max(width, height) <= limit:
        return width, height
    s = limit / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def _display(image: Image.Image, limit: int) -> np.ndarray:
    size = display_size(*image.size, limit)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_image(
    path: str | Path, size: int, *, dct_scaling: bool = True, display_limit: int = 512
) -> LoadedImage:
    """Read one file into the ``size × size`` frame (module doc) or raise
    :class:`UnsupportedImage`."""
    path = Path(path)
    t0 = time.perf_counter()
    if not path.is_file():
        raise UnsupportedImage(path, "not a file")
    if os.path.getsize(path) == 0:
        raise UnsupportedImage(path, "empty file")
    if is_dicom(path):
        gray, kind = read_dicom(path)
        t1 = time.perf_counter()
        frame = frame_array(gray, size)
        t2 = time.perf_counter()
        display = _display(Image.fromarray(gray), display_limit)
        t3 = time.perf_counter()
        return LoadedImage(
            path, gray.shape[1], gray.shape[0], kind, frame, display,
            {"read": t1 - t0 + t3 - t2, "preprocess": t2 - t1},
        )  # fmt: skip
    try:
        with Image.open(path) as im:
            fmt, mode, (width, height) = im.format, im.mode, im.size
            if fmt not in FORMATS:
                raise UnsupportedImage(path, f"{fmt} images are not supported (JPEG, PNG, DICOM)")
            if mode == "L":
                if fmt == "JPEG":
                    im.draft("L", display_size(width, height, display_limit))
                display = _display(im.convert("L"), display_limit)
                t1 = time.perf_counter()
                frame = load_frame(path, size, dct_scaling=dct_scaling)
                t2 = time.perf_counter()
                # decoding happens inside load_frame: count half of it as reading
                return LoadedImage(
                    path, width, height, f"{fmt} L", frame, display,
                    {"read": t1 - t0 + (t2 - t1) / 2, "preprocess": (t2 - t1) / 2},
                )  # fmt: skip
            if mode in COLOUR_MODES:
                gray = np.asarray(im.convert("RGBA").convert("RGB").convert("L"), np.uint8)
            elif mode in WIDE_MODES:
                gray = to_mimic_8bit(np.asarray(im))
            else:
                raise UnsupportedImage(path, f"image mode {mode!r} is not supported")
    except UnsupportedImage:
        raise
    except DataFormatError as exc:
        raise UnsupportedImage(path, exc.reason) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImage(path, "not a readable image (corrupt or unknown format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedImage(path, f"cannot decode the image: {exc}") from exc
    t1 = time.perf_counter()
    frame = frame_array(gray, size)
    t2 = time.perf_counter()
    display = _display(Image.fromarray(gray), display_limit)
    t3 = time.perf_counter()
    return LoadedImage(
        path, width, height, f"{fmt} {mode}", frame, display,
        {"read": t1 - t0 + t3 - t2, "preprocess": t2 - t1},
    )  # fmt: skip

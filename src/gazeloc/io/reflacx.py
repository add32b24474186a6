"""Reader of REFLACX 1.0.0 (``main_data/`` and ``gaze_data/``), exactly as distributed.

The format: docs/method.md#input-data.

Entry points:

* :func:`read_metadata` -- one phase's ``metadata_phase_<N>.csv`` as a typed polars frame with
  ``phase`` and ``study_id`` (parsed from ``image``) added;
* :func:`read_readings` -- :class:`ReflacxReading` objects for the phases present;
* per-reading readers: :func:`read_fixations`, :func:`read_transcript`, :func:`read_ellipses`,
  :func:`read_chest_box`, :func:`read_gaze`.

Errors raise :class:`~gazeloc.errors.DataFormatError` naming file, line (header = line 1) and
column; tolerated deviations (docs/method.md#input-data) are logged warnings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.errors import DataFormatError, warn_at
from gazeloc.io.table import Column, read_table, read_text
from gazeloc.labels import (
    REFLACX_BOOL_LABELS,
    REFLACX_TEXT_LABELS,
    reflacx_labels,
)

log = logging.getLogger(__name__)

READING_ID = r"P[123]\d\dR\d{6}"
DICOM_ID = r"[0-9a-f]{8}(?:-[0-9a-f]{8}){4}"
SUBJECT_ID = r"1\d{7}"
IMAGE_PATH = re.compile(
    r"^physionet\.org/files/mimic-cxr/2\.0\.0/files/p(\d\d)/p(\d{8})/s(\d{8})/"
    r"(" + DICOM_ID + r")\.dcm$"
)
SPLITS = ("train", "validate", "test")
PHASES = (1, 2, 3)

BASE_COLUMNS: tuple[Column, ...] = (
    Column("id", pattern=READING_ID),
    Column("split", choices=SPLITS),
    Column("eye_tracking_data_discarded", "bool"),
    Column("image"),
    Column("dicom_id", pattern=DICOM_ID),
    Column("subject_id", pattern=SUBJECT_ID),
    Column("image_size_x", "int", minimum=1),
    Column("image_size_y", "int", minimum=1),
)

RECT_COLUMNS: tuple[str, ...] = (
    "xmin_shown_from_image",
    "ymin_shown_from_image",
    "xmax_shown_from_image",
    "ymax_shown_from_image",
    "xmin_in_screen_coordinates",
    "ymin_in_screen_coordinates",
    "xmax_in_screen_coordinates",
    "ymax_in_screen_coordinates",
)

FIXATION_COLUMNS: tuple[Column, ...] = (
    Column("timestamp_start_fixation", "float", minimum=0),
    Column("timestamp_end_fixation", "float", minimum=0),
    Column("x_position", "int"),
    Column("y_position", "int"),
    Column("pupil_area_normalized", "float", required=False, minimum=0),
    Column("angular_resolution_x_pixels_per_degree", "int", minimum=1),
    Column("angular_resolution_y_pixels_per_degree", "int", minimum=1),
    Column("window_width", "float", required=False),
    Column("window_level", "float", required=False),
    *(Column(name, "int") for name in RECT_COLUMNS),
)

GAZE_COLUMNS: tuple[Column, ...] = (
    Column("timestamp_sample", "float", minimum=0),
    Column("x_position", "int", required=False),
    Column("y_position", "int", required=False),
    Column("pupil_area_normalized", "float", required=False, minimum=0),
    Column("angular_resolution_x_pixels_per_degree", "int", required=False, minimum=1),
    Column("angular_resolution_y_pixels_per_degree", "int", required=False, minimum=1),
    Column("window_width", "float", required=False),
    Column("window_level", "float", required=False),
    *(Column(name, "int") for name in RECT_COLUMNS),
)

WORD_COLUMNS: tuple[Column, ...] = (
    Column("word"),
    Column("timestamp_start_word", "float", minimum=0),
    Column("timestamp_end_word", "float", minimum=0),
)

BOX_COLUMNS: tuple[Column, ...] = tuple(Column(n, "int") for n in ("xmin", "ymin", "xmax", "ymax"))


def metadata_path(root: str | Path, phase: int) -> Path:
    return Path(root) / "main_data" / f"metadata_phase_{phase}.csv"


def _label_columns(phase: int) -> tuple[Column, ...]:
    columns = []
    for name in reflacx_labels(phase):
        if name in REFLACX_BOOL_LABELS:
            columns.append(Column(name, "bool"))
        elif name in REFLACX_TEXT_LABELS:
            columns.append(Column(name, required=False))
        else:
            columns.append(Column(name, "int", minimum=-1, maximum=5))
    return tuple(columns)


def metadata_columns(phase: int) -> tuple[Column, ...]:
    """Expected columns of ``metadata_phase_<phase>.csv``, in order."""
    return BASE_COLUMNS + _label_columns(phase)


def ellipse_columns(phase: int) -> tuple[Column, ...]:
    """Expected columns of ``anomaly_location_ellipses.csv`` for a phase, in order."""
    return (
        *BOX_COLUMNS,
        Column("certainty", "int", minimum=1, maximum=5),
        *(Column(name, "bool") for name in reflacx_labels(phase)),
    )


def _fail_row(path: Path, row: int, column: str, reason: str) -> DataFormatError:
    return DataFormatError(path, reason, line=row + 2, column=column)


def read_metadata(root: str | Path, phase: int) -> pl.DataFrame:
    """Read and validate ``main_data/metadata_phase_<phase>.csv``.

    Adds ``phase`` (int) and ``study_id`` (int, parsed from the ``image`` path); ``subject_id``
    becomes an int. Checks ids against the phase, the image path against ``dicom_id`` and
    ``subject_id``, and that phase 3 has no discarded reading. Certainty -1 is a warning.
    """
    path = metadata_path(root, phase)
    frame = read_table(path, metadata_columns(phase), crlf=True)
    ids = frame.get_column("id")
    bad = ids.str.slice(1, 1) != str(phase)
    if bad.any():
        row = int(bad.arg_true()[0])
        raise _fail_row(path, row, "id", f"reading id '{ids[row]}' is not of phase {phase}")
    dup = ids.is_duplicated()
    if dup.any():
        row = int(dup.arg_true()[-1])
        raise _fail_row(path, row, "id", f"duplicated reading id '{ids[row]}'")
    studies = []
    images = frame.get_column("image").to_list()
    dicoms = frame.get_column("dicom_id").to_list()
    subjects = frame.get_column("subject_id").to_list()
    for row, (image, dicom, subject) in enumerate(zip(images, dicoms, subjects, strict=True)):
        match = IMAGE_PATH.match(image)
        if match is None:
            raise _fail_row(
                path,
                row,
                "image",
                f"malformed image path '{image}' (expected physionet.org/files/mimic-cxr/2.0.0/"
                "files/pXX/p<subject>/s<study>/<dicom_id>.dcm)",
            )
        prefix, path_subject, study, path_dicom = match.groups()
        if path_dicom != dicom:
            raise _fail_row(path, row, "dicom_id", f"'{dicom}' differs from the image path")
        if path_subject != subject or prefix != subject[:2]:
            raise _fail_row(path, row, "subject_id", f"'{subject}' differs from the image path")
        studies.append(int(study))
    if phase == 3:
        discarded = frame.get_column("eye_tracking_data_discarded")
        if discarded.any():
            row = int(discarded.arg_true()[0])
            raise _fail_row(
                path, row, "eye_tracking_data_discarded", "phase 3 has no discarded readings"
            )
    certainty_names = []
    for column in _label_columns(phase):
        if column.kind != "int":
            continue
        certainty_names.append(column.name)
        values = frame.get_column(column.name)
        negative = values < 0
        if negative.any():
            row = int(negative.arg_true()[0])
            warn_at(
                log,
                path,
                "certainty -1 (selected without an ellipse); read as 0",
                line=row + 2,
                column=column.name,
            )
    return frame.with_columns(
        pl.col(certainty_names).clip(lower_bound=0),
        pl.col("subject_id").cast(pl.Int64),
        pl.Series("study_id", studies, dtype=pl.Int64),
        pl.lit(phase, dtype=pl.Int64).alias("phase"),
    )


def phases_present(root: str | Path) -> list[int]:
    """Phases whose metadata table exists under ``root``."""
    return [p for p in PHASES if metadata_path(root, p).is_file()]


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def check_fixations(path: Path, frame: pl.DataFrame, width: int, height: int) -> None:
    """Time order and geometry checks of a fixations table (errors and warnings).

    Errors: a fixation ending before it starts, start times going backwards, an empty
    displayed or screen rectangle. Warnings: zero durations, overlaps, positions outside the
    image, a displayed rectangle beyond the image (heatmaps clip it to the image).
    """
    col = {name: frame.get_column(name).to_numpy() for name in frame.columns}
    start = col["timestamp_start_fixation"]
    end = col["timestamp_end_fixation"]
    row = _first(end < start)
    if row is not None:
        raise _fail_row(
            path,
            row,
            "timestamp_end_fixation",
            f"fixation ends before it starts ({start[row]} > {end[row]})",
        )
    backwards = np.zeros(len(start), dtype=bool)
    backwards[1:] = start[1:] < start[:-1]
    row = _first(backwards)
    if row is not None:
        raise _fail_row(
            path,
            row,
            "timestamp_start_fixation",
            f"timestamps go backwards ({start[row - 1]} then {start[row]})",
        )
    for lo, hi in (
        ("xmin_shown_from_image", "xmax_shown_from_image"),
        ("ymin_shown_from_image", "ymax_shown_from_image"),
        ("xmin_in_screen_coordinates", "xmax_in_screen_coordinates"),
        ("ymin_in_screen_coordinates", "ymax_in_screen_coordinates"),
    ):
        row = _first(col[hi] <= col[lo])
        if row is not None:
            raise _fail_row(path, row, hi, f"empty rectangle ({lo} >= {hi})")
    zero = end == start
    overlap = np.zeros(len(start), dtype=bool)
    overlap[1:] = start[1:] < end[:-1]
    x, y = col["x_position"], col["y_position"]
    outside_x = (x < 0) | (x >= width)
    outside = outside_x | (y < 0) | (y >= height)
    beyond = {
        "xmin_shown_from_image": col["xmin_shown_from_image"] < 0,
        "ymin_shown_from_image": col["ymin_shown_from_image"] < 0,
        "xmax_shown_from_image": col["xmax_shown_from_image"] > width,
        "ymax_shown_from_image": col["ymax_shown_from_image"] > height,
    }
    any_beyond = np.logical_or.reduce(list(beyond.values()))
    warnings = (
        (zero, "fixation(s) of zero duration (weight 0)", "timestamp_end_fixation"),
        (overlap, "fixation(s) overlap the previous one", "timestamp_start_fixation"),
        (outside, f"fixation(s) outside the image ({width}x{height})", None),
        (
            any_beyond,
            "fixation(s) whose displayed rectangle extends beyond the image "
            "(clipped to the image when rendering)",
            None,
        ),
    )
    for mask, message, column in warnings:
        row = _first(mask)
        if row is None:
            continue
        if mask is outside:
            column = "x_position" if outside_x[row] else "y_position"
        elif mask is any_beyond:
            column = next(name for name, flags in beyond.items() if flags[row])
        warn_at(log, path, f"{int(mask.sum())} {message}", line=row + 2, column=column)


def read_fixations(path: str | Path, *, width: int, height: int) -> pl.DataFrame:
    """Read ``fixations.csv`` (seconds from the audio start; positions in image pixels)."""
    path = Path(path)
    frame = read_table(path, FIXATION_COLUMNS, crlf=True)
    check_fixations(path, frame, width, height)
    return frame


def read_gaze(path: str | Path) -> pl.DataFrame:
    """Read ``gaze_data/<id>/gaze.csv`` (1000 Hz samples; blinks have empty positions)."""
    path = Path(path)
    frame = read_table(path, GAZE_COLUMNS, crlf=True)
    t = frame.get_column("timestamp_sample")
    backwards = t.diff() < 0
    if backwards.any():
        row = int(backwards.arg_true()[0])
        raise _fail_row(path, row, "timestamp_sample", "timestamps go backwards")
    return frame


@dataclass(frozen=True)
class Transcript:
    """A reading's report text and its word timestamps (seconds from the audio start)."""

    text: str
    words: pl.DataFrame


def tokens_of(text: str) -> list[str]:
    """REFLACX tokenisation of a transcription: ``.``/``,`` become their own tokens."""
    return text.replace(".", " .").replace(",", " ,").split(" ")


def read_transcript(reading_dir: str | Path) -> Transcript:
    """Read ``transcription.txt`` and ``timestamps_transcription.csv`` and check they agree."""
    reading_dir = Path(reading_dir)
    text_path = reading_dir / "transcription.txt"
    words_path = reading_dir / "timestamps_transcription.csv"
    raw = read_text(text_path)
    lines = raw.splitlines()
    if not lines or not lines[0].strip():
        raise DataFormatError(text_path, "empty transcription", line=1)
    if len(lines) > 1 and any(line.strip() for line in lines[1:]):
        warn_at(log, text_path, "more than one line; only the first is the report", line=2)
    text = lines[0].strip()
    words = read_table(words_path, WORD_COLUMNS, crlf=True)
    start = words.get_column("timestamp_start_word").to_numpy()
    end = words.get_column("timestamp_end_word").to_numpy()
    row = _first(end < start)
    if row is not None:
        raise _fail_row(
            words_path,
            row,
            "timestamp_end_word",
            f"word ends before it starts ({start[row]} > {end[row]})",
        )
    backwards = np.zeros(len(start), dtype=bool)
    backwards[1:] = start[1:] < start[:-1]
    row = _first(backwards)
    if row is not None:
        raise _fail_row(
            words_path,
            row,
            "timestamp_start_word",
            f"timestamps go backwards ({start[row - 1]} then {start[row]})",
        )
    expected = tokens_of(text)
    got = words.get_column("word").to_list()
    for row, (token, want) in enumerate(zip(got, expected, strict=False)):
        if token != want:
            raise _fail_row(
                words_path,
                row,
                "word",
                f"word '{token}' does not match '{want}' of {text_path.name} (token {row + 1})",
            )
    if len(got) != len(expected):
        row = min(len(got), len(expected))
        raise DataFormatError(
            words_path,
            f"{len(got)} words but {text_path.name} has {len(expected)} tokens",
            line=row + 2 if len(got) > len(expected) else len(got) + 1,
            column="word",
        )
    return Transcript(text=text, words=words)


def read_ellipses(path: str | Path, phase: int) -> pl.DataFrame:
    """Read ``anomaly_location_ellipses.csv`` (boxes in image pixels, certainty 1-5)."""
    path = Path(path)
    columns = ellipse_columns(phase)
    frame = read_table(path, columns, crlf=True)
    for lo, hi in (("xmin", "xmax"), ("ymin", "ymax")):
        inverted = frame.get_column(hi) < frame.get_column(lo)
        if inverted.any():
            row = int(inverted.arg_true()[0])
            raise _fail_row(path, row, hi, f"{hi} is smaller than {lo}")
    labels = list(reflacx_labels(phase))
    if frame.height:
        none = ~frame.select(pl.any_horizontal(labels)).to_series()
        if none.any():
            row = int(none.arg_true()[0])
            raise _fail_row(path, row, labels[0], "ellipse has no label set to True")
    return frame


def read_chest_box(path: str | Path) -> tuple[int, int, int, int]:
    """Read ``chest_bounding_box.csv``: one (xmin, ymin, xmax, ymax) row in image pixels."""
    path = Path(path)
    frame = read_table(path, BOX_COLUMNS, crlf=True)
    if frame.height != 1:
        raise DataFormatError(
            path,
            f"expected exactly one box row, found {frame.height}",
            line=2 if frame.height == 0 else 3,
        )
    xmin, ymin, xmax, ymax = frame.row(0)
    if xmax < xmin:
        raise DataFormatError(path, "xmax is smaller than xmin", line=2, column="xmax")
    if ymax < ymin:
        raise DataFormatError(path, "ymax is smaller than ymin", line=2, column="ymax")
    return xmin, ymin, xmax, ymax


def jpg_path_from_image(image: str, mimic_root: str | Path) -> Path:
    """MIMIC-CXR-JPG path of a REFLACX ``image`` (DICOM path): docs/method.md#input-data."""
    parts = image.split("/")
    if "files" not in parts:
        raise ValueError(f"image path without a 'files' segment: {image!r}")
    last = len(parts) - 1 - parts[::-1].index("files")
    rel = "/".join(parts[last + 1 :])
    if rel.endswith(".dcm"):
        rel = rel[: -len(".dcm")] + ".jpg"
    return Path(mimic_root) / "files" / rel


@dataclass(frozen=True)
class ReflacxReading:
    """One REFLACX reading: its metadata row and lazy access to its files."""

    id: str
    phase: int
    split: str
    discarded: bool
    image: str
    dicom_id: str
    subject_id: int
    study_id: int
    width: int
    height: int
    labels: dict[str, int | bool | str | None] = field(repr=False)
    root: Path = field(repr=False)

    @property
    def main_dir(self) -> Path:
        return self.root / "main_data" / self.id

    @property
    def gaze_dir(self) -> Path:
        return self.root / "gaze_data" / self.id

    def _require_eye_tracking(self, what: str) -> None:
        if self.discarded:
            raise DataFormatError(
                self.main_dir, f"reading {self.id} is discarded: it has no {what}"
            )

    def fixations(self) -> pl.DataFrame:
        self._require_eye_tracking("fixations.csv")
        return read_fixations(self.main_dir / "fixations.csv", width=self.width, height=self.height)

    def transcript(self) -> Transcript:
        self._require_eye_tracking("transcription")
        return read_transcript(self.main_dir)

    def ellipses(self) -> pl.DataFrame:
        return read_ellipses(self.main_dir / "anomaly_location_ellipses.csv", self.phase)

    def chest_box(self) -> tuple[int, int, int, int]:
        return read_chest_box(self.main_dir / "chest_bounding_box.csv")

    def gaze(self) -> pl.DataFrame:
        self._require_eye_tracking("gaze.csv")
        return read_gaze(self.gaze_dir / "gaze.csv")

    def jpg_path(self, mimic_root: str | Path) -> Path:
        return jpg_path_from_image(self.image, mimic_root)


def readings_from_metadata(root: str | Path, frame: pl.DataFrame) -> list[ReflacxReading]:
    """Build :class:`ReflacxReading` objects from a frame returned by :func:`read_metadata`."""
    root = Path(root)
    base = {c.name for c in BASE_COLUMNS} | {"study_id", "phase"}
    readings = []
    for row in frame.iter_rows(named=True):
        labels = {k: v for k, v in row.items() if k not in base}
        readings.append(
            ReflacxReading(
                id=row["id"],
                phase=row["phase"],
                split=row["split"],
                discarded=row["eye_tracking_data_discarded"],
                image=row["image"],
                dicom_id=row["dicom_id"],
                subject_id=row["subject_id"],
                study_id=row["study_id"],
                width=row["image_size_x"],
                height=row["image_size_y"],
                labels=labels,
                root=root,
            )
        )
    return readings


def read_readings(root: str | Path, phases: Iterable[int] | None = None) -> list[ReflacxReading]:
    """All readings of the given phases (default: every phase whose metadata exists)."""
    root = Path(root)
    if not (root / "main_data").is_dir():
        raise DataFormatError(root, "not a REFLACX root: main_data/ is missing")
    chosen = phases_present(root) if phases is None else list(phases)
    if not chosen:
        raise DataFormatError(root / "main_data", "no metadata_phase_<N>.csv found")
    readings: list[ReflacxReading] = []
    for phase in chosen:
        readings.extend(readings_from_metadata(root, read_metadata(root, phase)))
    return readings


def check_reading_files(reading: ReflacxReading) -> None:
    """Read and check all of a reading's files (and that ellipses agree with the metadata)."""
    check_ellipse_consistency(reading, reading.ellipses())
    reading.chest_box()
    if reading.discarded:
        warn_discarded_files(reading)
        return
    reading.fixations()
    reading.transcript()


def warn_discarded_files(reading: ReflacxReading) -> None:
    """Warn about each gaze or transcript file of a discarded reading (they are ignored)."""
    for name in ("fixations.csv", "timestamps_transcription.csv", "transcription.txt"):
        if (reading.main_dir / name).exists():
            warn_at(log, reading.main_dir / name, "present for a discarded reading; ignored")


def check_ellipse_consistency(reading: ReflacxReading, ellipses: pl.DataFrame) -> None:
    """Warn when a metadata certainty differs from the max certainty of its ellipses."""
    path = metadata_path(reading.root, reading.phase)
    for name, value in reading.labels.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        tagged = ellipses.filter(pl.col(name)) if name in ellipses.columns else ellipses.clear()
        expected = int(tagged.get_column("certainty").max() or 0) if tagged.height else 0
        if max(value, 0) != expected:
            warn_at(
                log,
                path,
                f"reading {reading.id}: {value} but its ellipses give {expected}",
                column=name,
            )


def subjects_of(readings: Sequence[ReflacxReading]) -> set[int]:
    return {r.subject_id for r in readings}

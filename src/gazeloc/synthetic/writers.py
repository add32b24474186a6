"""Writers of the REFLACX 1.0.0 and MIMIC-CXR-JPG 2.0.0 file formats (docs/method.md#input-data).

REFLACX CSVs: comma separated, header row, CRLF line endings, ``True``/``False`` booleans,
empty missing values, minimal quoting (so the ``,`` token is written ``","``), integers without
a decimal point and other floats in shortest form (``7.08``, ``1.0``). MIMIC tables: LF line
endings, gzip-compressed (with a zero timestamp, so that the bytes are reproducible).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.io.reflacx import RECT_COLUMNS
from gazeloc.synthetic.gaze import Fixations


def _bool_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.col(c)).then(pl.lit("True")).otherwise(pl.lit("False")).alias(c)
        for c, dtype in frame.schema.items()
        if dtype == pl.Boolean
    )


def csv_text(frame: pl.DataFrame, *, crlf: bool) -> str:
    """CSV text as pandas' ``to_csv`` writes it (booleans as True/False, nulls empty)."""
    return _bool_text(frame).write_csv(line_terminator="\r\n" if crlf else "\n")


def write_reflacx_csv(path: Path, frame: pl.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csv_text(frame, crlf=True).encode("utf-8"))


def write_mimic_table(path: Path, frame: pl.DataFrame) -> None:
    """Write a ``.csv.gz`` MIMIC table reproducibly (gzip mtime 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = csv_text(frame, crlf=False).encode("utf-8")
    path.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))


def fixations_frame(fix: Fixations) -> pl.DataFrame:
    """``fixations.csv`` columns in order, with the format's rounding."""
    cols: dict[str, object] = {
        "timestamp_start_fixation": np.round(fix.start, 3),
        "timestamp_end_fixation": np.round(fix.end, 3),
        "x_position": fix.x.astype(np.int64),
        "y_position": fix.y.astype(np.int64),
        "pupil_area_normalized": np.round(fix.pupil, 3),
        "angular_resolution_x_pixels_per_degree": fix.ang_x.astype(np.int64),
        "angular_resolution_y_pixels_per_degree": fix.ang_y.astype(np.int64),
        "window_width": np.round(fix.window_width, 5),
        "window_level": np.round(fix.window_level, 5),
    }
    for k, name in enumerate(RECT_COLUMNS[:4]):
        cols[name] = fix.shown[:, k].astype(np.int64)
    for k, name in enumerate(RECT_COLUMNS[4:]):
        cols[name] = fix.screen[:, k].astype(np.int64)
    return pl.DataFrame(cols)


def gaze_frame(samples: dict[str, np.ndarray]) -> pl.DataFrame:
    """``gaze.csv`` columns; NaN (blinks) become empty fields, integers stay integers."""
    ints = {
        "x_position",
        "y_position",
        "angular_resolution_x_pixels_per_degree",
        "angular_resolution_y_pixels_per_degree",
        *RECT_COLUMNS,
    }
    series = []
    for name, values in samples.items():
        s = pl.Series(name, values, nan_to_null=True)
        series.append(s.cast(pl.Int64) if name in ints else s)
    return pl.DataFrame(series)


def words_frame(words: Sequence[tuple[str, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "word": [w for w, _, _ in words],
            "timestamp_start_word": [round(s, 2) for _, s, _ in words],
            "timestamp_end_word": [round(e, 2) for _, _, e in words],
        },
        schema={
            "word": pl.String,
            "timestamp_start_word": pl.Float64,
            "timestamp_end_word": pl.Float64,
        },
    )


def ellipses_frame(rows: Sequence[dict], labels: Sequence[str]) -> pl.DataFrame:
    """``anomaly_location_ellipses.csv``: box, certainty, one bool per phase label."""
    schema = {n: pl.Int64 for n in ("xmin", "ymin", "xmax", "ymax", "certainty")}
    schema.update({name: pl.Boolean for name in labels})
    return pl.DataFrame(
        [
            {
                **{k: r[k] for k in ("xmin", "ymin", "xmax", "ymax", "certainty")},
                **{name: name in r["labels"] for name in labels},
            }
            for r in rows
        ],
        schema=schema,
    )


def chest_box_frame(box: tuple[int, int, int, int]) -> pl.DataFrame:
    return pl.DataFrame(
        [dict(zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True))],
        schema={n: pl.Int64 for n in ("xmin", "ymin", "xmax", "ymax")},
    )

"""Strict CSV table reading with errors that name the file, line and column.

Every REFLACX and MIMIC-CXR-JPG table goes through :func:`read_table`: the header must match the
expected columns (names and order), every cell is checked against its column's type, and the
first offending cell is reported as ``file, line N, column 'name': reason`` (header = line 1).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from gazeloc.errors import DataFormatError, warn_at

log = logging.getLogger(__name__)

Kind = Literal["str", "int", "float", "bool"]

_TRUE = {"True", "TRUE", "true"}
_FALSE = {"False", "FALSE", "false"}


@dataclass(frozen=True)
class Column:
    """Expected column: its header name, value kind and constraints."""

    name: str
    kind: Kind = "str"
    required: bool = True
    """Empty cells are an error when True (they become nulls otherwise)."""
    pattern: str | None = None
    """Full-match regular expression for ``str`` columns."""
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    finite: bool = True
    """Reject NaN/inf in float columns."""


def read_text(path: str | Path) -> str:
    """Read a text file, transparently gunzipping ``.gz``; format problems raise DataFormatError."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(path, f"cannot decompress gzip file ({exc})") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(path, "not valid UTF-8 text", line=line) from exc


def split_header(path: Path, text: str) -> list[str]:
    """The header names of a CSV text (first line)."""
    first = text.split("\n", 1)[0].rstrip("\r")
    if not first.strip():
        raise DataFormatError(path, "empty file (no header line)", line=1)
    return next(csv.reader([first]))


def check_header(path: Path, header: Sequence[str], expected: Sequence[str]) -> None:
    """Compare a header with the expected names and order; raise on the first difference."""
    if list(header) == list(expected):
        return
    present = set(header)
    for name in expected:
        if name not in present:
            raise DataFormatError(path, "missing column", line=1, column=name)
    wanted = set(expected)
    for name in header:
        if name not in wanted:
            raise DataFormatError(
                path,
                f"unexpected column (expected columns: {', '.join(expected)})",
                line=1,
                column=name,
            )
    if len(header) != len(set(header)):
        dup = next(n for n in header if header.count(n) > 1)
        raise DataFormatError(path, "duplicated column", line=1, column=dup)
    for position, (got, want) in enumerate(zip(header, expected, strict=True), start=1):
        if got != want:
            raise DataFormatError(
                path,
                f"columns out of order: position {position} should be '{want}'",
                line=1,
                column=got,
            )


def _locate_ragged_row(path: Path, text: str, width: int) -> DataFormatError | None:
    """The first line whose field count differs from the header's, as an error (or None)."""
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if row and len(row) != width:
            return DataFormatError(path, f"expected {width} fields, found {len(row)}", line=number)
    return None


def _first_bad(mask: pl.Series) -> int | None:
    idx = mask.arg_true()
    return int(idx[0]) if len(idx) else None


def _convert(path: Path, frame: pl.DataFrame, spec: Column) -> pl.Series:
    raw = frame.get_column(spec.name)
    name = spec.name

    def fail(row: int, reason: str) -> DataFormatError:
        return DataFormatError(path, reason, line=row + 2, column=name)

    missing = raw.is_null()
    if spec.required:
        row = _first_bad(missing)
        if row is not None:
            raise fail(row, "missing value")

    if spec.kind == "str":
        values = raw
        if spec.pattern is not None:
            bad = ~missing & ~raw.str.contains(f"^(?:{spec.pattern})$").fill_null(False)
            row = _first_bad(bad)
            if row is not None:
                raise fail(row, f"malformed value '{raw[row]}' (expected {spec.pattern!r})")
        if spec.choices is not None:
            bad = ~missing & ~raw.is_in(list(spec.choices))
            row = _first_bad(bad)
            if row is not None:
                choices = ", ".join(spec.choices)
                raise fail(row, f"unexpected value '{raw[row]}' (allowed: {choices})")
        return values
    if spec.kind == "bool":
        stripped = raw
        bad = ~missing & ~stripped.is_in(sorted(_TRUE | _FALSE))
        row = _first_bad(bad)
        if row is not None:
            raise fail(row, f"expected True or False, found '{raw[row]}'")
        return stripped.is_in(sorted(_TRUE)).alias(name).set(missing, None)
    if spec.kind == "int":
        bad = ~missing & ~raw.str.contains(r"^-?\d+$").fill_null(False)
        row = _first_bad(bad)
        if row is not None:
            raise fail(row, f"expected an integer, found '{raw[row]}'")
        values = raw.cast(pl.Int64, strict=False)
    else:  # float
        values = raw.cast(pl.Float64, strict=False)
        bad = ~missing & values.is_null()
        row = _first_bad(bad)
        if row is not None:
            raise fail(row, f"expected a number, found '{raw[row]}'")
        if spec.finite:
            bad = ~missing & ~values.is_finite().fill_null(True)
            row = _first_bad(bad)
            if row is not None:
                raise fail(row, f"expected a finite number, found '{raw[row]}'")
    if spec.minimum is not None:
        row = _first_bad((values < spec.minimum).fill_null(False))
        if row is not None:
            raise fail(row, f"value {raw[row]} is below the minimum {spec.minimum:g}")
    if spec.maximum is not None:
        row = _first_bad((values > spec.maximum).fill_null(False))
        if row is not None:
            raise fail(row, f"value {raw[row]} is above the maximum {spec.maximum:g}")
    return values


def read_table(
    path: str | Path,
    columns: Sequence[Column],
    *,
    crlf: bool = False,
    text: str | None = None,
) -> pl.DataFrame:
    """Read a CSV file whose header must be exactly ``columns`` (names and order).

    ``crlf=True`` logs a warning when the file uses LF line endings (REFLACX writes CRLF;
    both are accepted). Returns a typed polars DataFrame (int -> Int64, float -> Float64,
    bool -> Boolean, str -> String; empty cells -> null).
    """
    path = Path(path)
    if text is None:
        text = read_text(path)
    header = split_header(path, text)
    check_header(path, header, [c.name for c in columns])
    if crlf and "\n" in text and "\r\n" not in text:
        warn_at(log, path, "LF line endings (REFLACX files are written with CRLF); accepted")
    bad_width = _locate_ragged_row(path, text, len(header))
    if bad_width is not None:
        raise bad_width
    try:
        frame = pl.read_csv(
            io.StringIO(text),
            infer_schema=False,
            has_header=True,
            raise_if_empty=False,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.ShapeError) as exc:
        raise DataFormatError(path, f"malformed CSV ({exc})") from exc
    frame = frame.with_columns(pl.col(pl.String).str.strip_suffix("\r"))
    return pl.DataFrame([_convert(path, frame, spec).alias(spec.name) for spec in columns])


def format_float(value: float) -> str:
    """Shortest repr of a float, as Python's ``str(round(x, n))`` writes it (NaN -> empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value))

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
import re
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
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(path, "not valid UTF-8 text", line=line) from exc
    if text.startswith("\ufeff"):
        warn_at(
            log,
            path,
            "starts with a UTF-8 byte-order mark (as spreadsheet programs write 'CSV UTF-8'); "
            "ignored",
            line=1,
        )
        text = text[1:]
    bare_cr = _BARE_CR.search(text)
    if bare_cr is not None:
        line = text.count("\n", 0, bare_cr.start()) + 1
        raise DataFormatError(
            path,
            "a carriage return without a line feed: CR-only (old Mac) line endings are not "
            "supported; save the file with CRLF or LF line endings",
            line=line,
        )
    return text


_BARE_CR = re.compile(r"\r(?!\n)")


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
        bad = ~missing & ~raw.str.contains(r"^-?[0-9]+$").fill_null(False)
        row = _first_bad(bad)
        if row is not None:
            raise fail(row, f"expected an integer, found '{raw[row]}'")
        values = raw.str.to_integer(strict=False)
        row = _first_bad(~missing & values.is_null())
        if row is not None:
            raise fail(row, f"integer {raw[row]} is out of range (a 64-bit integer)")
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
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as exc:
        line = reader.line_num
        reason = str(exc)
        if "field larger than field limit" in reason:
            reason = f"a field longer than {csv.field_size_limit():,} characters"
        raise DataFormatError(path, f"malformed CSV: {reason}", line=line) from exc
    for number, row in enumerate(rows, start=1):
        if row and len(row) != len(header):
            raise DataFormatError(
                path, f"expected {len(header)} fields, found {len(row)}", line=number
            )
    if len(rows) <= SMALL_TABLE_ROWS:
        converted = _convert_small([r for r in rows[1:] if r], columns)
        if converted is not None:
            return converted
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
    # Fast path: convert and check every column in one query; only when a check fails is the
    # table re-examined column by column to name the first offending cell.
    converted, problems = _convert_all(frame, columns)
    if problems:
        for spec in columns:
            _convert(path, frame, spec)  # raises on the first bad cell of this column
    return converted


SMALL_TABLE_ROWS = 20_000
"""Tables up to this many lines are converted in Python (polars' per-query overhead dominates
for the many small REFLACX files); larger ones in one polars query."""

_INT = re.compile(r"-?[0-9]+\Z")
_INT64 = (-(2**63), 2**63 - 1)
_DTYPES = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean}


def _convert_small(rows: list[list[str]], columns: Sequence[Column]) -> pl.DataFrame | None:
    """Typed frame of a small table, or None if any cell is bad (the caller then locates it)."""
    data: dict[str, list] = {}
    for index, spec in enumerate(columns):
        cells = [r[index] for r in rows]
        if cells and cells[-1].endswith("\r"):
            cells = [c[:-1] if c.endswith("\r") else c for c in cells]
        values: list = []
        for cell in cells:
            if cell == "":
                if spec.required:
                    return None
                values.append(None)
                continue
            if spec.kind == "str":
                if spec.choices is not None and cell not in spec.choices:
                    return None
                if spec.pattern is not None and not re.fullmatch(spec.pattern, cell):
                    return None
                values.append(cell)
                continue
            if spec.kind == "bool":
                if cell in _TRUE:
                    values.append(True)
                elif cell in _FALSE:
                    values.append(False)
                else:
                    return None
                continue
            if spec.kind == "int":
                if not _INT.match(cell):
                    return None
                value = int(cell)
                if not _INT64[0] <= value <= _INT64[1]:
                    return None
            else:
                # One rule for small and large tables: no digit separators, no spaces.
                if "_" in cell or cell != cell.strip():
                    return None
                try:
                    value = float(cell)
                except ValueError:
                    return None
                if spec.finite and not math.isfinite(value):
                    return None
            if spec.minimum is not None and value < spec.minimum:
                return None
            if spec.maximum is not None and value > spec.maximum:
                return None
            values.append(value)
        data[spec.name] = values
    return pl.DataFrame(data, schema={c.name: _DTYPES[c.kind] for c in columns})


def _column_exprs(spec: Column) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, row is bad) expressions for one column."""
    raw = pl.col(spec.name)
    missing = raw.is_null()
    bad = missing if spec.required else pl.lit(False)
    if spec.kind == "str":
        value = raw
        if spec.pattern is not None:
            bad = bad | (~missing & ~raw.str.contains(f"^(?:{spec.pattern})$").fill_null(False))
        if spec.choices is not None:
            bad = bad | (~missing & ~raw.is_in(list(spec.choices)))
        return value, bad
    if spec.kind == "bool":
        bad = bad | (~missing & ~raw.is_in(sorted(_TRUE | _FALSE)))
        value = pl.when(missing).then(None).otherwise(raw.is_in(sorted(_TRUE)))
        return value, bad
    if spec.kind == "int":
        value = raw.str.to_integer(strict=False)
        bad = bad | (~missing & value.is_null())
    else:
        value = raw.cast(pl.Float64, strict=False)
        bad = bad | (~missing & value.is_null())
        if spec.finite:
            bad = bad | (~missing & ~value.is_finite().fill_null(True))
    if spec.minimum is not None:
        bad = bad | (value < spec.minimum).fill_null(False)
    if spec.maximum is not None:
        bad = bad | (value > spec.maximum).fill_null(False)
    return value, bad


def _convert_all(frame: pl.DataFrame, columns: Sequence[Column]) -> tuple[pl.DataFrame, bool]:
    values, bads = [], []
    for spec in columns:
        value, bad = _column_exprs(spec)
        values.append(value.alias(spec.name))
        bads.append(bad)
    out = frame.select(*values, pl.any_horizontal(*bads).any().alias("__bad"))
    problems = bool(out.height and out.get_column("__bad")[0])
    return out.drop("__bad"), problems


def format_float(value: float) -> str:
    """Shortest repr of a float, as Python's ``str(round(x, n))`` writes it (NaN -> empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value))

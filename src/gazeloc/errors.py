"""Error types with a location: the file, the line (header = line 1) and the column."""

from __future__ import annotations

import logging
from pathlib import Path


def _where(path: str | Path, line: int | None, column: str | None) -> str:
    where = str(path)
    if line is not None:
        where += f", line {line}"
    if column is not None:
        where += f", column '{column}'"
    return where


class DataFormatError(ValueError):
    """Input data that does not follow the REFLACX / MIMIC-CXR-JPG formats.

    ``line`` counts the header as line 1 (so the first data row is line 2); ``column`` is the
    header name. The message always starts with the file name.
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        self.reason = message
        super().__init__(f"{_where(path, line, column)}: {message}")


def warn_at(
    logger: logging.Logger,
    path: str | Path,
    message: str,
    *,
    line: int | None = None,
    column: str | None = None,
) -> None:
    """Log a data warning (a tolerated deviation) with its location."""
    logger.warning("%s: %s", _where(path, line, column), message)


class NonFiniteLossError(RuntimeError):
    """Training met a NaN or infinite loss: it stops at once (an optimizer step on it would
    turn every weight into NaN). The message names the step and the loss parts."""

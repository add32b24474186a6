"""Reader of MIMIC-CXR-JPG 2.0.0 tables and paths, exactly as distributed.

The format: docs/method.md#input-data.

Tables may be ``.csv.gz`` (as distributed) or decompressed ``.csv``. Ids are validated: subject
ids are 8 digits starting with 1, study ids 8 digits starting with 5, dicom ids five dash-joined
groups of 8 lower-case hex digits.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from gazeloc.errors import DataFormatError, warn_at
from gazeloc.io.table import Column, read_table
from gazeloc.labels import CHEXPERT_COLUMNS

log = logging.getLogger(__name__)

DICOM_ID = r"[0-9a-f]{8}(?:-[0-9a-f]{8}){4}"
SUBJECT_ID = r"1\d{7}"
STUDY_ID = r"5\d{7}"
SPLITS = ("train", "validate", "test")
FRONTAL_VIEWS = ("PA", "AP")

TABLES = ("chexpert", "negbio", "metadata", "split")

LABEL_TABLE_COLUMNS: tuple[Column, ...] = (
    Column("subject_id", pattern=SUBJECT_ID),
    Column("study_id", pattern=STUDY_ID),
    *(Column(name, "float", required=False, minimum=-1, maximum=1) for name in CHEXPERT_COLUMNS),
)

SPLIT_COLUMNS: tuple[Column, ...] = (
    Column("dicom_id", pattern=DICOM_ID),
    Column("study_id", pattern=STUDY_ID),
    Column("subject_id", pattern=SUBJECT_ID),
    Column("split", choices=SPLITS),
)

METADATA_COLUMNS: tuple[Column, ...] = (
    Column("dicom_id", pattern=DICOM_ID),
    Column("subject_id", pattern=SUBJECT_ID),
    Column("study_id", pattern=STUDY_ID),
    Column("PerformedProcedureStepDescription", required=False),
    Column("ViewPosition", required=False),
    Column("Rows", "int", minimum=1),
    Column("Columns", "int", minimum=1),
    Column("StudyDate", "int", required=False),
    Column("StudyTime", "float", required=False),
    Column("ProcedureCodeSequence_CodeMeaning", required=False),
    Column("ViewCodeSequence_CodeMeaning", required=False),
    Column("PatientOrientationCodeSequence_CodeMeaning", required=False),
)


def table_path(root: str | Path, table: str) -> Path:
    """Path of ``mimic-cxr-2.0.0-<table>.csv.gz`` or, failing that, ``.csv``."""
    if table not in TABLES:
        raise ValueError(f"unknown MIMIC-CXR-JPG table {table!r} (one of {', '.join(TABLES)})")
    base = Path(root) / f"mimic-cxr-2.0.0-{table}.csv"
    gz = base.with_name(base.name + ".gz")
    if gz.is_file():
        if base.is_file():
            warn_at(
                log,
                base,
                f"both {gz.name} and {base.name} exist; reading {gz.name} "
                f"(remove the one you do not mean)",
            )
        return gz
    if base.is_file():
        return base
    raise DataFormatError(gz, f"file not found (nor {base.name})")


def _ints(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    return frame.with_columns(pl.col(n).cast(pl.Int64) for n in names)


def _check_label_values(path: Path, frame: pl.DataFrame) -> None:
    for name in CHEXPERT_COLUMNS:
        values = frame.get_column(name)
        bad = ~values.is_in([-1.0, 0.0, 1.0]) & values.is_not_null()
        if bad.any():
            row = int(bad.arg_true()[0])
            raise DataFormatError(
                path,
                f"label value {values[row]} is not 1.0, 0.0, -1.0 or empty",
                line=row + 2,
                column=name,
            )


def _check_unique(path: Path, frame: pl.DataFrame, keys: list[str]) -> None:
    dup = frame.select(keys).is_duplicated()
    if dup.any():
        row = int(dup.arg_true()[-1])
        raise DataFormatError(
            path, "duplicated row key " + "/".join(keys), line=row + 2, column=keys[-1]
        )


def read_labels(root: str | Path, table: str = "chexpert") -> pl.DataFrame:
    """Per-study labels (``chexpert`` or ``negbio``): 1.0, 0.0, -1.0 or null per column."""
    path = table_path(root, table)
    frame = _ints(read_table(path, LABEL_TABLE_COLUMNS), "subject_id", "study_id")
    _check_label_values(path, frame)
    _check_unique(path, frame, ["subject_id", "study_id"])
    return frame


def read_split(root: str | Path) -> pl.DataFrame:
    """Per-image official split (``train``, ``validate``, ``test``)."""
    path = table_path(root, "split")
    frame = _ints(read_table(path, SPLIT_COLUMNS), "subject_id", "study_id")
    _check_unique(path, frame, ["dicom_id"])
    return frame


def read_metadata(root: str | Path) -> pl.DataFrame:
    """Per-image DICOM metadata (view, Rows = height, Columns = width, date and time)."""
    path = table_path(root, "metadata")
    frame = _ints(read_table(path, METADATA_COLUMNS), "subject_id", "study_id")
    _check_unique(path, frame, ["dicom_id"])
    return frame


def jpg_path(root: str | Path, subject_id: int, study_id: int, dicom_id: str) -> Path:
    """``<root>/files/pXX/p<subject>/s<study>/<dicom_id>.jpg``."""
    subject = f"{int(subject_id):08d}"
    return (
        Path(root)
        / "files"
        / f"p{subject[:2]}"
        / f"p{subject}"
        / f"s{int(study_id)}"
        / (f"{dicom_id}.jpg")
    )


def relative_jpg_path(subject_id: int, study_id: int, dicom_id: str) -> str:
    """The JPEG path relative to the MIMIC-CXR-JPG root (``files/...``)."""
    return jpg_path("", subject_id, study_id, dicom_id).as_posix()

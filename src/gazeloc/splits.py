"""The study's splits (design.md "Splits"; reference-method.md §5).

MIMIC test = official ``test``; val = official ``validate`` or the subject is in the
validation-subjects list (test wins over the list); train = the rest. REFLACX readings take the
split of their image by the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import polars as pl

from gazeloc.errors import DataFormatError
from gazeloc.io.table import read_text

STUDY_SPLITS = ("train", "val", "test")


def paper_val_subjects_file() -> Path:
    """The paper's 280 validation subjects, shipped with the package."""
    return Path(str(resources.files("gazeloc") / "data" / "val_subjects_paper.txt"))


def paper_labeler_dev_ids_file() -> Path:
    """The paper's 108 labeler-development reading ids (phases 1-2), shipped with the package."""
    return Path(str(resources.files("gazeloc") / "data" / "labeler_dev_reading_ids_paper.txt"))


def read_id_list(path: str | Path, pattern: str, what: str) -> list[str]:
    """Read a one-id-per-line file; blank lines are skipped, malformed ids are errors."""
    import re

    regex = re.compile(f"^(?:{pattern})$")
    ids = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        value = line.strip()
        if not value:
            continue
        if not regex.match(value):
            raise DataFormatError(path, f"malformed {what} '{value}'", line=number)
        ids.append(value)
    return ids


def read_val_subjects(path: str | Path) -> frozenset[int]:
    """Validation subject ids (8 digits, one per line)."""
    return frozenset(int(v) for v in read_id_list(path, r"1\d{7}", "subject_id"))


def study_split(
    split_col: str = "split", subject_col: str = "subject_id", *, val_subjects: Iterable[int]
) -> pl.Expr:
    """Polars expression giving the study split from the official split and the subject."""
    subjects = sorted(set(val_subjects))
    return (
        pl.when(pl.col(split_col) == "test")
        .then(pl.lit("test"))
        .when((pl.col(split_col) == "validate") | pl.col(subject_col).is_in(subjects))
        .then(pl.lit("val"))
        .otherwise(pl.lit("train"))
    )


def check_val_subjects(
    metadata: pl.DataFrame, val_subjects: Iterable[int], path: str | Path
) -> None:
    """Every REFLACX image of official split ``validate`` must have its subject in the list.

    ``metadata`` is a frame from :func:`gazeloc.io.reflacx.read_metadata`; the error names the
    metadata file, line and the ``subject_id`` column.
    """
    subjects = set(val_subjects)
    missing = (metadata.get_column("split") == "validate") & ~metadata.get_column(
        "subject_id"
    ).is_in(sorted(subjects))
    if missing.any():
        row = int(missing.arg_true()[0])
        raise DataFormatError(
            path,
            f"image of split 'validate' whose subject {metadata['subject_id'][row]} is not in "
            "the validation-subjects list (data.val_subjects_file); add it to the list",
            line=row + 2,
            column="subject_id",
        )


def check_reflacx_split(
    metadata: pl.DataFrame, mimic_split: pl.DataFrame, path: str | Path
) -> None:
    """REFLACX ``split`` and ``subject_id`` must equal MIMIC's for the same ``dicom_id``."""
    joined = (
        metadata.select(pl.int_range(pl.len()).alias("_row"), "dicom_id", "split", "subject_id")
        .join(
            mimic_split.select(
                "dicom_id",
                pl.col("split").alias("_mimic_split"),
                pl.col("subject_id").alias("_mimic_subject"),
            ),
            on="dicom_id",
            how="left",
        )
        .sort("_row")
    )
    absent = joined.get_column("_mimic_split").is_null()
    if absent.any():
        row = int(absent.arg_true()[0])
        raise DataFormatError(
            path,
            f"dicom_id {joined['dicom_id'][row]} is not in the MIMIC split table",
            line=row + 2,
            column="dicom_id",
        )
    differs = joined.get_column("split") != joined.get_column("_mimic_split")
    if differs.any():
        row = int(differs.arg_true()[0])
        raise DataFormatError(
            path,
            f"split '{joined['split'][row]}' differs from MIMIC's '{joined['_mimic_split'][row]}'",
            line=row + 2,
            column="split",
        )
    differs = joined.get_column("subject_id") != joined.get_column("_mimic_subject")
    if differs.any():
        row = int(differs.arg_true()[0])
        raise DataFormatError(
            path,
            "subject_id differs from MIMIC's for this dicom_id",
            line=row + 2,
            column="subject_id",
        )

"""The study's splits (docs/method.md#images-and-splits).

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
    metadata: pl.DataFrame,
    mimic_split: pl.DataFrame,
    path: str | Path,
    mimic_metadata: pl.DataFrame | None = None,
) -> None:
    """REFLACX rows must agree with MIMIC for the same ``dicom_id`` (docs/method.md#input-data).

    ``split``, ``subject_id`` and the study id of the ``image`` path must equal MIMIC's split
    table; with ``mimic_metadata`` also ``image_size_x/y`` = ``Columns/Rows`` and a frontal
    (PA or AP) view. Errors name the REFLACX metadata file, line and column.
    """
    split = mimic_split.select(
        "dicom_id",
        pl.col("split").alias("_split"),
        pl.col("subject_id").alias("_subject"),
        pl.col("study_id").alias("_study"),
    )
    joined = metadata.with_row_index("_row").join(split, on="dicom_id", how="left").sort("_row")
    if mimic_metadata is not None:
        joined = joined.join(
            mimic_metadata.select(
                "dicom_id",
                pl.col("Columns").alias("_columns"),
                pl.col("Rows").alias("_rows"),
                pl.col("ViewPosition").alias("_view"),
            ),
            on="dicom_id",
            how="left",
        ).sort("_row")

    def first(mask: pl.Series) -> int | None:
        hits = mask.fill_null(True).arg_true()
        return int(hits[0]) if len(hits) else None

    row = first(joined["_split"].is_null())
    if row is not None:
        raise DataFormatError(
            path,
            f"dicom_id {joined['dicom_id'][row]} is not in the MIMIC split table",
            line=row + 2,
            column="dicom_id",
        )
    checks = [
        (
            "split",
            joined["split"] != joined["_split"],
            "split '{}' differs from MIMIC's '{}'",
            "_split",
        ),
        (
            "subject_id",
            joined["subject_id"] != joined["_subject"],
            "subject_id {} differs from MIMIC's {} for this dicom_id",
            "_subject",
        ),
        (
            "image",
            joined["study_id"] != joined["_study"],
            "study id {} of the image path differs from MIMIC's {}",
            "_study",
        ),
    ]
    if mimic_metadata is not None:
        checks += [
            (
                "image_size_x",
                joined["image_size_x"] != joined["_columns"],
                "image_size_x {} differs from MIMIC's Columns {}",
                "_columns",
            ),
            (
                "image_size_y",
                joined["image_size_y"] != joined["_rows"],
                "image_size_y {} differs from MIMIC's Rows {}",
                "_rows",
            ),
        ]
    for column, mask, message, other in checks:
        row = first(mask)
        if row is not None:
            source = "study_id" if column == "image" else column
            raise DataFormatError(
                path,
                message.format(joined[source][row], joined[other][row]),
                line=row + 2,
                column=column,
            )
    if mimic_metadata is not None:
        row = first(~joined["_view"].is_in(["PA", "AP"]))
        if row is not None:
            raise DataFormatError(
                path,
                f"the image's MIMIC ViewPosition is '{joined['_view'][row]}', not PA or AP",
                line=row + 2,
                column="dicom_id",
            )

"""The image list, the index and the dataset counts of the unannotated and annotated sets.

Two tables, so that label or split choices never force the (slow) image shards to be redone:

* the **image list** (:func:`build_image_list`, ``results/images/images.parquet``): every image
  the study uses, with its file and size. An image is listed when it passes the paper's filter
  (its study has a CheXpert label row; ``ViewPosition`` is PA or AP; it is the only PA/AP
  image of its study; docs/method.md#images-and-splits) or when REFLACX has a reading of
  it. Shards are made from this list only.
* the **index** (:func:`build_index`, ``results/images/index.parquet``): the image list plus
  the study split (docs/method.md#images-and-splits), the 10 model labels from the CheXpert columns
  (docs/method.md#labels) and the set membership flags.

Index columns: ``dicom_id, subject_id, study_id, path`` (relative to the MIMIC-CXR-JPG root),
``width, height`` (pixels: ``Columns, Rows``), ``view, official_split`` (``train`` /
``validate`` / ``test``), ``split`` (``train`` / ``val`` / ``test``), ``in_filter`` (passes the
paper's filter), ``in_mimic`` (part of the unannotated MIMIC set: ``in_filter``, minus the
REFLACX images when ``dedupe_reflacx``), ``in_reflacx`` (has a phase-3 REFLACX reading: the
annotated set), ``reflacx_ids`` (every REFLACX reading id of the image, any phase, sorted; the
readings take the image's ``split``), then one nullable boolean column per model label in
tensor order (``edema`` ... ``abnormal_mediastinal_contour``): true positive, false negative,
null unknown (an ``ignore``-d source value with no positive source, or no CheXpert row).

Label rule: each CheXpert value becomes positive (1.0), negative (0.0), or what the config
says for uncertain (−1.0; default positive) and blank (not mentioned; default negative), where
``ignore`` means unknown. A model label is the three-valued OR of its sources: positive if any
source is positive, else unknown if any is unknown, else negative. The defaults reproduce the
reference ("absolute value > 0 → 1").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl
from tqdm import tqdm

from gazeloc.errors import DataFormatError, warn_at
from gazeloc.io import mimic, reflacx
from gazeloc.ioutil import atomic_path, atomic_write_text
from gazeloc.labels import CHEXPERT_TO_MODEL, DISPLAY_NAMES, MODEL_LABELS, REFLACX_TO_MODEL
from gazeloc.splits import STUDY_SPLITS, check_reflacx_split, check_val_subjects, study_split

log = logging.getLogger(__name__)

LABEL_CHOICES = ("positive", "negative", "ignore")
ELLIPSE_MIN_CERTAINTY = 3
"""Ellipses of certainty ≥ 3 ("possibly" or more) give REFLACX labels (docs/method.md#labels)."""

IMAGE_LIST_COLUMNS = (
    "dicom_id",
    "subject_id",
    "study_id",
    "path",
    "width",
    "height",
    "view",
    "official_split",
    "in_filter",
    "reflacx_ids",
)


def _reflacx_metadata(reflacx_root: str | Path) -> list[tuple[int, Path, pl.DataFrame]]:
    root = Path(reflacx_root)
    if not (root / "main_data").is_dir():
        raise DataFormatError(root, "not a REFLACX root: main_data/ is missing")
    phases = reflacx.phases_present(root)
    if not phases:
        raise DataFormatError(root / "main_data", "no metadata_phase_<N>.csv found")
    return [
        (phase, reflacx.metadata_path(root, phase), reflacx.read_metadata(root, phase))
        for phase in phases
    ]


def build_image_list(mimic_root: str | Path, reflacx_root: str | Path) -> pl.DataFrame:
    """Every image the study uses: the paper's filter plus every REFLACX image (module doc).

    Reads the MIMIC-CXR-JPG metadata, split and CheXpert tables and the REFLACX metadata of
    every phase present. Errors (:class:`~gazeloc.errors.DataFormatError`) name the file, line
    and column: an image without a split row, a split row that disagrees with the metadata,
    a REFLACX reading whose image is not in MIMIC or disagrees with it (docs/method.md#input-data).
    """
    meta = mimic.read_metadata(mimic_root)
    split = mimic.read_split(mimic_root)
    labels = mimic.read_labels(mimic_root, "chexpert")
    meta_path = mimic.table_path(mimic_root, "metadata")

    frontal = pl.col("ViewPosition").is_in(list(mimic.FRONTAL_VIEWS)).fill_null(False)
    studies = labels.select("subject_id", "study_id", pl.lit(True).alias("_labeled"))
    frame = (
        meta.with_row_index("_row")
        .with_columns(
            frontal.alias("_frontal"),
            frontal.cast(pl.Int64).sum().over("subject_id", "study_id").alias("_n_frontal"),
        )
        .join(studies, on=["subject_id", "study_id"], how="left")
        .join(
            split.select(
                "dicom_id",
                pl.col("split").alias("official_split"),
                pl.col("subject_id").alias("_split_subject"),
                pl.col("study_id").alias("_split_study"),
            ),
            on="dicom_id",
            how="left",
        )
        .sort("_row")
        .with_columns(
            (
                pl.col("_frontal")
                & (pl.col("_n_frontal") == 1)
                & pl.col("_labeled").fill_null(False)
            ).alias("in_filter")
        )
    )
    split_name = mimic.table_path(mimic_root, "split").name
    checks = (
        (frame.get_column("official_split").is_null(), "has no row in " + split_name),
        (
            (frame.get_column("_split_subject") != frame.get_column("subject_id")).fill_null(False),
            "has another subject_id in " + split_name,
        ),
        (
            (frame.get_column("_split_study") != frame.get_column("study_id")).fill_null(False),
            "has another study_id in " + split_name,
        ),
    )
    for bad, message in checks:
        if bad.any():
            row = int(bad.arg_true()[0])
            raise DataFormatError(
                meta_path,
                f"dicom_id {frame['dicom_id'][row]} {message}",
                line=row + 2,
                column="dicom_id",
            )

    readings = []
    for _phase, path, rmeta in _reflacx_metadata(reflacx_root):
        check_reflacx_split(rmeta, split, path, meta)
        readings.append(rmeta.select("id", "dicom_id"))
    reading_ids = (
        pl.concat(readings).group_by("dicom_id").agg(pl.col("id").sort().alias("reflacx_ids"))
    )
    frame = frame.join(reading_ids, on="dicom_id", how="left").sort("_row")
    frame = frame.filter(pl.col("in_filter") | pl.col("reflacx_ids").is_not_null())
    outside = frame.filter(~pl.col("in_filter"))
    for row in outside.iter_rows(named=True):
        reason = (
            "its view is not PA or AP"
            if not row["_frontal"]
            else "its study has no CheXpert label row"
            if not row["_labeled"]
            else f"its study has {row['_n_frontal']} frontal images"
        )
        warn_at(
            log,
            meta_path,
            f"REFLACX image {row['dicom_id']} fails the paper's filter ({reason}); it is kept "
            "for the annotated set but is not part of the MIMIC set",
            line=row["_row"] + 2,
        )
    out = frame.select(
        "dicom_id",
        "subject_id",
        "study_id",
        pl.format(
            "files/p{}/p{}/s{}/{}.jpg",
            pl.col("subject_id").cast(pl.String).str.slice(0, 2),
            pl.col("subject_id").cast(pl.String),
            pl.col("study_id").cast(pl.String),
            pl.col("dicom_id"),
        ).alias("path"),
        pl.col("Columns").cast(pl.Int64).alias("width"),
        pl.col("Rows").cast(pl.Int64).alias("height"),
        pl.col("ViewPosition").fill_null("").alias("view"),
        "official_split",
        "in_filter",
        pl.col("reflacx_ids").fill_null(pl.lit([], dtype=pl.List(pl.String))),
    )
    return out.sort("subject_id", "study_id", "dicom_id")


def _source_value(name: str, uncertain_as: str, blank_as: str) -> pl.Expr:
    """A CheXpert column as a nullable boolean: true positive, false negative, null unknown."""
    as_value = {"positive": pl.lit(True), "negative": pl.lit(False), "ignore": pl.lit(None)}
    col = pl.col(name)
    return (
        pl.when(col == 1.0)
        .then(pl.lit(True))
        .when(col == 0.0)
        .then(pl.lit(False))
        .when(col == -1.0)
        .then(as_value[uncertain_as])
        .otherwise(as_value[blank_as])
        .cast(pl.Boolean)
    )


def model_label_exprs(uncertain_as: str = "positive", blank_as: str = "negative") -> list[pl.Expr]:
    """The 10 model labels (tensor order) from the CheXpert columns of a frame (module doc)."""
    for key, value in (("uncertain_as", uncertain_as), ("blank_as", blank_as)):
        if value not in LABEL_CHOICES:
            raise ValueError(f"{key} must be one of {', '.join(LABEL_CHOICES)}, not {value!r}")
    sources: dict[str, list[str]] = {label: [] for label in MODEL_LABELS}
    for column, targets in CHEXPERT_TO_MODEL.items():
        for target in targets:
            sources[target].append(column)
    return [
        pl.any_horizontal([_source_value(c, uncertain_as, blank_as) for c in cols]).alias(label)
        for label, cols in sources.items()
    ]


def build_index(
    images: pl.DataFrame,
    chexpert: pl.DataFrame,
    val_subjects: Iterable[int],
    *,
    uncertain_as: str = "positive",
    blank_as: str = "negative",
    dedupe_reflacx: bool = False,
) -> pl.DataFrame:
    """The index (module doc) from the image list, the CheXpert table and the val subjects."""
    label_exprs = model_label_exprs(uncertain_as, blank_as)
    labelled = chexpert.select(
        "subject_id", "study_id", pl.lit(True).alias("_has_row"), *label_exprs
    )
    frame = images.join(labelled, on=["subject_id", "study_id"], how="left", maintain_order="left")
    in_reflacx = pl.col("reflacx_ids").list.eval(pl.element().str.starts_with("P3")).list.any()
    frame = frame.with_columns(
        study_split("official_split", "subject_id", val_subjects=val_subjects).alias("split"),
        in_reflacx.fill_null(False).alias("in_reflacx"),
        # images without a CheXpert row (REFLACX images outside the filter): labels unknown
        *(
            pl.when(pl.col("_has_row")).then(pl.col(label)).otherwise(None).alias(label)
            for label in MODEL_LABELS
        ),
    )
    frame = frame.with_columns(
        (pl.col("in_filter") & ~(pl.lit(dedupe_reflacx) & pl.col("in_reflacx"))).alias("in_mimic")
    )
    return frame.select(
        "dicom_id",
        "subject_id",
        "study_id",
        "path",
        "width",
        "height",
        "view",
        "official_split",
        "split",
        "in_filter",
        "in_mimic",
        "in_reflacx",
        "reflacx_ids",
        *MODEL_LABELS,
    )


def ellipse_labels(
    readings: Sequence[reflacx.ReflacxReading], *, progress: bool = True
) -> pl.DataFrame:
    """Per reading: the 10 model labels of its ellipses of certainty ≥ 3 (REFLACX labels)."""
    rows = []
    for reading in tqdm(readings, desc="REFLACX ellipses", unit="reading", disable=not progress):
        ellipses = reading.ellipses().filter(pl.col("certainty") >= ELLIPSE_MIN_CERTAINTY)
        present = {label: False for label in MODEL_LABELS}
        for column, targets in REFLACX_TO_MODEL.items():
            if column in ellipses.columns and ellipses.get_column(column).any():
                for target in targets:
                    present[target] = True
        rows.append({"reading_id": reading.id, "dicom_id": reading.dicom_id, **present})
    schema = {"reading_id": pl.String, "dicom_id": pl.String} | {
        m: pl.Boolean for m in MODEL_LABELS
    }
    return pl.DataFrame(rows, schema=schema)


def dataset_counts(index: pl.DataFrame, reflacx_labels: pl.DataFrame) -> pl.DataFrame:
    """``dataset, split, label, n_positive`` (docs/outputs.md#images; the paper's Table 3).

    MIMIC: rows of the index with ``in_mimic``, CheXpert-derived labels. REFLACX: the phase-3
    readings in ``reflacx_labels`` (from :func:`ellipse_labels`), split of their image.
    """
    reflacx_split = reflacx_labels.join(
        index.select("dicom_id", "split"), on="dicom_id", how="left"
    )
    missing = reflacx_split.filter(pl.col("split").is_null())
    if missing.height:
        raise ValueError(f"REFLACX reading {missing['reading_id'][0]} has no image in the index")
    sets = {
        "reflacx": reflacx_split,
        "mimic": index.filter(pl.col("in_mimic")),
    }
    rows = []
    for dataset, frame in sets.items():
        for split in STUDY_SPLITS:
            part = frame.filter(pl.col("split") == split)
            for label in MODEL_LABELS:
                n = int(part.get_column(label).fill_null(False).sum()) if part.height else 0
                rows.append((dataset, split, label, n))
    return pl.DataFrame(
        rows,
        schema={
            "dataset": pl.String,
            "split": pl.String,
            "label": pl.String,
            "n_positive": pl.Int64,
        },
        orient="row",
    )


def _n(value: int) -> str:
    return f"{value:,}"


def dataset_counts_markdown(
    counts: pl.DataFrame,
    n_images: dict[tuple[str, str], int],
    *,
    uncertain_as: str,
    blank_as: str,
    dedupe_reflacx: bool,
) -> str:
    """The counts as the paper's Table 3 (rows in canonical label order)."""
    columns = [(d, s) for d in ("reflacx", "mimic") for s in STUDY_SPLITS]
    names = {"reflacx": "REFLACX", "mimic": "MIMIC"}
    lines = [
        "# Positive examples per split (paper Table 3)",
        "",
        "| Label | " + " | ".join(f"{names[d]} {s}" for d, s in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    lookup = {(r[0], r[1], r[2]): r[3] for r in counts.iter_rows()}
    for label in MODEL_LABELS:
        cells = [_n(lookup.get((d, s, label), 0)) for d, s in columns]
        lines.append(f"| {DISPLAY_NAMES[label]} | " + " | ".join(cells) + " |")
    totals = ", ".join(f"{names[d]} {s} {_n(n_images.get((d, s), 0))}" for d, s in columns)
    lines += [
        "",
        f"Images: {totals}. REFLACX: phase-3 readings, labels from ellipses of certainty "
        f"≥ {ELLIPSE_MIN_CERTAINTY}. MIMIC: CheXpert labels (uncertain as {uncertain_as}, blank "
        f"as {blank_as}; positive if any mapped column is); REFLACX images "
        + ("removed from" if dedupe_reflacx else "kept in")
        + " the MIMIC sets.",
    ]
    return "\n".join(lines) + "\n"


def write_parquet(frame: pl.DataFrame, target: str | Path) -> None:
    """Write a parquet file atomically."""
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp)


def write_image_list(mimic_root: str | Path, reflacx_root: str | Path, out: str | Path) -> int:
    """``gazeloc image-list``: build and write the image list; return its length."""
    images = build_image_list(mimic_root, reflacx_root)
    write_parquet(images, out)
    log.info(
        "%d images: %d pass the paper's filter, %d have REFLACX readings",
        images.height,
        int(images["in_filter"].sum()),
        int((images["reflacx_ids"].list.len() > 0).sum()),
    )
    return images.height


def write_index(
    images_path: str | Path,
    mimic_root: str | Path,
    reflacx_root: str | Path,
    val_subjects_path: str | Path,
    out: str | Path,
    counts_csv: str | Path,
    counts_md: str | Path,
    *,
    uncertain_as: str = "positive",
    blank_as: str = "negative",
    dedupe_reflacx: bool = False,
    progress: bool = True,
) -> pl.DataFrame:
    """``gazeloc index``: the index and ``dataset_counts.{csv,md}``; returns the index."""
    from gazeloc.splits import read_val_subjects

    val_subjects = read_val_subjects(val_subjects_path)
    images = pl.read_parquet(images_path)
    chexpert = mimic.read_labels(mimic_root, "chexpert")
    phase3: list[reflacx.ReflacxReading] = []
    for phase, path, rmeta in _reflacx_metadata(reflacx_root):
        check_val_subjects(rmeta, val_subjects, path)
        if phase == 3:
            phase3 = reflacx.readings_from_metadata(reflacx_root, rmeta)
    index = build_index(
        images,
        chexpert,
        val_subjects,
        uncertain_as=uncertain_as,
        blank_as=blank_as,
        dedupe_reflacx=dedupe_reflacx,
    )
    rlabels = ellipse_labels(phase3, progress=progress)
    counts = dataset_counts(index, rlabels)
    n_images = {
        ("mimic", s): int(n)
        for s, n in index.filter(pl.col("in_mimic")).group_by("split").len().iter_rows()
    }
    split_of = dict(index.select("dicom_id", "split").iter_rows())
    for reading in phase3:
        key = ("reflacx", split_of[reading.dicom_id])
        n_images[key] = n_images.get(key, 0) + 1
    write_parquet(index, out)
    atomic_write_text(counts_csv, counts.write_csv())
    atomic_write_text(
        counts_md,
        dataset_counts_markdown(
            counts,
            n_images,
            uncertain_as=uncertain_as,
            blank_as=blank_as,
            dedupe_reflacx=dedupe_reflacx,
        ),
    )
    log.info(
        "index: %d images; MIMIC set %s; REFLACX phase-3 readings %s",
        index.height,
        {s: n_images.get(("mimic", s), 0) for s in STUDY_SPLITS},
        {s: n_images.get(("reflacx", s), 0) for s in STUDY_SPLITS},
    )
    return index

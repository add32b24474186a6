"""Labeler evaluation against the REFLACX radiologists' labels (paper Table 4; reference §2.7).

Per abnormality category of the phase: gold positive = the radiologist's certainty is at least
``gold_min_certainty`` (default 1, the reference's "> 0", which counts "Unlikely" too);
detected = report-level label positive or uncertain. The same reports are labelled and
evaluated in every labeler mode (``gazeloc`` and ``reference``), one block of rows per mode
(the ``mode`` column). Readings listed as labeler-development
ids (the paper's 108 for real data) are excluded, as are discarded readings (no report).
Phase-1 gold columns are read through their phase-2/3 names (``PHASE1_TO_PHASE23``; the
highest certainty among aliases).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from gazeloc.io.reflacx import READING_ID, read_metadata
from gazeloc.ioutil import atomic_write_text
from gazeloc.labeler.rules_io import CATEGORIES, MODES
from gazeloc.labels import PHASE1_TO_PHASE23, reflacx_certainty_labels
from gazeloc.splits import read_id_list

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("mode", "category", "n_gold_positive", "n_detected", "recall", "precision")
"""Columns of ``labeler.csv``: one row per labeler mode and gold category."""


def gold_labels(reflacx_root: str | Path, phase: int, min_certainty: int = 1) -> pl.DataFrame:
    """``reading_id`` and one bool column per abnormality category of the phase (gold).

    Categories are phase-2/3 names, in file order; discarded readings are left out.
    """
    if not 1 <= min_certainty <= 5:
        raise ValueError(f"gold_min_certainty must be 1-5, not {min_certainty}")
    meta = read_metadata(reflacx_root, phase).filter(~pl.col("eye_tracking_data_discarded"))
    sources: dict[str, list[str]] = {}
    for column in reflacx_certainty_labels(phase):
        name = PHASE1_TO_PHASE23.get(column, column) if phase == 1 else column
        if name in CATEGORIES:
            sources.setdefault(name, []).append(column)
    ordered = [c for c in CATEGORIES if c in sources]
    return meta.select(
        pl.col("id").alias("reading_id"),
        *[(pl.max_horizontal(sources[c]) >= min_certainty).alias(c) for c in ordered],
    )


def labeler_table(
    reports: pl.DataFrame,
    gold: pl.DataFrame,
    exclude_ids: Iterable[str] = (),
    *,
    mode: str = "gazeloc",
) -> pl.DataFrame:
    """Per gold category: ``mode, category, n_gold_positive, n_detected, recall, precision``
    (NaN if undefined).

    ``reports`` is a ``phase{P}_reports`` frame made by the labeler of ``mode``; readings
    missing from it count as not detected; ``exclude_ids`` are dropped from both.
    """
    excluded = set(exclude_ids)
    gold = gold.filter(~pl.col("reading_id").is_in(sorted(excluded)))
    categories = [c for c in gold.columns if c != "reading_id"]
    joined = gold.join(
        reports.select("reading_id", *[pl.col(c).alias(f"_pred_{c}") for c in categories]),
        on="reading_id",
        how="left",
    )
    rows = []
    for c in categories:
        g = joined.get_column(c).fill_null(False)
        d = joined.get_column(f"_pred_{c}").is_in([1, -1]).fill_null(False)
        n_gold, n_det, tp = int(g.sum()), int(d.sum()), int((g & d).sum())
        rows.append(
            {
                "mode": mode,
                "category": c,
                "n_gold_positive": n_gold,
                "n_detected": n_det,
                "recall": tp / n_gold if n_gold else math.nan,
                "precision": tp / n_det if n_det else math.nan,
            }
        )
    schema = {
        "mode": pl.String(),
        "category": pl.String(),
        "n_gold_positive": pl.Int64(),
        "n_detected": pl.Int64(),
        "recall": pl.Float64(),
        "precision": pl.Float64(),
    }
    return pl.DataFrame(rows, schema=schema)


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def table_markdown(table: pl.DataFrame, *, n_readings: int, phase: int, min_certainty: int) -> str:
    """The table as Markdown, with a note on what was evaluated."""
    lines = [
        "| Mode | Category | Gold positive | Detected | Recall | Precision |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in table.iter_rows(named=True):
        lines.append(
            f"| {row['mode']} | {row['category']} | {row['n_gold_positive']} | "
            f"{row['n_detected']} | {_fmt(row['recall'])} | {_fmt(row['precision'])} |"
        )
    note = (
        f"\nReport-level labels (positive or uncertain = detected) against the radiologists' "
        f"labels of {n_readings} phase-{phase} readings (labeler-development readings "
        f"excluded); gold positive = certainty >= {min_certainty}. n/a: no gold positive or "
        "nothing detected. Mode: the labeler's phrase semantics (labeler.mode; gazeloc: "
        "anatomy such as the heart or the mediastinum is a mention only when something is "
        "said about it; reference: the authors' labeler, anatomy is a mention unless negated "
        "and 'density' is also a lung nodule or mass), both on the same reports.\n"
    )
    return "\n".join(lines) + "\n" + note


def write_labeler_table(
    reflacx_root: str | Path,
    dev_ids_path: str | Path,
    csv_out: str | Path,
    md_out: str | Path,
    *,
    phase: int = 2,
    min_certainty: int = 1,
    modes: Sequence[str] = MODES,
) -> pl.DataFrame:
    """Label the phase's reports in each of ``modes``, evaluate them against the
    radiologists' labels and write ``labeler.csv`` and ``labeler.md`` (rows by mode)."""
    from gazeloc.labeler.engine import default_labeler
    from gazeloc.labeler.reports import label_texts, read_reports

    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"labeler modes must be some of {MODES}, not {list(modes)}")
    dev_ids = read_id_list(dev_ids_path, READING_ID, "reading id")
    gold = gold_labels(reflacx_root, phase, min_certainty)
    texts = read_reports(reflacx_root, phase)
    tables = []
    for mode in dict.fromkeys(modes):
        _, reports = label_texts(texts, default_labeler(mode))
        tables.append(labeler_table(reports, gold, dev_ids, mode=mode))
    table = pl.concat(tables)
    n = gold.filter(~pl.col("reading_id").is_in(dev_ids)).height
    atomic_write_text(csv_out, table.write_csv())
    atomic_write_text(
        md_out, table_markdown(table, n_readings=n, phase=phase, min_certainty=min_certainty)
    )
    log.info(
        "labeler evaluated on %d phase-%d readings (%d excluded), modes %s",
        n,
        phase,
        len(dev_ids),
        ", ".join(dict.fromkeys(modes)),
    )
    return table

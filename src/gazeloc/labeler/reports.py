"""Label every REFLACX report of a phase and write the two labels files (design.md).

* ``phase{P}.parquet``: one row per mention -- ``reading_id, sentence`` (0-based),
  ``sentence_start_char, sentence_end_char, category, model_labels`` (list), ``start, end,
  status``; character offsets into the report as ``transcription.txt`` holds it (first line,
  stripped, the same text the heatmap stage reads).
* ``phase{P}_reports.parquet``: one row per labelled reading -- ``reading_id`` and one Int8
  column per category (1 positive, -1 uncertain, 0 negative, null not mentioned).

Discarded readings have no transcription and get no row.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
from tqdm import tqdm

from gazeloc.io.reflacx import read_readings
from gazeloc.ioutil import atomic_path
from gazeloc.labeler.engine import (
    Labeler,
    default_labeler,
    report_labels,
    sentence_index,
    split_sentences,
)
from gazeloc.labeler.rules_io import CATEGORIES

log = logging.getLogger(__name__)

MENTION_SCHEMA: dict[str, pl.DataType] = {
    "reading_id": pl.String(),
    "sentence": pl.Int64(),
    "sentence_start_char": pl.Int64(),
    "sentence_end_char": pl.Int64(),
    "category": pl.String(),
    "model_labels": pl.List(pl.String()),
    "start": pl.Int64(),
    "end": pl.Int64(),
    "status": pl.String(),
}
"""Columns of ``phase{P}.parquet``, in order."""

REPORT_SCHEMA: dict[str, pl.DataType] = {"reading_id": pl.String()} | {
    c: pl.Int8() for c in CATEGORIES
}
"""Columns of ``phase{P}_reports.parquet``, in order."""


def label_texts(
    texts: dict[str, str], labeler: Labeler | None = None, *, progress: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Label reports given as ``{reading_id: text}``; returns (mentions, reports) frames."""
    labeler = labeler or default_labeler()
    rows: dict[str, list] = {k: [] for k in MENTION_SCHEMA}
    report_rows: dict[str, list] = {k: [] for k in REPORT_SCHEMA}
    items = tqdm(texts.items(), desc="labelling reports", unit="report", disable=not progress)
    for reading_id, text in items:
        mentions = labeler.label(text)
        spans = split_sentences(text)
        for m in mentions:
            s = sentence_index(spans, m.start)
            rows["reading_id"].append(reading_id)
            rows["sentence"].append(s)
            rows["sentence_start_char"].append(spans[s][0])
            rows["sentence_end_char"].append(spans[s][1])
            rows["category"].append(m.category)
            rows["model_labels"].append(list(m.model_labels))
            rows["start"].append(m.start)
            rows["end"].append(m.end)
            rows["status"].append(m.status)
        report_rows["reading_id"].append(reading_id)
        for category, value in report_labels(mentions).items():
            report_rows[category].append(value)
    return pl.DataFrame(rows, schema=MENTION_SCHEMA), pl.DataFrame(
        report_rows, schema=REPORT_SCHEMA
    )


def read_reports(reflacx_root: str | Path, phase: int) -> dict[str, str]:
    """``{reading_id: report}`` of the non-discarded readings of a phase, in metadata order."""
    texts = {}
    for reading in read_readings(reflacx_root, [phase]):
        if reading.discarded:
            continue
        texts[reading.id] = reading.transcript().text
    return texts


def write_labels(
    reflacx_root: str | Path,
    phase: int,
    mentions_out: str | Path,
    reports_out: str | Path,
    *,
    mode: str = "gazeloc",
) -> tuple[int, int]:
    """Label a phase's reports with the labeler of ``mode`` (``labeler.mode``) and write both
    labels files atomically.

    Returns (readings labelled, mentions). Errors in the REFLACX files raise
    :class:`~gazeloc.errors.DataFormatError` before anything is written.
    """
    texts = read_reports(reflacx_root, phase)
    mentions, reports = label_texts(texts, default_labeler(mode), progress=True)
    with atomic_path(mentions_out) as tmp:
        mentions.write_parquet(tmp)
    with atomic_path(reports_out) as tmp:
        reports.write_parquet(tmp)
    present = mentions.filter(pl.col("status") != "negative").height
    log.info(
        "phase %d, labeler mode %s: %d reports, %d mentions (%d positive or uncertain)",
        phase,
        mode,
        len(texts),
        mentions.height,
        present,
    )
    return len(texts), mentions.height

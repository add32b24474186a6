"""Label-specific heatmaps of one reading (paper §2.1.2–2.1.3).

See docs/method.md#label-specific-heatmaps.

For each sentence with a present (positive or uncertain) mention of a category that maps to a
model label: its time window (:func:`gazeloc.gaze.windows.window`), one Gaussian heatmap of the
fixations in that window, shared by every label mentioned in the sentence. A label's map is
the element-wise maximum over the sentences that mention it. A sentence whose window is empty
(``t0 ≥ t1``) or holds no fixation contributes nothing; a label all of whose sentences are like
that stays positive in ``report_labels`` with an all-zero map (``et_labels`` false): a positive
without localization (docs/method.md#label-specific-heatmaps). The full-report map uses the
window from 0 to the end of the last word.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.errors import DataFormatError
from gazeloc.gaze.render import FrameRenderer
from gazeloc.gaze.timing import Dictation, SentenceTimes
from gazeloc.gaze.windows import Method, parse_method, window
from gazeloc.labels import LABEL_INDEX, MODEL_LABELS

log = logging.getLogger(__name__)

PRESENT = ("positive", "uncertain")
MENTION_COLUMNS = ("reading_id", "start", "end", "status", "model_labels")


@dataclass(frozen=True)
class Mention:
    """A present mention of a mapped category: ``[start, end)`` offsets, label indices."""

    start: int
    end: int
    labels: tuple[int, ...]


def present_mentions(labels: pl.DataFrame, path: str | Path = "labels") -> dict[str, list[Mention]]:
    """Present mentions of mapped categories per reading id, from a labels table.

    ``labels`` follows the ``results/labels/phase{P}.parquet`` schema of docs/outputs.md
    (``reading_id, start, end, status, model_labels`` are used). Raises
    :class:`~gazeloc.errors.DataFormatError` naming ``path`` for a missing column, an unknown
    status or model label.
    """
    missing = [c for c in MENTION_COLUMNS if c not in labels.columns]
    if missing:
        raise DataFormatError(path, f"labels table lacks column(s) {', '.join(missing)}")
    statuses = set(labels.get_column("status").unique().drop_nulls().to_list())
    unknown = statuses - {"positive", "uncertain", "negative"}
    if unknown:
        raise DataFormatError(path, f"unknown status {sorted(unknown)[0]!r}", column="status")
    out: dict[str, list[Mention]] = {}
    rows = labels.filter(pl.col("status").is_in(PRESENT)).select(MENTION_COLUMNS)
    for row_number, (rid, start, end, _, names) in enumerate(rows.iter_rows()):
        if not names:
            continue
        bad = [n for n in names if n not in LABEL_INDEX]
        if bad:
            raise DataFormatError(
                path,
                f"reading {rid}: unknown model label {bad[0]!r} (row {row_number} of the "
                "present mentions)",
                column="model_labels",
            )
        if start is None or end is None:
            raise DataFormatError(path, f"reading {rid}: mention without offsets", column="start")
        labels_idx = tuple(sorted({LABEL_INDEX[n] for n in names}))
        out.setdefault(rid, []).append(Mention(int(start), int(end), labels_idx))
    return out


@dataclass
class LabelMaps:
    """One reading's label-specific maps for one window method."""

    et: np.ndarray
    """(10, S, S) float32: max over the sentences mentioning each label."""
    report_labels: np.ndarray
    """(10,) bool: a present mention of the label exists."""
    sentences: list[int] = field(default_factory=list)
    """Indices of the sentences with present mentions."""
    windows: list[tuple[float, float] | None] = field(default_factory=list)
    """Their windows (``None``: empty window)."""
    empty_maps: int = 0
    """Sentences whose non-empty window gave an all-zero heatmap (no fixation in it)."""

    @property
    def et_labels(self) -> np.ndarray:
        """(10,) bool: a non-empty ET heatmap exists for the label."""
        return self.et.reshape(self.et.shape[0], -1).max(axis=1) > 0

    @property
    def empty_windows(self) -> int:
        return sum(w is None for w in self.windows)


def sentence_labels(
    dictation: Dictation, mentions: Sequence[Mention]
) -> tuple[list[SentenceTimes], dict[int, set[int]]]:
    """Sentence times (with mention times) and the label indices mentioned per sentence."""
    times = dictation.sentence_times((m.start, m.end) for m in mentions)
    per_sentence: dict[int, set[int]] = {}
    for m in mentions:
        per_sentence.setdefault(dictation.sentence_at(m.start), set()).update(m.labels)
    return times, per_sentence


def label_maps(
    renderer: FrameRenderer,
    times: Sequence[SentenceTimes],
    per_sentence: dict[int, set[int]],
    method: str | Method,
    *,
    window_end: str = "word_start",
    name: str = "",
) -> LabelMaps:
    """Label-specific maps of one reading for one method (module docstring)."""
    m = method if isinstance(method, Method) else parse_method(method)
    size = renderer.size
    et = np.zeros((len(MODEL_LABELS), size, size), dtype=np.float32)
    report = np.zeros(len(MODEL_LABELS), dtype=bool)
    out = LabelMaps(et, report)
    for s in sorted(per_sentence):
        labels = sorted(per_sentence[s])
        report[labels] = True
        win = window(m, times, s, window_end=window_end)
        out.sentences.append(s)
        out.windows.append(win)
        if win is None:
            log.warning(
                "%s sentence %d: empty window for %s (start %.2f s, end %.2f s); no heatmap",
                name or "reading",
                s,
                m.name,
                times[s].start,
                times[s].end,
            )
            continue
        heat = renderer.render(*win)
        if not heat.any():
            out.empty_maps += 1
            continue
        for k in labels:
            np.maximum(et[k], heat, out=et[k])
    return out

"""Realism of a generated dataset, measured: the gaze-to-finding association and a figure.

The key number (issue "Synthetic generator", realism): the share of fixation time spent inside
the sentence's finding ellipses (enlarged 1.5×) during the window from 1.5 s before the sentence
starts to its last mention, against the share of time inside the same ellipses during free
search (before dictation starts), both summed over all sentences that report findings. Real
REFLACX gaze is informative but noisy: the first share should be well above the second, and
clearly below 1.

Everything is read back through the real-format readers, so this also exercises them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.io import reflacx
from gazeloc.ioutil import atomic_path, atomic_write_text
from gazeloc.labels import REFLACX_TO_MODEL
from gazeloc.synthetic.types import FINDING_CATEGORY, FINDING_CATEGORY_PHASE_1

ENLARGE = 1.5
LEAD = 1.5


def _inside(x: np.ndarray, y: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether points lie in any of the (enlarged) ellipses given as xmin, ymin, xmax, ymax."""
    if len(boxes) == 0:
        return np.zeros(len(x), dtype=bool)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    rx = np.maximum((boxes[:, 2] - boxes[:, 0]) / 2 * ENLARGE, 1.0)
    ry = np.maximum((boxes[:, 3] - boxes[:, 1]) / 2 * ENLARGE, 1.0)
    d = ((x[:, None] - cx) / rx) ** 2 + ((y[:, None] - cy) / ry) ** 2
    return (d < 1.0).any(axis=1)


def _overlap(start: np.ndarray, end: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0.0, None)


@dataclass
class GazeRealism:
    readings: int
    sentences: int
    window_share: float
    search_share: float
    window_seconds: float
    search_seconds: float

    @property
    def ratio(self) -> float:
        return self.window_share / self.search_share if self.search_share > 0 else float("inf")


def measure_gaze(reflacx_root: Path, truth: Path) -> GazeRealism:
    """Gaze realism over all non-discarded phase-3 readings (phases 1-2 if there is none)."""
    sentences = pl.read_parquet(truth / "sentences.parquet")
    findings = pl.read_parquet(truth / "findings.parquet")
    readings = [r for r in reflacx.read_readings(reflacx_root) if not r.discarded]
    if any(r.phase == 3 for r in readings):
        readings = [r for r in readings if r.phase == 3]
    in_win = tot_win = in_search = tot_search = 0.0
    n_sentences = 0
    by_reading = sentences.partition_by("reading_id", as_dict=True)
    for reading in readings:
        fix = reading.fixations()
        ell = reading.ellipses()
        if ell.height == 0:
            continue
        start = fix["timestamp_start_fixation"].to_numpy()
        end = fix["timestamp_end_fixation"].to_numpy()
        x = fix["x_position"].to_numpy().astype(float)
        y = fix["y_position"].to_numpy().astype(float)
        boxes_all = ell.select("xmin", "ymin", "xmax", "ymax").to_numpy().astype(float)
        words = reading.transcript().words
        search = _overlap(start, end, 0.0, float(words["timestamp_start_word"][0]))
        kinds = findings.filter(pl.col("dicom_id") == reading.dicom_id)["kind"].to_list()
        rows = by_reading.get((reading.id,))
        if rows is None:
            continue
        for row in rows.iter_rows(named=True):
            if not row["findings"] or row["last_mention"] is None:
                continue
            names = {
                FINDING_CATEGORY_PHASE_1[kinds[i]]
                if reading.phase == 1
                else FINDING_CATEGORY[kinds[i]]
                for i in row["findings"]
            }
            mask = np.zeros(ell.height, dtype=bool)
            for name in names:
                if name and name in ell.columns:
                    mask |= ell[name].to_numpy()
            t0 = max(row["start"] - LEAD, 0.0)
            t1 = row["last_mention"]
            if not mask.any() or t1 <= t0:
                continue
            hit = _inside(x, y, boxes_all[mask])
            window = _overlap(start, end, t0, t1)
            in_win += float(window[hit].sum())
            tot_win += float(window.sum())
            in_search += float(search[hit].sum())
            tot_search += float(search.sum())
            n_sentences += 1
    return GazeRealism(
        readings=len(readings),
        sentences=n_sentences,
        window_share=in_win / tot_win if tot_win else float("nan"),
        search_share=in_search / tot_search if tot_search else float("nan"),
        window_seconds=tot_win,
        search_seconds=tot_search,
    )


def label_prevalence(reflacx_root: Path) -> pl.DataFrame:
    """Per model label: share of phase-3 readings with an ellipse of certainty >= 3."""
    readings = [r for r in reflacx.read_readings(reflacx_root, [3]) if not r.discarded]
    counts: dict[str, int] = {}
    for reading in readings:
        labels: set[str] = set()
        for name, value in reading.labels.items():
            if isinstance(value, int) and not isinstance(value, bool) and value >= 3:
                labels.update(REFLACX_TO_MODEL.get(name, ()))
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    from gazeloc.labels import MODEL_LABELS

    n = max(len(readings), 1)
    return pl.DataFrame(
        {
            "label": list(MODEL_LABELS),
            "share": [counts.get(label, 0) / n for label in MODEL_LABELS],
        }
    )


def realism_markdown(gaze: GazeRealism, prevalence: pl.DataFrame, summary: dict) -> str:
    lines = [
        "# Synthetic dataset realism",
        "",
        "Generated data only: no real patient data is involved.",
        "",
        "## Gaze and dictation",
        "",
        "Share of fixation time inside the ellipses (enlarged 1.5x) of the findings a sentence",
        "reports, from 1.5 s before the sentence starts to its last mention, against the share",
        "inside the same ellipses during free search (before dictation), over all such sentences.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| readings | {gaze.readings} |",
        f"| sentences with findings | {gaze.sentences} |",
        f"| share in sentence windows | {gaze.window_share:.3f} |",
        f"| share during free search | {gaze.search_share:.3f} |",
        f"| ratio (target: at least 2, window share clearly below 1) | {gaze.ratio:.2f} |",
        f"| fixation seconds in windows / free search | {gaze.window_seconds:.0f} / "
        f"{gaze.search_seconds:.0f} |",
        "",
        "## Phase-3 labels (ellipse certainty >= 3) against the paper's REFLACX train split",
        "",
        "| label | synthetic | paper (train) |",
        "|---|---|---|",
    ]
    paper = {
        "edema": 222,
        "opacity": 865,
        "pneumothorax": 48,
        "pleural_abnormality": 486,
        "lung_lesion": 77,
        "atelectasis": 503,
        "consolidation": 543,
        "fracture": 34,
        "enlarged_cardiac_silhouette": 340,
        "abnormal_mediastinal_contour": 59,
    }
    for label, share in prevalence.iter_rows():
        lines.append(f"| {label} | {share:.3f} | {paper[label] / 1724:.3f} |")
    lines += ["", "## Format", "", "| item | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary.items()]
    return "\n".join(lines) + "\n"


def draw_examples(reflacx_root: Path, mimic_root: Path, figure: Path, n: int = 4) -> None:
    """PNG of ``n`` phase-3 readings: image, ellipses (certainty >= 3) and fixations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse
    from PIL import Image

    readings = [r for r in reflacx.read_readings(reflacx_root) if not r.discarded]
    readings.sort(key=lambda r: (r.phase != 3, r.id))
    chosen = [r for r in readings if r.ellipses().height > 0][:n] or readings[:n]
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.2 * len(chosen), 5.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, reading in zip(axes[0], chosen, strict=True):
        image = np.asarray(Image.open(reading.jpg_path(mimic_root)))
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ell = reading.ellipses()
        labels = [c for c in ell.columns[5:] if ell[c].any()]
        for row in ell.iter_rows(named=True):
            label = next(c for c in labels if row[c])
            colour = colours(labels.index(label) % 10)
            ax.add_patch(
                Ellipse(
                    ((row["xmin"] + row["xmax"]) / 2, (row["ymin"] + row["ymax"]) / 2),
                    row["xmax"] - row["xmin"],
                    row["ymax"] - row["ymin"],
                    fill=False,
                    lw=1.5,
                    color=colour,
                    ls="-" if row["certainty"] >= 3 else ":",
                    label=f"{label} ({row['certainty']})",
                )
            )
        fix = reading.fixations()
        dur = (fix["timestamp_end_fixation"] - fix["timestamp_start_fixation"]).to_numpy()
        ax.scatter(
            fix["x_position"], fix["y_position"], s=dur * 40, c="yellow", alpha=0.45, linewidths=0
        )
        ax.set_xlim(0, reading.width)
        ax.set_ylim(reading.height, 0)
        ax.set_title(reading.id, fontsize=9)
        ax.axis("off")
        if labels:
            ax.legend(fontsize=6, loc="lower center", framealpha=0.6)
    fig.suptitle(
        "Synthetic REFLACX readings: ellipses and fixations (dot area ~ duration)", fontsize=10
    )
    fig.tight_layout()
    with atomic_path(figure) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_realism(
    reflacx_root: Path, mimic_root: Path, truth: Path, *, table: Path, figure: Path
) -> GazeRealism:
    """Write ``realism.md`` and the example figure; return the gaze numbers."""
    gaze = measure_gaze(Path(reflacx_root), Path(truth))
    prevalence = label_prevalence(Path(reflacx_root))
    from gazeloc.io import mimic

    summary = {
        "REFLACX readings (all phases)": len(reflacx.read_readings(reflacx_root)),
        "MIMIC images": mimic.read_split(mimic_root).height,
        "MIMIC labelled studies": mimic.read_labels(mimic_root).height,
    }
    atomic_write_text(table, realism_markdown(gaze, prevalence, summary))
    draw_examples(Path(reflacx_root), Path(mimic_root), Path(figure))
    return gaze

"""Inter-radiologist agreement on REFLACX phases 1–2: the human benchmark beside model IoU.

In phases 1 and 2 of REFLACX several radiologists read the same images. For each label, every
pair of readings of the same image in which both readers drew an ellipse of certainty ≥ 3 for
the label (``ellipse_labels`` true in the ellipses files) contributes the IoU of their two
masks in the square frame (the ``ellipses`` arrays). A pair whose union is empty at the frame
size (both ellipses vanish when framed) is skipped and counted in ``n_skipped``. ``mean_iou``
is the mean over the counted pairs; ``n_images`` the images with a counted pair; the 95% CI is
the percentile interval of a bootstrap over those images (each replicate draws the images with
replacement and takes the mean over the drawn images' pairs; undefined for fewer than two).
Rows are given for all phase 1–2 images (``split`` = ``all``) and for the images of the test
split alone (``test``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.errors import DataFormatError
from gazeloc.ioutil import atomic_write_text
from gazeloc.labels import DISPLAY_NAMES, MODEL_LABELS
from gazeloc.report.bootstrap import BOOTSTRAP_SEED, percentile_ci

log = logging.getLogger(__name__)

SCHEMA = {
    "split": pl.String,
    "label": pl.String,
    "mean_iou": pl.Float64,
    "n_pairs": pl.Int64,
    "n_images": pl.Int64,
    "n_skipped": pl.Int64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
}
ROW_SPLITS = ("all", "test")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _open(path: Path):
    from gazeloc.h5 import open_h5

    try:
        import hdf5plugin  # noqa: F401  (compressed datasets)
    except ImportError:  # pragma: no cover
        pass
    return open_h5(path, "r")


def pair_ious(masks: np.ndarray, present: np.ndarray) -> tuple[list[float], int]:
    """IoUs of every pair of readers of one image and label, and the skipped pairs.

    ``masks`` ``[R, S, S]`` bool and ``present`` ``[R]`` bool (the reader has an ellipse for
    the label): pairs of present readers only; a pair with an empty union is skipped."""
    readers = np.flatnonzero(present)
    ious, skipped = [], 0
    for i, j in itertools.combinations(readers, 2):
        union = int(np.logical_or(masks[i], masks[j]).sum())
        if union == 0:
            skipped += 1
            continue
        ious.append(int(np.logical_and(masks[i], masks[j]).sum()) / union)
    return ious, skipped


def image_pairs(paths: Sequence[str | Path]) -> list[dict[str, object]]:
    """Per image read more than once: its split and, per label, the pair IoUs and skips."""
    readings: dict[str, list[tuple[Path, str]]] = {}
    splits: dict[str, str] = {}
    for path in map(Path, paths):
        with _open(path) as f:
            for name, group in f.items():
                if "dicom_id" not in group.attrs:
                    continue
                for need in ("split",):
                    if need not in group.attrs:
                        raise DataFormatError(path, f"group {name} lacks attribute '{need}'")
                for need in ("ellipses", "ellipse_labels"):
                    if need not in group:
                        raise DataFormatError(path, f"group {name} has no dataset '{need}'")
                dicom = _text(group.attrs["dicom_id"])
                readings.setdefault(dicom, []).append((path, name))
                splits[dicom] = _text(group.attrs["split"])
    out = []
    handles: dict[Path, object] = {}
    try:
        for dicom, items in readings.items():
            if len(items) < 2:
                continue
            masks, labels = [], []
            for path, name in items:
                f = handles.setdefault(path, _open(path))
                group = f[name]  # type: ignore[index]
                masks.append(np.asarray(group["ellipses"][()], dtype=bool))
                present = np.asarray(group["ellipse_labels"][()], dtype=bool)
                if present.shape != (len(MODEL_LABELS),):
                    raise DataFormatError(
                        path, f"{name}/ellipse_labels has shape {present.shape}, not (10,)"
                    )
                labels.append(present)
            stack, present = np.stack(masks), np.stack(labels)
            per_label = {}
            for k, label in enumerate(MODEL_LABELS):
                per_label[label] = pair_ious(stack[:, k], present[:, k])
            out.append({"dicom_id": dicom, "split": splits[dicom], "labels": per_label})
    finally:
        for f in handles.values():
            f.close()  # type: ignore[attr-defined]
    return out


def agreement_row(
    per_image: Sequence[tuple[list[float], int]], n_samples: int, rng: np.random.Generator
) -> tuple[float, int, int, int, float, float]:
    """``mean_iou, n_pairs, n_images, n_skipped, ci_low, ci_high`` from per-image pair IoUs
    and skip counts (bootstrap over the images with a counted pair)."""
    skipped = sum(s for _, s in per_image)
    kept = [ious for ious, _ in per_image if ious]
    if not kept:
        return (float("nan"), 0, 0, skipped, float("nan"), float("nan"))
    sums = np.asarray([sum(v) for v in kept])
    counts = np.asarray([len(v) for v in kept], dtype=np.float64)
    mean = float(sums.sum() / counts.sum())
    draws = rng.multinomial(len(kept), np.full(len(kept), 1.0 / len(kept)), size=n_samples)
    low, high = percentile_ci((draws @ sums) / (draws @ counts))
    if len(kept) < 2:  # one image: the resampling cannot say anything
        low = high = float("nan")
    return (mean, int(counts.sum()), len(kept), skipped, low, high)


def interrater_table(
    paths: Sequence[str | Path], n_samples: int = 1000, images: list | None = None
) -> pl.DataFrame:
    """The inter-rater table (module doc) of the phase 1–2 ellipses files ``paths``
    (``images``: their :func:`image_pairs`, if already read)."""
    images = image_pairs(paths) if images is None else images
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    rows = []
    for split in ROW_SPLITS:
        chosen = [i for i in images if split == "all" or i["split"] == split]
        for label in MODEL_LABELS:
            per_image = [i["labels"][label] for i in chosen]  # type: ignore[index]
            rows.append((split, label, *agreement_row(per_image, n_samples, rng)))
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    return frame.with_columns(pl.col("mean_iou", "ci_low", "ci_high").fill_nan(None)).select(
        "label", "mean_iou", "n_pairs", "n_images", "n_skipped", "ci_low", "ci_high", "split"
    )


def interrater_markdown(table: pl.DataFrame, n_samples: int, n_images_read: int) -> str:
    from gazeloc.report.tables import cell

    lines = [
        "# Inter-radiologist agreement (REFLACX phases 1–2)",
        "",
        "| Label | All images: IoU [95% CI] | pairs | images | skipped "
        "| Test images: IoU [95% CI] | pairs | images | skipped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label in MODEL_LABELS:
        cells = []
        for split in ROW_SPLITS:
            r = table.filter((pl.col("label") == label) & (pl.col("split") == split)).row(
                0, named=True
            )
            value = "–" if r["mean_iou"] is None else cell(r["mean_iou"], r["ci_low"], r["ci_high"])
            cells += [value, str(r["n_pairs"]), str(r["n_images"]), str(r["n_skipped"])]
        lines.append(f"| {DISPLAY_NAMES[label]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Readings: REFLACX phases 1 and 2 ({n_images_read} images read by more than one "
        "radiologist). For each label, every pair of readings of the same image in which both "
        "radiologists drew an ellipse of certainty ≥ 3 gives the IoU of their two masks in the "
        "square frame; pairs whose union is empty in the frame are skipped (counted). Mean over "
        f"pairs; 95% CI: percentile bootstrap over images ({n_samples} replicates). Test "
        "images: those of the test split alone. These phase 1–2 images and readings differ "
        "from the phase-3 test readings the models are scored on (one radiologist each), so "
        "the agreement is a benchmark for the models' IoU, not a score on the same readings.",
    ]
    return "\n".join(lines) + "\n"


def write_interrater(
    paths: Sequence[str | Path], csv: str | Path, md: str | Path, n_samples: int = 1000
) -> pl.DataFrame:
    """Write the inter-rater table as CSV and Markdown (atomically); returns it."""
    images = image_pairs(paths)
    table = interrater_table(paths, n_samples, images)
    n_read = len(images)
    atomic_write_text(Path(csv), table.write_csv(float_precision=6, null_value=""))
    atomic_write_text(Path(md), interrater_markdown(table, n_samples, n_read))
    log.info("inter-rater agreement over %d images read more than once -> %s", n_read, csv)
    return table

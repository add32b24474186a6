"""Figures of the results: the paper's Figure 4 (test images with each experiment's heatmap
and the ellipses) and per-label IoU bars with their confidence intervals (PNG)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.ioutil import atomic_path
from gazeloc.labels import DISPLAY_NAMES, MODEL_LABELS

log = logging.getLogger(__name__)

SOURCE_NAMES = {"grid": "spatial activations", "decoder": "decoder", "gradcam": "Grad-CAM"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def iou_bars(table: pl.DataFrame, out: str | Path, experiments: Sequence[str]) -> None:
    """Grouped bars of the per-label test IoU (``iou_per_label`` table: ``experiment, label,
    mean, ci_low, ci_high, n_seeds``), one bar per experiment, with the 95% CI as error bars."""
    plt = _pyplot()
    present = [e for e in experiments if e in set(table["experiment"].to_list())]
    labels = [lab for lab in MODEL_LABELS if lab in set(table["label"].to_list())]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels) + 2), 4.2), layout="constrained")
    width = 0.8 / max(1, len(present))
    for i, experiment in enumerate(present):
        rows = {r["label"]: r for r in table.filter(pl.col("experiment") == experiment).to_dicts()}
        x, mean, low, high = [], [], [], []
        for j, label in enumerate(labels):
            if label not in rows:
                continue
            r = rows[label]
            x.append(j + (i - (len(present) - 1) / 2) * width)
            mean.append(r["mean"])
            lo = r["ci_low"] if r["ci_low"] is not None and not math.isnan(r["ci_low"]) else None
            hi = r["ci_high"] if r["ci_high"] is not None and not math.isnan(r["ci_high"]) else None
            low.append(r["mean"] - lo if lo is not None else 0.0)
            high.append(hi - r["mean"] if hi is not None else 0.0)
        ax.bar(x, mean, width, yerr=[low, high], capsize=2, label=experiment)
    ax.set_xticks(
        range(len(labels)), [DISPLAY_NAMES[lab] for lab in labels], rotation=35, ha="right"
    )
    ax.set_ylabel("test IoU (mean over seeds, 95% CI)")
    ax.set_ylim(0, 1)
    if present:
        ax.legend(frameon=False, ncols=min(len(present), 5))
    else:
        ax.text(0.5, 0.5, "no IoU results", ha="center", transform=ax.transAxes)
    _save(fig, out)
    plt.close(fig)


def _pick_readings(
    readings: pl.DataFrame, labels: Mapping[str, np.ndarray], n: int, seed: int
) -> list[tuple[str, str, int]]:
    """``n`` random readings with a positive ellipse label, each with one of its positive
    labels: ``(reading_id, dicom_id, label index)``, in a reproducible order."""
    rng = np.random.default_rng(seed)
    rows = [r for r in readings.iter_rows(named=True) if labels[r["reading_id"]].any()]
    rows.sort(key=lambda r: r["reading_id"])
    chosen = sorted(rng.permutation(len(rows))[:n].tolist())
    out = []
    for i in chosen:
        r = rows[i]
        positive = np.flatnonzero(labels[r["reading_id"]])
        out.append((r["reading_id"], r["dicom_id"], int(rng.choice(positive))))
    return out


def figure4(
    selection: pl.DataFrame,
    models: Mapping[str, str | Path],
    *,
    manifest: str | Path,
    ellipses: str | Path,
    out: str | Path,
    n_images: int = 4,
    seed: int = 0,
    device: str = "auto",
) -> None:
    """Paper Figure 4: ``n_images`` random test readings (rows, each with one of its positive
    ellipse labels) × the experiments' models (columns): the image, the reported heatmap
    source upscaled by nearest neighbour (colour), the ellipses of that label (white) and the
    prediction at the validation-chosen threshold (yellow, dashed), with the image's IoU.

    ``selection``: ``selection.csv`` of ``gazeloc tables``; ``models``: experiment → a
    ``model.pt`` (one seed)."""
    import torch

    from gazeloc.evaluate.maps import iou_thresholds, source_maps, upscale_nearest
    from gazeloc.evaluate.run import pick_device
    from gazeloc.images import ShardDataset
    from gazeloc.model import load_model
    from gazeloc.train.data import AnnotationStore, _available

    plt = _pyplot()
    store = AnnotationStore("ellipse", ellipses=ellipses)
    readings = store.readings().filter(pl.col("split") == "test")
    readings = readings.filter(pl.col("dicom_id").is_in(list(_available(manifest))))
    masks, labels = {}, {}
    for rid in readings["reading_id"].to_list():
        masks[rid], labels[rid], _ = store.read(rid)
    picked = _pick_readings(readings, labels, n_images, seed)
    experiments = list(models)
    dev = pick_device(device)
    images = {}
    if picked:
        shards = ShardDataset(manifest, list(dict.fromkeys(d for _, d, _ in picked)))
        images = {d: np.asarray(shards.read(i)) for i, d in enumerate(shards.dicom_ids)}
    ncols = 1 + len(experiments)
    nrows = max(1, len(picked))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.4 * ncols, 2.5 * nrows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.set_axis_off()
    if not picked:
        axes[0, 0].text(0.5, 0.5, "no test reading with an ellipse", ha="center")
    batch = (
        torch.from_numpy(np.stack([images[d] for _, d, _ in picked]))[:, None] if picked else None
    )
    for r, (rid, dicom, k) in enumerate(picked):
        ax = axes[r, 0]
        ax.imshow(images[dicom], cmap="gray", vmin=0, vmax=255)
        ax.contour(masks[rid][k], levels=[0.5], colors="white", linewidths=0.8)
        ax.set_title(f"{rid}\n{DISPLAY_NAMES[MODEL_LABELS[k]]}", fontsize=7)
    for c, experiment in enumerate(experiments, start=1):
        if batch is None:
            continue
        chosen = selection.filter((pl.col("experiment") == experiment) & pl.col("reported"))
        model, _ = load_model(models[experiment], map_location="cpu")
        model.to(dev).eval()
        if chosen.height:
            source, note = chosen["source"][0], ""
        else:  # no validation IoU to choose on: the reference's source, no threshold
            has_decoder = model.decoder is not None
            source = "grid" if experiment == "unannotated" or not has_decoder else "decoder"
            note = "no validation choice"
        maps = source_maps(model, batch.to(dev).float().div(255.0), [source])[source].cpu()
        size = batch.shape[-1]
        for r, (rid, dicom, k) in enumerate(picked):
            row = chosen.filter(pl.col("label") == MODEL_LABELS[k])
            threshold = float(row["threshold"][0]) if row.height else None
            heat = upscale_nearest(maps[r, k], size).numpy()
            ax = axes[r, c]
            ax.imshow(images[dicom], cmap="gray", vmin=0, vmax=255)
            ax.imshow(heat, cmap="jet", vmin=0, vmax=1, alpha=0.4, interpolation="nearest")
            ax.contour(masks[rid][k], levels=[0.5], colors="white", linewidths=0.8)
            title = f"{experiment} ({SOURCE_NAMES[source]})"
            if threshold is None:
                ax.set_title(f"{title}\n{note or 'no threshold for this label'}", fontsize=7)
                continue
            mask = torch.from_numpy(masks[rid][k])
            iou = float(iou_thresholds(maps[r, k][None], mask[None], [threshold])[0, 0])
            if (heat > threshold).any() and not (heat > threshold).all():
                ax.contour(
                    heat > threshold,
                    levels=[0.5],
                    colors="yellow",
                    linewidths=0.8,
                    linestyles="dashed",
                )
            ax.set_title(f"{title}\nIoU {iou:.2f} at {threshold:g}", fontsize=7)
        log.info("figure 4: %s with %s", experiment, source)
    _save(fig, out)
    plt.close(fig)

"""Figures of the results (PNG): the paper's Figure 4 (test images with each experiment's
heatmap and the ellipses, colour bars on one scale per row), per-label IoU bars with their
confidence intervals, learning curves (training loss and validation AUC per epoch, one line per
seed) and per-label ROC curves on the test split (one line per seed, mean AUC in the legend)."""

from __future__ import annotations

import logging
import math
import textwrap
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


def _finite(value) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def iou_bars(table: pl.DataFrame, out: str | Path, experiments: Sequence[str]) -> None:
    """Grouped bars of the per-label test IoU (``iou_per_label`` table: ``experiment, label,
    mean, ci_low, ci_high, n_seeds``), one bar per experiment, with the 95% CI as error bars.

    The y axis ends a little above the largest bar or CI (not at 1); the labels the table
    lacks (no positive test reading with an ellipse, so no IoU) are named under the axis."""
    plt = _pyplot()
    present = [e for e in experiments if e in set(table["experiment"].to_list())]
    in_table = set(table["label"].to_list())
    labels = [lab for lab in MODEL_LABELS if lab in in_table]
    absent = [lab for lab in MODEL_LABELS if lab not in in_table]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels) + 2), 4.4), layout="constrained")
    width = 0.8 / max(1, len(present))
    top = 0.0
    for i, experiment in enumerate(present):
        rows = {r["label"]: r for r in table.filter(pl.col("experiment") == experiment).to_dicts()}
        x, mean, low, high = [], [], [], []
        for j, label in enumerate(labels):
            if label not in rows or _finite(rows[label]["mean"]) is None:
                continue
            r = rows[label]
            x.append(j + (i - (len(present) - 1) / 2) * width)
            mean.append(r["mean"])
            lo, hi = _finite(r["ci_low"]), _finite(r["ci_high"])
            low.append(r["mean"] - lo if lo is not None else 0.0)
            high.append(hi - r["mean"] if hi is not None else 0.0)
            top = max(top, r["mean"], hi if hi is not None else 0.0)
        ax.bar(x, mean, width, yerr=[low, high], capsize=2, label=experiment)
    ax.set_xticks(
        range(len(labels)), [DISPLAY_NAMES[lab] for lab in labels], rotation=35, ha="right"
    )
    ax.set_ylabel("test IoU (mean over seeds, 95% CI)")
    ax.set_ylim(0, min(1.0, max(0.05, 1.15 * top)))
    ax.grid(axis="y", lw=0.4, alpha=0.5)
    if present:
        ax.legend(frameon=False, ncols=min(len(present), 5), fontsize=8)
    else:
        ax.text(0.5, 0.5, "no IoU results", ha="center", transform=ax.transAxes)
    if absent:
        names = ", ".join(DISPLAY_NAMES[lab] for lab in absent)
        chars = int(10 * fig.get_figwidth())  # about 10 characters per inch at 8 pt
        fig.supxlabel(
            "\n".join(textwrap.wrap(f"No positive test reading (no IoU): {names}", chars)),
            fontsize=8,
        )
    _save(fig, out)
    plt.close(fig)


def learning_curves(logs: Mapping[str, Mapping[int, pl.DataFrame]], out: str | Path) -> None:
    """Per experiment (columns): training loss (top) and validation AUC (bottom) per epoch,
    one thin line per seed, the saved (best) epoch marked. ``logs``: experiment → seed →
    ``train_log.csv`` table (``epoch, loss, val_auc, best``...)."""
    plt = _pyplot()
    experiments = list(logs) or ["(none)"]
    ncols = len(experiments)
    fig, axes = plt.subplots(
        2,
        ncols,
        figsize=(2.9 * ncols + 0.6, 5.0),
        squeeze=False,
        layout="constrained",
        sharex="col",
    )
    for c, experiment in enumerate(experiments):
        top, bottom = axes[0, c], axes[1, c]
        top.set_title(experiment, fontsize=9)
        for seed, frame in sorted(logs.get(experiment, {}).items()):
            epoch = frame["epoch"].cast(pl.Float64).to_numpy()
            style = {"lw": 0.9, "marker": "o", "ms": 2.5}
            line = top.plot(epoch, frame["loss"].cast(pl.Float64).to_numpy(), **style)[0]
            auc = frame["val_auc"].cast(pl.Float64, strict=False).to_numpy()
            bottom.plot(epoch, auc, color=line.get_color(), label=f"seed {seed}", **style)
            if "best" in frame.columns:
                best = frame["best"].cast(pl.String).str.to_lowercase().is_in(["true", "1"])
                best = best.to_numpy()
                bottom.plot(epoch[best], auc[best], "*", color=line.get_color(), ms=7)
        top.set_ylabel("training loss" if c == 0 else "")
        bottom.set_ylabel("validation AUC (mean over labels)" if c == 0 else "", fontsize=8)
        bottom.set_xlabel("epoch")
        epochs = [int(e) for f in logs.get(experiment, {}).values() for e in f["epoch"]]
        last = max(epochs, default=1)
        for ax in (top, bottom):
            ax.tick_params(labelsize=7)
            ax.grid(lw=0.4, alpha=0.5)
            ax.set_xlim(0.5, last + 0.5)  # whole epochs, also for a single one
            ax.set_xticks(range(1, last + 1, max(1, math.ceil(last / 8))))
        if logs.get(experiment):
            bottom.legend(fontsize=6, frameon=False)
    fig.suptitle("Learning curves (star: the epoch kept)", fontsize=10)
    _save(fig, out)
    plt.close(fig)


def roc_points(score: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr)`` from (0, 0) to (1, 1): one point per distinct score, tied
    scores moving both rates at once (so the trapezoid area is the AUC with ties as ½)."""
    score = np.asarray(score, dtype=float)
    target = np.asarray(target).astype(bool)
    order = np.argsort(-score, kind="stable")
    score, target = score[order], target[order]
    last = np.r_[np.flatnonzero(np.diff(score) != 0), score.size - 1] if score.size else []
    tp = np.cumsum(target)[last] if score.size else np.zeros(0)
    fp = np.cumsum(~target)[last] if score.size else np.zeros(0)
    n_pos, n_neg = max(int(target.sum()), 1), max(int((~target).sum()), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def roc_curves(images: pl.DataFrame, out: str | Path, experiments: Sequence[str]) -> None:
    """Per label (panels): ROC curves on the test split, experiments as colours, one thin
    line per seed, the mean over seeds of each seed's AUC in the legend. ``images``: the
    ``test_images.parquet`` rows (``experiment, seed, label, probability, target``); rows
    with an unknown target are left out, as in the AUC table. A label without a positive
    or without a negative test image has no curve (said in its panel)."""
    from gazeloc.metrics import auc_per_label

    plt = _pyplot()
    images = images.filter(pl.col("target").is_not_null())
    present = [e for e in experiments if e in set(images["experiment"].to_list())]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ncols = 5
    nrows = math.ceil(len(MODEL_LABELS) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.6 * ncols, 2.75 * nrows), squeeze=False, layout="constrained"
    )
    for ax, label in zip(axes.flat, MODEL_LABELS, strict=False):
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.6, ls=":")
        ax.set_title(DISPLAY_NAMES[label], fontsize=8)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        drawn = False
        of_label = images.filter(pl.col("label") == label)
        for i, experiment in enumerate(present):
            colour = colours[i % len(colours)]
            curves, aucs = [], []
            rows = of_label.filter(pl.col("experiment") == experiment).sort("seed")
            for frame in rows.partition_by("seed", maintain_order=True):
                y = frame["target"].to_numpy().astype(bool)
                if y.all() or not y.any():
                    continue
                p = frame["probability"].to_numpy()
                curves.append(roc_points(p, y))
                aucs.append(float(auc_per_label(p[:, None], y[:, None])[0]))
            for j, (fpr, tpr) in enumerate(curves):
                name = f"{experiment} {np.mean(aucs):.2f}" if j == 0 else None
                ax.plot(fpr, tpr, color=colour, lw=0.8, alpha=0.8, label=name)
            drawn = drawn or bool(curves)
        if drawn:
            ax.legend(
                fontsize=5.5, frameon=False, loc="lower right", title="mean AUC", title_fontsize=5.5
            )
        else:
            ax.text(
                0.5,
                0.5,
                "no positive and\nnegative test images",
                ha="center",
                va="center",
                fontsize=7,
                transform=ax.transAxes,
            )
    for ax in axes.flat[len(MODEL_LABELS) :]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel("false positive rate", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("true positive rate", fontsize=7)
    fig.suptitle("ROC curves on the test split (one line per seed)", fontsize=10)
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
    The maps of one row share one colour scale (0 to the row's largest value) and its colour
    bar, so the experiments compare directly and faint maps stay visible.

    ``selection``: ``selection.csv`` of ``gazeloc tables``; ``models``: experiment → a
    ``model.pt`` (one seed)."""
    import torch

    from gazeloc.datasets.annotations import AnnotationStore
    from gazeloc.datasets.index import available_images
    from gazeloc.datasets.shards import ShardDataset
    from gazeloc.evaluate.maps import iou_thresholds, source_maps, upscale_nearest
    from gazeloc.evaluate.run import pick_device
    from gazeloc.model import load_model

    plt = _pyplot()
    store = AnnotationStore("ellipse", ellipses=ellipses)
    readings = store.readings().filter(pl.col("split") == "test")
    readings = readings.filter(pl.col("dicom_id").is_in(list(available_images(manifest))))
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
        nrows, ncols, figsize=(2.4 * ncols + 0.8, 2.5 * nrows), squeeze=False, layout="constrained"
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
    cells: dict[tuple[int, int], tuple[np.ndarray, str, float | None]] = {}
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
        for r, (rid, _dicom, k) in enumerate(picked):
            row = chosen.filter(pl.col("label") == MODEL_LABELS[k])
            threshold = float(row["threshold"][0]) if row.height else None
            heat = upscale_nearest(maps[r, k], size).numpy()
            title = f"{experiment} ({SOURCE_NAMES[source]})"
            if threshold is None:
                title += f"\n{note or 'no threshold for this label'}"
            else:
                mask = torch.from_numpy(masks[rid][k])
                iou = float(iou_thresholds(maps[r, k][None], mask[None], [threshold])[0, 0])
                title += f"\nIoU {iou:.2f} at {threshold:g}"
            cells[r, c] = (heat, title, threshold)
        log.info("figure 4: %s with %s", experiment, source)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    for r, (rid, dicom, k) in enumerate(picked):
        row_cells = [cells[r, c] for c in range(1, ncols) if (r, c) in cells]
        if not row_cells:
            continue
        # one colour scale per row: 0 to the row's largest map value (at least 1e-6)
        vmax = max(1e-6, max(float(h.max()) for h, _, _ in row_cells))
        for c in range(1, ncols):
            if (r, c) not in cells:
                continue
            heat, title, threshold = cells[r, c]
            ax = axes[r, c]
            ax.imshow(images[dicom], cmap="gray", vmin=0, vmax=255)
            ax.imshow(heat, cmap="jet", vmin=0, vmax=vmax, alpha=0.45, interpolation="nearest")
            ax.contour(masks[rid][k], levels=[0.5], colors="white", linewidths=0.8)
            if threshold is not None and (heat > threshold).any() and not (heat > threshold).all():
                ax.contour(
                    heat > threshold,
                    levels=[0.5],
                    colors="yellow",
                    linewidths=0.8,
                    linestyles="dashed",
                )
            ax.set_title(title, fontsize=7)
        bar = fig.colorbar(
            ScalarMappable(norm=Normalize(0, vmax), cmap="jet"),
            ax=list(axes[r, 1:]),
            fraction=0.025,
            pad=0.01,
        )
        bar.ax.tick_params(labelsize=6)
        bar.set_label("map value (row scale)", fontsize=6)
    _save(fig, out)
    plt.close(fig)

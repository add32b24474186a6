"""Evaluate one trained model on one split: per-label AUC on MIMIC-CXR-JPG and per-label IoU
on REFLACX phase 3 for every heatmap source and threshold (reference-method.md §9).

* AUC: the image-level probability ``C_k`` (Eq. 1) of the MIMIC images of the split
  (``in_mimic`` rows of the index), per label over the images whose label is known (a null
  label is left out of that label's AUC); NaN for a label without a positive or a negative.
* IoU: for the phase-3 readings of the split (the ``split`` attribute of the ellipses file),
  each source (:mod:`gazeloc.evaluate.maps`) upscaled to the frame by nearest neighbour and
  compared with the label's ellipse mask (certainty ≥ 3) at every threshold at once; a label's
  IoU is the mean over the readings whose ellipse label is positive (negatives contribute
  nothing; NaN for a label without a positive reading).

The result is the tidy table of design.md ("Contracts"): ``experiment, seed, split, dataset,
metric, source, label, threshold, value, n_positive``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader, Dataset

from gazeloc.errors import DataFormatError
from gazeloc.evaluate.maps import SOURCES, iou_thresholds, source_maps
from gazeloc.ioutil import atomic_path
from gazeloc.labels import MODEL_LABELS
from gazeloc.metrics import REFERENCE_THRESHOLDS, auc_per_label

log = logging.getLogger(__name__)

SPLITS = ("val", "test")
DEVICES = ("auto", "cpu", "cuda")
SCHEMA: dict[str, Any] = {
    "experiment": pl.String,
    "seed": pl.Int64,
    "split": pl.String,
    "dataset": pl.String,
    "metric": pl.String,
    "source": pl.String,
    "label": pl.String,
    "threshold": pl.Float64,
    "value": pl.Float64,
    "n_positive": pl.Int64,
}


@dataclass(frozen=True)
class EvalOptions:
    """The config's ``evaluation`` keys that a job uses."""

    thresholds: tuple[float, ...] = REFERENCE_THRESHOLDS
    sources: tuple[str, ...] = SOURCES
    batch_size: int = 16
    device: str = "auto"
    workers: int = 0
    progress: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        t = np.asarray(self.thresholds, dtype=float)
        if t.size == 0 or np.any(np.diff(t) <= 0) or t.min() < 0 or t.max() >= 1:
            raise ValueError("evaluation thresholds must be increasing values in [0, 1)")
        if not self.sources or set(self.sources) - set(SOURCES):
            raise ValueError(f"evaluation sources must be among {', '.join(SOURCES)}")
        if self.batch_size < 1:
            raise ValueError("evaluation batch size must be >= 1")
        if self.device not in DEVICES:
            raise ValueError(f"evaluation device must be one of {', '.join(DEVICES)}")


def pick_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("evaluation.device is cuda but no CUDA device is available")
    return torch.device(name)


class _Readings(Dataset):
    """Phase-3 readings: framed image, ellipse masks (``10 × S × S`` bool), ellipse labels."""

    def __init__(self, manifest: str | Path, readings: pl.DataFrame, ellipses: str | Path):
        from gazeloc.images import ShardDataset
        from gazeloc.train.data import AnnotationStore

        self.reading_ids = readings.get_column("reading_id").to_list()
        dicom_ids = readings.get_column("dicom_id").to_list()
        unique = list(dict.fromkeys(dicom_ids))
        self.images = ShardDataset(manifest, unique)
        position = {d: i for i, d in enumerate(unique)}
        self.rows = [position[d] for d in dicom_ids]
        self.store = AnnotationStore("ellipse", ellipses=ellipses)

    def __len__(self) -> int:
        return len(self.reading_ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image = np.asarray(self.images.read(self.rows[i]))
        masks, labels, _ = self.store.read(self.reading_ids[i])
        if masks.shape[-1] != image.shape[-1]:
            raise DataFormatError(
                self.store.main.path,
                f"{self.reading_ids[i]}: ellipse masks are {masks.shape[-1]} px but images are "
                f"{image.shape[-1]} px (images.size must match)",
            )
        return image, masks, labels


def _stack(items: list[tuple[np.ndarray, ...]]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.stack(column)) for column in zip(*items, strict=True))


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, mininterval=2.0)


def mimic_auc(
    model: torch.nn.Module,
    index: str | Path,
    manifest: str | Path,
    split: str,
    options: EvalOptions,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-label AUC on the MIMIC images of ``split`` and the positive counts (known labels)."""
    from gazeloc.model import image_probabilities
    from gazeloc.train.data import (
        ImageLabelSet,
        _available,
        _drop_unavailable,
        collate,
        index_labels,
        read_index,
    )

    frame = read_index(index)
    frame = frame.filter(pl.col("in_mimic") & (pl.col("split") == split))
    frame = _drop_unavailable(frame, _available(manifest), f"MIMIC {split}")
    labels, known = index_labels(frame)
    dataset = ImageLabelSet(manifest, frame.get_column("dicom_id").to_list(), labels, known)
    loader = DataLoader(
        dataset,
        batch_size=options.batch_size,
        num_workers=options.workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
    )
    scores = []
    with torch.no_grad(), _bar(len(dataset), f"AUC {split}", options.progress) as bar:
        for batch in loader:
            images = batch["images"].to(device, non_blocking=True).float().div_(255.0)
            grid_logits = model(images, decoder=False).grid_logits
            scores.append(image_probabilities(grid_logits.float()))  # kept on the device
            bar.update(len(images))
    score = torch.cat(scores).cpu().numpy() if scores else np.zeros((0, len(MODEL_LABELS)))
    auc = np.full(len(MODEL_LABELS), np.nan)
    for k in range(len(MODEL_LABELS)):
        rows = known[:, k]
        if rows.any():
            auc[k] = auc_per_label(score[rows, k : k + 1], labels[rows, k : k + 1])[0]
    positives = ((labels > 0) & known).sum(axis=0)
    mean = float(np.nanmean(auc)) if np.isfinite(auc).any() else math.nan
    log.info("MIMIC %s: %d images; mean AUC %.4f", split, len(dataset), mean)
    return auc, positives


def reflacx_iou(
    model: torch.nn.Module,
    manifest: str | Path,
    ellipses: str | Path,
    split: str,
    options: EvalOptions,
    device: torch.device,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per source, the per-label IoU at every threshold ``[K, T]`` over the positive readings
    of ``split`` (NaN for a label without one), and the positive counts ``[K]``."""
    from gazeloc.train.data import AnnotationStore, _available, _drop_unavailable

    readings = AnnotationStore("ellipse", ellipses=ellipses).readings()
    readings = readings.filter(pl.col("split") == split)
    readings = _drop_unavailable(readings, _available(manifest), f"REFLACX {split}")
    dataset = _Readings(manifest, readings, ellipses)
    loader = DataLoader(
        dataset,
        batch_size=options.batch_size,
        num_workers=options.workers,
        collate_fn=_stack,
        pin_memory=device.type == "cuda",
    )
    k, t = len(MODEL_LABELS), len(options.thresholds)
    has_decoder = getattr(model, "decoder", None) is not None
    # sums stay on the device until the split is done (no read-back per batch)
    sums = {
        s: torch.zeros((k, t), dtype=torch.float64, device=device)
        for s in options.sources
        if s != "decoder" or has_decoder
    }
    counts = torch.zeros(k, dtype=torch.int64, device=device)
    with _bar(len(dataset), f"IoU {split}", options.progress) as bar:
        for images, masks, labels in loader:
            images = images[:, None].to(device, non_blocking=True).float().div_(255.0)
            masks = masks.to(device, non_blocking=True).bool()
            positive = labels.to(device, non_blocking=True).bool()
            maps = source_maps(model, images, options.sources)
            for source, values in maps.items():
                iou = iou_thresholds(values, masks, options.thresholds)  # [B, K, T]
                total = (iou * positive[..., None]).sum(0)
                sums[source] += total
            counts += positive.sum(0)
            bar.update(len(images))
    n = counts.cpu().numpy()
    sums = {source: values.cpu() for source, values in sums.items()}
    out = {}
    for source in [s for s in options.sources if s in sums]:
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums[source].numpy() / n[:, None]
        means[n == 0] = np.nan
        out[source] = means
        log.info(
            "REFLACX %s, %s: %d readings; best mean IoU %.4f",
            split,
            source,
            len(dataset),
            np.nanmax(np.nanmean(means, axis=0)) if np.isfinite(means).any() else np.nan,
        )
    return out, n


def evaluate_model(
    model_path: str | Path,
    *,
    index: str | Path,
    manifest: str | Path,
    ellipses: str | Path,
    split: str,
    options: EvalOptions = EvalOptions(),
    experiment: str | None = None,
    seed: int | None = None,
) -> pl.DataFrame:
    """The tidy metrics of one model on one split (module doc)."""
    from gazeloc.model import load_model

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    from gazeloc.train.device import configure_backends

    device = pick_device(options.device)
    configure_backends(device)  # the training job's fp32 settings (TF32), as its validation
    model, meta = load_model(model_path, map_location=device)
    experiment = experiment if experiment is not None else str(meta.get("experiment"))
    seed = int(seed if seed is not None else meta.get("seed", 0))
    log.info(
        "evaluating %s (%s, seed %d) on %s, device %s", model_path, experiment, seed, split, device
    )
    auc, auc_pos = mimic_auc(model, index, manifest, split, options, device)
    iou, iou_pos = reflacx_iou(model, manifest, ellipses, split, options, device)
    rows: list[tuple[Any, ...]] = []
    head = (experiment, seed, split)
    for label, value, n in zip(MODEL_LABELS, auc, auc_pos, strict=True):
        rows.append((*head, "mimic", "auc", None, label, None, float(value), int(n)))
    for source, means in iou.items():
        for k, label in enumerate(MODEL_LABELS):
            for j, threshold in enumerate(options.thresholds):
                rows.append(
                    (
                        *head,
                        "reflacx",
                        "iou",
                        source,
                        label,
                        float(threshold),
                        float(means[k, j]),
                        int(iou_pos[k]),
                    )
                )
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def write_metrics(frame: pl.DataFrame, out: str | Path) -> None:
    """Write the tidy metrics parquet atomically."""
    with atomic_path(out) as tmp:
        frame.write_parquet(tmp)


def read_metrics(paths: Sequence[str | Path]) -> pl.DataFrame:
    """Concatenate tidy metrics files, checking their columns."""
    frames = []
    for path in paths:
        frame = pl.read_parquet(path)
        missing = [c for c in SCHEMA if c not in frame.columns]
        if missing:
            raise DataFormatError(path, "missing column", column=missing[0])
        frames.append(frame.select(list(SCHEMA)).cast(SCHEMA))
    if not frames:
        return pl.DataFrame(schema=SCHEMA)
    return pl.concat(frames)

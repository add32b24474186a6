"""Evaluate one trained model on its splits: per-label AUC on MIMIC-CXR-JPG, and per-label IoU
(every heatmap source and threshold) and hit rate on REFLACX phase 3 (docs/method.md#evaluation).
The model is loaded once for all splits.

* AUC: the image-level probability ``C_k`` (Eq. 1) of the MIMIC images of the split
  (``in_mimic`` rows of the index), per label over the images whose label is known (a null
  label is left out of that label's AUC); NaN for a label without a positive or a negative.
* IoU: for the phase-3 readings of the split (the ``split`` attribute of the ellipses file),
  each source (:mod:`gazeloc.evaluate.maps`) upscaled to the frame by nearest neighbour and
  compared with the label's ellipse mask (certainty ≥ 3) at every threshold at once; a label's
  IoU is the mean over the readings whose ellipse label is positive (negatives contribute
  nothing; NaN for a label without a positive reading).
* Hit rate (:mod:`gazeloc.evaluate.pointing`): per source and label, the share of the positive
  readings whose map maximum lands inside the ellipse mask (threshold-free).

The metrics are the tidy table ``experiment, seed, split, dataset, metric, source, label,
threshold, value, n_positive`` (``metric`` is ``auc``, ``iou`` or ``hit_rate``). Beside it, per
split, the per-item values every table can be recomputed and resampled from
(:data:`IMAGE_SCHEMA`: one row per MIMIC image and label; :data:`READING_SCHEMA`: one row per
positive REFLACX reading, label, source and threshold).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader, Dataset

from gazeloc.errors import DataFormatError
from gazeloc.evaluate.maps import SOURCES, iou_thresholds, source_maps
from gazeloc.evaluate.pointing import pointing_hits
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
IMAGE_SCHEMA: dict[str, Any] = {
    "experiment": pl.String,
    "seed": pl.Int64,
    "split": pl.String,
    "dicom_id": pl.String,
    "subject_id": pl.Int64,
    "label": pl.String,
    "probability": pl.Float64,
    "target": pl.Int8,
}
"""Per-image results (MIMIC): the image-level probability of each label and its label (1
positive, 0 negative, null unknown: left out of that label's AUC)."""
READING_SCHEMA: dict[str, Any] = {
    "experiment": pl.String,
    "seed": pl.Int64,
    "split": pl.String,
    "reading_id": pl.String,
    "dicom_id": pl.String,
    "subject_id": pl.Int64,
    "label": pl.String,
    "source": pl.String,
    "threshold": pl.Float64,
    "iou": pl.Float64,
    "hit": pl.Boolean,
}
"""Per-reading results (REFLACX): for every reading whose ellipse label is positive, each
heatmap source and threshold, the IoU; ``hit`` (pointing game) repeats per threshold."""


@dataclass(frozen=True)
class SplitResult:
    """What one split's evaluation writes: the tidy metrics and the per-item tables."""

    metrics: pl.DataFrame
    images: pl.DataFrame
    readings: pl.DataFrame


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
    """``auto``: the GPU when there is one, else the CPU (the training jobs' rule, with the
    one-line message for ``cuda`` without CUDA)."""
    from gazeloc.devices import pick_device as pick

    return pick(name, "evaluation.device")


class _Readings(Dataset):
    """Phase-3 readings: framed image, ellipse masks (``10 × S × S`` bool), ellipse labels."""

    def __init__(self, manifest: str | Path, readings: pl.DataFrame, ellipses: str | Path):
        from gazeloc.datasets.annotations import AnnotationStore
        from gazeloc.datasets.shards import ShardDataset

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


@dataclass
class MimicOutput:
    """Per-label AUC ``[K]``, positive counts ``[K]`` and the per-image values."""

    auc: np.ndarray
    positives: np.ndarray
    dicom_ids: list[str]
    subject_ids: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    known: np.ndarray


@dataclass
class ReflacxOutput:
    """Per source: per-label IoU ``[K, T]`` and hit rate ``[K]``; positive counts ``[K]``;
    the per-reading IoU ``[R, K, T]`` and hits ``[R, K]`` per source, and positives ``[R, K]``."""

    iou: dict[str, np.ndarray]
    hit_rate: dict[str, np.ndarray]
    positives: np.ndarray
    reading_ids: list[str]
    dicom_ids: list[str]
    reading_iou: dict[str, np.ndarray]
    reading_hits: dict[str, np.ndarray]
    reading_positive: np.ndarray


def mimic_auc(
    model: torch.nn.Module,
    index: str | Path,
    manifest: str | Path,
    split: str,
    options: EvalOptions,
    device: torch.device,
) -> MimicOutput:
    """Per-label AUC on the MIMIC images of ``split`` and the positive counts (known labels),
    with each image's probabilities."""
    from gazeloc.datasets.index import (
        available_images,
        drop_unavailable,
        index_labels,
        read_index,
    )
    from gazeloc.datasets.sets import ImageLabelSet, collate
    from gazeloc.model import image_probabilities

    frame = read_index(index)
    frame = frame.filter(pl.col("in_mimic") & (pl.col("split") == split))
    frame = drop_unavailable(frame, available_images(manifest), f"MIMIC {split}")
    labels, known = index_labels(frame)
    dicom_ids = frame.get_column("dicom_id").to_list()
    dataset = ImageLabelSet(manifest, dicom_ids, labels, known)
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
    return MimicOutput(
        auc=auc,
        positives=positives,
        dicom_ids=dicom_ids,
        subject_ids=frame.get_column("subject_id").cast(pl.Int64).to_numpy(),
        scores=score,
        labels=np.asarray(labels),
        known=np.asarray(known, dtype=bool),
    )


def reflacx_iou(
    model: torch.nn.Module,
    manifest: str | Path,
    ellipses: str | Path,
    split: str,
    options: EvalOptions,
    device: torch.device,
) -> ReflacxOutput:
    """Per source, the per-label IoU at every threshold ``[K, T]`` and the hit rate ``[K]``
    over the positive readings of ``split`` (NaN for a label without one), the positive counts
    ``[K]`` and the per-reading values."""
    from gazeloc.datasets.annotations import AnnotationStore
    from gazeloc.datasets.index import available_images, drop_unavailable

    readings = AnnotationStore("ellipse", ellipses=ellipses).readings()
    readings = readings.filter(pl.col("split") == split)
    readings = drop_unavailable(readings, available_images(manifest), f"REFLACX {split}")
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
    used = [s for s in options.sources if s != "decoder" or has_decoder]
    ious: dict[str, list[torch.Tensor]] = {s: [] for s in used}
    hits: dict[str, list[torch.Tensor]] = {s: [] for s in used}
    positives: list[torch.Tensor] = []
    with _bar(len(dataset), f"IoU {split}", options.progress) as bar:
        for images, masks, labels in loader:
            images = images[:, None].to(device, non_blocking=True).float().div_(255.0)
            masks = masks.to(device, non_blocking=True).bool()
            positives.append(labels.to(device).bool())
            maps = source_maps(model, images, options.sources)
            for source, values in maps.items():
                ious[source].append(iou_thresholds(values, masks, options.thresholds))
                hits[source].append(pointing_hits(values, masks))
            bar.update(len(images))
    positive = torch.cat(positives).cpu().numpy() if positives else np.zeros((0, k), bool)
    n = positive.sum(axis=0)
    reading_iou = {
        s: torch.cat(v).cpu().numpy() if v else np.zeros((0, k, t)) for s, v in ious.items()
    }
    reading_hits = {
        s: torch.cat(v).cpu().numpy() if v else np.zeros((0, k), bool) for s, v in hits.items()
    }
    iou_means, hit_rates = {}, {}
    for source in used:
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (reading_iou[source] * positive[..., None]).sum(0) / n[:, None]
            rate = (reading_hits[source] & positive).sum(0) / n
        means[n == 0] = np.nan
        rate = np.where(n == 0, np.nan, rate)
        iou_means[source], hit_rates[source] = means, rate
        log.info(
            "REFLACX %s, %s: %d readings; best mean IoU %.4f, mean hit rate %.4f",
            split,
            source,
            len(dataset),
            np.nanmax(np.nanmean(means, axis=0)) if np.isfinite(means).any() else np.nan,
            np.nanmean(rate) if np.isfinite(rate).any() else np.nan,
        )
    return ReflacxOutput(
        iou=iou_means,
        hit_rate=hit_rates,
        positives=n,
        reading_ids=dataset.reading_ids,
        dicom_ids=readings.get_column("dicom_id").to_list(),
        reading_iou=reading_iou,
        reading_hits=reading_hits,
        reading_positive=positive,
    )


def _subjects_of(index: str | Path, dicom_ids: Sequence[str]) -> np.ndarray:
    """The subject of each image, from the index (every REFLACX image is in it)."""
    from gazeloc.datasets.index import read_index

    frame = read_index(index).select("dicom_id", pl.col("subject_id").cast(pl.Int64))
    subject = dict(zip(frame["dicom_id"].to_list(), frame["subject_id"].to_list(), strict=True))
    missing = [d for d in dicom_ids if d not in subject]
    if missing:
        raise DataFormatError(
            index, f"image {missing[0]} of the REFLACX readings is not in the index"
        )
    return np.asarray([subject[d] for d in dicom_ids], dtype=np.int64)


def _metric_rows(
    head: tuple[str, int, str], mimic: MimicOutput, reflacx: ReflacxOutput, options: EvalOptions
) -> pl.DataFrame:
    rows: list[tuple[Any, ...]] = []
    for label, value, n in zip(MODEL_LABELS, mimic.auc, mimic.positives, strict=True):
        rows.append((*head, "mimic", "auc", None, label, None, float(value), int(n)))
    for source, means in reflacx.iou.items():
        for k, label in enumerate(MODEL_LABELS):
            n = int(reflacx.positives[k])
            for j, threshold in enumerate(options.thresholds):
                rows.append(
                    (*head, "reflacx", "iou", source, label, float(threshold),
                     float(means[k, j]), n)
                )  # fmt: skip
    for source, rates in reflacx.hit_rate.items():
        for k, label in enumerate(MODEL_LABELS):
            n = int(reflacx.positives[k])
            rows.append((*head, "reflacx", "hit_rate", source, label, None, float(rates[k]), n))
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def _image_rows(head: tuple[str, int, str], mimic: MimicOutput) -> pl.DataFrame:
    n, k = mimic.scores.shape
    target = np.where(mimic.known, (mimic.labels > 0).astype(np.int8), -1).reshape(-1)
    frame = pl.DataFrame(
        {
            "dicom_id": np.repeat(np.asarray(mimic.dicom_ids, dtype=object), k).tolist(),
            "subject_id": np.repeat(mimic.subject_ids, k),
            "label": list(MODEL_LABELS) * n,
            "probability": mimic.scores.reshape(-1).astype(np.float64),
            "target": target,
        },
        schema_overrides={"target": pl.Int8},
    )
    frame = frame.with_columns(
        pl.when(pl.col("target") >= 0).then(pl.col("target")).alias("target"),
        pl.lit(head[0]).alias("experiment"),
        pl.lit(head[1], pl.Int64).alias("seed"),
        pl.lit(head[2]).alias("split"),
    )
    return frame.select(list(IMAGE_SCHEMA)).cast(IMAGE_SCHEMA)


def _reading_rows(
    head: tuple[str, int, str], reflacx: ReflacxOutput, subjects: np.ndarray, options: EvalOptions
) -> pl.DataFrame:
    r_idx, k_idx = np.nonzero(reflacx.reading_positive)
    t = np.asarray(options.thresholds, dtype=np.float64)
    parts = []
    for source in reflacx.reading_iou:
        iou = reflacx.reading_iou[source][r_idx, k_idx]  # [P, T]
        hit = reflacx.reading_hits[source][r_idx, k_idx]  # [P]
        parts.append(
            pl.DataFrame(
                {
                    "reading_id": np.repeat(
                        np.asarray(reflacx.reading_ids, dtype=object)[r_idx], t.size
                    ).tolist(),
                    "dicom_id": np.repeat(
                        np.asarray(reflacx.dicom_ids, dtype=object)[r_idx], t.size
                    ).tolist(),
                    "subject_id": np.repeat(subjects[r_idx], t.size),
                    "label": np.repeat(np.asarray(MODEL_LABELS, dtype=object)[k_idx], t.size)
                    .astype(str)
                    .tolist(),
                    "source": [source] * (r_idx.size * t.size),
                    "threshold": np.tile(t, r_idx.size),
                    "iou": iou.reshape(-1).astype(np.float64),
                    "hit": np.repeat(hit.astype(bool), t.size),
                },
                schema_overrides={"subject_id": pl.Int64},
            )
        )
    frame = (
        pl.concat(parts)
        if parts
        else pl.DataFrame(
            schema={
                c: READING_SCHEMA[c]
                for c in READING_SCHEMA
                if c not in ("experiment", "seed", "split")
            }
        )
    )
    frame = frame.with_columns(
        pl.lit(head[0]).alias("experiment"),
        pl.lit(head[1], pl.Int64).alias("seed"),
        pl.lit(head[2]).alias("split"),
    )
    return frame.select(list(READING_SCHEMA)).cast(READING_SCHEMA)


def evaluate_splits(
    model_path: str | Path,
    *,
    index: str | Path,
    manifest: str | Path,
    ellipses: str | Path,
    splits: Sequence[str] = SPLITS,
    options: EvalOptions = EvalOptions(),
    experiment: str | None = None,
    seed: int | None = None,
) -> dict[str, SplitResult]:
    """The tidy metrics and per-item tables of one model on each of ``splits`` (module doc);
    the model is loaded once."""
    from gazeloc.model import load_model

    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {bad[:1] or splits!r}")
    from gazeloc.devices import configure_backends

    device = pick_device(options.device)
    configure_backends(device)  # the training job's fp32 settings (TF32), as its validation
    model, meta = load_model(model_path, map_location=device)
    model.to(device).eval()
    experiment = experiment if experiment is not None else str(meta.get("experiment"))
    seed = int(seed if seed is not None else meta.get("seed", 0))
    options = _trained_sources(options, meta, model_path)
    out = {}
    for split in dict.fromkeys(splits):
        log.info(
            "evaluating %s (%s, seed %d) on %s, device %s",
            model_path,
            experiment,
            seed,
            split,
            device,
        )
        mimic = mimic_auc(model, index, manifest, split, options, device)
        reflacx = reflacx_iou(model, manifest, ellipses, split, options, device)
        head = (experiment, seed, split)
        out[split] = SplitResult(
            metrics=_metric_rows(head, mimic, reflacx, options),
            images=_image_rows(head, mimic),
            readings=_reading_rows(head, reflacx, _subjects_of(index, reflacx.dicom_ids), options),
        )
    return out


def decoder_trained(meta: dict[str, Any]) -> bool:
    """Whether training ever reached the model's decoder: only annotated images give it a
    target, so a model trained without one (``unannotated``) has a decoder at its initial
    weights. A model file without the training counts falls back to the experiment's
    annotation source, and one without either counts as trained."""
    counts = (meta.get("data") or {}).get("counts") or {}
    if "annotated_train" in counts:
        return int(counts["annotated_train"]) > 0
    annotations = (meta.get("settings") or {}).get("annotations")
    return annotations is None or annotations != "none"


def _trained_sources(
    options: EvalOptions, meta: dict[str, Any], model_path: str | Path
) -> EvalOptions:
    """``options`` without the ``decoder`` source when the model never trained its decoder:
    its maps are those of random weights, and its validation IoU must not compete for the
    reported source."""
    if "decoder" not in options.sources or decoder_trained(meta):
        return options
    sources = tuple(s for s in options.sources if s != "decoder")
    if not sources:
        raise ValueError(
            f"{model_path}: evaluation.sources is only 'decoder', but this model never trained "
            "its decoder (no annotated training image); add grid or gradcam to "
            "evaluation.sources"
        )
    log.info(
        "%s: decoder left out of the heatmap sources (no annotated training image reached it)",
        model_path,
    )
    return replace(options, sources=sources)


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
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    results = evaluate_splits(
        model_path,
        index=index,
        manifest=manifest,
        ellipses=ellipses,
        splits=(split,),
        options=options,
        experiment=experiment,
        seed=seed,
    )
    return results[split].metrics


def item_paths(metrics_path: str | Path) -> tuple[Path, Path]:
    """The per-image and per-reading files beside a metrics file
    (``{split}.parquet`` → ``{split}_images.parquet``, ``{split}_readings.parquet``)."""
    path = Path(metrics_path)
    return (
        path.with_name(f"{path.stem}_images.parquet"),
        path.with_name(f"{path.stem}_readings.parquet"),
    )


def write_split(result: SplitResult, metrics_path: str | Path) -> list[Path]:
    """Write a split's metrics and per-item files (each atomically); returns their paths."""
    images, readings = item_paths(metrics_path)
    write_metrics(result.metrics, metrics_path)
    for frame, path in ((result.images, images), (result.readings, readings)):
        with atomic_path(path) as tmp:
            frame.write_parquet(tmp)
    return [Path(metrics_path), images, readings]


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


def read_items(paths: Sequence[str | Path], schema: dict[str, Any]) -> pl.DataFrame:
    """Concatenate per-item files (:data:`IMAGE_SCHEMA` or :data:`READING_SCHEMA`), checking
    their columns."""
    frames = []
    for path in paths:
        frame = pl.read_parquet(path)
        missing = [c for c in schema if c not in frame.columns]
        if missing:
            raise DataFormatError(path, "missing column", column=missing[0])
        frames.append(frame.select(list(schema)).cast(schema))
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)

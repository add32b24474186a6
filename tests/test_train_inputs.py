"""Helpers (and a check of them): small training inputs written by the documented layouts
(docs/outputs.md): an index, one image shard with its manifest, and phase-3 heatmap and
ellipse files (h5py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import polars as pl

from gazeloc.labels import MODEL_LABELS


@dataclass
class Inputs:
    index: Path
    manifest: Path
    heatmaps: Path
    ellipses: Path
    size: int


def _image(rng: np.random.Generator, size: int, box: tuple[int, int] | None) -> np.ndarray:
    image = rng.integers(0, 60, (size, size), dtype=np.uint8)
    if box is not None:
        y, x = box
        image[y : y + size // 4, x : x + size // 4] = 230
    return image


def make_inputs(
    root: Path,
    *,
    size: int = 32,
    n_train: int = 12,
    n_val: int = 8,
    n_annotated: int = 6,
    seed: int = 0,
) -> Inputs:
    """Label 0 (edema) is positive exactly when a bright square is in the image; annotated
    readings localise it (ET heatmap and ellipse on the square)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows, images, boxes = [], [], {}
    splits = ["train"] * n_train + ["val"] * n_val + ["train"] * n_annotated + ["val"] * 2
    for i, split in enumerate(splits):
        dicom = f"d{i:03d}"
        annotated = i >= n_train + n_val
        positive = bool(i % 2 == 0)
        box = (
            (int(rng.integers(2, size // 2)), int(rng.integers(2, size // 2))) if positive else None
        )
        boxes[dicom] = box
        images.append(_image(rng, size, box))
        labels = {label: bool(rng.random() < 0.3) for label in MODEL_LABELS}
        labels["edema"] = positive
        if i == 1:
            labels["fracture"] = None  # unknown label
        rows.append(
            {
                "dicom_id": dicom,
                "subject_id": 100 + i,
                "study_id": 500 + i,
                "path": f"files/p10/p{100 + i}/s{500 + i}/{dicom}.jpg",
                "split": split,
                "in_mimic": not annotated,
                "in_reflacx": annotated,
                **labels,
            }
        )
    schema = {
        "dicom_id": pl.String,
        "subject_id": pl.Int64,
        "study_id": pl.Int64,
        "path": pl.String,
        "split": pl.String,
        "in_mimic": pl.Boolean,
        "in_reflacx": pl.Boolean,
    } | {label: pl.Boolean for label in MODEL_LABELS}
    index = root / "index.parquet"
    pl.DataFrame(rows, schema=schema).write_parquet(index)
    shard = root / "shards" / "shard-000-of-001.h5"
    shard.parent.mkdir(exist_ok=True)
    with h5py.File(shard, "w") as f:
        f.create_dataset("images", data=np.stack(images), chunks=(1, size, size))
    manifest = root / "shards.parquet"
    pl.DataFrame(
        {
            "dicom_id": [r["dicom_id"] for r in rows],
            "shard": [0] * len(rows),
            "file": ["shards/shard-000-of-001.h5"] * len(rows),
            "row": list(range(len(rows))),
            "official_split": ["train"] * len(rows),
        }
    ).write_parquet(manifest)

    heatmaps, ellipses = root / "heatmaps" / "phase3.h5", root / "ellipses" / "phase3.h5"
    heatmaps.parent.mkdir(exist_ok=True)
    ellipses.parent.mkdir(exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    with h5py.File(heatmaps, "w") as fh, h5py.File(ellipses, "w") as fe:
        fh.attrs["window"] = "1.5s_startofsentence_lastmention"
        for j, r in enumerate(row for row in rows if row["in_reflacx"]):
            rid = f"P3_{j:03d}"
            et = np.zeros((10, size, size), np.float32)
            ell = np.zeros((10, size, size), bool)
            report = np.zeros(10, bool)
            box = boxes[r["dicom_id"]]
            if box is not None:
                cy, cx = box[0] + size // 8, box[1] + size // 8
                et[0] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 10) ** 2))
                ell[0] = ((xx - cx) / (size / 8)) ** 2 + ((yy - cy) / (size / 8)) ** 2 < 1
                report[0] = True
            report[5] = j == 0  # a mention whose windows were all empty: no heatmap
            full = et.max(axis=0)
            for f in (fh, fe):
                g = f.create_group(rid)
                g.attrs["split"] = r["split"]
                g.attrs["dicom_id"] = r["dicom_id"]
                g.attrs["subject_id"] = r["subject_id"]
            fh[rid].create_dataset("et", data=et.astype(np.float16))
            fh[rid].create_dataset("et_labels", data=et.reshape(10, -1).max(axis=1) > 0)
            fh[rid].create_dataset("report_labels", data=report)
            fh[rid].create_dataset("full_report", data=full.astype(np.float16))
            fe[rid].create_dataset("ellipses", data=ell)
            fe[rid].create_dataset("ellipse_labels", data=ell.reshape(10, -1).any(axis=1))
            any_labels = ell.reshape(10, -1).any(axis=1).copy()
            any_labels[2] = j == 1  # an ellipse of low certainty only
            fe[rid].create_dataset("ellipse_labels_any", data=any_labels)
    return Inputs(index, manifest, heatmaps, ellipses, size)


def resolved(annotations: str = "et", *, size: int = 32, **training) -> dict:
    """Settings of a tiny experiment (resnet18, no pretrained weights, CPU)."""
    return {
        "experiment": f"test_{annotations}",
        "annotations": annotations,
        "label_specific_heatmaps": training.pop("label_specific_heatmaps", True),
        "input_size": size,
        "model": {
            "backbone": "resnet18",
            "pretrained": "none",
            "layers": [3, 4],
            "grid": None,
            "decoder": training.pop("decoder", True),
            "double_normalization": True,
        },
        "training": {
            "epochs": 2,
            "batch_size": 4,
            "workers": 0,
            "device": "cpu",
            "checkpoint_minutes": 60.0,
            **training,
        },
    }


def test_inputs_follow_the_layout(tmp_path):
    inputs = make_inputs(tmp_path)
    with h5py.File(inputs.heatmaps) as f:
        group = f["P3_000"]
        assert group["et"].shape == (10, 32, 32) and group["full_report"].shape == (32, 32)
        assert group.attrs["split"] == "train"
    with h5py.File(inputs.ellipses) as f:
        assert f["P3_000"]["ellipses"].dtype == bool
    assert pl.read_parquet(inputs.index).height == 28

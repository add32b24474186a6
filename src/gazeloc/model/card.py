"""The model card: the facts of a trained ``model.pt``, as a dict and as ``model_card.md``.

``gazeloc train`` writes ``model_card.md`` beside every ``model.pt``;
:func:`gazeloc.model.load_model` returns the same facts under ``meta["card"]``. The card holds
what a user of the model needs to know about how it was made — experiment, seed,
initialisation (with the SHA-256 of the encoder weights it started from), the data (dataset
roots, image counts by split), the image preprocessing, the method settings, the best epoch
and its validation AUC, and the software — but no test metrics: those belong to the
evaluation outputs (so evaluating never reruns training).

Facts that a ``model.pt`` does not carry (files written by older versions) are shown as
"not recorded".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

NOT_RECORDED = "not recorded"
DEFAULT_DCT_SCALING = True
"""The ``images.dct_scaling`` default, assumed for a ``model.pt`` that does not record it."""
SOFTWARE_KEYS = ("gazeloc_version", "git_commit", "weights_sha256", "precision", "device_type")
"""Provenance keys of ``model.pt`` that the card shows when present."""


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def initialisation_facts(pretrained: str, backbone: str) -> dict[str, Any]:
    """Where the encoder's starting weights came from (``model.pretrained``), with the weight
    file and its SHA-256 when one was loaded (the same decision as ``load_encoder_weights``)."""
    from gazeloc.weights import weights_spec

    if pretrained == "none":
        return {"pretrained": "none", "weights": "random initialisation"}
    path = weights_spec({"backbone": backbone, "pretrained": pretrained}).path
    if pretrained == "imagenet" and not path.is_file():
        return {
            "pretrained": "imagenet",
            "weights": "random initialisation (ImageNet weights were not in the torch cache)",
        }
    return {
        "pretrained": pretrained,
        "weights": f"encoder weights from {path.name}",
        "weights_file": str(path),
        "weights_sha256": file_sha256(path),
    }


def image_settings(meta: dict[str, Any]) -> dict[str, Any]:
    """The frame settings of a model's metadata, with ``recorded`` false when the
    ``model.pt`` lacks them (written by an older gazeloc: the input size and the default DCT
    scaling are assumed)."""
    images = dict(meta.get("images") or {})
    size = int(images.get("size") or meta.get("model", {}).get("input_size", 512))
    dct = images.get("dct_scaling")
    return {
        "size": size,
        "dct_scaling": DEFAULT_DCT_SCALING if dct is None else bool(dct),
        "resample": images.get("resample", ""),
        "recorded": dct is not None,
    }


def card_facts(payload: dict[str, Any]) -> dict[str, Any]:
    """The card's facts from a ``model.pt`` payload (or its metadata without ``state_dict``)."""
    settings = payload.get("settings") or {}
    data = payload.get("data") or {}
    return {
        "experiment": payload.get("experiment"),
        "seed": payload.get("seed"),
        "format": payload.get("format", NOT_RECORDED),
        "initialisation": payload.get("initialisation") or NOT_RECORDED,
        "data_roots": data.get("roots") or NOT_RECORDED,
        "counts": data.get("counts") or NOT_RECORDED,
        "images": payload.get("images") or NOT_RECORDED,
        "annotations": settings.get("annotations", NOT_RECORDED),
        "label_specific_heatmaps": settings.get("label_specific_heatmaps", NOT_RECORDED),
        "model": payload.get("model", NOT_RECORDED),
        "training": payload.get("options") or settings.get("training") or NOT_RECORDED,
        "ablation": payload.get("ablation", NOT_RECORDED),
        "labels": payload.get("labels", NOT_RECORDED),
        "best_epoch": payload.get("epoch"),
        "val_auc": payload.get("val_auc"),
        **{key: payload.get(key, NOT_RECORDED) for key in SOFTWARE_KEYS},
        "numerics": payload.get("numerics") or NOT_RECORDED,
    }


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value == value else "NaN"
    if isinstance(value, (dict, list, tuple)):
        return "`" + json.dumps(value, sort_keys=True) + "`"
    return "`" + str(value) + "`" if value not in (None, NOT_RECORDED) else str(value)


def _table(rows: dict[str, Any] | str) -> list[str]:
    if isinstance(rows, str):
        return [rows, ""]
    out = ["| key | value |", "|---|---|"]
    out += [f"| {key} | {_value(value)} |" for key, value in rows.items()]
    return [*out, ""]


def render_card(facts: dict[str, Any]) -> str:
    """``model_card.md`` of :func:`card_facts`."""
    lines = [
        f"# Model card: {facts['experiment']}, seed {facts['seed']}",
        "",
        "A chest x-ray classifier of gazeloc (multiple-instance learning over a grid of cells, "
        "with a heatmap decoder when built), trained by `gazeloc train`. Apply it to new "
        "images with `gazeloc predict --model model.pt IMAGES --out DIR`. Test metrics are in "
        "the evaluation outputs (`metrics/`, `tables/`), not here.",
        "",
        "## Run",
        "",
        *_table(
            {
                "experiment": facts["experiment"],
                "seed": facts["seed"],
                "best epoch": facts["best_epoch"],
                "validation AUC (mean over labels, MIMIC val)": facts["val_auc"],
                "annotations": facts["annotations"],
                "label-specific heatmaps": facts["label_specific_heatmaps"],
                "file format": facts["format"],
            }
        ),
        "## Initialisation",
        "",
        *_table(facts["initialisation"]),
        "## Data",
        "",
        "Dataset roots:",
        "",
        *_table(facts["data_roots"]),
        "Images by split:",
        "",
        *_table(facts["counts"]),
        "## Image preprocessing",
        "",
        "Each image is scaled so that its long side is the frame side, centred and zero-padded "
        "into a square frame (the same code in training and in `gazeloc predict`).",
        "",
        *_table(facts["images"]),
        "## Method settings",
        "",
        "Architecture:",
        "",
        *_table(facts["model"]),
        "Training:",
        "",
        *_table(facts["training"]),
        "Ablation flags (label-specific heatmaps, balanced range normalisation, "
        "multi-resolution architecture, multi-task learning):",
        "",
        *_table(facts["ablation"]),
        f"Labels: {_value(facts['labels'])}",
        "",
        "## Software",
        "",
        *_table({key: facts[key] for key in SOFTWARE_KEYS}),
        "## Numerics",
        "",
        "What decides the floating-point results besides the settings: two runs are "
        "bit-identical only with the same torch build, CPU kernel path (capability, oneDNN, "
        "ISA variables) and thread count (on GPUs: the same device, CUDA and cuDNN).",
        "",
        *_table(facts["numerics"]),
    ]
    return "\n".join(lines).rstrip() + "\n"

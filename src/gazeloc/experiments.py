"""Experiments: named sets of overrides of the config's ``model`` and ``training`` sections.

The config has ``model:`` and ``training:`` (the base), ``experiment_settings:`` (per name: the
heatmap-use switches ``annotations`` and ``label_specific_heatmaps``, and overrides of
``model`` / ``training`` keys) and ``experiments:`` (the enabled names).
:func:`resolve_experiment` merges them into one plain dict — what the training rule passes to
``gazeloc train --settings`` — so that a change to one experiment reruns only that
experiment. This module does not import torch (the Snakefile imports it).

Heatmap-use switches (docs/method.md#experiments):

* ``annotations``: ``none`` (MIMIC only: the Unannotated baseline), ``ellipse`` (REFLACX
  ellipses with ellipse labels) or ``et`` (eye-tracking heatmaps with report labels);
* ``label_specific_heatmaps`` (``et`` only): false = the ablation without label-specific
  heatmaps (the full-report heatmap in every label that has an ellipse of any certainty,
  with those labels, i.e. ``ellipse_labels_any``).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from gazeloc.devices import PRECISIONS

EXPERIMENTS: tuple[str, ...] = (
    "unannotated",
    "ellipse",
    "et",
    "ellipse_15pct",
    "ablation_row1",
    "ablation_row2",
    "ablation_row3",
    "ablation_row4",
    "ablation_row5",
)
ANNOTATIONS = ("none", "ellipse", "et")
DECODER_TARGETS = ("soft", "binary")
SUBSETS = ("prefix", "random")
VANISHING_ELLIPSES = ("negative", "skip")
DEVICES = ("auto", "cpu", "cuda")
RUNTIME_KEYS = (
    "workers",
    "device",
    "compile",
    "checkpoint_minutes",
    "keep_checkpoints",
    "strict_resume",
)
"""Training keys that change how fast a run goes or what it leaves behind, not its result:
excluded from the resume fingerprint (changing them finishes from the existing checkpoint) and
from the rule's params (the rule passes them as resources, so changing them reruns nothing).
``precision`` is a method key (a change reruns training); the device only picks what
``precision: auto`` becomes, and the resume fingerprint holds that *effective* precision
(:mod:`gazeloc.devices`), so a run resumed on another device at the same precision
continues, and one at another precision starts afresh."""


@dataclass(frozen=True)
class TrainingOptions:
    """The config's ``training`` section (defaults: the paper's settings)."""

    epochs: int = 60
    batch_size: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-5
    lambda_a: float = 3.0
    lambda_t: float = 300.0
    balanced: bool = True
    heatmap_threshold: float = 0.15
    decoder_target: str = "soft"
    augment: bool = True
    augment_interpolation: str = "nearest"
    percentage_annotated: float = 1.0
    subset: str = "prefix"
    vanishing_ellipses: str = "negative"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"
    workers: int = 4
    checkpoint_minutes: float = 10.0
    keep_checkpoints: bool = False
    strict_resume: bool = False

    def __post_init__(self) -> None:
        checks = (
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0 < self.percentage_annotated <= 1, "percentage_annotated must be in (0, 1]"),
            (0 <= self.heatmap_threshold < 1, "heatmap_threshold must be in [0, 1)"),
            (self.decoder_target in DECODER_TARGETS, f"decoder_target: {DECODER_TARGETS}"),
            (self.subset in SUBSETS, f"subset must be one of {SUBSETS}"),
            (
                self.vanishing_ellipses in VANISHING_ELLIPSES,
                f"vanishing_ellipses must be one of {VANISHING_ELLIPSES}",
            ),
            (self.device in DEVICES, f"device must be one of {DEVICES}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.augment_interpolation in ("nearest", "bilinear"), "augment_interpolation"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"training: {message}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingOptions:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown training key(s): {', '.join(unknown)}")
        return cls(**values)


def resolve_experiment(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The effective settings of experiment ``name`` (module doc), a JSON-able dict with keys
    ``experiment, annotations, label_specific_heatmaps, input_size, model, training``."""
    table = config.get("experiment_settings", {})
    if name not in table:
        raise KeyError(f"experiment {name!r} has no entry in experiment_settings")
    over = table[name]
    annotations = over.get("annotations", "none")
    if annotations not in ANNOTATIONS:
        raise ValueError(f"experiment {name}: annotations must be one of {ANNOTATIONS}")
    label_specific = bool(over.get("label_specific_heatmaps", True))
    if not label_specific and annotations != "et":
        raise ValueError(f"experiment {name}: label_specific_heatmaps: false needs annotations: et")
    model = {**copy.deepcopy(config.get("model", {})), **copy.deepcopy(over.get("model", {}))}
    training = {
        **copy.deepcopy(config.get("training", {})),
        **copy.deepcopy(over.get("training", {})),
    }
    TrainingOptions.from_dict(training)  # validate
    return {
        "experiment": name,
        "annotations": annotations,
        "label_specific_heatmaps": label_specific,
        "input_size": int(config.get("images", {}).get("size", 512)),
        "model": model,
        "training": training,
    }


ANNOTATED_ONLY_KEYS = (
    "lambda_a",
    "lambda_t",
    "heatmap_threshold",
    "decoder_target",
    "percentage_annotated",
    "subset",
    "vanishing_ellipses",
)
"""Training keys that only act on annotated images: an experiment without annotations does not
depend on them (a change to one of them does not rerun it)."""


ELLIPSE_ONLY_KEYS = ("vanishing_ellipses",)
"""Training keys that only act on ellipse annotations (``annotations: ellipse``)."""


def method_settings(resolved: dict[str, Any]) -> dict[str, Any]:
    """``resolved`` without the runtime-only training keys (:data:`RUNTIME_KEYS`), for an
    experiment without annotations without :data:`ANNOTATED_ONLY_KEYS`, and for one without
    ellipse annotations without :data:`ELLIPSE_ONLY_KEYS` (their defaults are used and change
    nothing)."""
    out = copy.deepcopy(resolved)
    dropped = RUNTIME_KEYS + (ANNOTATED_ONLY_KEYS if out["annotations"] == "none" else ())
    if out["annotations"] != "ellipse":
        dropped += ELLIPSE_ONLY_KEYS
    for key in dropped:
        out["training"].pop(key, None)
    return out


def settings_json(resolved: dict[str, Any]) -> str:
    """Canonical JSON of the settings (sorted keys, compact)."""
    return json.dumps(resolved, sort_keys=True, separators=(",", ":"))


def annotation_files(resolved: dict[str, Any]) -> tuple[str, ...]:
    """Which annotation files an experiment reads: ``heatmaps``, ``ellipses``, both or none."""
    if resolved["annotations"] == "ellipse":
        return ("ellipses",)
    if resolved["annotations"] == "et":
        return ("heatmaps",) if resolved["label_specific_heatmaps"] else ("heatmaps", "ellipses")
    return ()


def ablation_flags(resolved: dict[str, Any]) -> dict[str, bool]:
    """Table 7's columns for an experiment: label-specific heatmaps (``lsh``), balanced range
    normalisation (``brn``), multi-resolution architecture (``mra``: more than one encoder
    layer), multi-task learning (``mtl``: the decoder)."""
    training = {**asdict(TrainingOptions()), **resolved["training"]}
    layers = resolved["model"].get("layers", [3, 4])
    return {
        "lsh": resolved["annotations"] == "et" and resolved["label_specific_heatmaps"],
        "brn": bool(training["balanced"]),
        "mra": len(layers) > 1,
        "mtl": bool(resolved["model"].get("decoder", True)),
    }


# --- workflow helpers (used by workflow/rules/train.smk) -----------------------------------


def annotation_paths(results: str) -> dict[str, str]:
    """The annotation files of the heatmaps stage: ``heatmaps`` and ``ellipses`` (phase 3)."""
    return {
        "heatmaps": f"{results}/heatmaps/phase3.h5",
        "ellipses": f"{results}/ellipses/phase3.h5",
    }


def train_inputs(config: dict[str, Any], results: str, experiment: str) -> dict[str, str]:
    """Input files of a training job: index, shard manifest, the annotation files and, unless
    ``model.pretrained`` is none, the pretrained weights file (``weights``) and the weights
    rule's record of its check (``weights_check``). A missing weights file raises
    :class:`gazeloc.weights.WeightsError` (the run stops before any job)."""
    from gazeloc.weights import weights_input

    files = {
        "index": f"{results}/images/index.parquet",
        "manifest": f"{results}/images/shards.parquet",
    }
    resolved = resolve_experiment(config, experiment)
    paths = annotation_paths(results)
    for kind in annotation_files(resolved):
        files[kind] = paths[kind]
    for path in weights_input(resolved["model"]):
        files["weights"] = path
        files["weights_check"] = weights_record(results, experiment)
    return files


def weights_record(results: str, experiment: str) -> str:
    """The weights rule's record of an experiment's pretrained weights (sha256, path)."""
    return f"{results}/weights/{experiment}.json"


def weights_params(config: dict[str, Any], experiment: str) -> dict[str, str]:
    """``source`` (model.pretrained) and ``expect`` (the sha256 or prefix to check against) of
    an experiment's weights."""
    from gazeloc.weights import expected_hash

    model = resolve_experiment(config, experiment)["model"]
    return {"source": str(model.get("pretrained", "imagenet")), "expect": expected_hash(model)}


def train_targets(
    config: dict[str, Any], results: str, producible: Callable[[str], bool]
) -> list[str]:
    """``model.pt`` and ``train_log.csv`` of every enabled experiment and seed. An experiment
    whose annotation file ``producible`` says no rule makes is left out (message on stderr)."""
    targets = []
    paths = annotation_paths(results)
    for experiment in config["experiments"]:
        needs = [paths[k] for k in annotation_files(resolve_experiment(config, experiment))]
        missing = [p for p in needs if not producible(p)]
        if missing:
            print(f"train: no rule makes {missing[0]}; {experiment} is left out", file=sys.stderr)
            continue
        for seed in config["seeds"]:
            run = f"{results}/models/{experiment}/seed{seed}"
            targets.extend([f"{run}/model.pt", f"{run}/train_log.csv"])
    return targets


def rule_params(config: dict[str, Any], experiment: str) -> dict[str, str]:
    """``settings``: the method settings JSON of a job (its ``params``)."""
    return {"settings": settings_json(method_settings(resolve_experiment(config, experiment)))}


def runtime_options(config: dict[str, Any], experiment: str) -> str:
    """The runtime-only keys of a job (:data:`RUNTIME_KEYS` less ``workers``) as one shell-safe
    string (e.g. ``device=cuda,compile=0,checkpoint_minutes=10.0,keep_checkpoints=0,...``),
    passed as a resource (resources are no reason to rerun). ``workers`` is derived from the
    job's threads (workers + 1), which are no reason to rerun either."""
    defaults = asdict(TrainingOptions())
    training = {**defaults, **resolve_experiment(config, experiment)["training"]}
    parts = []
    for key in RUNTIME_KEYS:
        if key == "workers":
            continue
        value = training[key]
        parts.append(f"{key}={int(value) if isinstance(value, bool) else value}")
    return ",".join(parts)


def parse_runtime_options(text: str) -> dict[str, Any]:
    """The inverse of :func:`runtime_options` (typed as :class:`TrainingOptions`)."""
    kinds = {f.name: f.type for f in fields(TrainingOptions)}
    out: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in RUNTIME_KEYS or key == "workers":
            raise ValueError(f"--runtime: {key!r} is not a runtime-only training key")
        kind = kinds[key]
        if kind in ("bool", bool):
            out[key] = value in ("1", "true", "True")
        elif kind in ("float", float):
            out[key] = float(value)
        else:
            out[key] = value
    return out

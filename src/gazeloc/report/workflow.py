"""Workflow helpers of the evaluation, tables and figures rules (workflow/rules/evaluate.smk).

Torch- and polars-free: the Snakefile imports this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from gazeloc.experiments import ablation_flags, resolve_experiment

ABLATION_ROWS = tuple(f"ablation_row{i}" for i in range(1, 6))
"""Table 7's rows besides the full model (``et``)."""
SPLITS = ("val", "test")
_MODEL = re.compile(r"/models/(?P<experiment>[^/]+)/seed(?P<seed>\d+)/model\.pt$")


def runs(train_targets: Iterable[str]) -> list[tuple[str, int]]:
    """``(experiment, seed)`` of every ``model.pt`` among the training targets, in order."""
    out = []
    for path in train_targets:
        match = _MODEL.search(str(path))
        if match:
            out.append((match["experiment"], int(match["seed"])))
    return out


def metrics_files(results: str, train_targets: Iterable[str]) -> list[str]:
    """The tidy metrics files of every trained run, for both splits."""
    return [
        f"{results}/metrics/{experiment}/seed{seed}/{split}.parquet"
        for experiment, seed in runs(train_targets)
        for split in SPLITS
    ]


def item_files(results: str, train_targets: Iterable[str]) -> list[str]:
    """The test per-item files (per-image and per-reading) of every trained run."""
    return [
        f"{results}/metrics/{experiment}/seed{seed}/test_{part}.parquet"
        for experiment, seed in runs(train_targets)
        for part in ("images", "readings")
    ]


def evaluated_experiments(train_targets: Iterable[str]) -> list[str]:
    """The experiments that are trained, in config order, once each."""
    return list(dict.fromkeys(e for e, _ in runs(train_targets)))


def first_seed_models(results: str, train_targets: Iterable[str]) -> dict[str, str]:
    """Experiment → the ``model.pt`` of its first configured seed (Figure 4)."""
    models: dict[str, str] = {}
    for experiment, seed in runs(train_targets):
        models.setdefault(experiment, f"{results}/models/{experiment}/seed{seed}/model.pt")
    return models


def ablation_enabled(config: dict[str, Any]) -> bool:
    """Table 7 is written when an ablation row is an enabled experiment."""
    return any(e in ABLATION_ROWS for e in config.get("experiments", []))


def experiment_info(config: dict[str, Any], experiments: Sequence[str]) -> str:
    """JSON of what the tables need to know of each experiment: ``annotations``, the share of
    annotated readings (``fraction``) and Table 7's flags (``ablation``). Sorted keys, so
    that the tables rerun only when one of these changes."""
    info = {}
    for experiment in experiments:
        resolved = resolve_experiment(config, experiment)
        fraction = float(resolved["training"].get("percentage_annotated", 1.0))
        info[experiment] = {
            "annotations": resolved["annotations"],
            "fraction": fraction if resolved["annotations"] != "none" else 0.0,
            "ablation": ablation_flags(resolved),
        }
    return json.dumps(info, sort_keys=True, separators=(",", ":"))


def tables_options(info: dict[str, Any], experiments: Sequence[str]) -> dict[str, Any]:
    """``ablation_flags`` and ``annotated_fractions`` for :func:`gazeloc.report.tables.
    write_tables` from :func:`experiment_info`'s JSON (decoded)."""
    rows = [e for e in experiments if e in ABLATION_ROWS]
    ablation = {e: info[e]["ablation"] for e in [*rows, "et"] if e in info} if rows else {}
    fractions = {
        e: float(info[e]["fraction"])
        for e in experiments
        if e in info
        and (info[e]["annotations"] == "ellipse" or (e == "unannotated"))
        and e not in ABLATION_ROWS
    }
    return {"ablation_flags": ablation, "annotated_fractions": fractions}


def trained_models(config: dict[str, Any], results: str, rules: Iterable[Any]) -> list[str]:
    """The training targets (``model.pt``, ``train_log.csv``) that some rule of ``rules`` (the
    workflow's) can make or that exist: :func:`gazeloc.experiments.train_targets`."""
    from pathlib import Path

    from gazeloc.experiments import train_targets

    rules = list(rules)
    return train_targets(
        config,
        results,
        lambda path: Path(path).exists() or any(r.is_producer(path) for r in rules),
    )


def metrics_inputs(config: dict[str, Any], results: str, rules: Iterable[Any]) -> list[str]:
    """The tables rule's inputs: every trained run's metrics files."""
    return metrics_files(results, trained_models(config, results, rules))


def item_inputs(config: dict[str, Any], results: str, rules: Iterable[Any]) -> list[str]:
    """The test per-item files of every trained run (bootstrap of the tables, comparisons)."""
    return item_files(results, trained_models(config, results, rules))


def model_inputs(config: dict[str, Any], results: str, rules: Iterable[Any]) -> list[str]:
    """Every trained run's ``model.pt`` (the tables record their weights and software)."""
    return [p for p in trained_models(config, results, rules) if p.endswith("/model.pt")]


def experiments_of(config: dict[str, Any], results: str, rules: Iterable[Any]) -> list[str]:
    """The experiments that are trained and evaluated, in config order."""
    return evaluated_experiments(trained_models(config, results, rules))


def figure4_models(config: dict[str, Any], results: str, rules: Iterable[Any]) -> dict[str, str]:
    """Experiment → the model of its first seed, for Figure 4."""
    return first_seed_models(results, trained_models(config, results, rules))


def train_log_inputs(config: dict[str, Any], results: str, rules: Iterable[Any]) -> list[str]:
    """The ``train_log.csv`` of every trained run (learning curves)."""
    return [t for t in trained_models(config, results, rules) if str(t).endswith("/train_log.csv")]


def test_image_inputs(config: dict[str, Any], results: str, rules: Iterable[Any]) -> list[str]:
    """The per-image test results of every trained run (ROC curves)."""
    return [
        f"{results}/metrics/{experiment}/seed{seed}/test_images.parquet"
        for experiment, seed in runs(trained_models(config, results, rules))
    ]


REPORT_TABLES = (
    "summary",
    "auc_per_label",
    "iou_per_label",
    "hit_rate_per_label",
    "ablation",
    "comparisons",
    "interrater",
    "dataset_counts",
    "labeler",
    "location_extraction",
    "realism",
)
"""The tables shown in the report (as HTML pages), in the report's order."""


def report_table_sources(targets: Iterable[str]) -> dict[str, str]:
    """Name → Markdown file of every :data:`REPORT_TABLES` table among the workflow's
    targets (those this configuration makes), in :data:`REPORT_TABLES` order."""
    by_name = {}
    for path in targets:
        name = str(path).rsplit("/", 1)[-1]
        if name.endswith(".md") and name[:-3] in REPORT_TABLES:
            by_name.setdefault(name[:-3], str(path))
    return {n: by_name[n] for n in REPORT_TABLES if n in by_name}

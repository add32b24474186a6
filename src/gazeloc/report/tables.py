"""Result tables from tidy metrics: thresholds and sources chosen on validation, mean and 95%
CI over seeds (docs/outputs.md#tables: summary, auc_per_label, iou_per_label, ablation).

Tidy metrics (``results/metrics/{experiment}/seed{seed}/{split}.parquet``) have the columns
``experiment, seed, split, dataset, metric, source, label, threshold, value, n_positive``.

Selection (docs/method.md#tables-and-confidence-intervals): for each
experiment, heatmap source and label, the threshold is the first maximiser of the validation
IoU averaged over seeds, and it is applied to every seed's test IoU. The reported source is
the one with the best mean validation IoU (``validation``) or the reference's fixed choice
(``reference``: spatial activations for ``unannotated``, the decoder otherwise).

Hit rates (metric ``hit_rate``) are reported for the reported source. With the per-item files
the summary also carries the two-level bootstrap CI (:mod:`gazeloc.report.bootstrap`), and
:func:`write_comparisons` writes the paired differences between experiments.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from gazeloc.ioutil import atomic_write_text
from gazeloc.labels import DISPLAY_NAMES, MODEL_LABELS
from gazeloc.metrics import first_argmax, mean_ci

SOURCES = ("grid", "decoder", "gradcam")
SOURCE_NAMES = {"grid": "spatial activations", "decoder": "decoder", "gradcam": "Grad-CAM"}
CI_NAMES = {
    "t": "95% CI: Student t over seeds (sample SD, n-1 degrees of freedom)",
    "normal_pop": "95% CI: mean ± 1.96·SD/√n over seeds (population SD, the reference's)",
}
ABLATION_FLAGS = ("lsh", "brn", "mra", "mtl")
_LABEL_ORDER = {label: i for i, label in enumerate(MODEL_LABELS)}


def select_thresholds(metrics: pl.DataFrame) -> pl.DataFrame:
    """Per experiment, source and label: the validation-chosen threshold and its mean IoU."""
    val = metrics.filter(
        (pl.col("split") == "val") & (pl.col("dataset") == "reflacx") & (pl.col("metric") == "iou")
    ).drop_nans("value")
    means = (
        val.group_by("experiment", "source", "label", "threshold")
        .agg(pl.col("value").mean())
        .sort("experiment", "source", "label", "threshold")
    )
    rows = []
    for (experiment, source, label), group in means.group_by(
        "experiment", "source", "label", maintain_order=True
    ):
        best = first_argmax(group["value"].to_numpy())
        rows.append((experiment, source, label, group["threshold"][best], group["value"][best]))
    return pl.DataFrame(
        rows,
        schema={
            "experiment": pl.String,
            "source": pl.String,
            "label": pl.String,
            "threshold": pl.Float64,
            "val_iou": pl.Float64,
        },
        orient="row",
    )


def select_sources(thresholds: pl.DataFrame, mode: str) -> dict[str, str]:
    """The reported heatmap source of each experiment."""
    chosen: dict[str, str] = {}
    for experiment in thresholds["experiment"].unique(maintain_order=True).to_list():
        available = thresholds.filter(pl.col("experiment") == experiment)
        if mode == "reference":
            want = "grid" if experiment == "unannotated" else "decoder"
            names = set(available["source"])
            chosen[experiment] = want if want in names else "grid"
        elif mode == "validation":
            score = available.group_by("source").agg(pl.col("val_iou").mean())
            best = max(
                SOURCES,
                key=lambda s: (
                    score.filter(pl.col("source") == s)["val_iou"].max() or -math.inf,
                    -SOURCES.index(s),
                ),
            )
            chosen[experiment] = best
        else:
            raise ValueError(f"unknown source selection {mode!r} (validation or reference)")
    return chosen


def test_iou_per_seed(
    metrics: pl.DataFrame, thresholds: pl.DataFrame, sources: Mapping[str, str]
) -> pl.DataFrame:
    """Test IoU per experiment, seed and label at the selected source and threshold."""
    chosen = thresholds.filter(
        pl.struct("experiment", "source").map_elements(
            lambda r: sources.get(r["experiment"]) == r["source"], return_dtype=pl.Boolean
        )
    ).select("experiment", "source", "label", "threshold")
    test = metrics.filter(
        (pl.col("split") == "test") & (pl.col("dataset") == "reflacx") & (pl.col("metric") == "iou")
    )
    return (
        test.join(chosen, on=["experiment", "source", "label", "threshold"], how="inner")
        .drop_nans("value")
        .select("experiment", "seed", "label", "value")
    )


def test_auc_per_seed(metrics: pl.DataFrame) -> pl.DataFrame:
    """Test AUC on MIMIC per experiment, seed and label."""
    return (
        metrics.filter(
            (pl.col("split") == "test")
            & (pl.col("dataset") == "mimic")
            & (pl.col("metric") == "auc")
        )
        .drop_nans("value")
        .select("experiment", "seed", "label", "value")
    )


def test_hit_per_seed(metrics: pl.DataFrame, sources: Mapping[str, str]) -> pl.DataFrame:
    """Test hit rate per experiment, seed and label for the reported source."""
    chosen = pl.DataFrame(
        list(sources.items()), schema={"experiment": pl.String, "source": pl.String}, orient="row"
    )
    test = metrics.filter(
        (pl.col("split") == "test")
        & (pl.col("dataset") == "reflacx")
        & (pl.col("metric") == "hit_rate")
    )
    return (
        test.join(chosen, on=["experiment", "source"], how="inner")
        .drop_nans("value")
        .select("experiment", "seed", "label", "value")
    )


def chosen_thresholds(thresholds: pl.DataFrame, sources: Mapping[str, str]) -> pl.DataFrame:
    """``experiment, source, label, threshold`` of each experiment's reported source."""
    chosen = pl.DataFrame(
        list(sources.items()), schema={"experiment": pl.String, "source": pl.String}, orient="row"
    )
    return thresholds.join(chosen, on=["experiment", "source"], how="inner").select(
        "experiment", "source", "label", "threshold"
    )


def _ci_rows(groups: pl.DataFrame, keys: Sequence[str], method: str) -> pl.DataFrame:
    rows = []
    for key, group in groups.group_by(*keys, maintain_order=True):
        values = group.sort("seed")["value"].to_list()
        mean, low, high = mean_ci(values, method)
        rows.append((*key, mean, low, high, len(values)))
    schema = {k: groups.schema[k] for k in keys}
    schema.update(
        {"mean": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "n_seeds": pl.Int64}
    )
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        pl.col("ci_low", "ci_high").fill_nan(None)
    )


def _order(frame: pl.DataFrame, experiments: Sequence[str]) -> pl.DataFrame:
    rank = {e: i for i, e in enumerate(experiments)}
    cols = [pl.col("experiment").replace_strict(rank, default=len(rank)).alias("_e")]
    if "label" in frame.columns:
        cols.append(pl.col("label").replace_strict(_LABEL_ORDER, default=99).alias("_l"))
    by = [c.meta.output_name() for c in cols]
    return frame.with_columns(cols).sort(by).drop(by)


def per_label_table(
    per_seed: pl.DataFrame, method: str, experiments: Sequence[str]
) -> pl.DataFrame:
    """``experiment, label, mean, ci_low, ci_high, n_seeds`` (canonical label order)."""
    return _order(_ci_rows(per_seed, ["experiment", "label"], method), experiments)


def seed_means(per_seed: pl.DataFrame) -> pl.DataFrame:
    """Average over labels per experiment and seed (then CIs are taken over seeds)."""
    return per_seed.group_by("experiment", "seed").agg(pl.col("value").mean())


def summary_table(
    auc: pl.DataFrame,
    iou: pl.DataFrame,
    method: str,
    experiments: Sequence[str],
    hit: pl.DataFrame | None = None,
    replicates: Mapping[tuple[str, str], object] | None = None,
) -> pl.DataFrame:
    """``experiment, metric, mean, ci_low, ci_high, n_seeds``: labels averaged per seed first.

    ``hit``: per-seed hit rates (metric ``hit_rate``). ``replicates``: ``(experiment, metric)``
    → bootstrap replicates (:mod:`gazeloc.report.bootstrap`); with them the columns
    ``boot_ci_low, boot_ci_high`` (95% percentile CI of the two-level bootstrap) follow."""
    from gazeloc.report.bootstrap import percentile_ci

    parts = []
    metrics = [("auc", auc), ("iou", iou)]
    if hit is not None and hit.height:
        metrics.append(("hit_rate", hit))
    for metric, per_seed in metrics:
        rows = _ci_rows(seed_means(per_seed).sort("experiment", "seed"), ["experiment"], method)
        parts.append(rows.with_columns(pl.lit(metric).alias("metric")))
    frame = pl.concat(parts).select("experiment", "metric", "mean", "ci_low", "ci_high", "n_seeds")
    if replicates is not None:
        bounds = [
            percentile_ci(replicates[key]) if key in replicates else (math.nan, math.nan)
            for key in zip(frame["experiment"], frame["metric"], strict=True)
        ]
        frame = frame.with_columns(
            pl.Series("boot_ci_low", [b[0] for b in bounds], pl.Float64),
            pl.Series("boot_ci_high", [b[1] for b in bounds], pl.Float64),
        ).with_columns(pl.col("boot_ci_low", "boot_ci_high").fill_nan(None))
    return _order(frame, experiments).sort(
        pl.col("experiment").replace_strict(
            {e: i for i, e in enumerate(experiments)}, default=len(experiments)
        ),
        pl.col("metric").replace_strict({"auc": 0, "iou": 1, "hit_rate": 2}, default=3),
    )


def ablation_table(
    iou: pl.DataFrame,
    flags: Mapping[str, Mapping[str, bool]],
    method: str,
    experiments: Sequence[str],
) -> pl.DataFrame:
    """``experiment, lsh, brn, mra, mtl, mean, ci_low, ci_high, n_seeds`` (IoU)."""
    rows = _ci_rows(
        seed_means(iou.filter(pl.col("experiment").is_in(list(flags)))).sort("experiment", "seed"),
        ["experiment"],
        method,
    )
    rows = rows.with_columns(
        pl.col("experiment")
        .replace_strict({e: bool(flags[e][f]) for e in flags}, return_dtype=pl.Boolean)
        .alias(f)
        for f in ABLATION_FLAGS
    )
    order = [e for e in experiments if e in flags]
    return _order(
        rows.select("experiment", *ABLATION_FLAGS, "mean", "ci_low", "ci_high", "n_seeds"), order
    )


# --- formatting ---------------------------------------------------------------------------


def cell(mean: float, low: float | None, high: float | None) -> str:
    """``0.765 [0.763, 0.767]`` (the mean alone when the interval is undefined)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _note(frame: pl.DataFrame, method: str) -> str:
    if frame.is_empty():
        return "No results."
    n = sorted(set(frame["n_seeds"].to_list()))
    seeds = ", ".join(str(v) for v in n)
    return f"Mean over seeds (n = {seeds}); {CI_NAMES[method]}."


HUMAN_COLUMN = "radiologists (phases 1–2)"


def _human_cells(human: pl.DataFrame | None) -> dict[str, str]:
    """Label → the all-images inter-radiologist IoU cell of the inter-rater table."""
    if human is None or human.is_empty():
        return {}
    rows = human.filter(pl.col("split") == "all") if "split" in human.columns else human
    return {
        r["label"]: cell(r["mean_iou"], r["ci_low"], r["ci_high"])
        for r in rows.iter_rows(named=True)
        if r["mean_iou"] is not None and not math.isnan(r["mean_iou"])
    }


def per_label_markdown(
    table: pl.DataFrame,
    title: str,
    method: str,
    experiments: Sequence[str],
    source_note: str = "",
    human: pl.DataFrame | None = None,
) -> str:
    present = [e for e in experiments if e in set(table["experiment"])]
    if not present:
        return f"# {title}\n\nNo results. {source_note}".rstrip() + "\n"
    humans = _human_cells(human)
    lines = [
        f"# {title}",
        "",
        "| Label | " + " | ".join(present) + (f" | {HUMAN_COLUMN}" if humans else "") + " |",
        "|---|" + "---|" * (len(present) + bool(humans)),
    ]
    for label in MODEL_LABELS:
        cells = []
        for experiment in present:
            row = table.filter((pl.col("experiment") == experiment) & (pl.col("label") == label))
            cells.append(
                cell(row["mean"][0], row["ci_low"][0], row["ci_high"][0]) if row.height else "–"
            )
        if any(c != "–" for c in cells):
            if humans:
                cells.append(humans.get(label, "–"))
            lines.append(f"| {DISPLAY_NAMES[label]} | " + " | ".join(cells) + " |")
    lines += ["", _note(table, method) + (" " + source_note if source_note else "")]
    if humans:
        lines += [
            "",
            f"{HUMAN_COLUMN}: mean IoU between two radiologists' ellipses of the same image "
            "(REFLACX phases 1–2, all images; 95% bootstrap CI over images; interrater.md). "
            "Those images and readings differ from the phase-3 test readings the models are "
            "scored on.",
        ]
    return "\n".join(lines) + "\n"


METRIC_NAMES = {"auc": "AUC (MIMIC)", "iou": "IoU (REFLACX)", "hit_rate": "Hit rate (REFLACX)"}


def summary_markdown(
    table: pl.DataFrame, method: str, experiments: Sequence[str], source_note: str
) -> str:
    metrics = [m for m in METRIC_NAMES if m in set(table["metric"])] or ["auc", "iou"]
    boot = "boot_ci_low" in table.columns
    lines = [
        "# Summary (test)",
        "",
        "| Experiment | " + " | ".join(METRIC_NAMES[m] for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for experiment in [e for e in experiments if e in set(table["experiment"])]:
        cells = []
        for metric in metrics:
            row = table.filter((pl.col("experiment") == experiment) & (pl.col("metric") == metric))
            text = cell(row["mean"][0], row["ci_low"][0], row["ci_high"][0]) if row.height else "–"
            if boot and row.height and row["boot_ci_low"][0] is not None:
                text += f" (bootstrap [{row['boot_ci_low'][0]:.3f}, {row['boot_ci_high'][0]:.3f}])"
            cells.append(text)
        lines.append(f"| {experiment} | " + " | ".join(cells) + " |")
    note = _note(table, method) + " Labels are averaged per seed first. "
    if boot:
        note += (
            "Bootstrap: 95% percentile CI of a two-level bootstrap that resamples the seeds "
            "and, independently, the test subjects (docs/method.md). "
        )
    lines += ["", note + source_note]
    return "\n".join(lines) + "\n"


def ablation_markdown(table: pl.DataFrame, method: str) -> str:
    lines = [
        "# Ablation (test IoU)",
        "",
        "| Experiment | LSH | BRN | MRA | MTL | IoU |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.iter_rows(named=True):
        marks = " | ".join("✓" if row[f] else "" for f in ABLATION_FLAGS)
        lines.append(
            f"| {row['experiment']} | {marks} | "
            f"{cell(row['mean'], row['ci_low'], row['ci_high'])} |"
        )
    lines += [
        "",
        _note(table, method) + " LSH: label-specific heatmaps; BRN: balanced range "
        "normalisation; MRA: multi-resolution architecture; MTL: decoder (multi-task).",
    ]
    return "\n".join(lines) + "\n"


def data_value(
    summary: pl.DataFrame, fractions: Mapping[str, float], et: str = "et"
) -> dict[str, object] | None:
    """The paper's data-value estimate (§3.3): the share of the ellipse-annotated readings at
    which ellipse supervision gives the ET model's mean test IoU.

    ``fractions`` maps the experiments trained with ellipses (and ``unannotated``, at 0) to
    their share of annotated readings. The points (share, mean IoU) are sorted by share and
    linearly interpolated; the estimate is the first share where the curve reaches the ET
    model's IoU. None without the ET model or without an ellipse experiment below 100%.
    """
    iou = {
        row["experiment"]: row["mean"]
        for row in summary.filter(pl.col("metric") == "iou").iter_rows(named=True)
    }
    if et not in iou:
        return None
    points = sorted((float(f), float(iou[e]), e) for e, f in fractions.items() if e in iou)
    if not any(0 < f < 1 for f, _, e in points if e != "unannotated"):
        return None
    target = float(iou[et])
    estimate: float | None = None
    bound = ""
    if target <= points[0][1]:
        estimate, bound = points[0][0], "at most"
    elif target > max(v for _, v, _ in points):
        estimate, bound = points[-1][0], "more than"
    else:
        for (f0, v0, _), (f1, v1, _) in itertools.pairwise(points):
            if v0 < target <= v1:
                estimate = f0 + (target - v0) / (v1 - v0) * (f1 - f0)
                break
        if estimate is None:  # reached only on a decreasing stretch: the closest point
            estimate = min(points, key=lambda p: abs(p[1] - target))[0]
            bound = "about"
    return {"et_iou": target, "points": points, "fraction": estimate, "bound": bound}


def data_value_text(value: Mapping[str, object]) -> str:
    """One Markdown paragraph stating :func:`data_value`'s estimate."""
    points = ", ".join(
        f"{e} ({100 * f:g}% of the annotated readings): {v:.3f}"
        for f, v, e in value["points"]  # type: ignore[attr-defined]
    )
    share = 100 * float(value["fraction"])  # type: ignore[arg-type]
    bound = f"{value['bound']} " if value["bound"] else ""
    return (
        f"Data value (paper §3.3): the ET model's mean test IoU is {value['et_iou']:.3f}; "
        f"with ellipse supervision: {points}. Interpolating linearly between these, the ET "
        f"data is worth {bound}{share:.1f}% of the hand-drawn ellipse annotations "
        "(the paper: about 15%, one-seventh)."
    )


def _csv(frame: pl.DataFrame) -> str:
    return frame.write_csv(float_precision=6, null_value="")


def selection_table(
    metrics: pl.DataFrame, *, experiments: Sequence[str], source: str = "validation"
) -> pl.DataFrame:
    """Per experiment, source and label: the validation-chosen threshold, its mean validation
    IoU over seeds, and ``reported`` (the experiment's reported source)."""
    thresholds = select_thresholds(metrics)
    sources = select_sources(thresholds, source)
    selection = thresholds.with_columns(
        pl.struct("experiment", "source")
        .map_elements(
            lambda r: sources.get(r["experiment"]) == r["source"], return_dtype=pl.Boolean
        )
        .alias("reported")
    )
    rank = {e: i for i, e in enumerate(experiments)}
    keys = [
        pl.col("experiment").replace_strict(rank, default=len(rank)),
        pl.col("source").replace_strict({s: i for i, s in enumerate(SOURCES)}, default=9),
        pl.col("label").replace_strict(_LABEL_ORDER, default=99),
    ]
    return selection.sort(keys)


def test_replicates(
    images: pl.DataFrame,
    readings: pl.DataFrame,
    thresholds: pl.DataFrame,
    sources: Mapping[str, str],
    experiments: Sequence[str],
    n_samples: int,
) -> dict[tuple[str, str], object]:
    """Bootstrap replicates of every summary figure from the test per-item tables."""
    from gazeloc.report import bootstrap

    images = images.filter(pl.col("split") == "test")
    readings = readings.filter(pl.col("split") == "test")
    n_seeds = max(
        [1]
        + [
            frame.filter(pl.col("experiment") == e)["seed"].n_unique()
            for e in experiments
            for frame in (images, readings)
        ]
    )
    draws = bootstrap.draw(bootstrap.test_subjects(images, readings), n_seeds, n_samples)
    return bootstrap.summary_replicates(
        images, readings, chosen_thresholds(thresholds, sources), experiments, draws, MODEL_LABELS
    )


COMPARISON_SCHEMA = {
    "metric": pl.String,
    "experiment_a": pl.String,
    "experiment_b": pl.String,
    "difference": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p_value": pl.Float64,
    "n_seeds_a": pl.Int64,
    "n_seeds_b": pl.Int64,
    "n_subjects": pl.Int64,
}


def comparisons_table(
    metrics: pl.DataFrame,
    images: pl.DataFrame,
    readings: pl.DataFrame,
    pairs: Sequence[Sequence[str]],
    *,
    source: str = "validation",
    bootstrap_samples: int = 1000,
) -> pl.DataFrame:
    """Per pair ``(A, B)`` of evaluated experiments and metric (auc, iou, hit_rate): the
    difference of the summary means A − B, its 95% paired-bootstrap CI and two-sided p-value
    (:func:`gazeloc.report.bootstrap.paired_test`; the replicates of both experiments share
    their seed and subject draws), the seed counts and the test subjects behind the metric."""
    from gazeloc.report.bootstrap import paired_test

    experiments = list(dict.fromkeys(e for pair in pairs for e in pair))
    thresholds = select_thresholds(metrics)
    sources = select_sources(thresholds, source)
    auc = test_auc_per_seed(metrics)
    iou = test_iou_per_seed(metrics, thresholds, sources)
    hit = test_hit_per_seed(metrics, sources)
    summary = summary_table(auc, iou, "t", experiments, hit)
    replicates = test_replicates(
        images, readings, thresholds, sources, experiments, bootstrap_samples
    )
    subjects = {
        "auc": images.filter(pl.col("split") == "test")["subject_id"].n_unique(),
        "iou": readings.filter(pl.col("split") == "test")["subject_id"].n_unique(),
    }
    subjects["hit_rate"] = subjects["iou"]
    point = {(r["experiment"], r["metric"]): r for r in summary.iter_rows(named=True)}
    rows = []
    for a, b in pairs:
        for metric in ("auc", "iou", "hit_rate"):
            if (a, metric) not in point or (b, metric) not in point:
                continue
            if (a, metric) not in replicates or (b, metric) not in replicates:
                continue
            low, high, p = paired_test(replicates[(a, metric)] - replicates[(b, metric)])
            rows.append(
                (
                    metric,
                    a,
                    b,
                    point[(a, metric)]["mean"] - point[(b, metric)]["mean"],
                    low,
                    high,
                    p,
                    point[(a, metric)]["n_seeds"],
                    point[(b, metric)]["n_seeds"],
                    subjects[metric],
                )
            )
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA, orient="row").with_columns(
        pl.col("ci_low", "ci_high", "p_value").fill_nan(None)
    )


def comparisons_markdown(table: pl.DataFrame, bootstrap_samples: int) -> str:
    lines = [
        "# Paired comparisons (test)",
        "",
        "| A − B | Metric | Difference [95% CI] | p | seeds (A, B) | test subjects |",
        "|---|---|---|---|---|---|",
    ]
    for r in table.iter_rows(named=True):
        p = (
            "–"
            if r["p_value"] is None
            else ("< 0.001" if r["p_value"] < 0.001 else f"{r['p_value']:.3f}")
        )
        lines.append(
            f"| {r['experiment_a']} − {r['experiment_b']} | {METRIC_NAMES[r['metric']]} | "
            f"{cell(r['difference'], r['ci_low'], r['ci_high'])} | {p} | "
            f"{r['n_seeds_a']}, {r['n_seeds_b']} | {r['n_subjects']} |"
        )
    if table.is_empty():
        lines.append("| – | no configured pair has both experiments evaluated | | | | |")
    lines += [
        "",
        f"Difference of the summary means (labels averaged per seed, then seeds). CI and p: "
        f"paired two-level bootstrap ({bootstrap_samples} replicates; each resamples the seeds "
        "and, independently, the test subjects, the same draws for both experiments); p is "
        "two-sided, twice the smaller share of replicate differences on either side of 0. "
        "IoU at each experiment's validation-chosen thresholds of its reported heatmap "
        "source; hit rate for that source.",
    ]
    return "\n".join(lines) + "\n"


def write_comparisons(
    metrics: pl.DataFrame,
    images: pl.DataFrame,
    readings: pl.DataFrame,
    out_dir: str | Path,
    *,
    pairs: Sequence[Sequence[str]],
    experiments: Sequence[str],
    source: str = "validation",
    bootstrap_samples: int = 1000,
) -> Path:
    """Write ``comparisons.csv`` and ``.md`` for the configured pairs whose experiments are
    both evaluated (the others are left out and logged)."""
    import logging

    present = set(experiments)
    kept = [tuple(p) for p in pairs if p[0] in present and p[1] in present]
    for pair in pairs:
        if tuple(pair) not in kept:
            logging.getLogger(__name__).info(
                "comparison %s − %s left out: not both evaluated", pair[0], pair[1]
            )
    table = comparisons_table(
        metrics, images, readings, kept, source=source, bootstrap_samples=bootstrap_samples
    )
    out = Path(out_dir)
    atomic_write_text(out / "comparisons.csv", _csv(table))
    atomic_write_text(out / "comparisons.md", comparisons_markdown(table, bootstrap_samples))
    return out / "comparisons.csv"


def write_selection(
    metrics: pl.DataFrame, path: str | Path, *, experiments: Sequence[str], source: str
) -> Path:
    """Write :func:`selection_table` as CSV (atomically) and return its path."""
    atomic_write_text(
        Path(path), _csv(selection_table(metrics, experiments=experiments, source=source))
    )
    return Path(path)


def provenance_markdown(runs: Sequence[Mapping[str, Any]]) -> str:
    """``summary.md``'s provenance section: per run, the sha256 of its pretrained encoder
    weights (``random``: none), the gazeloc version and the git commit that trained it."""
    lines = [
        "## Provenance",
        "",
        "| Experiment | Seed | Pretrained weights (sha256) | gazeloc | Commit |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run.get('experiment')} | {run.get('seed')} | {run.get('weights_sha256')} | "
            f"{run.get('gazeloc_version')} | {run.get('git_commit')} |"
        )
    return "\n".join(lines) + "\n"


def write_tables(
    metrics: pl.DataFrame,
    out_dir: str | Path,
    *,
    experiments: Sequence[str],
    ci_method: str = "t",
    source: str = "validation",
    ablation_flags: Mapping[str, Mapping[str, bool]] | None = None,
    annotated_fractions: Mapping[str, float] | None = None,
    selection: bool = True,
    images: pl.DataFrame | None = None,
    readings: pl.DataFrame | None = None,
    bootstrap_samples: int = 1000,
    interrater: pl.DataFrame | None = None,
    provenance: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Path]:
    """Write summary, auc_per_label, iou_per_label (and ablation) as .csv and .md, and
    ``selection.csv`` (per experiment, source and label: the validation-chosen threshold, its
    mean validation IoU, and whether the source is the reported one).

    ``selection=False`` leaves ``selection.csv`` to :func:`write_selection` (the workflow
    writes it in its own job: it does not depend on ``ci_method``).

    ``annotated_fractions``: share of annotated readings of the ellipse-trained experiments
    (and ``unannotated`` at 0) for the data-value estimate in ``summary.md``
    (:func:`data_value`).

    ``images`` and ``readings`` (the test per-item tables of every run): with them, the summary
    has bootstrap CIs (``bootstrap_samples`` replicates, :mod:`gazeloc.report.bootstrap`).
    ``interrater`` (:mod:`gazeloc.report.interrater`'s table): the radiologists' agreement is
    shown beside the experiments in ``iou_per_label.md``. Hit rates in the metrics give
    ``hit_rate_per_label`` and a summary row. ``provenance``: per run, ``experiment``, ``seed``,
    ``weights_sha256``, ``gazeloc_version`` and ``git_commit`` (a section of ``summary.md``,
    :func:`provenance_markdown`)."""
    out = Path(out_dir)
    thresholds = select_thresholds(metrics)
    sources = select_sources(thresholds, source)
    source_note = "Heatmap source per experiment ({}): {}.".format(
        "chosen on validation IoU" if source == "validation" else "the reference's choice",
        ", ".join(f"{e}: {SOURCE_NAMES[sources[e]]}" for e in experiments if e in sources),
    )
    missing = [e for e in experiments if e not in sources]
    if missing:
        source_note = (source_note if sources else "") + (
            " No validation IoU (no validation reading with an ellipse) for {}: their test "
            "IoU cannot be reported.".format(", ".join(missing))
        )
        source_note = source_note.strip()
    auc = test_auc_per_seed(metrics)
    iou = test_iou_per_seed(metrics, thresholds, sources)
    hit = test_hit_per_seed(metrics, sources)
    replicates = None
    if images is not None and readings is not None:
        replicates = test_replicates(
            images, readings, thresholds, sources, experiments, bootstrap_samples
        )
    tables = {
        "summary": (summary_table(auc, iou, ci_method, experiments, hit, replicates), None),
        "auc_per_label": (per_label_table(auc, ci_method, experiments), "AUC per label (test)"),
        "iou_per_label": (per_label_table(iou, ci_method, experiments), "IoU per label (test)"),
    }
    if (metrics["metric"] == "hit_rate").any():
        tables["hit_rate_per_label"] = (
            per_label_table(hit, ci_method, experiments),
            "Hit rate per label (test, pointing game)",
        )
    written: dict[str, Path] = {}
    for name, (table, title) in tables.items():
        if name == "summary":
            md = summary_markdown(table, ci_method, experiments, source_note)
            value = data_value(table, annotated_fractions or {})
            if value is not None:
                md += "\n" + data_value_text(value) + "\n"
            if provenance:
                md += "\n" + provenance_markdown(provenance)
        else:
            md = per_label_markdown(
                table,
                title,
                ci_method,
                experiments,
                source_note if name in ("iou_per_label", "hit_rate_per_label") else "",
                human=interrater if name == "iou_per_label" else None,
            )
        atomic_write_text(out / f"{name}.csv", _csv(table))
        atomic_write_text(out / f"{name}.md", md)
        written[name] = out / f"{name}.csv"
    if selection:
        written["selection"] = write_selection(
            metrics, out / "selection.csv", experiments=experiments, source=source
        )
    flags = {e: f for e, f in (ablation_flags or {}).items() if e in experiments}
    if flags:
        table = ablation_table(iou, flags, ci_method, experiments)
        atomic_write_text(out / "ablation.csv", _csv(table))
        atomic_write_text(out / "ablation.md", ablation_markdown(table, ci_method))
        written["ablation"] = out / "ablation.csv"
    return written

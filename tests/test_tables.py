"""Result tables from hand-made tidy metrics: selection on validation, CIs, golden files."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from gazeloc.report.tables import select_sources, select_thresholds, write_tables

GOLDEN = Path(__file__).parent / "golden" / "tables"
SEEDS = (1, 2, 3)
T_HALF = 4.302652729911275 * 0.01 / math.sqrt(3)  # t(0.975, 2) × SD 0.01 / √3


def _rows() -> list[dict]:
    rows: list[dict] = []

    def add(split, dataset, metric, source, label, threshold, experiment, values):
        for seed, value in zip(SEEDS, values, strict=True):
            rows.append(
                {
                    "experiment": experiment,
                    "seed": seed,
                    "split": split,
                    "dataset": dataset,
                    "metric": metric,
                    "source": source,
                    "label": label,
                    "threshold": threshold,
                    "value": value,
                    "n_positive": 7,
                }
            )

    # test AUC on MIMIC
    add("test", "mimic", "auc", None, "edema", None, "unannotated", [0.70, 0.72, 0.74])
    add("test", "mimic", "auc", None, "opacity", None, "unannotated", [0.80, 0.80, 0.80])
    add("test", "mimic", "auc", None, "edema", None, "et", [0.71, 0.71, 0.71])
    add("test", "mimic", "auc", None, "opacity", None, "et", [0.79, 0.81, 0.83])
    # validation IoU: unannotated is best with grid (edema at 0.5; opacity tie -> 0.1)
    for label, v1, v5 in (("edema", 0.2, 0.3), ("opacity", 0.4, 0.4)):
        add("val", "reflacx", "iou", "grid", label, 0.1, "unannotated", [v1] * 3)
        add("val", "reflacx", "iou", "grid", label, 0.5, "unannotated", [v5] * 3)
        add("val", "reflacx", "iou", "decoder", label, 0.1, "unannotated", [0.1] * 3)
        add("val", "reflacx", "iou", "decoder", label, 0.5, "unannotated", [0.1] * 3)
    # et is best with the decoder (edema at 0.1, opacity at 0.5)
    for label, v1, v5 in (("edema", 0.5, 0.4), ("opacity", 0.3, 0.6)):
        add("val", "reflacx", "iou", "decoder", label, 0.1, "et", [v1] * 3)
        add("val", "reflacx", "iou", "decoder", label, 0.5, "et", [v5] * 3)
        add("val", "reflacx", "iou", "grid", label, 0.1, "et", [0.2] * 3)
        add("val", "reflacx", "iou", "grid", label, 0.5, "et", [0.2] * 3)
    # test IoU: only the selected (source, threshold) cells carry the reported values
    add("test", "reflacx", "iou", "grid", "edema", 0.5, "unannotated", [0.30, 0.32, 0.34])
    add("test", "reflacx", "iou", "grid", "edema", 0.1, "unannotated", [0.9] * 3)
    add("test", "reflacx", "iou", "grid", "opacity", 0.1, "unannotated", [0.40, 0.40, 0.40])
    add("test", "reflacx", "iou", "grid", "opacity", 0.5, "unannotated", [0.9] * 3)
    add("test", "reflacx", "iou", "decoder", "edema", 0.1, "et", [0.50, 0.50, 0.50])
    add("test", "reflacx", "iou", "decoder", "opacity", 0.5, "et", [0.60, 0.62, 0.64])
    add("test", "reflacx", "iou", "decoder", "opacity", 0.1, "et", [0.9] * 3)
    add("test", "reflacx", "iou", "grid", "edema", 0.1, "et", [0.9] * 3)
    return rows


@pytest.fixture
def metrics() -> pl.DataFrame:
    return pl.DataFrame(
        _rows(),
        schema={
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
        },
    )


def test_threshold_and_source_selection(metrics):
    chosen = select_thresholds(metrics)
    pick = {
        (r["experiment"], r["source"], r["label"]): r["threshold"]
        for r in chosen.iter_rows(named=True)
    }
    assert pick[("unannotated", "grid", "edema")] == 0.5
    assert pick[("unannotated", "grid", "opacity")] == 0.1  # tie: the first (lowest) maximum
    assert pick[("et", "decoder", "opacity")] == 0.5
    assert select_sources(chosen, "validation") == {"unannotated": "grid", "et": "decoder"}
    assert select_sources(chosen, "reference") == {"unannotated": "grid", "et": "decoder"}


def test_tables_values_by_hand(metrics, tmp_path):
    write_tables(metrics, tmp_path, experiments=["unannotated", "et"])
    summary = pl.read_csv(tmp_path / "summary.csv")
    row = summary.filter((pl.col("experiment") == "unannotated") & (pl.col("metric") == "auc"))
    # per-seed label means 0.75, 0.76, 0.77
    assert row["mean"][0] == pytest.approx(0.76)
    assert row["ci_low"][0] == pytest.approx(0.76 - T_HALF, abs=1e-6)
    row = summary.filter((pl.col("experiment") == "et") & (pl.col("metric") == "iou"))
    assert row["mean"][0] == pytest.approx(0.56)  # (0.50 + 0.60..0.64) / 2 per seed
    iou = pl.read_csv(tmp_path / "iou_per_label.csv")
    assert iou["label"].to_list() == ["edema", "opacity", "edema", "opacity"]
    edema = iou.filter((pl.col("experiment") == "unannotated") & (pl.col("label") == "edema"))
    assert edema["mean"][0] == pytest.approx(0.32) and edema["n_seeds"][0] == 3
    assert not (tmp_path / "ablation.csv").exists()


@pytest.mark.parametrize(
    "name",
    [
        "summary.csv",
        "summary.md",
        "auc_per_label.csv",
        "auc_per_label.md",
        "iou_per_label.csv",
        "iou_per_label.md",
    ],
)
def test_golden_files(metrics, tmp_path, name):
    write_tables(metrics, tmp_path, experiments=["unannotated", "et"])
    assert (tmp_path / name).read_bytes() == (GOLDEN / name).read_bytes()


def test_reference_ci_and_ablation(metrics, tmp_path):
    flags = {
        "et": {"lsh": True, "brn": True, "mra": True, "mtl": True},
        "unannotated": {"lsh": False, "brn": False, "mra": True, "mtl": False},
    }
    write_tables(
        metrics,
        tmp_path,
        experiments=["unannotated", "et"],
        ci_method="normal_pop",
        ablation_flags=flags,
    )
    ablation = pl.read_csv(tmp_path / "ablation.csv")
    assert ablation["experiment"].to_list() == ["unannotated", "et"]
    assert ablation["lsh"].to_list() == [False, True]
    half = 1.96 * math.sqrt(2 / 3) * 0.01 / math.sqrt(3)
    assert ablation["ci_high"][1] == pytest.approx(0.56 + half, abs=1e-6)
    assert "population SD" in (tmp_path / "ablation.md").read_text()


def test_summary_records_each_runs_weights_and_software(metrics, tmp_path):
    runs = [
        {
            "experiment": "unannotated",
            "seed": 1,
            "weights_sha256": "random",
            "gazeloc_version": "0.1.0",
            "git_commit": "abc",
        },
        {
            "experiment": "et",
            "seed": 1,
            "weights_sha256": "f" * 64,
            "gazeloc_version": "0.1.0",
            "git_commit": "abc-dirty",
        },
    ]
    write_tables(metrics, tmp_path, experiments=["unannotated", "et"], provenance=runs)
    text = (tmp_path / "summary.md").read_text()
    assert text.index("# Summary") < text.index("## Provenance")
    assert "| unannotated | 1 | random | 0.1.0 | abc |" in text
    assert f"| et | 1 | {'f' * 64} | 0.1.0 | abc-dirty |" in text
    write_tables(metrics, tmp_path, experiments=["unannotated", "et"])
    assert "Provenance" not in (tmp_path / "summary.md").read_text()

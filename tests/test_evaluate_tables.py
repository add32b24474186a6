"""Tables from tidy metrics, beyond tests/test_tables.py: the ablation golden files, the
data-value estimate (paper §3.3), selection.csv, and the workflow helpers of evaluate.smk."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from test_tables import GOLDEN, metrics  # noqa: F401  (fixture)

from gazeloc.report import workflow as report_cfg
from gazeloc.report.tables import data_value, data_value_text, write_tables

FLAGS = {
    "et": {"lsh": True, "brn": True, "mra": True, "mtl": True},
    "unannotated": {"lsh": False, "brn": False, "mra": True, "mtl": False},
}


@pytest.mark.parametrize("name", ["ablation.csv", "ablation.md"])
def test_ablation_golden(metrics, tmp_path, name):  # noqa: F811
    write_tables(metrics, tmp_path, experiments=["unannotated", "et"], ablation_flags=FLAGS)
    assert (tmp_path / name).read_bytes() == (GOLDEN / name).read_bytes()


def test_selection_file(metrics, tmp_path):  # noqa: F811
    write_tables(metrics, tmp_path, experiments=["unannotated", "et"])
    selection = pl.read_csv(tmp_path / "selection.csv")
    assert selection.columns == [
        "experiment",
        "source",
        "label",
        "threshold",
        "val_iou",
        "reported",
    ]
    reported = selection.filter(pl.col("reported"))
    assert reported.select("experiment", "source", "label", "threshold").rows() == [
        ("unannotated", "grid", "edema", 0.5),
        ("unannotated", "grid", "opacity", 0.1),
        ("et", "decoder", "edema", 0.1),
        ("et", "decoder", "opacity", 0.5),
    ]


def _summary(values: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [(e, "iou", v, None, None, 3) for e, v in values.items()],
        schema=["experiment", "metric", "mean", "ci_low", "ci_high", "n_seeds"],
        orient="row",
    )


def test_data_value_by_hand():
    summary = _summary({"unannotated": 0.20, "ellipse_15pct": 0.26, "ellipse": 0.34, "et": 0.25})
    fractions = {"unannotated": 0.0, "ellipse_15pct": 0.15, "ellipse": 1.0}
    value = data_value(summary, fractions)
    assert value is not None
    assert value["fraction"] == pytest.approx(0.15 * 0.05 / 0.06)  # 12.5%
    assert "worth 12.5% of the hand-drawn" in data_value_text(value)
    # beyond the measured range: a bound, not an extrapolation
    high = data_value(_summary({"ellipse_15pct": 0.26, "ellipse": 0.34, "et": 0.40}), fractions)
    assert high["fraction"] == 1.0 and high["bound"] == "more than"
    low = data_value(_summary({"ellipse_15pct": 0.26, "ellipse": 0.34, "et": 0.10}), fractions)
    assert low["fraction"] == 0.15 and low["bound"] == "at most"
    # no estimate without the ET model or without a partial ellipse experiment
    assert data_value(_summary({"ellipse": 0.3, "ellipse_15pct": 0.2}), fractions) is None
    assert data_value(_summary({"ellipse": 0.3, "et": 0.2}), {"ellipse": 1.0}) is None


def test_summary_states_the_data_value(metrics, tmp_path):  # noqa: F811
    extra = metrics.filter(pl.col("experiment") == "unannotated").with_columns(
        pl.lit("ellipse_15pct").alias("experiment"),
        (pl.col("value") + 0.3).alias("value"),
    )
    both = pl.concat([metrics, extra])
    experiments = ["unannotated", "et", "ellipse_15pct"]
    fractions = {"unannotated": 0.0, "ellipse_15pct": 0.15}
    write_tables(both, tmp_path, experiments=experiments, annotated_fractions=fractions)
    text = (tmp_path / "summary.md").read_text()
    # unannotated 0.36, ellipse_15pct 0.66, et 0.56 (test IoU): 0.15 × 0.20 / 0.30 = 10%
    assert "Data value (paper §3.3)" in text and "worth 10.0% of" in text
    write_tables(both, tmp_path, experiments=experiments)
    assert "Data value" not in (tmp_path / "summary.md").read_text()


def test_workflow_helpers():
    config = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    targets = [
        "r/models/et/seed1/model.pt",
        "r/models/et/seed1/train_log.csv",
        "r/models/ellipse/seed2/model.pt",
        "r/models/et/seed3/model.pt",
    ]
    assert report_cfg.runs(targets) == [("et", 1), ("ellipse", 2), ("et", 3)]
    assert report_cfg.metrics_files("r", targets[:2]) == [
        "r/metrics/et/seed1/val.parquet",
        "r/metrics/et/seed1/test.parquet",
    ]
    assert report_cfg.evaluated_experiments(targets) == ["et", "ellipse"]
    assert report_cfg.first_seed_models("r", targets) == {
        "et": "r/models/et/seed1/model.pt",
        "ellipse": "r/models/ellipse/seed2/model.pt",
    }
    experiments = ["unannotated", "ellipse", "et", "ellipse_15pct", "ablation_row1"]
    info = json.loads(report_cfg.experiment_info(config, experiments))
    assert info["ellipse_15pct"]["fraction"] == 0.15 and info["unannotated"]["fraction"] == 0
    assert info["ablation_row1"]["ablation"] == {
        "lsh": False,
        "brn": False,
        "mra": False,
        "mtl": False,
    }
    options = report_cfg.tables_options(info, experiments)
    assert set(options["ablation_flags"]) == {"ablation_row1", "et"}
    assert options["annotated_fractions"] == {
        "unannotated": 0.0,
        "ellipse": 1.0,
        "ellipse_15pct": 0.15,
    }
    assert report_cfg.tables_options(info, ["et", "ellipse"])["ablation_flags"] == {}
    assert report_cfg.ablation_enabled({"experiments": ["et", "ablation_row2"]})
    assert not report_cfg.ablation_enabled(config)

"""The ``predict`` rule on the shared tiny run: the tiny study's trained et model applied to a
few of its MIMIC test JPEGs and a DICOM made here, with the run's validation selection; and
the model cards the training jobs wrote."""

from __future__ import annotations

import csv
import json
import shutil

import h5py
import hdf5plugin  # noqa: F401
import polars as pl
import pytest
from test_predict import BLOCK_VALUES, _blocks, _write_dicom
from tiny_workflow import TINY
from tiny_workflow import run as _run

from gazeloc.model import load_model
from gazeloc.model.card import render_card


@pytest.mark.slow
def test_predict_rule_and_model_cards(tiny_run, tmp_path):
    results = tiny_run / "results-tiny"
    for model_pt in sorted((results / "models").glob("*/seed1/model.pt")):
        _, meta = load_model(model_pt)
        card = (model_pt.parent / "model_card.md").read_text()
        assert card == render_card(meta["card"])
        assert meta["card"]["images"]["size"] == 64 and meta["card"]["counts"]["mimic_val"] > 0
        assert "results-tiny/synthetic/mimic-cxr-jpg" in meta["card"]["data_roots"]["mimic"]
    index = pl.read_parquet(results / "images" / "index.parquet")
    test = index.filter(pl.col("in_mimic") & (pl.col("split") == "test")).head(3)
    folder = tmp_path / "images"
    folder.mkdir()
    for rel in test["path"].to_list():
        shutil.copy(results / "synthetic" / "mimic-cxr-jpg" / rel, folder)
    _write_dicom(folder / "archive.dcm", _blocks(BLOCK_VALUES), "MONOCHROME1")
    override = tmp_path / "predict.yaml"
    override.write_text(f"predict:\n  images: {folder}\n  experiment: et\n  seed: 1\n")
    result = _run(["--cores", "1", "--configfile", TINY, str(override)], tiny_run)
    assert result.returncode == 0, result.stderr[-3000:]
    out = results / "predictions" / "et" / "seed1"
    info = json.loads((out / "predict.json").read_text())
    assert info["images"] == 4 and info["skipped"] == 0
    assert "chosen on validation" in info["source_note"]
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 4 and "archive" in {r["name"] for r in rows}
    with h5py.File(out / "heatmaps.h5") as f:
        for row in rows:
            for label in f[row["name"]]:
                assert f[row["name"]][label].shape == (int(row["height"]), int(row["width"]))
    assert len(list((out / "overlays").glob("*.png"))) == 4
    assert (results / "logs" / "predict" / "et" / "seed1.log").is_file()
    assert (results / "benchmarks" / "predict" / "et" / "seed1.tsv").is_file()

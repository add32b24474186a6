"""Evaluation: IoU and AUC against hand-computed cases, all thresholds at once against the
per-threshold definition, Grad-CAM against autograd, a tiny random model evaluated on
hand-made inputs (checked against an independent computation), the CLI."""

from __future__ import annotations

import math

import h5py
import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from test_train_inputs import make_inputs

from gazeloc.cli import main as cli_main
from gazeloc.evaluate import EvalOptions, evaluate_model, gradcam_autograd, source_maps
from gazeloc.evaluate.maps import gradcam_scale, iou_thresholds, upscale_nearest
from gazeloc.evaluate.run import SCHEMA, decoder_trained, read_metrics
from gazeloc.labels import MODEL_LABELS
from gazeloc.metrics import REFERENCE_THRESHOLDS
from gazeloc.model import ModelSettings, build_model, image_probabilities


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _definition(maps: np.ndarray, masks: np.ndarray, thresholds) -> np.ndarray:
    """IoU by the definition: upscale with torch's nearest mode, one threshold at a time."""
    size = masks.shape[-1]
    up = F.interpolate(torch.from_numpy(maps)[None], size=(size, size), mode="nearest")[0].numpy()
    out = np.zeros((maps.shape[0], len(thresholds)))
    for j, t in enumerate(thresholds):
        pred = up > t
        inter = (pred & masks).sum(axis=(1, 2))
        union = (pred | masks).sum(axis=(1, 2))
        out[:, j] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


def test_iou_by_hand():
    maps = torch.tensor([[[0.9, 0.1], [0.6, 0.0]]])  # 2×2 cells → 2×2 px blocks at 4×4
    mask = torch.zeros((1, 4, 4), dtype=torch.bool)
    mask[0, :2, :2] = True  # the 0.9 cell
    mask[0, 0, 2] = True  # one pixel of the 0.1 cell
    iou = iou_thresholds(maps, mask, [0.0, 0.1, 0.5, 0.6, 0.95]).numpy()[0]
    # t=0: 3 cells (12 px) predicted, 5 mask px all inside: 5/12
    # t=0.1 (strict): cells 0.9 and 0.6 (8 px), hit 4, union 8+5-4 = 9: 4/9; same at 0.5
    # t=0.6 (strict): cell 0.9 only (4 px), hit 4, union 5: 4/5; t=0.95: nothing, 0/5
    assert iou == pytest.approx([5 / 12, 4 / 9, 4 / 9, 4 / 5, 0.0])


def test_iou_empty_mask_and_prediction_is_zero():
    maps = torch.zeros((2, 3, 3))
    masks = torch.zeros((2, 6, 6), dtype=torch.bool)
    assert iou_thresholds(maps, masks, [0.0, 0.5]).numpy().tolist() == [[0, 0], [0, 0]]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    side=st.sampled_from([2, 3, 4, 8]),
    size=st.sampled_from([8, 10, 16, 24]),
    levels=st.integers(2, 12),
)
def test_all_thresholds_equal_the_definition(seed, side, size, levels):
    rng = np.random.default_rng(seed)
    # quantised values so that ties with the thresholds happen
    maps = (rng.integers(0, levels, (5, side, side)) / levels).astype(np.float32)
    masks = rng.random((5, size, size)) < rng.random()
    got = iou_thresholds(torch.from_numpy(maps), torch.from_numpy(masks), REFERENCE_THRESHOLDS)
    np.testing.assert_allclose(got.numpy(), _definition(maps, masks, REFERENCE_THRESHOLDS))


def test_upscale_matches_torch_nearest():
    maps = torch.rand(2, 3, 5, 5)
    for size in (5, 10, 12, 17):
        want = F.interpolate(maps, size=(size, size), mode="nearest")
        assert torch.equal(upscale_nearest(maps, size), want)


def test_iou_bad_shapes():
    with pytest.raises(ValueError):
        iou_thresholds(torch.zeros(2, 4, 4), torch.zeros(3, 8, 8, dtype=torch.bool), [0.5])
    with pytest.raises(ValueError):
        iou_thresholds(torch.zeros(1, 8, 8), torch.zeros(1, 4, 4, dtype=torch.bool), [0.5])


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = build_model(ModelSettings(backbone="resnet18", pretrained="none", input_size=32))
    with torch.no_grad():  # a non-trivial classifier bias, so that it matters in Grad-CAM
        model.classifier.bias.uniform_(-2, 2)
    return model.eval()


def test_gradcam_matches_autograd(tiny_model):
    images = torch.rand(3, 1, 32, 32)
    direct = gradcam_autograd(tiny_model, images)
    fast = source_maps(tiny_model, images, ["gradcam"])["gradcam"]
    assert fast.shape == direct.shape == (3, 10, 2, 2)
    torch.testing.assert_close(fast, direct, atol=1e-5, rtol=1e-4)
    assert float(direct.amax()) == pytest.approx(1.0, abs=1e-5)


def test_gradcam_scale_is_the_gradient_sum():
    logits = torch.randn(2, 10, 3, 3, dtype=torch.float64, requires_grad=True)
    probs = image_probabilities(logits)
    grads = torch.autograd.grad(probs.sum(), logits)[0]  # each C_k depends on its own logits
    torch.testing.assert_close(gradcam_scale(logits.detach()), grads.sum(dim=(2, 3)))


def test_source_maps_shapes_and_ranges(tiny_model):
    maps = source_maps(tiny_model, torch.rand(2, 1, 32, 32))
    assert maps["grid"].shape == (2, 10, 2, 2) and maps["decoder"].shape == (2, 10, 16, 16)
    for values in maps.values():
        assert float(values.min()) >= 0 and float(values.max()) <= 1
    no_decoder = build_model(
        ModelSettings(backbone="resnet18", pretrained="none", input_size=32, decoder=False)
    ).eval()
    assert set(source_maps(no_decoder, torch.rand(1, 1, 32, 32))) == {"grid", "gradcam"}
    with pytest.raises(ValueError):
        source_maps(tiny_model, torch.rand(1, 1, 32, 32), ["cam"])


def _save(model, path, experiment="et", seed=4):
    torch.save(
        {
            "state_dict": model.state_dict(),
            "model": model.settings.to_dict(),
            "experiment": experiment,
            "seed": seed,
        },
        path,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("evaluate"), n_val=10)


@pytest.fixture(scope="module")
def model_file(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    _save(tiny_model, path)
    return path


def _evaluate(inputs, model_file, split="val", **options):
    return evaluate_model(
        model_file,
        index=inputs.index,
        manifest=inputs.manifest,
        ellipses=inputs.ellipses,
        split=split,
        options=EvalOptions(progress=False, batch_size=3, device="cpu", **options),
    )


def test_evaluate_tiny_model_against_an_independent_computation(inputs, model_file, tiny_model):
    frame = _evaluate(inputs, model_file)
    assert frame.schema == pl.Schema(SCHEMA)
    assert set(frame["experiment"]) == {"et"} and set(frame["seed"]) == {4}
    assert frame.height == 10 + 3 * 10 * len(REFERENCE_THRESHOLDS) + 3 * 10  # + hit rates
    index = pl.read_parquet(inputs.index)
    # AUC: MIMIC val images, null labels left out
    from gazeloc.datasets.shards import ShardDataset

    mimic = index.filter(pl.col("in_mimic") & (pl.col("split") == "val"))
    ids = mimic["dicom_id"].to_list()
    shards = ShardDataset(inputs.manifest, ids)
    images = torch.from_numpy(np.stack([shards.read(i) for i in range(len(ids))]))[:, None]
    with torch.no_grad():
        probs = image_probabilities(tiny_model(images.float() / 255).grid_logits).numpy()
    auc = frame.filter(pl.col("metric") == "auc")
    for k, label in enumerate(MODEL_LABELS):
        y = mimic[label]
        keep = y.is_not_null().to_numpy()
        yk = y.fill_null(False).to_numpy()[keep]
        row = auc.filter(pl.col("label") == label)
        assert row["n_positive"][0] == yk.sum()
        if 0 < yk.sum() < yk.size:
            assert row["value"][0] == pytest.approx(roc_auc_score(yk, probs[keep, k]))
        else:
            assert math.isnan(row["value"][0])
    # IoU: the val readings, positive-only mean, by the per-threshold definition
    with h5py.File(inputs.ellipses) as f:
        rids = [r for r in f if f[r].attrs["split"] == "val"]
        dicoms = [f[r].attrs["dicom_id"] for r in rids]
        masks = np.stack([f[r]["ellipses"][()] for r in rids])
        positive = np.stack([f[r]["ellipse_labels"][()] for r in rids])
    shards = ShardDataset(inputs.manifest, dicoms)
    images = torch.from_numpy(np.stack([shards.read(i) for i in range(len(rids))]))[:, None]
    maps = source_maps(tiny_model, images.float() / 255)
    iou = frame.filter(pl.col("metric") == "iou")
    assert positive[:, 0].sum() >= 1
    for source, values in maps.items():
        for k, label in enumerate(MODEL_LABELS):
            rows = iou.filter((pl.col("source") == source) & (pl.col("label") == label))
            assert rows["threshold"].to_list() == list(REFERENCE_THRESHOLDS)
            assert set(rows["n_positive"]) == {int(positive[:, k].sum())}
            if not positive[:, k].any():
                assert rows["value"].is_nan().all()
                continue
            per_image = _definition(values[:, k].numpy(), masks[:, k], REFERENCE_THRESHOLDS)
            want = per_image[positive[:, k]].mean(axis=0)
            np.testing.assert_allclose(rows["value"].to_numpy(), want, atol=1e-12)
            # hit rate by the definition: the upscaled map's centre pixel of the first maximum
            # (the frame pixels that nearest-neighbour upscaling maps to that cell)
            side, size = values.shape[-1], masks.shape[-1]
            hits = []
            for i in np.flatnonzero(positive[:, k]):
                r, c = divmod(int(np.argmax(values[i, k].numpy())), side)
                rows_r = [y for y in range(size) if y * side // size == r]
                cols_c = [x for x in range(size) if x * side // size == c]
                y, x = rows_r[(len(rows_r) - 1) // 2], cols_c[(len(cols_c) - 1) // 2]
                hits.append(bool(masks[i, k, y, x]))
            hit = frame.filter(
                (pl.col("metric") == "hit_rate")
                & (pl.col("source") == source)
                & (pl.col("label") == label)
            )
            assert hit["value"][0] == pytest.approx(np.mean(hits))


def test_evaluate_empty_split_gives_nan_rows(inputs, model_file):
    frame = _evaluate(inputs, model_file, split="test", sources=("grid",), thresholds=(0.5,))
    assert frame.height == 10 + 10 + 10
    assert frame["value"].is_nan().all() and (frame["n_positive"] == 0).all()


def test_bad_options_and_split(inputs, model_file):
    with pytest.raises(ValueError):
        EvalOptions(thresholds=(0.5, 0.1))
    with pytest.raises(ValueError):
        EvalOptions(sources=("cam",))
    with pytest.raises(ValueError):
        _evaluate(inputs, model_file, split="train")


def test_cli_evaluate_tables_figures(inputs, model_file, tmp_path):
    out = tmp_path / "metrics" / "val.parquet"
    args = ["--model", str(model_file), "--index", str(inputs.index)]
    args += ["--manifest", str(inputs.manifest), "--ellipses", str(inputs.ellipses)]
    args += ["--split", "val", "--experiment", "ellipse", "--seed", "2"]
    args += ["--thresholds", "0.1", "0.5", "--batch-size", "4", "--device", "cpu"]
    code = cli_main(["evaluate", *args, "--no-progress", "--out", str(out)])
    assert code == 0
    frame = read_metrics([out])
    assert set(frame["experiment"]) == {"ellipse"} and set(frame["seed"]) == {2}
    assert set(frame.filter(pl.col("metric") == "iou")["threshold"]) == {0.1, 0.5}
    assert not list(out.parent.glob(".*tmp"))
    # the same numbers serve as a test split, for a second seed, to exercise tables/figures
    both = pl.concat(
        [
            frame,
            frame.with_columns(pl.lit("test").alias("split")),
            frame.with_columns(pl.lit(3, pl.Int64).alias("seed")),
            frame.with_columns(pl.lit("test").alias("split"), pl.lit(3, pl.Int64).alias("seed")),
        ]
    )
    metrics = tmp_path / "all.parquet"
    both.write_parquet(metrics)
    tables = tmp_path / "tables"
    assert cli_main(["tables", "--metrics", str(metrics), "--out-dir", str(tables)]) == 0
    summary = pl.read_csv(tables / "summary.csv")
    assert summary["n_seeds"].to_list() == [2, 2, 2]
    assert summary["metric"].to_list() == ["auc", "iou", "hit_rate"]
    selection = pl.read_csv(tables / "selection.csv")
    assert selection.filter(pl.col("reported"))["source"].n_unique() == 1
    figures = tmp_path / "figures"
    # inputs have no test readings: relabel the val ones as test for Figure 4
    ellipses = tmp_path / "ellipses.h5"
    ellipses.write_bytes(inputs.ellipses.read_bytes())
    with h5py.File(ellipses, "a") as f:
        for r in f:
            if f[r].attrs["split"] == "val":
                f[r].attrs["split"] = "test"
    args = ["--iou-bars", str(figures / "iou.png"), "--iou-table"]
    args += [str(tables / "iou_per_label.csv"), "--figure4", str(figures / "figure4.png")]
    args += ["--selection", str(tables / "selection.csv"), "--models", f"ellipse={model_file}"]
    args += ["--manifest", str(inputs.manifest), "--ellipses", str(ellipses), "--device", "cpu"]
    code = cli_main(["figures", *args])
    assert code == 0
    for name in ("iou.png", "figure4.png"):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_both_splits_per_item_files_bootstrap_and_comparisons(inputs, model_file, tmp_path):
    """One evaluation writes both splits and their per-item files; the tables' bootstrap and
    the comparisons read them (the val numbers stand in for a test split here)."""
    from gazeloc.evaluate.run import IMAGE_SCHEMA, READING_SCHEMA

    run = tmp_path / "metrics" / "ellipse" / "seed2"
    args = ["--model", str(model_file), "--index", str(inputs.index)]
    args += ["--manifest", str(inputs.manifest), "--ellipses", str(inputs.ellipses)]
    args += ["--split", "val", "test", "--experiment", "ellipse", "--seed", "2"]
    args += ["--thresholds", "0.1", "0.5", "--device", "cpu", "--no-progress"]
    assert cli_main(["evaluate", *args, "--out-dir", str(run)]) == 0
    names = sorted(p.name for p in run.iterdir())
    assert names == [
        f"{s}{part}.parquet" for s in ("test", "val") for part in ("", "_images", "_readings")
    ]
    images = pl.read_parquet(run / "val_images.parquet")
    readings = pl.read_parquet(run / "val_readings.parquet")
    assert images.schema == pl.Schema(IMAGE_SCHEMA) and readings.schema == pl.Schema(READING_SCHEMA)
    metrics = pl.read_parquet(run / "val.parquet")
    auc = metrics.filter((pl.col("metric") == "auc") & (pl.col("label") == "edema"))
    edema = images.filter((pl.col("label") == "edema") & pl.col("target").is_not_null())
    want = roc_auc_score(edema["target"].to_numpy(), edema["probability"].to_numpy())
    assert auc["value"][0] == pytest.approx(want)
    iou = metrics.filter((pl.col("metric") == "iou") & (pl.col("label") == "edema"))
    per_reading = readings.filter(pl.col("label") == "edema")
    for row in iou.iter_rows(named=True):
        values = per_reading.filter(
            (pl.col("source") == row["source"]) & (pl.col("threshold") == row["threshold"])
        )["iou"]
        assert values.len() == row["n_positive"] and values.mean() == pytest.approx(row["value"])
    # two experiments x two seeds of "test" results made from the val ones
    files = []
    for experiment in ("ellipse", "et"):
        for seed in (2, 3):
            folder = tmp_path / "all" / experiment / f"seed{seed}"
            folder.mkdir(parents=True)
            for part in ("", "_images", "_readings"):
                frame = pl.read_parquet(run / f"val{part}.parquet").with_columns(
                    pl.lit(experiment).alias("experiment"), pl.lit(seed, pl.Int64).alias("seed")
                )
                frame.write_parquet(folder / f"val{part}.parquet")
                frame.with_columns(pl.lit("test").alias("split")).write_parquet(
                    folder / f"test{part}.parquet"
                )
            files += [str(folder / "val.parquet"), str(folder / "test.parquet")]
    tables = tmp_path / "tables"
    boot = ["--bootstrap-samples", "200"]
    code = cli_main(["tables", "--metrics", *files, "--out-dir", str(tables), "--bootstrap", *boot])
    assert code == 0
    summary = pl.read_csv(tables / "summary.csv")
    assert summary.columns[-2:] == ["boot_ci_low", "boot_ci_high"]
    for row in summary.iter_rows(named=True):
        assert (
            row["boot_ci_low"] <= row["mean"] + 1e-9 and row["mean"] - 1e-9 <= row["boot_ci_high"]
        )
    assert (tables / "hit_rate_per_label.md").read_text().startswith("# Hit rate per label")
    pairs = ["--pairs", "et:ellipse"]
    code = cli_main(["comparisons", "--metrics", *files, "--out-dir", str(tables), *pairs, *boot])
    assert code == 0
    comparisons = pl.read_csv(tables / "comparisons.csv")
    assert comparisons["metric"].to_list() == ["auc", "iou", "hit_rate"]
    # identical results: a difference of 0 in every replicate, p = 1
    assert comparisons["difference"].to_list() == [0.0, 0.0, 0.0]
    assert comparisons["p_value"].to_list() == [1.0, 1.0, 1.0]


def test_read_metrics_missing_column(tmp_path):
    from gazeloc.errors import DataFormatError

    path = tmp_path / "m.parquet"
    pl.DataFrame({"experiment": ["et"]}).write_parquet(path)
    with pytest.raises(DataFormatError, match="seed"):
        read_metrics([path])


@pytest.mark.parametrize(
    ("meta", "trained"),
    [
        ({"data": {"counts": {"annotated_train": 0}}, "settings": {"annotations": "et"}}, False),
        ({"data": {"counts": {"annotated_train": 7}}, "settings": {"annotations": "none"}}, True),
        ({"settings": {"annotations": "none"}}, False),
        ({"settings": {"annotations": "ellipse"}}, True),
        ({}, True),
    ],
)
def test_decoder_trained_reads_the_training_counts_first(meta, trained):
    assert decoder_trained(meta) is trained


def test_an_untrained_decoder_is_left_out_of_the_sources(inputs, tiny_model, tmp_path, caplog):
    path = tmp_path / "model.pt"
    torch.save(
        {
            "state_dict": tiny_model.state_dict(),
            "model": tiny_model.settings.to_dict(),
            "experiment": "unannotated",
            "seed": 1,
            "data": {"counts": {"annotated_train": 0}},
        },
        path,
    )
    with caplog.at_level("INFO", logger="gazeloc.evaluate.run"):
        frame = _evaluate(inputs, path)
    assert set(frame.filter(pl.col("metric") == "iou")["source"]) == {"grid", "gradcam"}
    assert set(frame.filter(pl.col("metric") == "hit_rate")["source"]) == {"grid", "gradcam"}
    assert "decoder left out" in caplog.text
    with pytest.raises(ValueError, match="never trained its decoder"):
        _evaluate(inputs, path, sources=("decoder",))

"""``gazeloc predict``: the inverse frame mapping (property test), DICOM and 16-bit PNG
conversion against hand-computed values, bad files listed as skipped, the tiny model's
probabilities on JPEGs against the evaluation stage's, the outputs, and the model card."""

from __future__ import annotations

import csv
import json

import h5py
import hdf5plugin  # noqa: F401  (Blosc-compressed heatmaps)
import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from gazeloc.cli import main as cli_main
from gazeloc.errors import DataFormatError
from gazeloc.images.frame import frame_array, frame_geometry, load_frame
from gazeloc.labels import MODEL_LABELS
from gazeloc.model import ModelSettings, build_model, load_model
from gazeloc.model.card import NOT_RECORDED, card_facts, render_card
from gazeloc.predict import PredictOptions, equalize, load_image, predict, to_image
from gazeloc.predict.geometry import frame_to_image_point
from gazeloc.predict.read import UnsupportedImage

SIZE = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- the inverse frame mapping --------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(64, 1600),
    height=st.integers(64, 1600),
    size=st.sampled_from([16, 32, 64]),
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
)
@example(width=1200, height=1600, size=32, fx=0.3, fy=0.8)  # portrait
@example(width=1600, height=1200, size=32, fx=0.9, fy=0.1)  # landscape
@example(width=700, height=700, size=64, fx=0.0, fy=1.0)  # square, corners
def test_peak_lands_on_the_original_pixel(width, height, size, fx, fy):
    g = frame_geometry(width, height, size)
    # a peak at a frame pixel inside the resized image
    x = g.left + min(g.w - 1, int(fx * g.w))
    y = g.top + min(g.h - 1, int(fy * g.h))
    heat = np.zeros((size, size), np.float32)
    heat[y, x] = 1.0
    out = to_image(heat, g)
    assert out.shape == (height, width) and out.dtype == np.float32
    ys, xs = np.nonzero(out)
    assert ys.size > 0
    want_x, want_y = frame_to_image_point(x, y, g)
    # the frame pixel covers W/w original pixels: its centre is that block's centre
    assert abs(xs.mean() - want_x) <= 1 and abs(ys.mean() - want_y) <= 1
    assert xs.max() - xs.min() + 1 <= np.ceil(width / g.w) + 1
    assert ys.max() - ys.min() + 1 <= np.ceil(height / g.h) + 1


def test_padding_is_never_sampled_and_grid_cells_cover_blocks():
    g = frame_geometry(300, 600, 32)  # portrait: padded left and right
    assert (g.w, g.h, g.left, g.top) == (16, 32, 8, 0)
    heat = np.zeros((32, 32), np.float32)
    heat[:, :8] = heat[:, 24:] = 5.0  # the padding
    assert to_image(heat, g).max() == 0
    grid = np.arange(4, dtype=np.float32).reshape(2, 2)  # 2x2 cells of 16 frame px
    out = to_image(grid, g)
    # frame column 8..15 is cell 0, 16..23 cell 1: the image's left half / right half
    assert (out[:, :150] == grid[:, :1].repeat(150, 1).repeat(300, 0)).all()
    assert (out[:300, 150:] == 1).all() and (out[300:, 150:] == 3).all()
    small = to_image(grid, g, (30, 60))
    assert small.shape == (60, 30) and (small[:30, 15:] == 1).all()


# --- conversion of DICOM and wide PNG ----------------------------------------------------------

BLOCK_VALUES = (0, 100, 200, 400)
"""Four equal blocks: min-max gives 0, 64, 128, 255; equalisation 0, 85, 170, 255."""


def _blocks(values, dtype=np.uint16) -> np.ndarray:
    a = np.zeros((48, 64), dtype)
    a[:24, :32], a[:24, 32:], a[24:, :32], a[24:, 32:] = values
    return a


def _write_dicom(path, pixels, photometric, slope=2.0, intercept=-1024.0):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_equalize_by_hand():
    image = _blocks((0, 64, 128, 255), np.uint8)
    assert sorted(np.unique(equalize(image))) == [0, 85, 170, 255]
    skewed = np.array([[10, 10, 10, 20]], np.uint8)  # cdf 3, 4: (4-3)*255/(4-3) = 255
    assert equalize(skewed).tolist() == [[0, 0, 0, 255]]
    assert equalize(np.full((2, 2), 7, np.uint8)).tolist() == [[7, 7], [7, 7]]


@pytest.mark.parametrize(
    ("photometric", "want"),
    [("MONOCHROME2", (0, 85, 170, 255)), ("MONOCHROME1", (255, 170, 85, 0))],
)
def test_dicom_conversion(tmp_path, photometric, want):
    path = tmp_path / "image.dcm"
    _write_dicom(path, _blocks(BLOCK_VALUES), photometric)
    loaded = load_image(path, SIZE, display_limit=0)
    assert (loaded.width, loaded.height, loaded.kind) == (64, 48, f"DICOM {photometric}")
    expected = _blocks(want, np.uint8)
    np.testing.assert_array_equal(loaded.display, expected)
    np.testing.assert_array_equal(loaded.frame, frame_array(expected, SIZE))


def test_dicom_without_preamble_name_and_compressed_without_decoder(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    path = tmp_path / "j2k.dcm"
    _write_dicom(path, _blocks(BLOCK_VALUES), "MONOCHROME2")
    import pydicom

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\x00\x01not a codestream"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(UnsupportedImage, match="cannot decode the pixel data"):
        load_image(path, SIZE)


def test_16_bit_png(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(_blocks((1000, 2000, 3000, 65535))).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    loaded = load_image(path, SIZE, display_limit=0)
    expected = _blocks((0, 85, 170, 255), np.uint8)
    np.testing.assert_array_equal(loaded.display, expected)
    np.testing.assert_array_equal(loaded.frame, frame_array(expected, SIZE))


def test_rgb_png_is_luma_and_gray_jpeg_is_the_training_frame(tmp_path):
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 200, 100
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    loaded = load_image(tmp_path / "rgb.png", SIZE)
    luma = round(0.299 * 200 + 0.587 * 100)
    assert abs(int(loaded.display[20, 25]) - luma) <= 1
    gray = (np.random.default_rng(0).random((700, 500)) * 255).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "big.jpg", quality=95)
    for dct in (True, False):
        got = load_image(tmp_path / "big.jpg", SIZE, dct_scaling=dct).frame
        np.testing.assert_array_equal(got, load_frame(tmp_path / "big.jpg", SIZE, dct_scaling=dct))


# --- a tiny model, JPEGs, shards and the evaluation -------------------------------------------


def _tiny_model_file(path, images=None, decoder=True):
    torch.manual_seed(0)
    settings = ModelSettings(
        backbone="resnet18", pretrained="none", input_size=SIZE, decoder=decoder
    )
    model = build_model(settings).eval()
    with torch.no_grad():
        model.classifier.bias.uniform_(-6, 2)  # probabilities on both sides of 0.5
    payload = {
        "state_dict": model.state_dict(),
        "model": settings.to_dict(),
        "experiment": "et",
        "seed": 1,
        "epoch": 2,
        "val_auc": 0.5,
        "labels": list(MODEL_LABELS),
    }
    if images is not None:
        payload["images"] = images
    torch.save(payload, path)
    return model


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """JPEGs of several shapes (two at least twice the frame: the DCT-scaled path), the
    image stage's shards of them, an index, and a tiny model that records the frame."""
    from gazeloc.datasets.shards import manifest_image_settings
    from gazeloc.images.shards import merge_shards, write_shard

    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(1)
    shapes = [(300, 400), (400, 300), (96, 96), (33, 70), (120, 64)]
    rows = []
    for i, (w, h) in enumerate(shapes):
        dicom = f"img{i}"
        rel = f"files/p10/p10{i}/s50{i}/{dicom}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[0:h, 0:w]
        pixels = 80 + 60 * np.sin(xx / 9.0) + 40 * np.cos(yy / 7.0) + rng.normal(0, 10, (h, w))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / rel, quality=95)
        rows.append(
            {"dicom_id": dicom, "path": rel, "width": w, "height": h, "official_split": "test"}
        )
    images = pl.DataFrame(rows)
    shard = root / "shards" / "shard-000-of-001.h5"
    write_shard(images, root, shard, size=SIZE, dct_scaling=True, progress=False)
    manifest = root / "shards.parquet"
    merge_shards([shard], [], manifest, root / "skipped.csv")
    labels = {label: [bool(i % 2) for i in range(len(rows))] for label in MODEL_LABELS}
    index = pl.DataFrame(
        {
            "dicom_id": images["dicom_id"],
            "subject_id": list(range(10000001, 10000001 + len(rows))),
            "path": images["path"],
            "split": ["test"] * len(rows),
            "in_mimic": [True] * len(rows),
            "in_reflacx": [False] * len(rows),
            **labels,
        }
    )
    index.write_parquet(root / "index.parquet")
    results = root / "results"
    model_path = results / "models" / "et" / "seed1" / "model.pt"
    model_path.parent.mkdir(parents=True)
    settings = manifest_image_settings(manifest)
    assert settings["dct_scaling"] is True and settings["size"] == SIZE
    _tiny_model_file(model_path, images=settings)
    return {
        "root": root,
        "manifest": manifest,
        "index": root / "index.parquet",
        "model": model_path,
        "rows": rows,
    }


def _read_predictions(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_probabilities_equal_the_evaluation_stage(study, tmp_path, monkeypatch):
    import gazeloc.model as model_module
    from gazeloc.evaluate.run import EvalOptions, mimic_auc

    captured = []
    original = model_module.image_probabilities

    def capture(logits):
        out = original(logits)
        captured.append(out.detach().clone())
        return out

    monkeypatch.setattr(model_module, "image_probabilities", capture)
    model, _ = load_model(study["model"])
    options = EvalOptions(progress=False, batch_size=2, device="cpu")
    mimic_auc(model, study["index"], study["manifest"], "test", options, torch.device("cpu"))
    monkeypatch.undo()
    evaluated = torch.cat(captured).double().numpy()  # in index order

    files = [study["root"] / r["path"] for r in study["rows"]]
    summary = predict(
        study["model"], files, tmp_path, PredictOptions(progress=False, device="cpu", batch_size=3)
    )
    assert summary["images"] == len(files) and summary["skipped"] == 0
    got = _read_predictions(tmp_path / "predictions.csv")
    assert [r["path"] for r in got] == [str(f) for f in files]
    probs = np.array([[float(r[label]) for label in MODEL_LABELS] for r in got])
    np.testing.assert_allclose(probs, evaluated, rtol=1e-6, atol=1e-7)
    assert [(int(r["width"]), int(r["height"])) for r in got] == [
        (r["width"], r["height"]) for r in study["rows"]
    ]


def _selection(path, source="decoder", threshold=0.35):
    rows = ["experiment,source,label,threshold,val_iou,reported"]
    for s in ("grid", "decoder", "gradcam"):
        for label in MODEL_LABELS:
            rows.append(f"et,{s},{label},{threshold if s == source else 0.1},0.2,{s == source}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def test_outputs_with_the_results_selection(study, tmp_path):
    selection = study["model"].parents[3] / "tables" / "selection.csv"
    _selection(selection)
    try:
        out = tmp_path / "out"
        folder = study["root"] / "files"
        code = cli_main(
            ["predict", "--model", str(study["model"]), str(folder), "--out", str(out),
             "--device", "cpu", "--no-progress", "--overlay-size", "64"]
        )  # fmt: skip
    finally:
        selection.unlink()
    assert code == 0
    info = json.loads((out / "predict.json").read_text())
    assert info["source"] == "decoder" and "chosen on validation" in info["source_note"]
    assert info["thresholds"]["edema"] == pytest.approx(0.35)
    rows = _read_predictions(out / "predictions.csv")
    assert len(rows) == 5
    with h5py.File(out / "heatmaps.h5") as f:
        assert f.attrs["source"] == "decoder"
        for row in rows:
            group = f[row["name"]]
            reported = [k for k in MODEL_LABELS if float(row[k]) >= 0.5]
            assert sorted(group) == sorted(reported)
            for label in reported:
                heat = group[label]
                assert heat.dtype == np.float16
                assert heat.shape == (int(row["height"]), int(row["width"]))
                assert heat.attrs["threshold"] == pytest.approx(0.35)
                assert heat.attrs["probability"] == pytest.approx(float(row[label]), rel=1e-5)
                assert heat.compression is not None or heat._filters
            assert (out / "overlays" / f"{row['name']}.png").is_file()
    with Image.open(out / "overlays" / f"{rows[0]['name']}.png") as im:
        assert im.height == 64  # the 300 x 400 image at overlay size 64


def test_no_selection_uses_the_reference_source(study, tmp_path):
    summary = predict(
        study["model"],
        [study["root"] / study["rows"][0]["path"]],
        tmp_path,
        PredictOptions(progress=False, device="cpu", source="chosen", all_labels=True),
    )
    assert summary["source"] == "decoder" and "no selection.csv" in summary["source_note"]
    assert set(summary["thresholds"].values()) == {None}
    with h5py.File(tmp_path / "heatmaps.h5") as f:
        group = f[next(iter(f))]
        assert sorted(group) == sorted(MODEL_LABELS)
        assert all("threshold" not in group[k].attrs for k in group)
    grid = predict(
        study["model"],
        [study["root"] / study["rows"][0]["path"]],
        tmp_path / "grid",
        PredictOptions(progress=False, device="cpu", source="gradcam", min_probability=1.0),
    )
    assert grid["source"] == "gradcam"


def test_bad_files_are_listed_as_skipped(study, tmp_path):
    good = study["root"] / study["rows"][0]["path"]
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    data = good.read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (bad / "notes.txt").write_text("not an image\n")
    Image.new("L", (20, 20)).save(bad / "scan.tif")
    (bad / "garbage.dcm").write_bytes(b"\x00" * 300)
    (bad / "good.jpg").write_bytes(data)
    _write_dicom(bad / "scan.dcm", _blocks(BLOCK_VALUES), "MONOCHROME1")
    out = tmp_path / "out"
    options = PredictOptions(progress=False, device="cpu", workers=1)  # a reading process
    summary = predict(study["model"], [bad], out, options)
    assert summary["images"] == 2 and summary["skipped"] == 5
    skipped = {
        r["path"].rsplit("/", 1)[-1]: r["reason"] for r in _read_predictions(out / "skipped.csv")
    }
    assert skipped["empty.jpg"] == "empty file"
    assert "truncated" in skipped["truncated.jpg"] or "decode" in skipped["truncated.jpg"]
    assert "not a readable image" in skipped["notes.txt"]
    assert "TIFF images are not supported" in skipped["scan.tif"]
    assert "DICOM" in skipped["garbage.dcm"]
    rows = _read_predictions(out / "predictions.csv")
    assert [(r["name"], r["width"], r["height"]) for r in rows] == [
        ("good", "300", "400"),
        ("scan", "64", "48"),
    ]
    with h5py.File(out / "heatmaps.h5") as f:
        assert sorted(f) == ["good", "scan"] and f["scan"].attrs["kind"] == "DICOM MONOCHROME1"
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["good.png", "scan.png"]
    strict = tmp_path / "strict"
    with pytest.raises(DataFormatError, match=r"empty\.jpg: empty file"):
        predict(study["model"], [bad], strict, PredictOptions(progress=False, strict=True))
    assert not (strict / "predictions.csv").exists() and not (strict / "heatmaps.h5").exists()
    code = cli_main(["predict", "--model", str(study["model"]), str(bad), "--out", str(strict),
                     "--strict", "--no-progress"])  # fmt: skip
    assert code == 2


def test_old_model_without_image_settings_warns(study, tmp_path, caplog):
    old = tmp_path / "old.pt"
    _tiny_model_file(old)
    summary = predict(
        old,
        [study["root"] / study["rows"][2]["path"]],
        tmp_path / "o",
        PredictOptions(progress=False),
    )
    assert summary["images"] == 1
    assert "does not record its image settings" in caplog.text


# --- the model card -----------------------------------------------------------------------------


def test_train_writes_the_model_card(tmp_path):
    from test_train_inputs import make_inputs, resolved

    from gazeloc.train.loop import train

    inputs = make_inputs(tmp_path / "inputs")
    out = tmp_path / "run"
    train(
        resolved("et", epochs=1),
        index=inputs.index,
        manifest=inputs.manifest,
        heatmaps=inputs.heatmaps,
        out_dir=out,
        seed=2,
        progress=False,
        data_roots={"mimic": "/data/mimic-cxr-jpg", "reflacx": "/data/reflacx"},
    )
    card = (out / "model_card.md").read_text()
    _, meta = load_model(out / "model.pt")
    facts = meta["card"]
    assert card == render_card(facts)
    assert facts["experiment"] == "test_et" and facts["seed"] == 2 and facts["best_epoch"] == 1
    assert facts["data_roots"] == {"mimic": "/data/mimic-cxr-jpg", "reflacx": "/data/reflacx"}
    assert facts["counts"] == {
        "mimic_train": 12,
        "annotated_train": 6,
        "mimic_val": 8,
        "mimic_test": 0,
    }
    assert facts["initialisation"]["pretrained"] == "none"
    assert facts["images"]["size"] == 32
    assert facts["model"]["backbone"] == "resnet18" and facts["training"]["epochs"] == 1
    assert "## Software" in card and "/data/mimic-cxr-jpg" in card and "test" not in facts
    for key in ("gazeloc_version", "git_commit", "precision", "device_type"):
        assert facts[key] == meta.get(key, NOT_RECORDED)
    # the facts that decide the arithmetic: torch build, CPU kernel path, thread count
    numerics = facts["numerics"]
    assert numerics["torch_version"] == torch.__version__
    assert numerics["threads"] == torch.get_num_threads()
    assert numerics["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "## Numerics" in card and f"| threads | `{torch.get_num_threads()}` |" in card


def test_card_of_an_old_payload_says_not_recorded():
    facts = card_facts({"experiment": "et", "seed": 1, "epoch": 3, "val_auc": 0.7})
    card = render_card(facts)
    assert facts["git_commit"] == NOT_RECORDED and facts["data_roots"] == NOT_RECORDED
    assert "| git_commit | not recorded |" in card
    assert facts["numerics"] == NOT_RECORDED and "## Numerics" in card
    assert "# Model card: et, seed 1" in card and "0.7000" in card
    provenance = card_facts(
        {"experiment": "et", "seed": 1, "git_commit": "abc123", "weights_sha256": "f" * 64}
    )
    assert "| git_commit | `abc123` |" in render_card(provenance)


def test_workflow_rule_is_off_unless_images_are_set():
    from gazeloc.predict import workflow as predict_cfg

    base = {"experiments": ["unannotated", "et"], "seeds": [1, 2]}
    assert predict_cfg.predict_targets({**base, "predict": {"images": None}}, "res") == []
    config = {**base, "predict": {"images": "/x", "experiment": "et", "seed": 2}}
    targets = predict_cfg.predict_targets(config, "res")
    assert "res/predictions/et/seed2/predictions.csv" in targets
    assert "res/predictions/et/seed2/overlays" in targets
    with pytest.raises(ValueError, match=r"predict\.experiment"):
        predict_cfg.predict_targets({**config, "predict": {"images": "/x", "experiment": "x"}}, "r")
    with pytest.raises(ValueError, match=r"predict\.seed"):
        predict_cfg.predict_targets({**config, "predict": {"images": "/x", "seed": 9}}, "r")


def test_numeric_facts_record_the_kernel_path_variables(monkeypatch):
    from gazeloc.numerics import numeric_facts

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    facts = numeric_facts("cpu")
    assert facts["ONEDNN_MAX_CPU_ISA"] == "AVX2" and "ATEN_CPU_CAPABILITY" not in facts
    assert facts["mkldnn_enabled"] is True and facts["cpu_model"]
    assert "cuda_device" not in facts

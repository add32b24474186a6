"""The generated dataset follows the real formats field by field, and is deterministic."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from gazeloc.datacheck import check_datasets
from gazeloc.io import mimic, reflacx
from gazeloc.labels import CHEXPERT_COLUMNS, reflacx_labels
from gazeloc.splits import read_id_list, read_val_subjects
from gazeloc.synthetic.generate import SynthSettings, generate

FIX_HEADER = (
    "timestamp_start_fixation,timestamp_end_fixation,x_position,y_position,"
    "pupil_area_normalized,angular_resolution_x_pixels_per_degree,"
    "angular_resolution_y_pixels_per_degree,window_width,window_level,xmin_shown_from_image,"
    "ymin_shown_from_image,xmax_shown_from_image,ymax_shown_from_image,"
    "xmin_in_screen_coordinates,ymin_in_screen_coordinates,xmax_in_screen_coordinates,"
    "ymax_in_screen_coordinates"
)
GAZE_HEADER = "timestamp_sample," + FIX_HEADER.split(",", 2)[2]
META_BASE = (
    "id,split,eye_tracking_data_discarded,image,dicom_id,subject_id,image_size_x,image_size_y"
)


def _lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n"), f"{path} must end with CRLF"
    assert b"\n" not in raw.replace(b"\r\n", b""), f"{path} has bare LF"
    return raw.decode().split("\r\n")[:-1]


def test_readers_read_everything(tiny_synthetic, tiny_settings):
    summary = check_datasets(
        tiny_synthetic / "reflacx",
        tiny_synthetic / "mimic-cxr-jpg",
        tiny_synthetic / "val_subjects.txt",
        progress=False,
    )
    assert isinstance(summary["warnings"], int)
    assert summary["reflacx"]["phase_1"]["readings"] == 5 * tiny_settings.phase1_images
    assert summary["reflacx"]["phase_2"]["readings"] == 5 * tiny_settings.phase2_images
    assert summary["reflacx"]["phase_3"]["readings"] == tiny_settings.phase3_readings
    assert summary["reflacx"]["phase_3"]["discarded"] == 0


@pytest.mark.parametrize("phase", [1, 2, 3])
def test_metadata_header_order_and_values(tiny_synthetic, phase):
    path = tiny_synthetic / "reflacx" / "main_data" / f"metadata_phase_{phase}.csv"
    lines = _lines(path)
    assert lines[0] == META_BASE + "," + ",".join(reflacx_labels(phase))
    assert list(reflacx_labels(phase)) == sorted(reflacx_labels(phase))
    frame = reflacx.read_metadata(tiny_synthetic / "reflacx", phase)
    ids = frame["id"].to_list()
    assert all(re.fullmatch(rf"P{phase}\d\dR\d{{6}}", i) for i in ids)
    if phase == 3:
        assert frame["image"].to_list() == sorted(frame["image"].to_list())
        assert all(i.startswith("P300R") for i in ids)
    else:
        assert ids == sorted(ids)
        prefixes = frame["id"].str.slice(0, 4)
        assert set(prefixes.value_counts()["count"].to_list()) == {5}
        first = 2 if phase == 1 else 1
        assert sorted(set(prefixes)) == [
            f"P{phase}{first + k:02d}" for k in range(len(set(prefixes)))
        ]
    for line in lines[1:]:
        fields = line.split(",")
        assert fields[2] in ("True", "False")
        assert re.fullmatch(r"\d+", fields[6]) and re.fullmatch(r"\d+", fields[7])
    assert frame.filter(pl.col("dicom_id").is_duplicated()).height == (
        0 if phase == 3 else frame.height
    )


def test_image_path_ids_and_links(tiny_synthetic):
    meta = mimic.read_metadata(tiny_synthetic / "mimic-cxr-jpg")
    split = mimic.read_split(tiny_synthetic / "mimic-cxr-jpg")
    for reading in reflacx.read_readings(tiny_synthetic / "reflacx"):
        row = meta.filter(pl.col("dicom_id") == reading.dicom_id)
        assert row.height == 1
        assert row["subject_id"][0] == reading.subject_id
        assert row["study_id"][0] == reading.study_id
        assert row["ViewPosition"][0] in ("PA", "AP")
        assert (row["Columns"][0], row["Rows"][0]) == (reading.width, reading.height)
        study = meta.filter(pl.col("study_id") == reading.study_id)
        assert study.filter(pl.col("ViewPosition").is_in(["PA", "AP"])).height == 1
        assert split.filter(pl.col("dicom_id") == reading.dicom_id)["split"][0] == reading.split
        with Image.open(reading.jpg_path(tiny_synthetic / "mimic-cxr-jpg")) as image:
            assert image.mode == "L"
            assert image.size == (reading.width, reading.height)
            assert np.asarray(image).ndim == 2
    phase3 = reflacx.read_metadata(tiny_synthetic / "reflacx", 3)["dicom_id"]
    early = pl.concat(
        [reflacx.read_metadata(tiny_synthetic / "reflacx", p).select("dicom_id") for p in (1, 2)]
    )
    assert not set(phase3) & set(early["dicom_id"])


def test_reading_files_and_discarded(tiny_synthetic):
    root = tiny_synthetic / "reflacx"
    readings = reflacx.read_readings(root)
    assert any(r.discarded for r in readings) or len(readings) < 30
    for reading in readings:
        names = {p.name for p in reading.main_dir.iterdir()}
        if reading.discarded:
            assert names == {"anomaly_location_ellipses.csv", "chest_bounding_box.csv"}
            assert reading.gaze_dir.is_dir() and not any(reading.gaze_dir.iterdir())
            continue
        assert names == {
            "anomaly_location_ellipses.csv",
            "chest_bounding_box.csv",
            "fixations.csv",
            "timestamps_transcription.csv",
            "transcription.txt",
        }
        assert _lines(reading.main_dir / "fixations.csv")[0] == FIX_HEADER
        assert _lines(reading.gaze_dir / "gaze.csv")[0] == GAZE_HEADER
        assert _lines(reading.main_dir / "chest_bounding_box.csv")[0] == "xmin,ymin,xmax,ymax"
        header = _lines(reading.main_dir / "anomaly_location_ellipses.csv")[0]
        assert header == "xmin,ymin,xmax,ymax,certainty," + ",".join(reflacx_labels(reading.phase))


def test_transcripts_follow_the_conventions(tiny_synthetic):
    for reading in reflacx.read_readings(tiny_synthetic / "reflacx"):
        if reading.discarded:
            continue
        raw = (reading.main_dir / "transcription.txt").read_bytes()
        text = raw.decode()
        assert not text.endswith("\n") and "\n" not in text
        assert text == text.lower() and text.endswith(".") and ":" not in text
        assert "  " not in text and text == text.strip()
        words = reading.transcript().words
        assert " ".join(words["word"]) == text.replace(".", " .").replace(",", " ,")
        start = words["timestamp_start_word"].to_numpy()
        end = words["timestamp_end_word"].to_numpy()
        assert np.all(start <= end) and np.all(np.diff(start) >= 0)
        assert np.allclose(start, np.round(start, 2)) and np.allclose(end, np.round(end, 2))
        csv_text = (reading.main_dir / "timestamps_transcription.csv").read_text()
        if "," in text:
            assert '\n",",' in csv_text.replace("\r\n", "\n")


def test_fixations_are_plausible(tiny_synthetic):
    for reading in reflacx.read_readings(tiny_synthetic / "reflacx"):
        if reading.discarded:
            continue
        fix = reading.fixations()
        dur = (fix["timestamp_end_fixation"] - fix["timestamp_start_fixation"]).to_numpy()
        assert dur.min() >= 0.099 and dur.max() <= 0.801
        assert np.all(np.diff(fix["timestamp_start_fixation"].to_numpy()) > 0)
        start = fix["timestamp_start_fixation"].to_numpy()
        assert np.allclose(start, np.round(start, 3))
        ppd = fix["angular_resolution_x_pixels_per_degree"].to_numpy()
        scale = (fix["xmax_in_screen_coordinates"] - fix["xmin_in_screen_coordinates"]) / (
            fix["xmax_shown_from_image"] - fix["xmin_shown_from_image"]
        )
        screen_ppd = ppd * scale.to_numpy()
        assert 80 < screen_ppd.min() and screen_ppd.max() < 105
        assert fix["xmin_in_screen_coordinates"].min() >= 600
        assert fix["xmax_in_screen_coordinates"].max() <= 3240
        assert fix["ymax_in_screen_coordinates"].max() <= 2160


def test_ellipses_agree_with_metadata(tiny_synthetic):
    for reading in reflacx.read_readings(tiny_synthetic / "reflacx"):
        ell = reading.ellipses()
        for name, value in reading.labels.items():
            if name in ("Support devices", "Quality issue", "Other"):
                continue
            tagged = ell.filter(pl.col(name))
            assert value == (tagged["certainty"].max() if tagged.height else 0), (reading.id, name)
        if ell.height:
            assert (
                ell.select(pl.any_horizontal(list(reflacx_labels(reading.phase)))).to_series().all()
            )
            assert (ell["certainty"].is_between(1, 5)).all()


def test_mimic_tables_format(tiny_synthetic):
    root = tiny_synthetic / "mimic-cxr-jpg"
    for name in ("chexpert", "negbio", "metadata", "split"):
        path = root / f"mimic-cxr-2.0.0-{name}.csv.gz"
        text = gzip.decompress(path.read_bytes()).decode()
        assert "\r\n" not in text
    chexpert = gzip.decompress((root / "mimic-cxr-2.0.0-chexpert.csv.gz").read_bytes()).decode()
    lines = chexpert.splitlines()
    assert lines[0] == "subject_id,study_id," + ",".join(CHEXPERT_COLUMNS)
    values = {v for line in lines[1:] for v in line.split(",")[2:]}
    assert values <= {"", "1.0", "0.0", "-1.0"} and {"", "1.0", "-1.0"} <= values
    labels = mimic.read_labels(root)
    assert set(labels["No Finding"].drop_nulls().to_list()) <= {1.0}
    meta = mimic.read_metadata(root)
    assert {"PA", "AP", "LATERAL"} <= set(meta["ViewPosition"].to_list())
    frontal = meta.filter(pl.col("ViewPosition").is_in(["PA", "AP"]))
    assert (frontal.group_by("study_id").len()["len"] > 1).any(), "a study with two frontals"
    split = mimic.read_split(root)
    assert labels.height < split["study_id"].n_unique(), "some studies have no label row"
    for row in split.head(5).iter_rows(named=True):
        path = mimic.jpg_path(root, row["subject_id"], row["study_id"], row["dicom_id"])
        assert path.is_file() and path.parts[-4] == f"p{str(row['subject_id'])[:2]}"


def test_split_invariant_and_id_lists(tiny_synthetic):
    val = read_val_subjects(tiny_synthetic / "val_subjects.txt")
    readings = reflacx.read_readings(tiny_synthetic / "reflacx")
    for reading in readings:
        if reading.split == "validate":
            assert reading.subject_id in val
    dev = read_id_list(tiny_synthetic / "labeler_dev_reading_ids.txt", r"P[12]\d\dR\d{6}", "id")
    kept = {r.id for r in readings if r.phase in (1, 2) and not r.discarded}
    assert set(dev) <= kept


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_any_workers(tmp_path, tiny_settings):
    settings = SynthSettings(
        **{
            **tiny_settings.__dict__,
            "mimic_studies": 6,
            "phase3_readings": 3,
            "phase1_images": 1,
            "phase2_images": 1,
        }
    )
    generate(tmp_path / "a", settings, workers=1, progress=False)
    generate(tmp_path / "b", settings, workers=2, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    other = SynthSettings(**{**settings.__dict__, "seed": settings.seed + 1})
    generate(tmp_path / "c", other, workers=1, progress=False)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_unknown_setting_is_rejected():
    with pytest.raises(ValueError, match="unknown synthetic setting"):
        SynthSettings.from_mapping({"sed": 1})


def test_real_image_sizes_are_planned():
    from gazeloc.synthetic.generate import plan_dataset

    studies, _, _ = plan_dataset(
        SynthSettings(
            seed=1,
            mimic_studies=30,
            phase1_images=0,
            phase2_images=0,
            phase3_readings=5,
            image_size="real",
        )
    )
    sizes = [max(i.width, i.height) for s in studies for i in s.images]
    assert 2500 <= min(sizes) and max(sizes) <= 3056
    ratios = [min(i.width, i.height) / max(i.width, i.height) for s in studies for i in s.images]
    assert 0.79 <= min(ratios) and max(ratios) <= 0.97


def test_min_severity_setting_is_validated():
    assert SynthSettings.from_mapping({"min_severity": 0.3}).min_severity == 0.3
    assert SynthSettings.from_mapping({}).min_severity == 0.0
    with pytest.raises(ValueError, match="min_severity"):
        SynthSettings.from_mapping({"min_severity": 1.0})


def test_split_shares_size_the_validate_and_test_splits():
    from collections import Counter

    from gazeloc.synthetic.generate import plan_dataset

    def shares(**values):
        studies, _, _ = plan_dataset(SynthSettings.from_mapping({"mimic_studies": 4000, **values}))
        subjects = {s.subject_id: s.split for s in studies}
        counts = Counter(subjects.values())
        return {k: v / len(subjects) for k, v in counts.items()}

    default = shares()
    assert abs(default["validate"] - 0.04) < 0.015 and abs(default["test"] - 0.18) < 0.025
    bigger = shares(validate_share=0.1, test_share=0.3)
    assert abs(bigger["validate"] - 0.1) < 0.02 and abs(bigger["test"] - 0.3) < 0.03
    # the defaults are the former fixed shares: the same plan, study for study
    assert shares(validate_share=0.04, test_share=0.18) == default
    for bad in ({"test_share": 0.0}, {"validate_share": 0.5, "test_share": 0.5}):
        with pytest.raises(ValueError, match="test_share"):
            SynthSettings.from_mapping(bad)

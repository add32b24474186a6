"""REFLACX reader on example files in the exact REFLACX 1.0.0 format (CRLF and LF)."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest
import section_d as d

from gazeloc.errors import DataFormatError
from gazeloc.io import reflacx
from gazeloc.io.mimic import jpg_path
from gazeloc.labels import REFLACX_LABELS_PHASE_1, REFLACX_LABELS_PHASE_23
from gazeloc.splits import (
    check_val_subjects,
    paper_labeler_dev_ids_file,
    paper_val_subjects_file,
    read_id_list,
    read_val_subjects,
    study_split,
)

ENDINGS = ["crlf", "lf"]


@pytest.fixture(params=ENDINGS)
def endings(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def any_tree(tmp_path: Path, endings: str) -> dict[str, Path]:
    """The example tree with CRLF (as REFLACX writes it) and with LF line endings."""
    return d.write_tree(tmp_path, line_endings=endings)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """The example tree with CRLF (LF is compared with it in test_lf_variant_reads_the_same)."""
    return d.write_tree(tmp_path)


def _lf_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "LF line endings" in r.getMessage()]


# --- metadata ------------------------------------------------------------------------------


def test_files_are_written_as_specified(any_tree: dict[str, Path], endings: str) -> None:
    tree = any_tree
    raw = (tree["reflacx"] / "main_data" / "metadata_phase_3.csv").read_bytes()
    assert (b"\r\n" in raw) == (endings == "crlf")
    text = (tree["reflacx"] / "main_data" / d.READING_3A / "transcription.txt").read_bytes()
    assert not text.endswith(b"\n")


def test_metadata_phase_3_values(any_tree: dict[str, Path], endings: str, caplog) -> None:
    caplog.set_level(logging.WARNING)
    frame = reflacx.read_metadata(any_tree["reflacx"], 3)
    assert frame.height == 2
    assert frame.columns[:8] == [
        "id",
        "split",
        "eye_tracking_data_discarded",
        "image",
        "dicom_id",
        "subject_id",
        "image_size_x",
        "image_size_y",
    ]
    assert frame.columns[8:24] == list(REFLACX_LABELS_PHASE_23)
    assert set(frame.columns[24:]) == {"study_id", "phase"}
    schema = frame.schema
    assert schema["eye_tracking_data_discarded"] == pl.Boolean
    assert schema["subject_id"] == pl.Int64
    assert schema["study_id"] == pl.Int64
    assert schema["image_size_x"] == pl.Int64
    assert schema["Atelectasis"] == pl.Int64
    assert schema["Support devices"] == pl.Boolean
    assert schema["Other"] == pl.String

    first, second = frame.iter_rows(named=True)
    assert first["id"] == d.READING_3A
    assert first["split"] == "train"
    assert first["eye_tracking_data_discarded"] is False
    assert first["dicom_id"] == d.DICOM_3A
    assert first["subject_id"] == 12345678
    assert first["study_id"] == 51234567
    assert (first["image_size_x"], first["image_size_y"]) == (2544, 3056)
    assert first["Atelectasis"] == 4
    assert first["Enlarged cardiac silhouette"] == 5
    assert first["Pleural abnormality"] == 3
    assert first["Lung nodule or mass"] == 0
    assert first["Other"] is None
    assert first["Support devices"] is True
    assert first["phase"] == 3

    assert second["id"] == d.READING_3B
    assert second["split"] == "test"
    assert second["subject_id"] == 18765432
    assert second["study_id"] == 59876543
    assert (second["image_size_x"], second["image_size_y"]) == (3056, 2544)
    assert second["Lung nodule or mass"] == 2
    assert second["Other"] == "scoliosis|old healed rib fracture"
    assert second["Support devices"] is False

    lf = _lf_warnings(caplog)
    if endings == "crlf":
        assert lf == []
    else:
        assert len(lf) == 1 and "metadata_phase_3.csv" in lf[0]


def test_metadata_phase_1_values(tree: dict[str, Path]) -> None:
    frame = reflacx.read_metadata(tree["reflacx"], 1)
    assert frame.columns[8:26] == list(REFLACX_LABELS_PHASE_1)
    assert frame.get_column("id").to_list() == [d.READING_1A, d.READING_1D]
    assert frame.get_column("eye_tracking_data_discarded").to_list() == [False, True]
    assert frame.get_column("split").to_list() == ["validate", "validate"]
    assert frame.get_column("Atelectasis").to_list() == [3, 0]
    assert frame.get_column("Pleural effusion").to_list() == [5, 4]
    assert frame.get_column("Quality issue").to_list() == [False, False]
    assert frame.get_column("Support devices").to_list() == [True, True]
    assert frame.get_column("Wide mediastinum").to_list() == [0, 0]
    assert frame.get_column("Other").to_list() == [None, None]
    assert frame.get_column("study_id").to_list() == [53330987, 53330987]
    assert frame.get_column("phase").to_list() == [1, 1]


def test_metadata_phase_2_same_header_as_phase_3(tmp_path: Path) -> None:
    text = d.METADATA_PHASE_3.replace("P300R512734", "P201R512734").replace(
        "P300R047190", "P201R047190"
    )
    d.write_reflacx(reflacx.metadata_path(tmp_path, 2), text)
    frame = reflacx.read_metadata(tmp_path, 2)
    assert frame.get_column("id").to_list() == ["P201R512734", "P201R047190"]
    assert frame.columns[8:24] == list(REFLACX_LABELS_PHASE_23)
    assert frame.get_column("phase").to_list() == [2, 2]


def test_read_readings_and_jpg_path(tree: dict[str, Path], tmp_path: Path) -> None:
    assert reflacx.phases_present(tree["reflacx"]) == [1, 3]
    readings = reflacx.read_readings(tree["reflacx"])
    assert [r.id for r in readings] == [d.READING_1A, d.READING_1D, d.READING_3A, d.READING_3B]
    r = readings[2]
    assert (r.phase, r.split, r.discarded) == (3, "train", False)
    assert (r.subject_id, r.study_id, r.dicom_id) == (12345678, 51234567, d.DICOM_3A)
    assert (r.width, r.height) == (2544, 3056)
    assert r.labels["Atelectasis"] == 4
    assert r.labels["Other"] is None
    assert r.labels["Support devices"] is True
    assert "id" not in r.labels and "study_id" not in r.labels
    assert r.main_dir == tree["reflacx"] / "main_data" / d.READING_3A
    assert r.gaze_dir == tree["reflacx"] / "gaze_data" / d.READING_3A

    mimic_root = tmp_path / "mimic-cxr-jpg" / "2.0.0"
    expected = mimic_root / "files" / "p12" / "p12345678" / "s51234567" / f"{d.DICOM_3A}.jpg"
    assert r.jpg_path(mimic_root) == expected
    assert reflacx.jpg_path_from_image(r.image, mimic_root) == expected
    assert jpg_path(mimic_root, r.subject_id, r.study_id, r.dicom_id) == expected
    other = readings[3]
    assert other.jpg_path("/data/jpg") == Path(
        f"/data/jpg/files/p18/p18765432/s59876543/{d.DICOM_3B}.jpg"
    )
    assert reflacx.read_readings(tree["reflacx"], [3])[0].id == d.READING_3A


def test_jpg_path_from_image_needs_files_segment() -> None:
    with pytest.raises(ValueError, match="files"):
        reflacx.jpg_path_from_image("p12/p12345678/s51234567/x.dcm", "/m")


# --- per-reading files ---------------------------------------------------------------------


def test_fixations_values(tree: dict[str, Path], caplog) -> None:
    caplog.set_level(logging.WARNING)
    path = tree["reflacx"] / "main_data" / d.READING_3A / "fixations.csv"
    frame = reflacx.read_fixations(path, width=2544, height=3056)
    assert frame.columns == [c.name for c in reflacx.FIXATION_COLUMNS]
    assert frame.height == 4
    assert frame.get_column("timestamp_start_fixation").to_list() == [0.212, 0.51, 1.402, 9.731]
    assert frame.get_column("timestamp_end_fixation").to_list() == [0.468, 0.897, 1.655, 10.018]
    assert frame.get_column("x_position").to_list() == [1301, 1655, -688, 612]
    assert frame.schema["x_position"] == pl.Int64
    assert frame.schema["pupil_area_normalized"] == pl.Float64
    last = frame.row(3, named=True)
    assert last["window_width"] == 0.93712
    assert last["window_level"] == 0.51408
    assert last["angular_resolution_x_pixels_per_degree"] == 95
    assert [last[c] for c in reflacx.RECT_COLUMNS] == [0, 896, 2521, 3056, 661, 0, 3180, 2160]
    # Row 3 (line 4) is on the left UI margin: a tolerated, logged deviation.
    outside = [r.getMessage() for r in caplog.records if "outside" in r.getMessage()]
    assert len(outside) == 1
    assert "fixations.csv, line 4, column 'x_position'" in outside[0]


def test_gaze_values(tree: dict[str, Path]) -> None:
    r = reflacx.read_readings(tree["reflacx"], [3])[0]
    frame = r.gaze()
    assert frame.columns == [c.name for c in reflacx.GAZE_COLUMNS]
    assert frame.get_column("timestamp_sample").to_list() == [0.137, 0.138, 0.139]
    assert frame.get_column("x_position").to_list() == [1297, 1298, None]
    assert frame.get_column("pupil_area_normalized").to_list() == [1.039, 1.04, None]
    assert frame.get_column("angular_resolution_y_pixels_per_degree").to_list() == [
        131,
        131,
        None,
    ]
    assert frame.get_column("window_width").to_list() == [1.0, 1.0, 1.0]
    assert frame.get_column("xmax_in_screen_coordinates").to_list() == [2819] * 3


def test_transcript_join(tree: dict[str, Path]) -> None:
    transcript = reflacx.read_transcript(tree["reflacx"] / "main_data" / d.READING_3A)
    assert transcript.text == d.TRANSCRIPTION
    words = transcript.words.get_column("word").to_list()
    assert len(words) == 20
    assert words[10] == ","  # the quoted "," token
    assert words.count(".") == 4
    assert " ".join(words) == d.TRANSCRIPTION.replace(".", " .").replace(",", " ,")
    assert reflacx.tokens_of(d.TRANSCRIPTION) == words
    assert transcript.words.get_column("timestamp_start_word")[0] == 1.34
    assert transcript.words.get_column("timestamp_end_word")[-1] == 11.42
    assert transcript.words.schema["timestamp_end_word"] == pl.Float64


def test_ellipses_and_chest_box(tree: dict[str, Path]) -> None:
    r = reflacx.read_readings(tree["reflacx"], [3])[0]
    ellipses = r.ellipses()
    assert ellipses.columns[:5] == ["xmin", "ymin", "xmax", "ymax", "certainty"]
    assert ellipses.columns[5:] == list(REFLACX_LABELS_PHASE_23)
    assert ellipses.get_column("certainty").to_list() == [4, 5, 3]
    assert ellipses.get_column("Atelectasis").to_list() == [True, False, True]
    assert ellipses.get_column("Pleural abnormality").to_list() == [False, False, True]
    assert ellipses.schema["Support devices"] == pl.Boolean
    assert ellipses.row(1)[:4] == (1398, 1610, 2466, 2705)
    assert r.chest_box() == (318, 402, 2261, 2630)


def test_metadata_agrees_with_ellipses(tree: dict[str, Path], caplog) -> None:
    caplog.set_level(logging.WARNING)
    for r in reflacx.read_readings(tree["reflacx"]):
        reflacx.check_ellipse_consistency(r, r.ellipses())
    assert not [rec for rec in caplog.records if "ellipses give" in rec.getMessage()]


def test_header_only_ellipses(tmp_path: Path) -> None:
    path = d.write_reflacx(
        tmp_path / "anomaly_location_ellipses.csv", d.ELLIPSES.splitlines()[0] + "\n"
    )
    frame = reflacx.read_ellipses(path, 3)
    assert frame.height == 0
    assert frame.columns == [c.name for c in reflacx.ellipse_columns(3)]


def test_discarded_reading(tree: dict[str, Path]) -> None:
    readings = {r.id: r for r in reflacx.read_readings(tree["reflacx"], [1])}
    r = readings[d.READING_1D]
    assert r.discarded is True
    assert sorted(p.name for p in r.main_dir.iterdir()) == [
        "anomaly_location_ellipses.csv",
        "chest_bounding_box.csv",
    ]
    ellipses = r.ellipses()
    assert ellipses.columns[5:] == list(REFLACX_LABELS_PHASE_1)
    assert ellipses.get_column("Pleural effusion").to_list() == [True]
    assert ellipses.get_column("certainty").to_list() == [4]
    assert r.chest_box() == (318, 402, 2261, 2630)
    reflacx.check_reading_files(r)  # only ellipses + chest box: fine
    for method in (r.fixations, r.transcript, r.gaze):
        with pytest.raises(DataFormatError, match="discarded"):
            method()
    kept = readings[d.READING_1A]
    reflacx.check_reading_files(kept)
    assert kept.ellipses().get_column("certainty").to_list() == [3, 5]


def test_lf_variant_reads_the_same(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    crlf = d.write_tree(tmp_path / "crlf")
    lf = d.write_tree(tmp_path / "lf", line_endings="lf")
    assert _lf_warnings(caplog) == []
    for phase in (1, 3):
        a = reflacx.read_metadata(crlf["reflacx"], phase)
        b = reflacx.read_metadata(lf["reflacx"], phase)
        assert a.equals(b)
        assert len(_lf_warnings(caplog)) == 1
        caplog.clear()
    folder = Path("main_data") / d.READING_3A
    a = reflacx.read_fixations(crlf["reflacx"] / folder / "fixations.csv", width=2544, height=3056)
    assert _lf_warnings(caplog) == []
    b = reflacx.read_fixations(lf["reflacx"] / folder / "fixations.csv", width=2544, height=3056)
    assert a.equals(b)
    warned = _lf_warnings(caplog)
    assert len(warned) == 1 and "fixations.csv" in warned[0]
    assert reflacx.read_transcript(crlf["reflacx"] / folder).words.equals(
        reflacx.read_transcript(lf["reflacx"] / folder).words
    )
    assert reflacx.read_ellipses(
        crlf["reflacx"] / folder / "anomaly_location_ellipses.csv", 3
    ).equals(reflacx.read_ellipses(lf["reflacx"] / folder / "anomaly_location_ellipses.csv", 3))


def test_booleans_in_other_spellings(tmp_path: Path) -> None:
    text = d.METADATA_PHASE_3.replace(",False,phys", ",FALSE,phys", 1).replace(",True\n", ",true\n")
    d.write_reflacx(reflacx.metadata_path(tmp_path, 3), text)
    frame = reflacx.read_metadata(tmp_path, 3)
    assert frame.get_column("eye_tracking_data_discarded").to_list() == [False, False]
    assert frame.get_column("Support devices").to_list() == [True, False]


# --- splits --------------------------------------------------------------------------------


def test_check_val_subjects(tree: dict[str, Path]) -> None:
    frame = reflacx.read_metadata(tree["reflacx"], 1)
    path = reflacx.metadata_path(tree["reflacx"], 1)
    check_val_subjects(frame, read_val_subjects(tree["val_subjects"]), path)
    with pytest.raises(DataFormatError) as info:
        check_val_subjects(frame, {19999999}, path)
    err = info.value
    assert (err.path.name, err.line, err.column) == ("metadata_phase_1.csv", 2, "subject_id")
    assert "15550123" in err.reason
    # Phase 3 has no 'validate' image: any list passes.
    check_val_subjects(reflacx.read_metadata(tree["reflacx"], 3), set(), path)


def test_study_split_rule() -> None:
    frame = pl.DataFrame(
        {
            "split": ["test", "test", "validate", "validate", "train", "train"],
            "subject_id": [11111111, 12222222, 13333333, 11111111, 11111111, 14444444],
        }
    )
    out = frame.with_columns(study_split(val_subjects=[11111111]).alias("study"))
    assert out.get_column("study").to_list() == ["test", "test", "val", "val", "val", "train"]
    renamed = frame.rename({"split": "s", "subject_id": "p"})
    out = renamed.select(study_split("s", "p", val_subjects={11111111}))
    assert out.to_series().to_list() == ["test", "test", "val", "val", "val", "train"]


def test_reflacx_readings_take_the_study_split(tree: dict[str, Path]) -> None:
    val = read_val_subjects(tree["val_subjects"])
    frames = [reflacx.read_metadata(tree["reflacx"], p) for p in (1, 3)]
    frame = pl.concat(frames, how="diagonal")
    out = frame.select("id", study_split(val_subjects=val).alias("study"))
    assert dict(out.iter_rows()) == {
        d.READING_1A: "val",
        d.READING_1D: "val",
        d.READING_3A: "train",
        d.READING_3B: "test",
    }


def test_read_val_subjects(tmp_path: Path) -> None:
    path = tmp_path / "val.txt"
    path.write_bytes(b"15550123\r\n\r\n  12345678 \r\n15550123\r\n")
    assert read_val_subjects(path) == frozenset({15550123, 12345678})


def test_paper_lists() -> None:
    path = paper_val_subjects_file()
    assert path.is_file()
    subjects = read_val_subjects(path)
    assert len(subjects) == 280
    assert all(10_000_000 <= s <= 19_999_999 for s in subjects)
    ids = read_id_list(paper_labeler_dev_ids_file(), reflacx.READING_ID, "reading id")
    assert len(ids) == len(set(ids)) == 108
    assert {i[1] for i in ids} <= {"1", "2"}

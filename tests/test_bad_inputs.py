"""Malformed REFLACX / MIMIC-CXR-JPG inputs: each error names the file, line and column.

Every case starts from the valid example tree (:func:`section_d.write_tree`), breaks one
thing, and runs the whole-dataset check (or one reader, for files the check does not read).
Tolerated deviations (docs/method.md#input-data) are logged warnings, asserted with ``caplog``.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import section_d as d

from gazeloc.cli import main
from gazeloc.datacheck import check_datasets
from gazeloc.errors import DataFormatError
from gazeloc.io import mimic, reflacx
from gazeloc.splits import check_reflacx_split

Tree = dict[str, Path]

# --- paths and small editors ---------------------------------------------------------------


def main_data(tree: Tree) -> Path:
    return tree["reflacx"] / "main_data"


def reading_file(tree: Tree, reading: str, name: str) -> Path:
    return main_data(tree) / reading / name


def meta3(tree: Tree) -> Path:
    return reflacx.metadata_path(tree["reflacx"], 3)


def meta1(tree: Tree) -> Path:
    return reflacx.metadata_path(tree["reflacx"], 1)


def fixations(tree: Tree) -> Path:
    return reading_file(tree, d.READING_3A, "fixations.csv")


def words(tree: Tree) -> Path:
    return reading_file(tree, d.READING_3A, "timestamps_transcription.csv")


def ellipses(tree: Tree) -> Path:
    return reading_file(tree, d.READING_3A, "anomaly_location_ellipses.csv")


def chest_box(tree: Tree) -> Path:
    return reading_file(tree, d.READING_3A, "chest_bounding_box.csv")


def mimic_table(tree: Tree, table: str) -> Path:
    return tree["mimic"] / f"mimic-cxr-2.0.0-{table}.csv.gz"


def _read(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")


def _write(path: Path, text: str) -> None:
    raw = text.encode("utf-8")
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first occurrence of ``old`` (which must exist) in a (gzipped) text file."""
    text = _read(path)
    assert old in text, f"{old!r} not in {path}"
    _write(path, text.replace(old, new, 1))


def drop_column(path: Path, name: str) -> None:
    """Remove a column (header and every row) from an unquoted CSV, keeping CRLF."""
    lines = _read(path).split("\r\n")
    index = lines[0].split(",").index(name)
    out = []
    for line in lines:
        fields = line.split(",") if line else []
        if fields:
            del fields[index]
        out.append(",".join(fields))
    _write(path, "\r\n".join(out))


def append_column(path: Path, name: str, value: str) -> None:
    lines = _read(path).split("\r\n")
    out = [f"{lines[0]},{name}"] + [f"{line},{value}" if line else line for line in lines[1:]]
    _write(path, "\r\n".join(out))


def drop_line(path: Path, line: str) -> None:
    edit(path, line + "\r\n", "")


def append_line(path: Path, line: str) -> None:
    _write(path, _read(path) + line + "\r\n")


def replace_file(path: Path, text: str) -> None:
    path.write_bytes(d.crlf(text).encode("utf-8"))


# --- the corpus ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Callable[[Tree], None]
    file: str
    line: int | None
    column: str | None
    reason: str
    run: Callable[[Tree], object] | None = None
    """What to run (default: the whole-dataset check)."""


def run_check(tree: Tree) -> object:
    return check_datasets(tree["reflacx"], tree["mimic"], tree["val_subjects"], progress=False)


def run_gaze(tree: Tree) -> object:
    return reflacx.read_readings(tree["reflacx"], [3])[0].gaze()


# Most cases run only the reader of the file they break (the whole check runs the same code,
# but costs ~0.3 s a tree); cases that span files run the whole check.


def run_fixations(tree: Tree) -> object:
    return reflacx.read_fixations(fixations(tree), width=2544, height=3056)


def run_transcript(tree: Tree) -> object:
    return reflacx.read_transcript(main_data(tree) / d.READING_3A)


def run_ellipses(tree: Tree) -> object:
    return reflacx.read_ellipses(ellipses(tree), 3)


def run_chest_box(tree: Tree) -> object:
    return reflacx.read_chest_box(chest_box(tree))


def run_metadata_3(tree: Tree) -> object:
    return reflacx.read_metadata(tree["reflacx"], 3)


def run_split(tree: Tree) -> object:
    return mimic.read_split(tree["mimic"])


def run_chexpert(tree: Tree) -> object:
    return mimic.read_labels(tree["mimic"], "chexpert")


def run_split_consistency(tree: Tree) -> None:
    frame = reflacx.read_metadata(tree["reflacx"], 3)
    check_reflacx_split(frame, mimic.read_split(tree["mimic"]), meta3(tree))


FIX_ROW_2 = "0.51,0.897,1655,1190"
FIX_ROW_3 = "1.402,1.655,-688,2833"
M3_ROW_1_SIZE = ",12345678,2544,3056,0,0,4,0,5"
ELL_ROW_2 = "1398,1610,2466,2705,5"

CASES: list[Case] = [
    # missing files
    Case(
        "missing_fixations",
        lambda t: fixations(t).unlink(),
        "fixations.csv",
        None,
        None,
        "file not found",
        run=run_fixations,
    ),
    Case(
        "missing_word_timestamps",
        lambda t: words(t).unlink(),
        "timestamps_transcription.csv",
        None,
        None,
        "file not found",
        run=run_transcript,
    ),
    Case(
        "missing_chest_box_of_discarded",
        lambda t: reading_file(t, d.READING_1D, "chest_bounding_box.csv").unlink(),
        "chest_bounding_box.csv",
        None,
        None,
        "file not found",
    ),
    Case(
        "missing_mimic_metadata",
        lambda t: mimic_table(t, "metadata").unlink(),
        "mimic-cxr-2.0.0-metadata.csv.gz",
        None,
        None,
        "file not found",
    ),
    # headers: missing, renamed, reordered, unknown columns; wrong phase
    Case(
        "missing_column",
        lambda t: drop_column(fixations(t), "pupil_area_normalized"),
        "fixations.csv",
        1,
        "pupil_area_normalized",
        "missing column",
        run=run_fixations,
    ),
    Case(
        "renamed_column",
        lambda t: edit(chest_box(t), "xmin,ymin,xmax,ymax", "xmin,ymin,x_max,ymax"),
        "chest_bounding_box.csv",
        1,
        "xmax",
        "missing column",
        run=run_chest_box,
    ),
    Case(
        "renamed_label_column",
        lambda t: edit(meta3(t), "Hiatal hernia", "Hernia"),
        "metadata_phase_3.csv",
        1,
        "Hiatal hernia",
        "missing column",
        run=run_metadata_3,
    ),
    Case(
        "reordered_columns",
        lambda t: edit(fixations(t), "window_width,window_level", "window_level,window_width"),
        "fixations.csv",
        1,
        "window_level",
        "out of order",
        run=run_fixations,
    ),
    Case(
        "reordered_mimic_columns",
        lambda t: edit(
            mimic_table(t, "split"), "dicom_id,study_id,subject_id", "dicom_id,subject_id,study_id"
        ),
        "mimic-cxr-2.0.0-split.csv.gz",
        1,
        "subject_id",
        "out of order",
        run=run_split,
    ),
    Case(
        "duplicated_column",
        lambda t: edit(chest_box(t), "xmin,ymin,xmax,ymax", "xmin,ymin,xmax,ymax,xmin"),
        "chest_bounding_box.csv",
        1,
        "xmin",
        "duplicated column",
        run=run_chest_box,
    ),
    Case(
        "unknown_label_column",
        lambda t: append_column(meta3(t), "Normal radiograph", "0"),
        "metadata_phase_3.csv",
        1,
        "Normal radiograph",
        "unexpected column",
        run=run_metadata_3,
    ),
    Case(
        "phase_1_header_in_phase_3_metadata",
        lambda t: replace_file(meta3(t), d.METADATA_PHASE_1),
        "metadata_phase_3.csv",
        1,
        "Abnormal mediastinal contour",
        "missing column",
        run=run_metadata_3,
    ),
    Case(
        "phase_1_header_in_phase_3_ellipses",
        lambda t: replace_file(ellipses(t), d.ELLIPSES_PHASE_1A),
        "anomaly_location_ellipses.csv",
        1,
        "Abnormal mediastinal contour",
        "missing column",
        run=run_ellipses,
    ),
    # cell types and values
    Case(
        "text_in_int_column",
        lambda t: edit(fixations(t), "0.212,0.468,1301", "0.212,0.468,13O1"),
        "fixations.csv",
        2,
        "x_position",
        "expected an integer",
        run=run_fixations,
    ),
    Case(
        "float_in_int_column",
        lambda t: edit(meta3(t), M3_ROW_1_SIZE, ",12345678,2544.0,3056,0,0,4,0,5"),
        "metadata_phase_3.csv",
        2,
        "image_size_x",
        "expected an integer",
        run=run_metadata_3,
    ),
    Case(
        "zero_image_size",
        lambda t: edit(meta3(t), M3_ROW_1_SIZE, ",12345678,2544,0,0,0,4,0,5"),
        "metadata_phase_3.csv",
        2,
        "image_size_y",
        "below the minimum",
        run=run_metadata_3,
    ),
    Case(
        "nan_in_required_float",
        lambda t: edit(fixations(t), FIX_ROW_2, "nan,0.897,1655,1190"),
        "fixations.csv",
        3,
        "timestamp_start_fixation",
        "finite",
        run=run_fixations,
    ),
    Case(
        "empty_required_float",
        lambda t: edit(words(t), "tube,2.02,2.31", "tube,,2.31"),
        "timestamps_transcription.csv",
        3,
        "timestamp_start_word",
        "missing value",
        run=run_transcript,
    ),
    Case(
        "bad_bool",
        lambda t: edit(meta3(t), ",0,0,True\r\n", ",0,0,Yes\r\n"),
        "metadata_phase_3.csv",
        2,
        "Support devices",
        "expected True or False",
        run=run_metadata_3,
    ),
    Case(
        "metadata_certainty_6",
        lambda t: edit(meta3(t), M3_ROW_1_SIZE, ",12345678,2544,3056,0,0,6,0,5"),
        "metadata_phase_3.csv",
        2,
        "Atelectasis",
        "above the maximum",
        run=run_metadata_3,
    ),
    # fixations
    Case(
        "negative_fixation_duration",
        lambda t: edit(fixations(t), FIX_ROW_2, "0.51,0.41,1655,1190"),
        "fixations.csv",
        3,
        "timestamp_end_fixation",
        "ends before it starts",
        run=run_fixations,
    ),
    Case(
        "fixation_timestamps_backwards",
        lambda t: edit(fixations(t), FIX_ROW_3, "0.402,0.455,-688,2833"),
        "fixations.csv",
        4,
        "timestamp_start_fixation",
        "backwards",
        run=run_fixations,
    ),
    Case(
        "empty_screen_rectangle",
        lambda t: edit(
            fixations(t), "0,0,2544,3056,1021,0,2819,2160", "0,0,2544,3056,1021,0,1021,2160"
        ),
        "fixations.csv",
        2,
        "xmax_in_screen_coordinates",
        "empty rectangle",
        run=run_fixations,
    ),
    Case(
        "ragged_row",
        lambda t: edit(fixations(t), ",0,2819,2160\r\n0.51", ",0,2819\r\n0.51"),
        "fixations.csv",
        2,
        None,
        "expected 17 fields, found 16",
        run=run_fixations,
    ),
    Case(
        "gaze_timestamps_backwards",
        lambda t: edit(
            t["reflacx"] / "gaze_data" / d.READING_3A / "gaze.csv", "0.139,,", "0.136,,"
        ),
        "gaze.csv",
        4,
        "timestamp_sample",
        "backwards",
        run=run_gaze,
    ),
    # transcripts
    Case(
        "word_differs",
        lambda t: edit(words(t), "tube,2.02", "tubes,2.02"),
        "timestamps_transcription.csv",
        3,
        "word",
        "'tubes' does not match 'tube'",
        run=run_transcript,
    ),
    Case(
        "too_few_words",
        lambda t: drop_line(words(t), ".,11.42,11.42"),
        "timestamps_transcription.csv",
        20,
        "word",
        "19 words but transcription.txt has 20 tokens",
        run=run_transcript,
    ),
    Case(
        "too_many_words",
        lambda t: append_line(words(t), "again,11.5,11.8"),
        "timestamps_transcription.csv",
        22,
        "word",
        "21 words but transcription.txt has 20 tokens",
        run=run_transcript,
    ),
    Case(
        "word_ends_before_start",
        lambda t: edit(words(t), "in,2.31,2.4", "in,2.31,2.3"),
        "timestamps_transcription.csv",
        4,
        "timestamp_end_word",
        "ends before it starts",
        run=run_transcript,
    ),
    Case(
        "word_timestamps_backwards",
        lambda t: edit(words(t), "small,4.62,4.9", "small,3.0,4.9"),
        "timestamps_transcription.csv",
        8,
        "timestamp_start_word",
        "backwards",
        run=run_transcript,
    ),
    Case(
        "empty_transcription",
        lambda t: reading_file(t, d.READING_3A, "transcription.txt").write_bytes(b""),
        "transcription.txt",
        1,
        None,
        "empty transcription",
        run=run_transcript,
    ),
    # ids, paths and discarded flags in the metadata
    Case(
        "malformed_reading_id",
        lambda t: edit(meta3(t), "P300R512734,", "P300R51273,"),
        "metadata_phase_3.csv",
        2,
        "id",
        "malformed value 'P300R51273'",
        run=run_metadata_3,
    ),
    Case(
        "reading_id_of_wrong_phase",
        lambda t: edit(meta3(t), "P300R047190,", "P200R047190,"),
        "metadata_phase_3.csv",
        3,
        "id",
        "not of phase 3",
        run=run_metadata_3,
    ),
    Case(
        "duplicated_reading_id",
        lambda t: edit(meta3(t), "P300R047190,", "P300R512734,"),
        "metadata_phase_3.csv",
        3,
        "id",
        "duplicated reading id",
        run=run_metadata_3,
    ),
    Case(
        "malformed_dicom_id",
        lambda t: edit(meta3(t), f",{d.DICOM_3B},", f",{d.DICOM_3B.upper()},"),
        "metadata_phase_3.csv",
        3,
        "dicom_id",
        "malformed value",
        run=run_metadata_3,
    ),
    Case(
        "image_path_disagrees_with_dicom_id",
        lambda t: edit(
            meta3(t), f".dcm,{d.DICOM_3A},", ".dcm,9c0e5b7a-13f4d2a8-6e7b9c01-2d5f8a3e-47b1c6d9,"
        ),
        "metadata_phase_3.csv",
        2,
        "dicom_id",
        "differs from the image path",
        run=run_metadata_3,
    ),
    Case(
        "image_path_disagrees_with_subject_id",
        lambda t: edit(meta3(t), M3_ROW_1_SIZE, ",12345679,2544,3056,0,0,4,0,5"),
        "metadata_phase_3.csv",
        2,
        "subject_id",
        "differs from the image path",
        run=run_metadata_3,
    ),
    Case(
        "malformed_image_path",
        lambda t: edit(meta3(t), "physionet.org/files/mimic-cxr/2.0.0/files/p12", "files/p12"),
        "metadata_phase_3.csv",
        2,
        "image",
        "malformed image path",
        run=run_metadata_3,
    ),
    Case(
        "phase_3_discarded",
        lambda t: edit(meta3(t), "P300R047190,test,False", "P300R047190,test,True"),
        "metadata_phase_3.csv",
        3,
        "eye_tracking_data_discarded",
        "phase 3 has no discarded readings",
        run=run_metadata_3,
    ),
    # ellipses and chest boxes
    Case(
        "ellipse_without_label",
        lambda t: edit(
            ellipses(t), f"{ELL_ROW_2},False,False,False,False,True", f"{ELL_ROW_2}" + ",False" * 5
        ),
        "anomaly_location_ellipses.csv",
        3,
        "Abnormal mediastinal contour",
        "no label set to True",
        run=run_ellipses,
    ),
    Case(
        "ellipse_certainty_0",
        lambda t: edit(ellipses(t), ELL_ROW_2, "1398,1610,2466,2705,0"),
        "anomaly_location_ellipses.csv",
        3,
        "certainty",
        "below the minimum",
        run=run_ellipses,
    ),
    Case(
        "ellipse_certainty_6",
        lambda t: edit(ellipses(t), ELL_ROW_2, "1398,1610,2466,2705,6"),
        "anomaly_location_ellipses.csv",
        3,
        "certainty",
        "above the maximum",
        run=run_ellipses,
    ),
    Case(
        "ellipse_xmax_below_xmin",
        lambda t: edit(ellipses(t), "228,2101,1105,2874", "228,2101,105,2874"),
        "anomaly_location_ellipses.csv",
        4,
        "xmax",
        "xmax is smaller than xmin",
        run=run_ellipses,
    ),
    Case(
        "chest_box_two_rows",
        lambda t: append_line(chest_box(t), "318,402,2261,2630"),
        "chest_bounding_box.csv",
        3,
        None,
        "exactly one box row, found 2",
        run=run_chest_box,
    ),
    Case(
        "chest_box_ymax_below_ymin",
        lambda t: edit(chest_box(t), "318,402,2261,2630", "318,402,2261,400"),
        "chest_bounding_box.csv",
        2,
        "ymax",
        "ymax is smaller than ymin",
        run=run_chest_box,
    ),
    Case(
        "empty_file",
        lambda t: chest_box(t).write_bytes(b""),
        "chest_bounding_box.csv",
        1,
        None,
        "empty file",
        run=run_chest_box,
    ),
    # MIMIC tables
    Case(
        "truncated_gzip",
        lambda t: mimic_table(t, "split").write_bytes(mimic_table(t, "split").read_bytes()[:60]),
        "mimic-cxr-2.0.0-split.csv.gz",
        None,
        None,
        "gzip",
    ),
    Case(
        "chexpert_value_2",
        lambda t: edit(mimic_table(t, "chexpert"), "51234567,1.0,1.0", "51234567,2.0,1.0"),
        "mimic-cxr-2.0.0-chexpert.csv.gz",
        2,
        "Atelectasis",
        "above the maximum",
    ),
    Case(
        "chexpert_value_half",
        lambda t: edit(mimic_table(t, "chexpert"), "51234567,1.0,1.0", "51234567,1.0,0.5"),
        "mimic-cxr-2.0.0-chexpert.csv.gz",
        2,
        "Cardiomegaly",
        "not 1.0, 0.0, -1.0 or empty",
        run=run_chexpert,
    ),
    Case(
        "malformed_study_id",
        lambda t: edit(mimic_table(t, "chexpert"), "18765432,59876543", "18765432,49876543"),
        "mimic-cxr-2.0.0-chexpert.csv.gz",
        3,
        "study_id",
        "malformed value '49876543'",
        run=run_chexpert,
    ),
    Case(
        "split_value_validation",
        lambda t: edit(mimic_table(t, "split"), "18765432,test", "18765432,validation"),
        "mimic-cxr-2.0.0-split.csv.gz",
        4,
        "split",
        "unexpected value 'validation'",
        run=run_split,
    ),
    Case(
        "duplicated_dicom_id_in_split",
        lambda t: edit(
            mimic_table(t, "split"),
            f"{d.DICOM_3B},59876543,18765432,test\n",
            f"{d.DICOM_3B},59876543,18765432,test\n{d.DICOM_3B},59876543,18765432,test\n",
        ),
        "mimic-cxr-2.0.0-split.csv.gz",
        5,
        "dicom_id",
        "duplicated row key dicom_id",
        run=run_split,
    ),
    Case(
        "split_image_without_metadata",
        lambda t: edit(mimic_table(t, "metadata"), d.MIMIC_METADATA_PHASE_1, ""),
        "mimic-cxr-2.0.0-split.csv.gz",
        5,
        "dicom_id",
        "no row in the metadata table",
    ),
    # REFLACX against MIMIC and the validation subjects
    Case(
        "reflacx_image_not_in_mimic_split",
        lambda t: edit(mimic_table(t, "split"), d.MIMIC_SPLIT_PHASE_1, ""),
        "metadata_phase_1.csv",
        2,
        "dicom_id",
        "not in the MIMIC split table",
    ),
    Case(
        "reflacx_split_differs_from_mimic",
        lambda t: edit(meta3(t), "P300R512734,train,", "P300R512734,validate,"),
        "metadata_phase_3.csv",
        2,
        "split",
        "differs from MIMIC's 'train'",
        run=run_split_consistency,
    ),
    Case(
        "reflacx_study_differs_from_mimic",
        lambda t: edit(
            mimic_table(t, "split"),
            "4f2a9c1e-0b7d3e58-a61c2f94-d3e07b15-9e8c4a27,51234567,",
            "4f2a9c1e-0b7d3e58-a61c2f94-d3e07b15-9e8c4a27,51234568,",
        ),
        "metadata_phase_3.csv",
        2,
        "image",
        "study id 51234567 of the image path differs from MIMIC's 51234568",
    ),
    Case(
        "reflacx_size_differs_from_mimic",
        lambda t: edit(
            mimic_table(t, "metadata"),
            "CHEST (PA AND LAT),PA,3056,2544,",
            "CHEST (PA AND LAT),PA,3056,2540,",
        ),
        "metadata_phase_3.csv",
        2,
        "image_size_x",
        "image_size_x 2544 differs from MIMIC's Columns 2540",
    ),
    Case(
        "reflacx_image_is_lateral_in_mimic",
        lambda t: edit(
            mimic_table(t, "metadata"),
            "CHEST (PORTABLE AP),AP,",
            "CHEST (PORTABLE AP),LATERAL,",
        ),
        "metadata_phase_3.csv",
        3,
        "dicom_id",
        "ViewPosition is 'LATERAL', not PA or AP",
    ),
    Case(
        "validate_subject_not_in_val_list",
        lambda t: t["val_subjects"].write_text("12345678\n"),
        "metadata_phase_1.csv",
        2,
        "subject_id",
        "not in the validation-subjects list",
    ),
    Case(
        "malformed_val_subjects_line",
        lambda t: t["val_subjects"].write_text("15550123\n1555012x\n"),
        "val_subjects.txt",
        2,
        None,
        "malformed subject_id '1555012x'",
    ),
    # encoding
    Case(
        "non_utf8_transcription",
        lambda t: reading_file(t, d.READING_3A, "transcription.txt").write_bytes(
            d.TRANSCRIPTION.replace("pleural", "pl\xe9ural").encode("latin-1")
        ),
        "transcription.txt",
        1,
        None,
        "not valid UTF-8",
        run=run_transcript,
    ),
    Case(
        "non_utf8_metadata",
        lambda t: meta3(t).write_bytes(
            meta3(t).read_bytes().replace(b"scoliosis", b"scoli\xf3sis")
        ),
        "metadata_phase_3.csv",
        3,
        None,
        "not valid UTF-8",
        run=run_metadata_3,
    ),
]


def test_corpus_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return d.write_tree(tmp_path)


def test_valid_tree_passes_with_expected_warnings_only(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    summary = run_check(tree)
    assert summary["reflacx"]["phase_3"]["readings"] == 2
    assert summary["reflacx"]["phase_1"]["discarded"] == 1
    assert summary["mimic"]["images"] == 4
    assert summary["val_subjects"] == 1
    # The only deviation among the examples: the third example fixation is left of the image (it is
    # reused by the phase-1 reading, hence twice).
    assert summary["warnings"] == 2
    assert len(caplog.records) == 2
    assert all("outside the image (2544x3056)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(tree: Tree, case: Case) -> None:
    case.mutate(tree)
    with pytest.raises(DataFormatError) as info:
        (case.run or run_check)(tree)
    err = info.value
    assert (err.path.name, err.line, err.column) == (case.file, case.line, case.column), str(err)
    assert case.reason in err.reason
    message = str(err)
    assert message.startswith(str(err.path))
    assert case.file in message
    assert case.reason in message
    if case.line is None:
        assert ", line " not in message
    else:
        assert f", line {case.line}" in message
    if case.column is None:
        assert ", column " not in message
    else:
        assert f", column '{case.column}'" in message


# --- tolerated deviations: logged warnings ----------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and needle in r.getMessage()
    ]


def _read_fixations(tree: Tree) -> object:
    return reflacx.read_fixations(fixations(tree), width=2544, height=3056)


def test_warning_lf_line_endings(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    tree = d.write_tree(tmp_path, line_endings="lf")
    run_check(tree)
    lf = _warnings(caplog, "LF line endings")
    names = sorted(Path(m.split(":")[0]).name for m in lf)
    # 2 metadata tables; 3 readings x (fixations, words, ellipses, box); discarded: 2 files.
    assert names.count("metadata_phase_3.csv") == 1
    assert names.count("fixations.csv") == 3
    assert names.count("chest_bounding_box.csv") == 4
    assert len(lf) == 2 + 3 * 4 + 2
    assert not any("mimic-cxr" in m for m in lf)  # MIMIC tables are not REFLACX-written


def test_warning_certainty_minus_one(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    text = d.METADATA_PHASE_1.replace(",2544,3056,0,0,0,0,0,0", ",2544,3056,-1,0,0,0,0,0")
    replace_file(meta1(tree), text)
    frame = reflacx.read_metadata(tree["reflacx"], 1)
    (message,) = _warnings(caplog, "certainty -1")
    assert "metadata_phase_1.csv, line 3, column 'Airway wall thickening'" in message
    assert frame.get_column("Airway wall thickening").to_list() == [0, 0]  # read as 0


def test_warning_overlapping_fixations(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    edit(fixations(tree), FIX_ROW_2, "0.4,0.897,1655,1190")
    _read_fixations(tree)
    (message,) = _warnings(caplog, "overlap the previous one")
    assert "fixations.csv, line 3, column 'timestamp_start_fixation'" in message


def test_warning_zero_duration_fixation(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    edit(fixations(tree), FIX_ROW_2, "0.51,0.51,1655,1190")
    _read_fixations(tree)
    (message,) = _warnings(caplog, "zero duration")
    assert "fixations.csv, line 3, column 'timestamp_end_fixation'" in message


def test_warning_displayed_rectangle_beyond_image(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    edit(fixations(tree), "0,896,2521,3056", "0,896,2521,3100")
    _read_fixations(tree)
    (message,) = _warnings(caplog, "displayed rectangle")
    assert "fixations.csv, line 5, column 'ymax_shown_from_image'" in message


def test_warning_fixations_outside_image(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    _read_fixations(tree)
    (message,) = _warnings(caplog, "outside the image (2544x3056)")
    assert "fixations.csv, line 4, column 'x_position'" in message
    assert message.startswith("1 fixation") is False  # the location comes first
    caplog.clear()
    edit(fixations(tree), "0.212,0.468,1301,1422", "0.212,0.468,1301,3056")
    _read_fixations(tree)
    (message,) = _warnings(caplog, "outside the image (2544x3056)")
    assert "fixations.csv, line 2, column 'y_position': 2 fixation(s)" in message
    # one kind in the data check's summary, whatever the image size
    from gazeloc.datacheck import warning_kind

    assert warning_kind(message) == "fixation(s) outside the image"
    assert warning_kind(message.replace("2544x3056", "390x483")) == warning_kind(message)


def test_warning_files_of_discarded_reading(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    extra = reading_file(tree, d.READING_1D, "transcription.txt")
    extra.write_text(d.TRANSCRIPTION, encoding="utf-8")
    (discarded,) = [r for r in reflacx.read_readings(tree["reflacx"], [1]) if r.discarded]
    reflacx.check_reading_files(discarded)
    (message,) = _warnings(caplog, "discarded reading")
    assert "transcription.txt" in message


# --- the command line ----------------------------------------------------------------------


def _cli_args(tree: Tree, out: Path) -> list[str]:
    return [
        "check",
        "--reflacx",
        str(tree["reflacx"]),
        "--mimic",
        str(tree["mimic"]),
        "--val-subjects",
        str(tree["val_subjects"]),
        "--out",
        str(out),
    ]


def test_cli_check_reports_error_without_traceback(tree: Tree, tmp_path: Path, capsys) -> None:
    edit(words(tree), "tube,2.02", "tubes,2.02")
    out = tmp_path / "check.json"
    assert main(_cli_args(tree, out)) == 2
    err = capsys.readouterr().err
    assert "gazeloc check: error: " in err
    assert "timestamps_transcription.csv, line 3, column 'word'" in err
    assert d.READING_3A in err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_check_passes_on_valid_tree(tree: Tree, tmp_path: Path, capsys) -> None:
    out = tmp_path / "check.json"
    assert main(_cli_args(tree, out)) == 0
    summary = json.loads(out.read_text())
    assert summary["reflacx"]["phase_1"]["readings"] == 2
    assert "error:" not in capsys.readouterr().err


# --- the whole check: every problem in one run, images, phases, warnings ------------------


def _image(tree: Tree, dicom_id: str = d.DICOM_3A) -> Path:
    return d.image_path(tree["mimic"], dicom_id)


def _png_bytes(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 100).save(buffer, format="PNG")
    return buffer.getvalue()


def _rgb_jpeg(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (9, 9, 9)).save(buffer, format="JPEG")
    return buffer.getvalue()


IMAGE_CASES = [
    ("image missing", lambda t: _image(t).unlink(), "image file not found"),
    ("image empty", lambda t: _image(t).write_bytes(b""), "image file is empty"),
    (
        "PNG named .jpg",
        lambda t: _image(t).write_bytes(_png_bytes(2544, 3056)),
        "a PNG file named .jpg: expected a JPEG",
    ),
    (
        "RGB JPEG",
        lambda t: _image(t).write_bytes(_rgb_jpeg(2544, 3056)),
        "expected 8-bit grayscale (mode 'L')",
    ),
    (
        "size differs from the metadata",
        lambda t: _image(t).write_bytes(d.gray_jpeg(2544, 3000)),
        "image is 2544x3000 but the metadata says 2544x3056 (Columns x Rows)",
    ),
    (
        "not an image",
        lambda t: _image(t).write_bytes(b"hello, not a picture"),
        "not a readable image",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "reason"), [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES]
)
def test_bad_image(tree: Tree, mutate, reason: str) -> None:
    mutate(tree)
    with pytest.raises(DataFormatError) as info:
        run_check(tree)
    assert info.value.path == _image(tree)
    assert reason in str(info.value)


def test_bad_image_with_on_bad_image_skip_is_a_warning(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    _image(tree).unlink()
    summary = check_datasets(
        tree["reflacx"], tree["mimic"], tree["val_subjects"], on_bad_image="skip", progress=False
    )
    assert summary["images"]["bad"] == 1
    (message,) = _warnings(caplog, "image file not found")
    assert "on_bad_image: skip" in message and d.DICOM_3A in message


def _sums(tree: Tree, skip: str | None = None) -> Path:
    import hashlib

    lines = []
    for path in sorted((tree["mimic"] / "files").rglob("*.jpg")):
        if skip and skip in path.name:
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(tree['mimic']).as_posix()}\n")
    target = tree["mimic"] / "SHA256SUMS.txt"
    target.write_text("".join(lines))
    return target


def _check_sums(tree: Tree) -> dict:
    return check_datasets(
        tree["reflacx"], tree["mimic"], tree["val_subjects"], verify_checksums=True, progress=False
    )


def test_checksums_pass_and_are_counted(tree: Tree) -> None:
    _sums(tree)
    assert _check_sums(tree)["images"]["checksums_compared"] == 3  # the lateral is unused
    # Off by default: a corrupt image with a valid header passes the header check.
    data = bytearray(_image(tree).read_bytes())
    data[-10] ^= 0xFF
    _image(tree).write_bytes(bytes(data))
    assert run_check(tree)["images"]["bad"] == 0
    with pytest.raises(DataFormatError, match=r"SHA-256 differs from SHA256SUMS\.txt") as info:
        _check_sums(tree)
    assert info.value.path == _image(tree)


def test_checksums_image_not_listed(tree: Tree) -> None:
    _sums(tree, skip=d.DICOM_3B)
    with pytest.raises(DataFormatError, match=r"not listed in SHA256SUMS\.txt") as info:
        _check_sums(tree)
    assert info.value.path == _image(tree, d.DICOM_3B)


def test_checksums_malformed_line(tree: Tree) -> None:
    (tree["mimic"] / "SHA256SUMS.txt").write_text("abc files/x.jpg\n")
    with pytest.raises(DataFormatError) as info:
        _check_sums(tree)
    assert (info.value.path.name, info.value.line) == ("SHA256SUMS.txt", 1)
    assert "expected '<sha256>  <path>'" in str(info.value)


def test_checksums_asked_but_absent_warns(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    _check_sums(tree)
    (message,) = _warnings(caplog, "SHA256SUMS.txt: not found")
    assert "data.verify_checksums" in message


def test_missing_phase_file(tree: Tree) -> None:
    with pytest.raises(DataFormatError) as info:
        check_datasets(
            tree["reflacx"], tree["mimic"], tree["val_subjects"], phases=[1, 2, 3], progress=False
        )
    assert info.value.path.name == "metadata_phase_2.csv"
    assert "file not found: the workflow uses REFLACX phase 2" in str(info.value)


def test_csv_gz_beside_csv_warns_which_is_read(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    plain = tree["mimic"] / "mimic-cxr-2.0.0-split.csv"
    plain.write_text(_read(mimic_table(tree, "split")))
    run_check(tree)
    messages = _warnings(caplog, "both mimic-cxr-2.0.0-split.csv.gz and")
    assert len(messages) == 1  # once, though two readers open the table
    assert "reading mimic-cxr-2.0.0-split.csv.gz" in messages[0]


def test_header_only_fixations_warns_and_is_counted(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    replace_file(fixations(tree), d.FIXATIONS.splitlines()[0] + "\n")
    summary = run_check(tree)
    (message,) = _warnings(caplog, "no fixations (header only)")
    assert f"{d.READING_3A}/fixations.csv" in message
    assert summary["warnings_by_kind"]["no fixations"] == 1


def test_words_after_last_fixation_warns(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    lines = d.TIMESTAMPS.splitlines()
    shifted = [lines[0]]
    for line in lines[1:]:
        word, start, end = line.rsplit(",", 2)
        shifted.append(f"{word},{float(start) + 60:.3f},{float(end) + 60:.3f}")
    replace_file(words(tree), "\n".join(shifted) + "\n")
    summary = run_check(tree)
    (message,) = _warnings(caplog, "every word starts after the last fixation ends")
    assert "timestamps_transcription.csv, line 2, column 'timestamp_start_word'" in message
    assert d.READING_3A in message
    assert summary["warnings_by_kind"]["every word starts after the last fixation ends"] == 1


def _break_three(tree: Tree) -> None:
    edit(words(tree), "tube,2.02", "tubes,2.02")  # a word mismatch (phase 3)
    edit(chest_box(tree), "xmin", "xmn")  # a bad header (same reading, another file)
    _image(tree, d.DICOM_1).unlink()  # a missing image


def test_every_problem_in_one_run(tree: Tree) -> None:
    from gazeloc.datacheck import DataCheckError

    _break_three(tree)
    with pytest.raises(DataCheckError) as info:
        run_check(tree)
    names = [p.path.name for p in info.value.problems]
    assert names == ["chest_bounding_box.csv", "timestamps_transcription.csv", d.DICOM_1 + ".jpg"]
    message = str(info.value)
    assert message.splitlines()[-1] == "3 problems in the data"
    assert "timestamps_transcription.csv, line 3, column 'word'" in message


def test_max_errors_caps_the_list(tree: Tree) -> None:
    from gazeloc.datacheck import DataCheckError

    _break_three(tree)
    with pytest.raises(DataCheckError) as info:
        check_datasets(
            tree["reflacx"], tree["mimic"], tree["val_subjects"], max_errors=2, progress=False
        )
    assert len(info.value.problems) == 2 and info.value.more == 1
    assert str(info.value).splitlines()[-1] == (
        "3 problems in the data (the first 2 listed; data.max_errors sets how many)"
    )


def test_cli_check_lists_every_problem(tree: Tree, tmp_path: Path, capsys) -> None:
    _break_three(tree)
    out = tmp_path / "check.json"
    assert main([*_cli_args(tree, out), "--max-errors", "10"]) == 2
    err = capsys.readouterr().err
    assert "gazeloc check: 3 errors:" in err
    assert err.count("gazeloc check: error: ") == 3
    assert "Traceback" not in err
    assert not out.exists()


# --- readers: BOM, CR-only, over-long fields, overflow; small and large tables alike ------


def test_utf8_bom_is_accepted_with_a_warning(tree: Tree, caplog) -> None:
    caplog.set_level(logging.WARNING)
    meta3(tree).write_bytes(b"\xef\xbb\xbf" + meta3(tree).read_bytes())
    frame = reflacx.read_metadata(tree["reflacx"], 3)
    assert frame.get_column("id").to_list()[0] == d.READING_3A
    (message,) = _warnings(caplog, "byte-order mark")
    assert "metadata_phase_3.csv, line 1" in message


READER_CASES = [
    (
        "CR-only line endings",
        lambda t: fixations(t).write_bytes(fixations(t).read_bytes().replace(b"\r\n", b"\r")),
        "fixations.csv",
        1,
        None,
        "CR-only (old Mac) line endings are not supported",
    ),
    (
        "a field over the csv module's limit",
        lambda t: edit(fixations(t), "0.212,0.468,1301", '0.212,"' + "9" * 200_000 + '",1301'),
        "fixations.csv",
        2,
        None,
        "a field longer than 131,072 characters",
    ),
    (
        "integer overflow (small table)",
        lambda t: edit(fixations(t), ",132,131,", ",99999999999999999999,131,"),
        "fixations.csv",
        2,
        "angular_resolution_x_pixels_per_degree",
        "integer 99999999999999999999 is out of range",
    ),
    (
        "digit separator in a number",
        lambda t: edit(fixations(t), "0.212,0.468", "0.212,0_468"),
        "fixations.csv",
        2,
        "timestamp_end_fixation",
        "expected a number, found '0_468'",
    ),
    (
        "spaces around a number",
        lambda t: edit(fixations(t), "0.212,0.468", "0.212, 0.468 "),
        "fixations.csv",
        2,
        "timestamp_end_fixation",
        "expected a number, found ' 0.468 '",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "file", "line", "column", "reason"),
    [c[1:] for c in READER_CASES],
    ids=[c[0] for c in READER_CASES],
)
def test_reader_bad_input(tree: Tree, mutate, file, line, column, reason) -> None:
    mutate(tree)
    with pytest.raises(DataFormatError) as info:
        run_fixations(tree)
    err = info.value
    assert (err.path.name, err.line, err.column) == (file, line, column), str(err)
    assert reason in str(err) and str(err).startswith(str(err.path))


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("99999999999999999999", "integer 99999999999999999999 is out of range"),
        ("1_0", "expected an integer, found '1_0'"),
        (" 12 ", "expected an integer, found ' 12 '"),
    ],
)
@pytest.mark.parametrize("rows", [3, 30_000], ids=["small", "large"])
def test_small_and_large_tables_parse_identically(tmp_path: Path, rows: int, cell, reason):
    """The small-table (Python) and large-table (polars) paths share one rule; a required
    column never comes back null."""
    from gazeloc.io.table import SMALL_TABLE_ROWS, Column, read_table

    assert (rows < SMALL_TABLE_ROWS) == (rows == 3)  # one case on each path
    columns = (Column("n", "int"), Column("x", "float"))
    path = tmp_path / "t.csv"
    body = "".join(f"{i},{i}.5\n" for i in range(rows - 1))
    path.write_text(f"n,x\n{body}{cell},1.0\n")
    with pytest.raises(DataFormatError) as info:
        read_table(path, columns)
    assert (info.value.line, info.value.column) == (rows + 1, "n")
    assert reason in str(info.value)
    path.write_text(f"n,x\n{body}7,2.0\n")
    frame = read_table(path, columns)
    assert frame.get_column("n").null_count() == 0 and frame.get_column("n")[-1] == 7

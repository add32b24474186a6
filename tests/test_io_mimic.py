"""MIMIC-CXR-JPG reader on example tables in the exact MIMIC-CXR-JPG 2.0.0 format."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
import section_d as d

from gazeloc.errors import DataFormatError
from gazeloc.io import mimic
from gazeloc.labels import CHEXPERT_COLUMNS


@pytest.fixture(params=["csv.gz", "csv"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    gz = request.param == "csv.gz"
    for table, text in (
        ("metadata", d.MIMIC_METADATA),
        ("chexpert", d.MIMIC_CHEXPERT),
        ("negbio", d.MIMIC_CHEXPERT),
        ("split", d.MIMIC_SPLIT),
    ):
        d.write_mimic_table(tmp_path, table, text, gz=gz)
    return tmp_path


def test_table_path_prefers_gz(tmp_path: Path) -> None:
    plain = d.write_mimic_table(tmp_path, "split", d.MIMIC_SPLIT, gz=False)
    assert mimic.table_path(tmp_path, "split") == plain
    packed = d.write_mimic_table(tmp_path, "split", d.MIMIC_SPLIT, gz=True)
    assert packed.name == "mimic-cxr-2.0.0-split.csv.gz"
    assert gzip.decompress(packed.read_bytes()).decode() == d.MIMIC_SPLIT
    assert mimic.table_path(tmp_path, "split") == packed
    with pytest.raises(ValueError, match="unknown"):
        mimic.table_path(tmp_path, "reports")


def test_missing_table(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError) as info:
        mimic.read_split(tmp_path)
    err = info.value
    assert err.path.name == "mimic-cxr-2.0.0-split.csv.gz"
    assert (err.line, err.column) == (None, None)
    assert "mimic-cxr-2.0.0-split.csv" in err.reason


def test_metadata_values(root: Path) -> None:
    frame = mimic.read_metadata(root)
    assert frame.columns == [c.name for c in mimic.METADATA_COLUMNS]
    assert frame.height == 3
    assert frame.schema["subject_id"] == pl.Int64
    assert frame.schema["study_id"] == pl.Int64
    assert frame.schema["Rows"] == pl.Int64
    assert frame.schema["StudyDate"] == pl.Int64
    assert frame.schema["StudyTime"] == pl.Float64
    first, second, third = frame.iter_rows(named=True)
    assert first == {
        "dicom_id": d.DICOM_3A,
        "subject_id": 12345678,
        "study_id": 51234567,
        "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
        "ViewPosition": "PA",
        "Rows": 3056,
        "Columns": 2544,
        "StudyDate": 21530611,
        "StudyTime": 101522.312,
        "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)",
        "ViewCodeSequence_CodeMeaning": "postero-anterior",
        "PatientOrientationCodeSequence_CodeMeaning": "Erect",
    }
    assert second["ViewPosition"] == "LATERAL"
    assert second["ViewCodeSequence_CodeMeaning"] == "lateral"
    assert third["ViewPosition"] == "AP"
    assert (third["Rows"], third["Columns"]) == (2544, 3056)
    assert third["StudyTime"] == 83207.0
    assert third["PatientOrientationCodeSequence_CodeMeaning"] is None


@pytest.mark.parametrize("table", ["chexpert", "negbio"])
def test_label_values(root: Path, table: str) -> None:
    frame = mimic.read_labels(root, table)
    assert frame.columns == ["subject_id", "study_id", *CHEXPERT_COLUMNS]
    assert all(frame.schema[c] == pl.Float64 for c in CHEXPERT_COLUMNS)
    assert frame.get_column("subject_id").to_list() == [12345678, 18765432, 15550123]
    assert frame.get_column("study_id").to_list() == [51234567, 59876543, 53330987]
    first = frame.row(0, named=True)
    assert first["Atelectasis"] == 1.0
    assert first["Cardiomegaly"] == 1.0
    assert first["Consolidation"] is None
    assert first["Pleural Effusion"] == -1.0
    assert first["Pneumothorax"] == 0.0
    assert first["Support Devices"] == 1.0
    assert first["No Finding"] is None
    second = frame.row(1, named=True)
    assert second["Lung Lesion"] == -1.0
    assert sum(v is not None for v in second.values()) == 3
    assert frame.row(2, named=True)["No Finding"] == 1.0


def test_split_values(root: Path) -> None:
    frame = mimic.read_split(root)
    assert frame.columns == ["dicom_id", "study_id", "subject_id", "split"]
    assert frame.get_column("split").to_list() == ["train", "train", "test"]
    assert frame.get_column("subject_id").to_list() == [12345678, 12345678, 18765432]
    assert frame.get_column("study_id").to_list() == [51234567, 51234567, 59876543]
    assert frame.schema["subject_id"] == pl.Int64


def test_gz_and_csv_agree(tmp_path: Path) -> None:
    for table, text in (("metadata", d.MIMIC_METADATA), ("split", d.MIMIC_SPLIT)):
        d.write_mimic_table(tmp_path / "gz", table, text, gz=True)
        d.write_mimic_table(tmp_path / "csv", table, text, gz=False)
    d.write_mimic_table(tmp_path / "gz", "chexpert", d.MIMIC_CHEXPERT, gz=True)
    d.write_mimic_table(tmp_path / "csv", "chexpert", d.MIMIC_CHEXPERT, gz=False)
    assert mimic.read_metadata(tmp_path / "gz").equals(mimic.read_metadata(tmp_path / "csv"))
    assert mimic.read_split(tmp_path / "gz").equals(mimic.read_split(tmp_path / "csv"))
    assert mimic.read_labels(tmp_path / "gz").equals(mimic.read_labels(tmp_path / "csv"))


def test_jpg_paths() -> None:
    expected = Path("/jpg/files/p12/p12345678/s51234567") / f"{d.DICOM_3A}.jpg"
    assert mimic.jpg_path("/jpg", 12345678, 51234567, d.DICOM_3A) == expected
    assert mimic.jpg_path(Path("/jpg"), "12345678", "51234567", d.DICOM_3A) == expected
    assert (
        mimic.relative_jpg_path(12345678, 51234567, d.DICOM_3A)
        == f"files/p12/p12345678/s51234567/{d.DICOM_3A}.jpg"
    )


def test_split_joins_labels_by_study(root: Path) -> None:
    split = mimic.read_split(root)
    labels = mimic.read_labels(root)
    joined = split.join(labels, on=["subject_id", "study_id"], how="left")
    row = joined.filter(pl.col("dicom_id") == d.DICOM_3B).row(0, named=True)
    assert row["split"] == "test"
    assert row["Lung Lesion"] == -1.0
    meta = mimic.read_metadata(root)
    frontal = meta.filter(pl.col("ViewPosition").is_in(mimic.FRONTAL_VIEWS))
    assert frontal.get_column("dicom_id").to_list() == [d.DICOM_3A, d.DICOM_3B]

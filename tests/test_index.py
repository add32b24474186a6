"""Image list and index: the paper's filter, labels, splits, REFLACX join, dataset counts."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import polars as pl
import pytest

from gazeloc.cli import main
from gazeloc.errors import DataFormatError
from gazeloc.images.index import (
    build_image_list,
    build_index,
    dataset_counts,
    dataset_counts_markdown,
    ellipse_labels,
    write_image_list,
    write_index,
)
from gazeloc.io import reflacx
from gazeloc.labels import CHEXPERT_COLUMNS, MODEL_LABELS, REFLACX_TO_MODEL

TABLES = ("chexpert", "negbio", "metadata", "split")
SUBJECT = 19999991


def _dicom(n: int) -> str:
    return f"{n:08x}-00000000-11111111-22222222-{n:08x}"


def _copy_tree(tiny: Path, dst: Path) -> tuple[Path, Path]:
    """Copy the tiny dataset's tables (as plain .csv) and REFLACX main_data (no images)."""
    mimic = dst / "mimic"
    mimic.mkdir(parents=True)
    for table in TABLES:
        raw = gzip.decompress(
            (tiny / "mimic-cxr-jpg" / f"mimic-cxr-2.0.0-{table}.csv.gz").read_bytes()
        )
        (mimic / f"mimic-cxr-2.0.0-{table}.csv").write_bytes(raw)
    shutil.copytree(tiny / "reflacx" / "main_data", dst / "reflacx" / "main_data")
    return mimic, dst / "reflacx"


def _append(mimic: Path, table: str, lines: list[str]) -> None:
    path = mimic / f"mimic-cxr-2.0.0-{table}.csv"
    text = path.read_text()
    path.write_text(text + "".join(line + "\n" for line in lines))


def _image(mimic: Path, dicom: str, study: int, view: str, split: str = "train", subject=SUBJECT):
    _append(
        mimic,
        "metadata",
        [f"{dicom},{subject},{study},CHEST,{view},3056,2544,21530611,101522.312,CHEST,,Erect"],
    )
    _append(mimic, "split", [f"{dicom},{study},{subject},{split}"])


def _label_row(mimic: Path, study: int, values: dict[str, str], subject=SUBJECT) -> None:
    cells = [values.get(name, "") for name in CHEXPERT_COLUMNS]
    _append(mimic, "chexpert", [f"{subject},{study}," + ",".join(cells)])


@pytest.fixture(scope="module")
def edited(tiny_synthetic, tmp_path_factory):
    """The tiny tables plus hand-made studies whose filter outcome is known."""
    root = tmp_path_factory.mktemp("edited")
    mimic, refl = _copy_tree(tiny_synthetic, root)
    # A: PA + lateral, labelled -> only the PA image
    _image(mimic, _dicom(1), 59999901, "PA")
    _image(mimic, _dicom(2), 59999901, "LATERAL")
    _label_row(mimic, 59999901, {"Edema": "1.0", "Pneumothorax": "-1.0", "Pleural Effusion": "0.0"})
    # B: two frontal images -> neither
    _image(mimic, _dicom(3), 59999902, "PA")
    _image(mimic, _dicom(4), 59999902, "AP")
    _label_row(mimic, 59999902, {})
    # C: AP without a label row -> not listed
    _image(mimic, _dicom(5), 59999903, "AP", split="test")
    # D: no view -> not listed
    _image(mimic, _dicom(6), 59999904, "")
    _label_row(mimic, 59999904, {})
    # E: AP + LL, labelled, official validate -> the AP image
    _image(mimic, _dicom(7), 59999905, "AP", split="validate")
    _image(mimic, _dicom(8), 59999905, "LL", split="validate")
    _label_row(mimic, 59999905, {"No Finding": "1.0"})
    # F: a second frontal image in the study of a REFLACX phase-3 image
    meta = reflacx.read_metadata(refl, 3)
    target = meta.row(0, named=True)
    _image(
        mimic,
        _dicom(9),
        target["study_id"],
        "AP",
        split=target["split"],
        subject=target["subject_id"],
    )
    return mimic, refl, target


@pytest.fixture(scope="module")
def image_list(edited):
    mimic, refl, _ = edited
    return build_image_list(mimic, refl)


def test_filter_keeps_single_frontal_labelled_images(edited, image_list):
    listed = set(image_list["dicom_id"])
    assert _dicom(1) in listed and _dicom(7) in listed
    for n in (2, 3, 4, 5, 6, 8, 9):
        assert _dicom(n) not in listed, n
    row = image_list.filter(pl.col("dicom_id") == _dicom(1)).row(0, named=True)
    assert row["path"] == f"files/p19/p{SUBJECT}/s59999901/{_dicom(1)}.jpg"
    assert (row["width"], row["height"], row["view"]) == (2544, 3056, "PA")
    assert row["in_filter"] and row["reflacx_ids"] == []


def test_every_listed_image_passes_the_filter_on_the_raw_tables(tiny_synthetic):
    """Recompute the filter independently from the raw metadata with plain Python."""
    root = tiny_synthetic / "mimic-cxr-jpg"
    images = build_image_list(root, tiny_synthetic / "reflacx")
    meta = pl.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", infer_schema=False)
    labels = pl.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", infer_schema=False)
    labelled = {(r[0], r[1]) for r in labels.select("subject_id", "study_id").iter_rows()}
    frontal: dict[tuple[str, str], list[str]] = {}
    for dicom, subject, study, view in meta.select(
        "dicom_id", "subject_id", "study_id", "ViewPosition"
    ).iter_rows():
        if view in ("PA", "AP"):
            frontal.setdefault((subject, study), []).append(dicom)
    expected = {ids[0] for key, ids in frontal.items() if len(ids) == 1 and key in labelled}
    assert set(images.filter(pl.col("in_filter"))["dicom_id"]) == expected
    assert len(expected) < meta.height  # the filter matters on the synthetic data


def test_reflacx_image_outside_the_filter_is_kept_with_a_warning(edited, caplog):
    mimic, refl, target = edited
    with caplog.at_level(logging.WARNING):
        images = build_image_list(mimic, refl)
    row = images.filter(pl.col("dicom_id") == target["dicom_id"]).row(0, named=True)
    assert not row["in_filter"]
    assert target["id"] in row["reflacx_ids"]
    assert "fails the paper's filter (its study has 2 frontal images)" in caplog.text


def test_reflacx_ids_are_joined_by_dicom_id(tiny_synthetic):
    images = build_image_list(tiny_synthetic / "mimic-cxr-jpg", tiny_synthetic / "reflacx")
    ids = {r: d for d, rs in images.select("dicom_id", "reflacx_ids").iter_rows() for r in rs}
    for phase in (1, 2, 3):
        meta = reflacx.read_metadata(tiny_synthetic / "reflacx", phase)
        for reading, dicom in meta.select("id", "dicom_id").iter_rows():
            assert ids[reading] == dicom


def test_missing_split_row_is_an_error(edited, tmp_path):
    mimic, refl, _ = edited
    copy = tmp_path / "mimic"
    shutil.copytree(mimic, copy)
    _append(
        copy,
        "metadata",
        [f"{_dicom(10)},{SUBJECT},59999906,CHEST,PA,30,20,21530611,101522.312,CHEST,,Erect"],
    )
    with pytest.raises(DataFormatError) as info:
        build_image_list(copy, refl)
    assert "mimic-cxr-2.0.0-metadata.csv" in str(info.value)
    assert _dicom(10) in str(info.value) and "has no row in" in str(info.value)


# --- labels -------------------------------------------------------------------------------


def _one_study(values: dict[str, float | None], **kwargs) -> dict:
    images = pl.DataFrame(
        {
            "dicom_id": [_dicom(1)],
            "subject_id": [SUBJECT],
            "study_id": [59999901],
            "path": ["x.jpg"],
            "width": [10],
            "height": [10],
            "view": ["PA"],
            "official_split": ["train"],
            "in_filter": [True],
            "reflacx_ids": [[]],
        },
        schema_overrides={"reflacx_ids": pl.List(pl.String)},
    )
    chexpert = pl.DataFrame(
        {
            "subject_id": [SUBJECT],
            "study_id": [59999901],
            **{c: [values.get(c)] for c in CHEXPERT_COLUMNS},
        },
        schema_overrides={c: pl.Float64 for c in CHEXPERT_COLUMNS},
    )
    return build_index(images, chexpert, [], **kwargs).row(0, named=True)


def _labels(row: dict) -> dict:
    return {label: row[label] for label in MODEL_LABELS}


def test_labels_follow_the_reference_mapping():
    row = _one_study({"Edema": 1.0})
    assert {k for k, v in _labels(row).items() if v} == {"edema", "opacity"}
    assert all(v is False for k, v in _labels(row).items() if k not in ("edema", "opacity"))
    row = _one_study({"Enlarged Cardiomediastinum": 1.0, "Pleural Other": 1.0})
    assert {k for k, v in _labels(row).items() if v} == {
        "abnormal_mediastinal_contour",
        "pleural_abnormality",
    }
    row = _one_study({"Lung Lesion": -1.0})  # uncertain counts as positive (reference)
    assert {k for k, v in _labels(row).items() if v} == {"lung_lesion", "opacity"}
    row = _one_study({"No Finding": 1.0, "Support Devices": 1.0})  # unused columns
    assert not any(_labels(row).values())


@pytest.mark.parametrize(
    ("uncertain_as", "expected"),
    [("positive", True), ("negative", False), ("ignore", None)],
)
def test_uncertain_as(uncertain_as, expected):
    row = _one_study({"Cardiomegaly": -1.0, "Pneumonia": -1.0}, uncertain_as=uncertain_as)
    assert row["enlarged_cardiac_silhouette"] is expected
    assert row["opacity"] is expected
    assert row["edema"] is False  # blank -> negative


@pytest.mark.parametrize(
    ("blank_as", "pleural", "fracture"),
    [("negative", False, False), ("positive", True, True), ("ignore", None, None)],
)
def test_blank_as(blank_as, pleural, fracture):
    # Pleural Effusion 0 and Pleural Other blank; Fracture blank
    row = _one_study({"Pleural Effusion": 0.0}, blank_as=blank_as)
    assert row["pleural_abnormality"] is pleural
    assert row["fracture"] is fracture


def test_three_valued_or():
    # a positive source wins over an ignored one; an ignored one wins over a negative one
    row = _one_study(
        {"Consolidation": 1.0, "Lung Opacity": -1.0, "Pneumonia": 0.0}, uncertain_as="ignore"
    )
    assert row["opacity"] is True and row["consolidation"] is True
    row = _one_study(
        {
            "Consolidation": 0.0,
            "Lung Opacity": -1.0,
            "Pneumonia": 0.0,
            "Edema": 0.0,
            "Lung Lesion": 0.0,
            "Atelectasis": 0.0,
        },
        uncertain_as="ignore",
    )
    assert row["opacity"] is None and row["consolidation"] is False


def test_bad_label_choice():
    with pytest.raises(ValueError, match="uncertain_as"):
        _one_study({}, uncertain_as="maybe")


# --- splits, REFLACX, dedupe ---------------------------------------------------------------


def _split_case(official: str, subject: int, val: list[int]) -> str:
    images = pl.DataFrame(
        {
            "dicom_id": [_dicom(1)],
            "subject_id": [subject],
            "study_id": [59999901],
            "path": ["x.jpg"],
            "width": [1],
            "height": [1],
            "view": ["PA"],
            "official_split": [official],
            "in_filter": [True],
            "reflacx_ids": [[]],
        },
        schema_overrides={"reflacx_ids": pl.List(pl.String)},
    )
    chexpert = pl.DataFrame(
        {"subject_id": [subject], "study_id": [59999901]} | {c: [None] for c in CHEXPERT_COLUMNS},
        schema_overrides={c: pl.Float64 for c in CHEXPERT_COLUMNS},
    )
    return build_index(images, chexpert, val)["split"][0]


@pytest.mark.parametrize(
    ("official", "in_list", "expected"),
    [
        ("train", False, "train"),
        ("train", True, "val"),
        ("validate", False, "val"),
        ("validate", True, "val"),
        ("test", False, "test"),
        ("test", True, "test"),  # test wins over the list
    ],
)
def test_split_rule(official, in_list, expected):
    assert _split_case(official, SUBJECT, [SUBJECT] if in_list else [12345678]) == expected


def test_index_flags_and_dedupe(tiny_synthetic):
    images = build_image_list(tiny_synthetic / "mimic-cxr-jpg", tiny_synthetic / "reflacx")
    from gazeloc.io.mimic import read_labels

    chexpert = read_labels(tiny_synthetic / "mimic-cxr-jpg")
    kept = build_index(images, chexpert, [])
    phase3 = set(reflacx.read_metadata(tiny_synthetic / "reflacx", 3)["dicom_id"])
    assert set(kept.filter(pl.col("in_reflacx"))["dicom_id"]) == phase3
    assert kept["in_mimic"].to_list() == kept["in_filter"].to_list()
    deduped = build_index(images, chexpert, [], dedupe_reflacx=True)
    assert (
        set(deduped.filter(pl.col("in_mimic"))["dicom_id"])
        == set(kept.filter(pl.col("in_filter"))["dicom_id"]) - phase3
    )
    # phase 1-2 images stay in the MIMIC set; phase-3 images are still indexed (for shards)
    assert deduped.height == kept.height
    early = {d for d, ids in kept.select("dicom_id", "reflacx_ids").iter_rows() if ids}
    assert (early - phase3) <= set(deduped.filter(pl.col("in_mimic"))["dicom_id"])


# --- dataset counts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("index")
    write_image_list(
        tiny_synthetic / "mimic-cxr-jpg", tiny_synthetic / "reflacx", out / "i.parquet"
    )
    index = write_index(
        out / "i.parquet",
        tiny_synthetic / "mimic-cxr-jpg",
        tiny_synthetic / "reflacx",
        tiny_synthetic / "val_subjects.txt",
        out / "index.parquet",
        out / "dataset_counts.csv",
        out / "dataset_counts.md",
        progress=False,
    )
    return out, index


def test_dataset_counts_schema_and_order(written):
    out, _ = written
    counts = pl.read_csv(out / "dataset_counts.csv")
    assert counts.columns == ["dataset", "split", "label", "n_positive"]
    assert counts.height == 2 * 3 * 10
    assert counts["label"].to_list()[:10] == list(MODEL_LABELS)
    assert counts["dataset"].unique(maintain_order=True).to_list() == ["reflacx", "mimic"]
    assert counts["split"].unique(maintain_order=True).to_list() == ["train", "val", "test"]
    md = (out / "dataset_counts.md").read_text()
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "Edema",
        "Opacity",
        "Pneumothorax",
        "Pleural abnormality",
        "Lung lesion",
        "Atelectasis",
        "Consolidation",
        "Fracture",
        "Enlarged cardiac silhouette",
        "Abnormal mediastinal contour",
    ]
    assert list(out.glob("*.tmp")) == [] and list(out.glob(".*")) == []


def test_mimic_counts_are_index_sums(written):
    out, index = written
    counts = pl.read_csv(out / "dataset_counts.csv").filter(pl.col("dataset") == "mimic")
    for split, label, n in counts.select("split", "label", "n_positive").iter_rows():
        part = index.filter(pl.col("in_mimic") & (pl.col("split") == split))
        assert n == int(part[label].fill_null(False).sum())
    assert counts["n_positive"].sum() > 0


def test_reflacx_counts_match_metadata_certainties(tiny_synthetic, written):
    """Ellipse labels (certainty >= 3) recomputed from the metadata's per-label certainties
    (metadata value = max certainty of the ellipses tagged with it, as REFLACX writes it)."""
    out, index = written
    meta = reflacx.read_metadata(tiny_synthetic / "reflacx", 3)
    split_of = dict(index.select("dicom_id", "split").iter_rows())
    expected = {(s, m): 0 for s in ("train", "val", "test") for m in MODEL_LABELS}
    for row in meta.iter_rows(named=True):
        present = {
            target
            for column, targets in REFLACX_TO_MODEL.items()
            if column in row and isinstance(row[column], int) and row[column] >= 3
            for target in targets
        }
        for label in present:
            expected[(split_of[row["dicom_id"]], label)] += 1
    counts = pl.read_csv(out / "dataset_counts.csv").filter(pl.col("dataset") == "reflacx")
    got = {(s, m): n for _, s, m, n in counts.iter_rows()}
    assert got == expected
    assert sum(got.values()) > 0


def test_counts_markdown_cells():
    counts = pl.DataFrame(
        {
            "dataset": ["mimic"],
            "split": ["train"],
            "label": ["fracture"],
            "n_positive": [13551],
        }
    )
    md = dataset_counts_markdown(
        counts,
        {("mimic", "train"): 187519},
        uncertain_as="positive",
        blank_as="negative",
        dedupe_reflacx=False,
    )
    assert "| Fracture | 0 | 0 | 0 | 13,551 | 0 | 0 |" in md
    assert "MIMIC train 187,519" in md


def test_ellipse_labels_threshold(tiny_synthetic):
    readings = reflacx.read_readings(tiny_synthetic / "reflacx", [3])
    labels = ellipse_labels(readings, progress=False)
    assert labels.height == len(readings)
    assert labels.columns == ["reading_id", "dicom_id", *MODEL_LABELS]


def test_dataset_counts_needs_every_reading_image():
    index = pl.DataFrame({"dicom_id": ["a"], "split": ["train"], "in_mimic": [True]})
    labels = pl.DataFrame({"reading_id": ["P300R000001"], "dicom_id": ["b"]})
    with pytest.raises(ValueError, match="P300R000001"):
        dataset_counts(index, labels)


# --- validation-subject invariant and the command line ---------------------------------------


def test_validate_subject_missing_from_list_is_an_error(tiny_synthetic, tmp_path):
    mimic, refl = _copy_tree(tiny_synthetic, tmp_path)
    meta_path = reflacx.metadata_path(refl, 3)
    meta = reflacx.read_metadata(refl, 3)
    target = meta.row(0, named=True)
    text = meta_path.read_bytes().decode()
    lines = text.split("\r\n")
    lines[1] = lines[1].replace(f",{target['split']},", ",validate,", 1)
    meta_path.write_bytes("\r\n".join(lines).encode())
    split_path = mimic / "mimic-cxr-2.0.0-split.csv"
    split_text = split_path.read_text().replace(
        f"{target['dicom_id']},{target['study_id']},{target['subject_id']},{target['split']}",
        f"{target['dicom_id']},{target['study_id']},{target['subject_id']},validate",
    )
    split_path.write_text(split_text)
    (tmp_path / "val.txt").write_text("12345678\n")
    write_image_list(mimic, refl, tmp_path / "i.parquet")
    code = main(
        [
            "index",
            "--images",
            str(tmp_path / "i.parquet"),
            "--mimic",
            str(mimic),
            "--reflacx",
            str(refl),
            "--val-subjects",
            str(tmp_path / "val.txt"),
            "--out",
            str(tmp_path / "index.parquet"),
            "--counts-csv",
            str(tmp_path / "c.csv"),
            "--counts-md",
            str(tmp_path / "c.md"),
        ]
    )
    assert code == 2
    assert not (tmp_path / "index.parquet").exists()
    (tmp_path / "val.txt").write_text(f"{target['subject_id']}\n")
    index = write_index(
        tmp_path / "i.parquet",
        mimic,
        refl,
        tmp_path / "val.txt",
        tmp_path / "index.parquet",
        tmp_path / "c.csv",
        tmp_path / "c.md",
        progress=False,
    )
    assert index.filter(pl.col("dicom_id") == target["dicom_id"])["split"][0] == "val"


def test_cli_index_writes_outputs(tiny_synthetic, tmp_path, capsys):
    mimic, refl = tiny_synthetic / "mimic-cxr-jpg", tiny_synthetic / "reflacx"
    assert (
        main(
            [
                "image-list",
                "--mimic",
                str(mimic),
                "--reflacx",
                str(refl),
                "--out",
                str(tmp_path / "images.parquet"),
            ]
        )
        == 0
    )
    args = [
        "index",
        "--images",
        str(tmp_path / "images.parquet"),
        "--mimic",
        str(mimic),
        "--reflacx",
        str(refl),
        "--val-subjects",
        str(tiny_synthetic / "val_subjects.txt"),
        "--out",
        str(tmp_path / "index.parquet"),
        "--counts-csv",
        str(tmp_path / "c.csv"),
        "--counts-md",
        str(tmp_path / "c.md"),
        "--uncertain-as",
        "ignore",
        "--dedupe-reflacx",
    ]
    assert main(args) == 0
    index = pl.read_parquet(tmp_path / "index.parquet")
    assert not index.filter(pl.col("in_reflacx"))["in_mimic"].any()
    assert "uncertain as ignore" in (tmp_path / "c.md").read_text()

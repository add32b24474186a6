"""Labels files, the labeler evaluation table and the `gazeloc label` / `label-eval` commands."""

from __future__ import annotations

import math
import shutil

import polars as pl
import pytest

from gazeloc.cli import main
from gazeloc.errors import DataFormatError
from gazeloc.io.reflacx import read_readings
from gazeloc.labeler import CATEGORIES, label_report, report_labels, split_sentences
from gazeloc.labeler.engine import default_labeler
from gazeloc.labeler.evaluate import TABLE_COLUMNS, gold_labels, labeler_table, write_labeler_table
from gazeloc.labeler.reports import MENTION_SCHEMA, REPORT_SCHEMA, label_texts, write_labels
from gazeloc.splits import paper_labeler_dev_ids_file, read_id_list


@pytest.fixture(scope="module")
def labelled(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("labels")
    for phase in (1, 2, 3):
        write_labels(
            tiny_synthetic / "reflacx",
            phase,
            out / f"phase{phase}.parquet",
            out / f"phase{phase}_reports.parquet",
        )
    return out


def test_labels_files_have_the_design_schemas(labelled):
    for phase in (1, 2, 3):
        mentions = pl.read_parquet(labelled / f"phase{phase}.parquet")
        reports = pl.read_parquet(labelled / f"phase{phase}_reports.parquet")
        assert mentions.schema == pl.Schema(MENTION_SCHEMA)
        assert list(mentions.columns) == [
            "reading_id",
            "sentence",
            "sentence_start_char",
            "sentence_end_char",
            "category",
            "model_labels",
            "start",
            "end",
            "status",
        ]
        assert reports.columns == ["reading_id", *CATEGORIES]
        assert reports.schema == pl.Schema(REPORT_SCHEMA)
        assert mentions.height > 0


def test_labels_agree_with_the_transcriptions(tiny_synthetic, labelled):
    for phase in (1, 2, 3):
        readings = {
            r.id: r for r in read_readings(tiny_synthetic / "reflacx", [phase]) if not r.discarded
        }
        mentions = pl.read_parquet(labelled / f"phase{phase}.parquet")
        reports = pl.read_parquet(labelled / f"phase{phase}_reports.parquet")
        assert reports["reading_id"].to_list() == list(readings)
        for reading_id, rows in mentions.group_by("reading_id"):
            text = readings[reading_id[0]].transcript().text
            expected = label_report(text)
            assert rows.height == len(expected)
            spans = split_sentences(text)
            for row, m in zip(rows.iter_rows(named=True), expected, strict=True):
                assert (row["category"], row["start"], row["end"], row["status"]) == (
                    m.category,
                    m.start,
                    m.end,
                    m.status,
                )
                assert tuple(row["model_labels"]) == m.model_labels
                a, b = spans[row["sentence"]]
                assert (row["sentence_start_char"], row["sentence_end_char"]) == (a, b)
                assert a <= row["start"] < row["end"] <= b
        for row in reports.iter_rows(named=True):
            text = readings[row["reading_id"]].transcript().text
            labels = report_labels(label_report(text))
            assert {c: row[c] for c in CATEGORIES} == labels


def test_label_texts_of_nothing_gives_empty_frames():
    mentions, reports = label_texts({})
    assert mentions.height == 0 and reports.height == 0
    assert mentions.schema == pl.Schema(MENTION_SCHEMA)


def test_nothing_is_written_when_a_transcription_is_bad(tiny_synthetic, tmp_path):
    root = tmp_path / "reflacx"
    shutil.copytree(tiny_synthetic / "reflacx", root)
    reading = next(r for r in read_readings(root, [2]) if not r.discarded)
    (reading.main_dir / "transcription.txt").write_text("")
    out = tmp_path / "out"
    with pytest.raises(DataFormatError, match="empty transcription"):
        write_labels(root, 2, out / "phase2.parquet", out / "phase2_reports.parquet")
    assert not out.exists() or not any(out.iterdir())


# --- evaluation ---------------------------------------------------------------------------------


def test_labeler_table_counts_by_hand():
    gold = pl.DataFrame(
        {
            "reading_id": ["a", "b", "c", "d", "e"],
            "Pneumothorax": [True, True, False, False, True],
            "Atelectasis": [False, False, False, False, False],
        }
    )
    reports = pl.DataFrame(
        {
            "reading_id": ["a", "b", "c", "d"],
            "Pneumothorax": [1, 0, -1, None],
            "Atelectasis": [None, None, None, None],
        },
        schema={"reading_id": pl.String, "Pneumothorax": pl.Int8, "Atelectasis": pl.Int8},
    )
    table = labeler_table(reports, gold, exclude_ids=["d"])
    assert table.columns == list(TABLE_COLUMNS)
    ptx = table.row(0, named=True)
    # gold a, b, e (e has no report: not detected); detected a, c; true positive a
    assert ptx == {
        "mode": "gazeloc",
        "category": "Pneumothorax",
        "n_gold_positive": 3,
        "n_detected": 2,
        "recall": pytest.approx(1 / 3),
        "precision": pytest.approx(1 / 2),
    }
    atel = table.row(1, named=True)
    assert (atel["n_gold_positive"], atel["n_detected"]) == (0, 0)
    assert math.isnan(atel["recall"]) and math.isnan(atel["precision"])


def test_gold_labels_threshold_and_phase1_names(tiny_synthetic):
    root = tiny_synthetic / "reflacx"
    any_certainty = gold_labels(root, 2, 1)
    sure = gold_labels(root, 2, 3)
    assert any_certainty.columns[0] == "reading_id"
    assert set(any_certainty.columns[1:]) <= set(CATEGORIES)
    assert "Support devices" not in any_certainty.columns
    for c in any_certainty.columns[1:]:
        assert (sure[c] & ~any_certainty[c]).sum() == 0
    phase1 = gold_labels(root, 1, 1)
    assert "Lung nodule or mass" in phase1.columns and "Nodule" not in phase1.columns
    with pytest.raises(ValueError):
        gold_labels(root, 2, 0)


def test_write_labeler_table_excludes_dev_ids(tiny_synthetic, labelled, tmp_path):
    dev = tiny_synthetic / "labeler_dev_reading_ids.txt"
    table = write_labeler_table(
        tiny_synthetic / "reflacx",
        dev,
        tmp_path / "labeler.csv",
        tmp_path / "labeler.md",
    )
    csv = pl.read_csv(tmp_path / "labeler.csv")
    assert csv.columns == list(TABLE_COLUMNS)
    assert csv.height == table.height > 0
    assert csv["mode"].unique(maintain_order=True).to_list() == ["gazeloc", "reference"]
    by_mode = {m: f.drop("mode") for (m,), f in csv.group_by("mode")}
    assert by_mode["gazeloc"]["category"].to_list() == by_mode["reference"]["category"].to_list()
    # the same reports and gold in both modes; the gazeloc rows are those of its labels file
    assert by_mode["gazeloc"]["n_gold_positive"].equals(by_mode["reference"]["n_gold_positive"])
    dev_ids = set(read_id_list(dev, r"P[123]\d\dR\d{6}", "id"))
    reports = pl.read_parquet(labelled / "phase2_reports.parquet")
    direct = labeler_table(reports, gold_labels(tiny_synthetic / "reflacx", 2, 1), dev_ids)
    assert direct.drop("mode").equals(by_mode["gazeloc"])
    md = (tmp_path / "labeler.md").read_text()
    assert md.startswith("| Mode | Category | Gold positive | Detected | Recall | Precision |")
    assert "| reference |" in md
    gold = gold_labels(tiny_synthetic / "reflacx", 2, 1).filter(
        ~pl.col("reading_id").is_in(dev_ids)
    )
    for row in csv.iter_rows(named=True):
        assert row["n_gold_positive"] == int(gold[row["category"]].sum())


def test_paper_dev_ids_are_shipped():
    ids = read_id_list(paper_labeler_dev_ids_file(), r"P[12]\d\dR\d{6}", "id")
    assert len(ids) == 108


# --- command line -------------------------------------------------------------------------------


def test_cli_label_and_eval(tiny_synthetic, tmp_path):
    root = tiny_synthetic / "reflacx"
    rc = main(
        [
            "label",
            "--reflacx",
            str(root),
            "--phase",
            "2",
            "--out",
            str(tmp_path / "p2.parquet"),
            "--reports-out",
            str(tmp_path / "p2r.parquet"),
        ]
    )
    assert rc == 0
    rc = main(
        [
            "label",
            "--reflacx",
            str(root),
            "--phase",
            "2",
            "--mode",
            "reference",
            "--out",
            str(tmp_path / "p2ref.parquet"),
            "--reports-out",
            str(tmp_path / "p2refr.parquet"),
        ]
    )
    assert rc == 0
    texts = {r.id: r.transcript().text for r in read_readings(root, [2]) if not r.discarded}
    reference = pl.read_parquet(tmp_path / "p2ref.parquet")
    expected, _ = label_texts(texts, default_labeler("reference"))
    assert reference.equals(expected)
    rc = main(
        [
            "label-eval",
            "--reflacx",
            str(root),
            "--modes",
            "reference",
            "--dev-ids",
            str(tiny_synthetic / "labeler_dev_reading_ids.txt"),
            "--gold-min-certainty",
            "3",
            "--csv",
            str(tmp_path / "t.csv"),
            "--md",
            str(tmp_path / "t.md"),
        ]
    )
    assert rc == 0
    assert "certainty >= 3" in (tmp_path / "t.md").read_text()
    assert set(pl.read_csv(tmp_path / "t.csv")["mode"]) == {"reference"}


def test_cli_bad_inputs_name_the_file(tiny_synthetic, tmp_path, capsys):
    rc = main(
        [
            "label",
            "--reflacx",
            str(tmp_path / "nowhere"),
            "--phase",
            "1",
            "--out",
            str(tmp_path / "a.parquet"),
            "--reports-out",
            str(tmp_path / "b.parquet"),
        ]
    )
    assert rc == 2
    assert "nowhere" in capsys.readouterr().err
    bad_ids = tmp_path / "ids.txt"
    bad_ids.write_text("P201R000001\nnot-an-id\n")
    rc = main(
        [
            "label-eval",
            "--reflacx",
            str(tiny_synthetic / "reflacx"),
            "--dev-ids",
            str(bad_ids),
            "--csv",
            str(tmp_path / "t.csv"),
            "--md",
            str(tmp_path / "t.md"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "ids.txt" in err and "line 2" in err
    assert not (tmp_path / "t.csv").exists()

"""The heatmaps and ellipses files of a phase, their CLI, and bad input (tiny synthetic data)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest

from gazeloc.cli import main
from gazeloc.errors import DataFormatError
from gazeloc.gaze import DEFAULT_METHOD, Dictation, heatmap, window
from gazeloc.gaze.ellipses import reading_ellipses
from gazeloc.gaze.stage import HeatmapSettings, write_ellipses, write_heatmaps
from gazeloc.io.reflacx import read_readings
from gazeloc.labels import LABEL_INDEX, MODEL_LABELS
from gazeloc.splits import read_val_subjects

# A stand-in for the labeler (tests must not depend on it): keyword mentions with
# docs/outputs.md's schema. "no ..." sentences are negative; "tube" is an unmapped category.
KEYWORDS = {
    "effusion": ("Pleural abnormality", ["pleural_abnormality"]),
    "consolidation": ("Consolidation", ["consolidation", "opacity"]),
    "atelectasis": ("Atelectasis", ["atelectasis", "opacity"]),
    "pneumothorax": ("Pneumothorax", ["pneumothorax"]),
    "edema": ("Pulmonary edema", ["edema", "opacity"]),
    "cardiomegaly": ("Enlarged cardiac silhouette", ["enlarged_cardiac_silhouette"]),
    "nodule": ("Lung nodule or mass", ["lung_lesion", "opacity"]),
    "opacity": ("Groundglass opacity", ["opacity"]),
    "tube": ("Support devices", []),
}
SCHEMA = {
    "reading_id": pl.String(),
    "sentence": pl.Int64(),
    "sentence_start_char": pl.Int64(),
    "sentence_end_char": pl.Int64(),
    "category": pl.String(),
    "model_labels": pl.List(pl.String()),
    "start": pl.Int64(),
    "end": pl.Int64(),
    "status": pl.String(),
}
SIZE = 32


def keyword_labels(reflacx: Path, phase: int) -> pl.DataFrame:
    rows = []
    for reading in read_readings(reflacx, [phase]):
        if reading.discarded:
            continue
        text = reading.transcript().text
        sentences = [(m.start(), m.end()) for m in re.finditer(r"[^.]+\.?", text)]
        for word, (category, labels) in KEYWORDS.items():
            for m in re.finditer(rf"\b{word}\b", text):
                s = next(i for i, (a, b) in enumerate(sentences) if a <= m.start() < b)
                negated = text[sentences[s][0] : sentences[s][1]].strip().startswith("no ")
                rows.append(
                    {
                        "reading_id": reading.id,
                        "sentence": s,
                        "sentence_start_char": sentences[s][0],
                        "sentence_end_char": sentences[s][1],
                        "category": category,
                        "model_labels": labels,
                        "start": m.start(),
                        "end": m.end(),
                        "status": "negative" if negated else "positive",
                    }
                )
    return pl.DataFrame(rows, schema=SCHEMA)


@pytest.fixture(scope="module")
def tiny_files(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("heatmaps")
    reflacx = tiny_synthetic / "reflacx"
    labels = out / "labels3.parquet"
    keyword_labels(reflacx, 3).write_parquet(labels)
    settings = HeatmapSettings(size=SIZE)
    counts = write_heatmaps(
        reflacx,
        3,
        labels,
        tiny_synthetic / "val_subjects.txt",
        out / "heatmaps.h5",
        settings,
        progress=False,
    )
    ellipse_counts = write_ellipses(
        reflacx,
        3,
        tiny_synthetic / "val_subjects.txt",
        out / "ellipses.h5",
        size=SIZE,
        progress=False,
    )
    return {
        "dir": out,
        "labels": labels,
        "heatmaps": out / "heatmaps.h5",
        "ellipses": out / "ellipses.h5",
        "counts": counts,
        "ellipse_counts": ellipse_counts,
    }


def expected_split(reading, val_subjects):
    if reading.split == "test":
        return "test"
    if reading.split == "validate" or reading.subject_id in val_subjects:
        return "val"
    return "train"


def test_heatmaps_file_layout_and_values(tiny_synthetic, tiny_files):
    reflacx = tiny_synthetic / "reflacx"
    readings = [r for r in read_readings(reflacx, [3]) if not r.discarded]
    val_subjects = read_val_subjects(tiny_synthetic / "val_subjects.txt")
    labels = pl.read_parquet(tiny_files["labels"])
    present = labels.filter(
        pl.col("status").is_in(["positive", "uncertain"]) & (pl.col("model_labels").list.len() > 0)
    )
    assert present.height > 0
    with h5py.File(tiny_files["heatmaps"], "r") as f:
        assert set(f) == {r.id for r in readings}
        assert f.attrs["window_method"] == DEFAULT_METHOD
        assert f.attrs["window_end"] == "word_start"
        assert f.attrs["sigma_degrees"] == 1.0 and f.attrs["size"] == SIZE
        assert f.attrs["labels_file"] == "labels3.parquet"
        localized = 0
        for reading in readings:
            g = f[reading.id]
            assert g["et"].shape == (10, SIZE, SIZE) and g["et"].dtype == np.float16
            assert g["full_report"].shape == (SIZE, SIZE)
            assert g["et_labels"].shape == g["report_labels"].shape == (10,)
            assert g.attrs["split"] == expected_split(reading, val_subjects)
            assert g.attrs["dicom_id"] == reading.dicom_id
            assert g.attrs["subject_id"] == reading.subject_id
            # recompute through the public API
            transcript = reading.transcript()
            d = Dictation.from_words(transcript.text, transcript.words)
            mine = present.filter(pl.col("reading_id") == reading.id)
            spans = list(zip(mine["start"], mine["end"], strict=True))
            times = d.sentence_times(spans)
            et = np.zeros((10, SIZE, SIZE), dtype=np.float32)
            report = np.zeros(10, dtype=bool)
            fixations = reading.fixations()
            kw = dict(image_width=reading.width, image_height=reading.height, size=SIZE)
            for s in sorted({d.sentence_at(a) for a, _ in spans}):
                idx = sorted(
                    {
                        LABEL_INDEX[name]
                        for a, names in zip(mine["start"], mine["model_labels"], strict=True)
                        if d.sentence_at(a) == s
                        for name in names
                    }
                )
                report[idx] = True
                win = window(DEFAULT_METHOD, times, s)
                if win is None:
                    continue
                heat = heatmap(fixations, *win, **kw)
                et[idx] = np.maximum(et[idx], heat)
            assert np.abs(g["et"][()].astype(np.float32) - et).max() < 2e-3
            assert np.array_equal(g["report_labels"][()], report)
            assert np.array_equal(g["et_labels"][()], et.reshape(10, -1).max(axis=1) > 0)
            full = heatmap(fixations, 0.0, float(d.ends[-1]), **kw)
            assert np.abs(g["full_report"][()].astype(np.float32) - full).max() < 2e-3
            localized += int(g["et_labels"][()].sum())
    assert tiny_files["counts"]["localized_labels"] == localized > 0


def test_ellipses_file(tiny_synthetic, tiny_files):
    readings = [r for r in read_readings(tiny_synthetic / "reflacx", [3]) if not r.discarded]
    with h5py.File(tiny_files["ellipses"], "r") as f:
        assert set(f) == {r.id for r in readings}
        assert f.attrs["size"] == SIZE and f.attrs["min_certainty"] == 3
        for reading in readings:
            g = f[reading.id]
            masks, labels, labels_any = reading_ellipses(
                reading.ellipses(), reading.width, reading.height, SIZE
            )
            assert g["ellipses"].dtype == bool and g["ellipses"].shape == (10, SIZE, SIZE)
            assert np.array_equal(g["ellipses"][()], masks)
            assert np.array_equal(g["ellipse_labels"][()], labels)
            assert np.array_equal(g["ellipse_labels_any"][()], labels_any)
            assert g.attrs["dicom_id"] == reading.dicom_id
            # certainty >= 3 labels come from the metadata certainties
            for name, value in reading.labels.items():
                if isinstance(value, int) and not isinstance(value, bool) and value >= 3:
                    from gazeloc.labels import REFLACX_TO_MODEL

                    for label in REFLACX_TO_MODEL.get(name, ()):
                        assert labels[MODEL_LABELS.index(label)]


def test_cli_and_parameters(tiny_synthetic, tiny_files, tmp_path):
    out = tmp_path / "h.h5"
    rc = main(
        [
            "heatmaps",
            "--reflacx",
            str(tiny_synthetic / "reflacx"),
            "--phase",
            "3",
            "--labels",
            str(tiny_files["labels"]),
            "--val-subjects",
            str(tiny_synthetic / "val_subjects.txt"),
            "--method",
            "5s_startofsentence_endofsentence",
            "--window-end",
            "word_end",
            "--sigma-degrees",
            "1.5",
            "--size",
            "16",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["window_method"] == "5.0s_startofsentence_endofsentence"
        assert f.attrs["window_end"] == "word_end" and f.attrs["sigma_degrees"] == 1.5
        assert next(iter(f.values()))["et"].shape == (10, 16, 16)
    out = tmp_path / "e.h5"
    args = ["ellipses", "--reflacx", str(tiny_synthetic / "reflacx"), "--phase", "3"]
    args += ["--val-subjects", str(tiny_synthetic / "val_subjects.txt"), "--size", "16"]
    assert main([*args, "--out", str(out)]) == 0 and out.is_file()


def test_workers_give_the_same_file(tiny_synthetic, tiny_files, tmp_path):
    out = tmp_path / "h.h5"
    write_heatmaps(
        tiny_synthetic / "reflacx",
        3,
        tiny_files["labels"],
        tiny_synthetic / "val_subjects.txt",
        out,
        HeatmapSettings(size=SIZE),
        workers=2,
        progress=False,
    )
    with h5py.File(out, "r") as a, h5py.File(tiny_files["heatmaps"], "r") as b:
        assert list(a) == list(b)
        for rid in a:
            for name in ("et", "et_labels", "report_labels", "full_report"):
                assert np.array_equal(a[rid][name][()], b[rid][name][()])


def test_bad_labels_tables(tiny_synthetic, tiny_files, tmp_path, capsys):
    labels = pl.read_parquet(tiny_files["labels"])
    present = labels.filter(pl.col("status") == "positive")
    bad = present.with_columns(pl.col("end") + 10_000, pl.col("start") + 9_000)
    cases = {
        "offsets": (bad, "does not fit its transcription.txt"),
        "column": (labels.drop("status"), "lacks column"),
        "status": (labels.with_columns(pl.lit("maybe").alias("status")), "unknown status"),
        "label": (
            present.with_columns(pl.lit(["not_a_label"]).alias("model_labels")),
            "unknown model label",
        ),
    }
    for name, (table, message) in cases.items():
        path = tmp_path / f"{name}.parquet"
        table.write_parquet(path)
        out = tmp_path / f"{name}.h5"
        with pytest.raises(DataFormatError, match=message):
            write_heatmaps(
                tiny_synthetic / "reflacx",
                3,
                path,
                tiny_synthetic / "val_subjects.txt",
                out,
                HeatmapSettings(size=SIZE),
                progress=False,
            )
        assert not out.exists() and not list(tmp_path.glob(f".{name}.h5*"))
    # the CLI reports it with exit status 2
    args = ["heatmaps", "--reflacx", str(tiny_synthetic / "reflacx"), "--phase", "3"]
    args += ["--labels", str(tmp_path / "status.parquet"), "--out", str(tmp_path / "x.h5")]
    args += ["--val-subjects", str(tiny_synthetic / "val_subjects.txt")]
    assert main(args) == 2
    assert "unknown status" in capsys.readouterr().err


def test_transcript_that_disagrees_stops_the_stage(tiny_synthetic, tiny_files, tmp_path):
    reflacx = tmp_path / "reflacx"
    shutil.copytree(tiny_synthetic / "reflacx", reflacx, ignore=shutil.ignore_patterns("gaze*"))
    reading = next(r for r in read_readings(reflacx, [3]) if not r.discarded)
    path = reading.main_dir / "timestamps_transcription.csv"
    lines = path.read_bytes().split(b"\r\n")
    word, rest = lines[2].split(b",", 1)
    lines[2] = word + b"x," + rest
    path.write_bytes(b"\r\n".join(lines))
    out = tmp_path / "h.h5"
    with pytest.raises(DataFormatError, match=r"line 3, column 'word'"):
        write_heatmaps(
            reflacx,
            3,
            tiny_files["labels"],
            tiny_synthetic / "val_subjects.txt",
            out,
            HeatmapSettings(size=SIZE),
            progress=False,
        )
    assert not out.exists()


def test_empty_windows_are_counted_and_logged(tiny_synthetic, tiny_files, tmp_path, caplog):
    out = tmp_path / "h.h5"
    # "single_startofsentence" is empty for every sentence
    counts = write_heatmaps(
        tiny_synthetic / "reflacx",
        3,
        tiny_files["labels"],
        tiny_synthetic / "val_subjects.txt",
        out,
        HeatmapSettings(method="single_startofsentence", size=SIZE),
        progress=False,
    )
    assert counts["empty_windows"] == counts["sentences_with_mentions"] > 0
    assert counts["localized_labels"] == 0 and counts["positive_labels"] > 0
    assert "empty window" in caplog.text
    with h5py.File(out, "r") as f:
        for g in f.values():
            assert not g["et"][()].any() and not g["et_labels"][()].any()
            assert np.isnan(g.attrs["windows"]).all()


def test_full_disk_stops_the_stage_with_the_path_and_no_leftovers(
    tiny_synthetic, tiny_files, tmp_path, monkeypatch, capsys
):
    """HDF5 does not report a full disk from the writes it makes while closing (it crashed
    with exit 139): the stage stops first, names the file and removes its temporary."""
    from gazeloc import ioutil

    out = tmp_path / "heatmaps" / "phase3.h5"
    args = ["heatmaps", "--reflacx", str(tiny_synthetic / "reflacx"), "--phase", "3"]
    args += ["--labels", str(tiny_files["labels"]), "--size", "16", "--out", str(out)]
    args += ["--val-subjects", str(tiny_synthetic / "val_subjects.txt")]
    monkeypatch.setattr(ioutil, "free_bytes", lambda folder: 3 << 20)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"gazeloc heatmaps: error: no space left on device while writing {out}" in err
    assert "Traceback" not in err
    assert list(out.parent.iterdir()) == []
    # An ENOSPC from HDF5 itself (another process filled the disk) is reported the same way.
    monkeypatch.setattr(ioutil, "free_bytes", lambda folder: 10 << 30)

    def enospc(self, name, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(h5py.Group, "create_group", enospc)
    assert main(args) == 1
    assert "no space left on device while writing" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == []

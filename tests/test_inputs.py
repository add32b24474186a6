"""Per-file input tracking (gazeloc.inputs): which part's fingerprint an edit changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import section_d as d

from gazeloc import inputs
from gazeloc.images.shards import shard_of

PHASES = [1, 3]
SHARDS = 4


def _prints(tree: dict[str, Path]) -> dict[str, dict]:
    return inputs.fingerprints(tree["reflacx"], tree["mimic"], PHASES, SHARDS)


def _touch(path: Path, text: bytes | None = None) -> None:
    """Change a file's content (or only its time) the way an editor does."""
    st = path.stat()
    if text is not None:
        path.write_bytes(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    return d.write_tree(tmp_path)


def _changed(before: dict[str, dict], after: dict[str, dict]) -> set[str]:
    assert before.keys() == after.keys()
    return {k for k in before if before[k] != after[k]}


def test_parts_and_counts(tree) -> None:
    prints = _prints(tree)
    assert sorted(prints) == sorted(inputs.part_names(PHASES, SHARDS))
    assert prints["mimic_tables"]["files"] == 3
    assert prints["reflacx_tables"]["files"] == 2
    # Phase 3: metadata + 2 readings x (fixations, transcription, words) + 1 gaze.csv.
    assert prints["reflacx_phase3_gaze"]["files"] == 1 + 2 * 3 + 1
    # Metadata + 2 readings x (ellipses, chest box).
    assert prints["reflacx_phase3_ellipses"]["files"] == 1 + 2 * 2
    assert sum(prints[inputs.shard_part(i, SHARDS)]["files"] for i in range(SHARDS)) == 4


def _edit_cases(tree):
    main = tree["reflacx"] / "main_data"
    jpg = d.image_path(tree["mimic"], d.DICOM_3A)
    shard = inputs.shard_part(shard_of(d.DICOM_3A, SHARDS), SHARDS)
    return [
        (main / d.READING_3A / "fixations.csv", {"reflacx_phase3_gaze"}),
        (main / d.READING_3A / "timestamps_transcription.csv", {"reflacx_phase3_gaze"}),
        (tree["reflacx"] / "gaze_data" / d.READING_3A / "gaze.csv", {"reflacx_phase3_gaze"}),
        (main / d.READING_3A / "anomaly_location_ellipses.csv", {"reflacx_phase3_ellipses"}),
        (main / d.READING_1A / "chest_bounding_box.csv", {"reflacx_phase1_ellipses"}),
        (
            main / "metadata_phase_3.csv",
            {"reflacx_tables", "reflacx_phase3_gaze", "reflacx_phase3_ellipses"},
        ),
        (tree["mimic"] / "mimic-cxr-2.0.0-split.csv.gz", {"mimic_tables"}),
        (jpg, {shard}),
    ]


def test_each_edit_changes_exactly_its_part(tree) -> None:
    for path, parts in _edit_cases(tree):
        before = _prints(tree)
        _touch(path)
        assert _changed(before, _prints(tree)) == parts, path


def test_a_same_time_content_change_is_seen_by_its_size(tree) -> None:
    path = tree["reflacx"] / "main_data" / d.READING_3A / "fixations.csv"
    before = _prints(tree)
    st = path.stat()
    path.write_bytes(path.read_bytes() + b"\r\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _changed(before, _prints(tree)) == {"reflacx_phase3_gaze"}


def test_stray_files_change_nothing(tree) -> None:
    before = _prints(tree)
    (tree["reflacx"] / "notes.txt").write_text("mine")
    (tree["mimic"] / "README.md").write_text("mine")
    (tree["reflacx"] / "main_data" / "P999R000000").mkdir()
    (tree["reflacx"] / "main_data" / "P999R000000" / "fixations.csv").write_text("x")
    (tree["mimic"] / "files" / "index.html").write_text("x")
    assert _changed(before, _prints(tree)) == set()


def test_write_and_refresh_rewrite_only_changed_parts(tree, tmp_path) -> None:
    folder = tmp_path / "inputs"
    assert inputs.refresh(tree["reflacx"], tree["mimic"], folder, PHASES, SHARDS) is None
    written = inputs.write_fingerprints(_prints(tree), folder)
    assert sorted(written) == sorted(inputs.part_names(PHASES, SHARDS))
    times = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert inputs.refresh(tree["reflacx"], tree["mimic"], folder, PHASES, SHARDS) == []
    _touch(tree["reflacx"] / "main_data" / d.READING_3A / "fixations.csv")
    assert inputs.refresh(tree["reflacx"], tree["mimic"], folder, PHASES, SHARDS) == [
        "reflacx_phase3_gaze"
    ]
    after = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert {n for n in times if times[n] != after[n]} == {"reflacx_phase3_gaze.json"}
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_unreadable_metadata_gives_no_ids(tmp_path) -> None:
    path = tmp_path / "metadata_phase_1.csv"
    path.write_bytes(b"\xff\xfe\x00bad")
    assert inputs.reading_ids(path) == []
    path.write_text("\ufeffid,split\r\nP1,train\r\nP2,test\r\n", encoding="utf-8")
    assert inputs.reading_ids(path) == ["P1", "P2"]
    assert inputs.reading_ids(tmp_path / "missing.csv") == []

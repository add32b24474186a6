"""Per-file input tracking: stat-based fingerprints of the parts of the datasets each stage
reads, so that an edit inside a dataset root reruns exactly the stages that read the file.

A dataset root is a folder; its own time does not change when a file deep inside it is
edited, so the workflow does not take the roots as its stages' inputs. It takes one small
JSON file per *part* instead (``{results_dir}/inputs/<part>.json``), holding the number of
files, their total size and a SHA-256 of the sorted list of ``(path, size, mtime_ns)``:

- ``mimic_tables``: the ``mimic-cxr-2.0.0-*.csv(.gz)`` tables and ``SHA256SUMS.txt``;
- ``mimic_shard-<i>-of-<n>``: the JPEGs under ``files/`` that go to shard ``i`` (by the
  shard stage's own hash of the file name's ``dicom_id``);
- ``reflacx_tables``: the ``metadata_phase_<N>.csv`` tables;
- ``reflacx_phase<N>_gaze``: that phase's metadata table and, for the readings it lists,
  ``fixations.csv``, ``transcription.txt``, ``timestamps_transcription.csv`` and every file of
  ``gaze_data/<id>/`` (what the labels and heatmaps stages read);
- ``reflacx_phase<N>_ellipses``: that phase's metadata table and every other file of the
  readings' ``main_data/<id>/`` folders (the ellipses, the chest box).

Each time the workflow is built (``snakemake``, also ``snakemake -n``), :func:`refresh`
recomputes the fingerprints with ``stat`` calls only (no file is read but the three small
REFLACX metadata tables, for their ids) and rewrites the JSON of each part that changed; the
stages reading that part are then older than their input and rerun. A file anywhere else
(a stray file at a root, a reading folder no metadata table lists) changes no part.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from gazeloc.ioutil import atomic_write_text

MIMIC_TABLES = "mimic_tables"
REFLACX_TABLES = "reflacx_tables"


def shard_part(shard: int, n_shards: int) -> str:
    return f"mimic_shard-{shard:03d}-of-{n_shards:03d}"


GAZE_FILES = frozenset({"fixations.csv", "transcription.txt", "timestamps_transcription.csv"})


def phase_part(phase: int, kind: str = "gaze") -> str:
    """``reflacx_phase<N>_gaze`` or ``reflacx_phase<N>_ellipses``."""
    if kind not in ("gaze", "ellipses"):
        raise ValueError(f"kind must be gaze or ellipses, not {kind!r}")
    return f"reflacx_phase{phase}_{kind}"


def part_names(phases: Sequence[int], n_shards: int) -> list[str]:
    """Every part the workflow tracks, for the given REFLACX phases and shard count."""
    return [
        MIMIC_TABLES,
        REFLACX_TABLES,
        *(phase_part(p, kind) for p in phases for kind in ("gaze", "ellipses")),
        *(shard_part(i, n_shards) for i in range(n_shards)),
    ]


class _Digest:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.files = 0
        self.bytes = 0

    def add(self, rel: str, st: os.stat_result) -> None:
        self.hash.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        self.files += 1
        self.bytes += st.st_size

    def result(self) -> dict:
        return {"files": self.files, "bytes": self.bytes, "sha256": self.hash.hexdigest()}


def _files_in(folder: Path) -> list[tuple[str, os.stat_result]]:
    """(name, stat) of the plain files directly in ``folder`` (none if it is missing)."""
    try:
        with os.scandir(folder) as entries:
            found = [(e.name, e.stat()) for e in entries if e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found, key=lambda item: item[0])


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None


def reading_ids(metadata: Path) -> list[str]:
    """The ``id`` column of a REFLACX metadata table (empty if unreadable: the data check
    reports why)."""
    try:
        with metadata.open(encoding="utf-8-sig", newline="") as handle:
            rows = csv.reader(handle)
            header = next(rows, [])
            if "id" not in header:
                return []
            column = header.index("id")
            return sorted({row[column] for row in rows if len(row) > column and row[column]})
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _walk_jpgs(files: Path) -> Iterable[tuple[str, os.stat_result]]:
    """(path relative to the MIMIC root, stat) of every ``.jpg`` under ``files/``.

    Plain strings and ``os.scandir`` (file types from the directory entries, one ``stat`` per
    JPEG): this walk is the tracking's whole cost at MIMIC scale."""
    root = str(files)
    cut = len(str(files.parent)) + 1
    stack = [root]
    pop, push = stack.pop, stack.append
    while stack:
        folder = pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    if name.endswith(".jpg"):
                        if entry.is_file():
                            yield entry.path[cut:], entry.stat()
                    elif entry.is_dir():
                        push(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            continue


def fingerprints(
    reflacx_root: str | Path, mimic_root: str | Path, phases: Sequence[int], n_shards: int
) -> dict[str, dict]:
    """The fingerprint of every part (module doc), from ``stat`` calls."""
    from gazeloc.images.shards import shard_of

    reflacx_root, mimic_root = Path(reflacx_root), Path(mimic_root)
    main = reflacx_root / "main_data"
    out: dict[str, dict] = {}

    tables = _Digest()
    for name, st in _files_in(mimic_root):
        if name.startswith("mimic-cxr-2.0.0-") or name == "SHA256SUMS.txt":
            tables.add(name, st)
    out[MIMIC_TABLES] = tables.result()

    reflacx_tables = _Digest()
    for name, st in _files_in(main):
        if name.startswith("metadata_phase_") and name.endswith(".csv"):
            reflacx_tables.add(name, st)
    out[REFLACX_TABLES] = reflacx_tables.result()

    for phase in phases:
        gaze, ellipses = _Digest(), _Digest()
        metadata = main / f"metadata_phase_{phase}.csv"
        st = _stat(metadata)
        if st is not None:
            gaze.add(metadata.name, st)
            ellipses.add(metadata.name, st)
        for reading in reading_ids(metadata):
            for name, st in _files_in(main / reading):
                kind = gaze if name in GAZE_FILES else ellipses
                kind.add(f"main_data/{reading}/{name}", st)
            for name, st in _files_in(reflacx_root / "gaze_data" / reading):
                gaze.add(f"gaze_data/{reading}/{name}", st)
        out[phase_part(phase, "gaze")] = gaze.result()
        out[phase_part(phase, "ellipses")] = ellipses.result()

    listed: list[list[tuple[str, os.stat_result]]] = [[] for _ in range(n_shards)]
    for rel, st in _walk_jpgs(mimic_root / "files"):
        stem = rel.rsplit("/", 1)[-1][: -len(".jpg")]
        try:
            listed[shard_of(stem, n_shards)].append((rel, st))
        except UnicodeEncodeError:
            listed[0].append((rel, st))  # not a MIMIC name: the check reports nothing of it
    for shard, items in enumerate(listed):
        digest = _Digest()
        for rel, st in sorted(items, key=lambda item: item[0]):
            digest.add(rel, st)
        out[shard_part(shard, n_shards)] = digest.result()
    return out


def write_fingerprints(parts: dict[str, dict], folder: str | Path) -> list[str]:
    """Write ``<folder>/<part>.json`` for each part whose content differs; return those."""
    folder = Path(folder)
    changed = []
    for part, value in parts.items():
        target = folder / f"{part}.json"
        text = json.dumps(value, sort_keys=True) + "\n"
        try:
            if target.read_text(encoding="utf-8") == text:
                continue
        except FileNotFoundError:
            pass
        atomic_write_text(target, text)
        changed.append(part)
    return changed


def refresh(
    reflacx_root: str | Path,
    mimic_root: str | Path,
    folder: str | Path,
    phases: Sequence[int],
    n_shards: int,
) -> list[str] | None:
    """At workflow build: rewrite the parts that changed since their files were written.

    Does nothing (returns None) until every part's file exists, i.e. before the first run's
    fingerprint job: that job writes them all.
    """
    names = part_names(phases, n_shards)
    folder = Path(folder)
    if not all((folder / f"{name}.json").is_file() for name in names):
        return None
    if not Path(reflacx_root).is_dir() or not Path(mimic_root).is_dir():
        return None
    return write_fingerprints(fingerprints(reflacx_root, mimic_root, phases, n_shards), folder)

"""Benchmark: Snakemake DAG construction for the paper's study at real size.

Usage: python bench/bench_dag.py [--images 195000] [--readings 3052] [--repeats 3]
       [--no-files]

Builds a stand-in of the real datasets in a temporary folder: the MIMIC-CXR-JPG tables with
``--images`` frontal images, the REFLACX phase metadata with ``--readings`` readings, and a
``results-paper/images/index.parquet`` of the same size; unless ``--no-files``, also one
empty file per image (``files/pNN/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg``) and per reading the
six files of ``main_data/<id>/`` and ``gaze_data/<id>/``, with the input fingerprints of a
previous run (``results-paper/inputs/``), so that every build does the per-file input
tracking's full ``stat`` walk (gazeloc.inputs). Then times ``snakemake -n`` (a dry run: the
whole DAG, nothing runs) with ``workflow/presets/paper.yaml`` (64 shards, 9 experiments x
5 seeds) and, on its own, the fingerprint walk. Prints the job count and the wall and CPU
time of each repeat (a Markdown table for bench/RESULTS.md). Target: < 30 s with the
tracking (< 10 s without files). Where SLURM's commands are installed but its controller is
down, the SLURM executor plugin's start-up probe (``scontrol show config``, 10 s timeout)
adds up to 10 s of waiting to every Snakemake start: the CPU column shows the work itself.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.inputs import fingerprints, write_fingerprints
from gazeloc.io.mimic import LABEL_TABLE_COLUMNS, METADATA_COLUMNS, SPLIT_COLUMNS
from gazeloc.io.reflacx import metadata_columns
from gazeloc.labels import CHEXPERT_COLUMNS, MODEL_LABELS
from gazeloc.weights import weights_spec

ROOT = Path(__file__).resolve().parents[1]
PAPER_SHARDS = 64


def _ids(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.integers(0, 16**8, size=(n, 5), dtype=np.int64)
    return ["-".join(f"{v:08x}" for v in row) for row in raw]


READING_FILES = (
    "fixations.csv",
    "transcription.txt",
    "timestamps_transcription.csv",
    "anomaly_location_ellipses.csv",
    "chest_bounding_box.csv",
)


def write_stand_in(
    folder: Path, n_images: int, n_readings: int, seed: int = 0, files: bool = True
) -> None:
    """The metadata tables of both datasets and the index, at the given sizes (and, with
    ``files``, an empty file per image and per reading file, and the input fingerprints)."""
    rng = np.random.default_rng(seed)
    mimic = folder / "mimic"
    (mimic / "files").mkdir(parents=True)
    dicom = _ids(rng, n_images)
    subject = rng.integers(10_000_000, 20_000_000, n_images)
    study = 50_000_000 + np.arange(n_images)
    split = rng.choice(["train", "validate", "test"], n_images, p=[0.97, 0.01, 0.02])
    base = {"dicom_id": dicom, "subject_id": subject, "study_id": study}
    metadata = pl.DataFrame(
        {
            **base,
            "PerformedProcedureStepDescription": ["CHEST (PA AND LAT)"] * n_images,
            "ViewPosition": rng.choice(["PA", "AP"], n_images),
            "Rows": rng.integers(2000, 3100, n_images),
            "Columns": rng.integers(2000, 3100, n_images),
            "StudyDate": np.full(n_images, 21800101),
            "StudyTime": np.full(n_images, 101010.0),
            "ProcedureCodeSequence_CodeMeaning": ["CHEST (PA AND LAT)"] * n_images,
            "ViewCodeSequence_CodeMeaning": ["postero-anterior"] * n_images,
            "PatientOrientationCodeSequence_CodeMeaning": ["Erect"] * n_images,
        }
    )
    assert metadata.columns == [c.name for c in METADATA_COLUMNS]
    metadata.write_csv(mimic / "mimic-cxr-2.0.0-metadata.csv")
    splits = pl.DataFrame({**base, "split": split}).select([c.name for c in SPLIT_COLUMNS])
    splits.write_csv(mimic / "mimic-cxr-2.0.0-split.csv")
    labels = pl.DataFrame(
        {
            "subject_id": subject,
            "study_id": study,
            **{c: rng.choice([1.0, 0.0, -1.0, np.nan], n_images) for c in CHEXPERT_COLUMNS},
        }
    ).with_columns(pl.col(CHEXPERT_COLUMNS).fill_nan(None))
    assert labels.columns == [c.name for c in LABEL_TABLE_COLUMNS]
    for table in ("chexpert", "negbio"):
        labels.write_csv(mimic / f"mimic-cxr-2.0.0-{table}.csv")

    reflacx = folder / "reflacx" / "main_data"
    reflacx.mkdir(parents=True)
    per_phase = {1: 59 * n_readings // 3052, 2: 109 * n_readings // 3052}
    per_phase[3] = n_readings - per_phase[1] - per_phase[2]
    for phase, n in per_phase.items():
        columns = [c.name for c in metadata_columns(phase)]
        rows = {name: [""] * n for name in columns}
        rows["id"] = [f"P{phase}{i % 100:02d}R{i:06d}" for i in range(n)]
        pl.DataFrame(rows).write_csv(reflacx / f"metadata_phase_{phase}.csv")
        if files:
            for reading in rows["id"]:
                for name in READING_FILES:
                    (reflacx / reading).mkdir(exist_ok=True)
                    (reflacx / reading / name).touch()
                gaze = folder / "reflacx" / "gaze_data" / reading
                gaze.mkdir(parents=True, exist_ok=True)
                (gaze / "gaze.csv").touch()
    if files:
        for d, su, st in zip(dicom, subject.tolist(), study.tolist(), strict=True):
            where = mimic / "files" / f"p{str(su)[:2]}" / f"p{su}" / f"s{st}"
            where.mkdir(parents=True, exist_ok=True)
            (where / f"{d}.jpg").touch()
        write_fingerprints(
            fingerprints(folder / "reflacx", mimic, [1, 2, 3], PAPER_SHARDS),
            folder / "work" / "results-paper" / "inputs",
        )

    index = folder / "work" / "results-paper" / "images"
    index.mkdir(parents=True)
    pl.DataFrame(
        {
            **base,
            "split": split,
            **{label: rng.random(n_images) < 0.1 for label in MODEL_LABELS},
        }
    ).write_parquet(index / "index.parquet")


def job_stats(text: str) -> dict[str, int]:
    """Jobs by rule from the "Job stats" table of a Snakemake dry run."""
    counts = {}
    block = text.split("Job stats:", 1)[-1]
    for line in block.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
        elif line.startswith("total"):
            break
    return counts


def time_dag(folder: Path, repeats: int) -> tuple[int, list[float], list[float], dict[str, int]]:
    """Job count, wall seconds and CPU seconds (user + system) of ``snakemake -n`` with the
    paper preset, and the jobs by rule."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    # The paper preset starts from ImageNet weights, which the DAG build requires to exist in
    # the torch cache (never downloaded): a stand-in cache with an empty file of the right name
    # (a dry run checks that the file exists; the weights rule checks its hash when it runs).
    cache = {"TORCH_HOME": str(folder / "torch")}
    stand_in = weights_spec({"backbone": "resnet50", "pretrained": "imagenet"}, cache).path
    stand_in.parent.mkdir(parents=True, exist_ok=True)
    stand_in.touch()
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(folder / "work"),
        "--configfile",
        str(ROOT / "workflow/presets/paper.yaml"),
        "--config",
        f"data={{'source': 'real', 'reflacx_dir': '{folder / 'reflacx'}', "
        f"'mimic_dir': '{folder / 'mimic'}'}}",
    ]
    times, cpu = [], []
    jobs, by_rule = 0, {}
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        run = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "PATH": path, **cache}
        )
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if run.returncode != 0:
            raise SystemExit(run.stdout[-3000:] + run.stderr[-3000:])
        total = re.search(r"^total\s+(\d+)", run.stdout + run.stderr, re.MULTILINE)
        jobs = int(total.group(1)) if total else -1
        by_rule = job_stats(run.stdout + run.stderr)
    return jobs, times, cpu, by_rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=195_000)
    parser.add_argument("--readings", type=int, default=3052)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-files", action="store_true", help="metadata tables only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_stand_in(folder, args.images, args.readings, files=not args.no_files)
        print(f"stand-in written in {time.perf_counter() - start:.1f} s")
        if not args.no_files:
            walks = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fingerprints(folder / "reflacx", folder / "mimic", [1, 2, 3], PAPER_SHARDS)
                walks.append(time.perf_counter() - start)
            print("fingerprint walk alone, s: " + ", ".join(f"{t:.2f}" for t in walks))
        jobs, times, cpu, by_rule = time_dag(folder, args.repeats)
    print("\n| images | readings | jobs in the DAG | wall, s (each repeat) | CPU, s (each) |")
    print("|---:|---:|---:|---|---|")
    wall = ", ".join(f"{t:.2f}" for t in times)
    used = ", ".join(f"{t:.2f}" for t in cpu)
    print(f"| {args.images:,} | {args.readings:,} | {jobs} | {wall} | {used} |")
    print("\n| rule | jobs |\n|---|---:|")
    for rule, count in sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"| {rule} | {count} |")


if __name__ == "__main__":
    main()

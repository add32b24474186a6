"""Benchmark: disk per image and per reading of the workflow's outputs, scaled to the paper.

Usage: python bench/bench_sizes.py [--readings 60] [--studies 80] [--images 195000]
       [--paper-readings 3052]

Runs the workflow's own stages (``snakemake`` with the tiny preset plus the paper's
``images.size: 512`` and compression) on a generated dataset in a temporary folder, up to the
image shards, heatmaps and ellipses of every phase; then saves a ResNet-50 GazeLocNet at 512
px the way training does (``model.pt``: weights; ``resume/last.pt``: weights + AMSGrad Adam
state; ``resume/best.pt``: weights). Prints bytes per image and per reading and the totals at
the paper's size, and the max RSS of each stage's job (from its benchmark file), as Markdown
tables for bench/RESULTS.md and docs/cluster.md. Synthetic
frames and gaze compress differently from real radiographs and real gaze: the totals are an
estimate of the real ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RSS: dict[str, float] = {}
"""Max RSS (MB) of each stage's job at 512 px, from its Snakemake benchmark file."""


def _human(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:.0f} B"


def _bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def run_stages(folder: Path, readings: int, studies: int) -> dict[str, tuple[int, int]]:
    """(bytes, items) of the image shards, heatmaps and ellipses written by the workflow."""
    results = folder / "results"
    extra = {
        "results_dir": str(results),
        "images": {"size": 512, "shards": 2, "compression": "blosc-lz4hc"},
        "synthetic": {
            "mimic_studies": studies,
            "phase1_images": 2,
            "phase2_images": 2,
            "phase3_readings": readings,
            "image_size": 1000,
            "gaze_samples": False,
            "workers": 2,
        },
    }
    (folder / "sizes.yaml").write_text(yaml.safe_dump(extra))
    targets = [
        f"{results}/images/shards.parquet",
        *(f"{results}/{kind}/phase{p}.h5" for kind in ("heatmaps", "ellipses") for p in (1, 2, 3)),
    ]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    command = [
        *(sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(folder)),
        *("--cores", "2", "--workflow-profile", "none"),
        *("--configfile", str(ROOT / "workflow/presets/tiny.yaml"), str(folder / "sizes.yaml")),
        "--",
        *targets,
    ]
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PATH": path})
    if run.returncode != 0:
        raise SystemExit(run.stdout[-3000:] + run.stderr[-3000:])
    import h5py
    import hdf5plugin  # noqa: F401

    def items(files: list[Path], key: str | None) -> int:
        n = 0
        for f in files:
            with h5py.File(f, "r", locking=False) as h:
                n += len(h[key]) if key else len(h.keys())
        return n

    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rows = tsv.read_text().splitlines()
        header, values = rows[0].split("\t"), rows[1].split("\t")
        rss = float(values[header.index("max_rss")])
        RSS[tsv.stem] = max(RSS.get(tsv.stem, 0.0), rss)
    shards = sorted((results / "images" / "shards").glob("*.h5"))
    heat = sorted((results / "heatmaps").glob("phase*.h5"))
    ell = sorted((results / "ellipses").glob("phase*.h5"))
    return {
        "image shards (images)": (_bytes(shards), items(shards, "images")),
        "heatmaps (readings)": (_bytes(heat), items(heat, None)),
        "ellipses (readings)": (_bytes(ell), items(ell, None)),
    }


def model_files(folder: Path) -> dict[str, int]:
    """Bytes of model.pt, resume/last.pt and resume/best.pt for ResNet-50 at 512 px."""
    import torch

    from gazeloc.experiments import TrainingOptions
    from gazeloc.model.network import ModelSettings, build_model
    from gazeloc.train.loop import make_optimizer

    model = build_model(ModelSettings(backbone="resnet50", pretrained="none", input_size=512))
    optimizer = make_optimizer(model, TrainingOptions())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # creates the Adam (AMSGrad) state: exp_avg, exp_avg_sq, max_exp_avg_sq
    sizes = {}
    for name, obj in {
        "model.pt": {"state_dict": model.state_dict()},
        "resume/last.pt": {"model": model.state_dict(), "optimizer": optimizer.state_dict()},
        "resume/best.pt": {"model": model.state_dict()},
    }.items():
        path = folder / name.replace("/", "_")
        torch.save(obj, path)
        sizes[name] = path.stat().st_size
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=60, help="phase-3 readings generated")
    parser.add_argument("--studies", type=int, default=80, help="MIMIC studies generated")
    parser.add_argument("--images", type=int, default=195_000, help="paper: MIMIC images")
    parser.add_argument("--paper-readings", type=int, default=3052, help="paper: readings")
    parser.add_argument("--runs", type=int, default=45, help="paper: trainings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stages = run_stages(folder, args.readings, args.studies)
        models = model_files(folder)
    print("| output | measured | bytes each | at the paper's size |")
    print("|---|---:|---:|---:|")
    for name, (size, n) in stages.items():
        scale = args.images if "image" in name else args.paper_readings
        each = size / n
        print(f"| {name} | {_human(size)} / {n} | {_human(each)} | {_human(each * scale)} |")
    print("\n| job (512 px) | max RSS, MB |\n|---|---:|")
    for name, rss in sorted(RSS.items()):
        print(f"| {name} | {rss:.0f} |")
    print()
    run_total = sum(models.values())
    for name, size in models.items():
        print(f"| {name} (per training) | {_human(size)} | | |")
    print(
        f"| {args.runs} trainings (model.pt + resume/) | | {_human(run_total)} |"
        f" {_human(run_total * args.runs)} |"
    )


if __name__ == "__main__":
    main()

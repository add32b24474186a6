"""Benchmark: time to generate the synthetic dataset of config.yaml (and the tiny preset).

Usage: python bench/bench_synthetic.py [--workers 2] [--preset config.yaml ...]
Target (issue "Synthetic generator"): the demo default in about a minute on 2 cores; the tiny
preset in seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from gazeloc.synthetic.generate import SynthSettings, generate

ROOT = Path(__file__).resolve().parents[1]


def settings_of(*files: Path) -> SynthSettings:
    values: dict = {}
    for path in files:
        values.update(yaml.safe_load(path.read_text()).get("synthetic", {}))
    return SynthSettings.from_mapping(values)


def size_of(root: Path) -> tuple[int, float]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cases = {
        "tiny preset": settings_of(ROOT / "config.yaml", ROOT / "workflow/presets/tiny.yaml"),
        "demo (config.yaml)": settings_of(ROOT / "config.yaml"),
    }
    print(f"cores available: {os.cpu_count()}, workers: {args.workers}")
    for name, settings in cases.items():
        out = Path(tempfile.mkdtemp(prefix="gazeloc-bench-"))
        try:
            t = time.perf_counter()
            generate(out, settings, workers=args.workers, progress=False)
            seconds = time.perf_counter() - t
            files, mb = size_of(out)
            print(
                f"{name}: {seconds:.1f} s, {files} files, {mb:.0f} MB "
                f"({settings.phase3_readings} phase-3 readings, {settings.mimic_studies} "
                f"MIMIC studies, long side {settings.image_size})"
            )
        finally:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

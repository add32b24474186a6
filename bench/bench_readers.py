"""Benchmark: read a REFLACX-size tree (3,052 readings) with the validating readers.

Generates the tree once (synthetic, small images; cached under bench/out/) and then times, on
one process: the three metadata tables, and every reading's fixations, transcript, ellipses
and chest box, each fully validated. Target (issue "Foundation"): seconds, not minutes.

Usage: python bench/bench_readers.py [--out bench/out/reflacx-size]
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path

from gazeloc.io import reflacx
from gazeloc.synthetic.generate import SynthSettings, generate

SIZE = SynthSettings(
    seed=1,
    mimic_studies=20,
    phase1_images=59,
    phase2_images=50,
    phase3_readings=2507,
    image_size=256,
    gaze_samples=False,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/reflacx-size"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    root = args.out / "reflacx"
    if not (root / "main_data" / "metadata_phase_3.csv").is_file():
        t = time.perf_counter()
        generate(args.out, SIZE, workers=args.workers)
        print(f"generated the tree in {time.perf_counter() - t:.1f} s")

    t0 = time.perf_counter()
    readings = reflacx.read_readings(root)
    t1 = time.perf_counter()
    fixations = words = ellipses = 0
    for reading in readings:
        ellipses += reading.ellipses().height
        reading.chest_box()
        if not reading.discarded:
            fixations += reading.fixations().height
            words += reading.transcript().words.height
    t2 = time.perf_counter()
    n = len(readings)
    print(f"machine: {platform.processor() or platform.machine()}, 1 process")
    print(
        f"readings: {n} ({sum(r.discarded for r in readings)} discarded); fixations: "
        f"{fixations}; words: {words}; ellipses: {ellipses}"
    )
    print(f"metadata tables: {t1 - t0:.3f} s")
    print(f"all reading files: {t2 - t1:.2f} s ({n / (t2 - t1):.0f} readings/s)")
    print(f"total: {t2 - t0:.2f} s")


if __name__ == "__main__":
    main()

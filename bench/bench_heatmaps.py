"""Benchmark: eye-tracking heatmaps in the square frame against the direct reference formula.

Run: ``python bench/bench_heatmaps.py [--quick] [--tree bench/out/reflacx-size-real]``
(one core: BLAS and OpenMP threads are set to 1 before numpy is imported).

1. **Accuracy** — :func:`gazeloc.gaze.heatmap` against :func:`gazeloc.gaze.oracle.heatmap_oracle`
   (the reference formula at every pixel of every fixation's displayed rectangle at original
   resolution, then Pillow's antialiased bilinear resize into the frame) on generated readings
   with zoom changes, fixations near and beyond the displayed rectangle's edges and outside the
   image, σ of 40–120 image pixels and images of 2,000–3,000 px (frame 512): the maximum
   absolute difference.
2. **Speed, one realistic reading** — 300 fixations, 4 positive sentences (windows from the
   default method), a 2,500×3,000 image, frame 512: all its heatmaps (4 sentence maps and the
   full-report map, starting from the fixations table), best and median of repeated runs, and
   the oracle on the same heatmaps in the same run.
3. **REFLACX size** — 3,032 generated realistic readings (300 fixations each, 1–5 positive
   sentences, images 2,000–3,000 px): every heatmap of every reading, measured on one core.
4. **Stage end to end** (``--tree``, a generated REFLACX-size tree at real image size):
   ``write_heatmaps`` (reading every fixations/transcript file, rendering, Blosc HDF5) and
   ``write_ellipses`` for phases 1–3, one process, with keyword mentions standing in for the
   labeler.
5. **Location-extraction grid** (``--location TREE``): the labeler's mentions and the ellipse
   masks of phases 1–2, then both stages of the grid (first stage 35 methods, second stage 13
   delays, the configured method) on the train readings with 2 worker processes, as the
   ``location_extraction`` rule runs it. ``--location-readings N`` times the grid on the first
   N train readings only and extrapolates linearly to all of them (said so in the output).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from gazeloc.gaze import DEFAULT_METHOD, FrameRenderer, SentenceTimes, window  # noqa: E402
from gazeloc.gaze.oracle import heatmap_oracle  # noqa: E402
from gazeloc.gaze.render import keep_freed_memory  # noqa: E402

SCREEN_PX_PER_DEGREE = 93.0  # EyeLink screen pixels per degree at the REFLACX distance
IMAGE_AREA = (2520.0, 2160.0)  # the image area of the 3,840 x 2,160 screen


def row(t0, t1, x, y, res_x, res_y, rect):
    return {
        "timestamp_start_fixation": round(t0, 3),
        "timestamp_end_fixation": round(t1, 3),
        "x_position": int(x),
        "y_position": int(y),
        "angular_resolution_x_pixels_per_degree": int(res_x),
        "angular_resolution_y_pixels_per_degree": int(res_y),
        "xmin_shown_from_image": int(rect[0]),
        "ymin_shown_from_image": int(rect[1]),
        "xmax_shown_from_image": int(rect[2]),
        "ymax_shown_from_image": int(rect[3]),
    }


def realistic_reading(
    rng: np.random.Generator, width: int, height: int, n: int = 300, positive: int = 4
) -> tuple[pl.DataFrame, list[tuple[float, float]]]:
    """A REFLACX-like reading: free search, then sentences with pauses; zoom episodes
    (2-3x, the displayed rectangle and the pixels per degree change), off-image glances at
    the interface, durations log-normal (median 0.26 s) plus 20-70 ms saccades. Returns the
    fixations and the windows of its heatmaps (the positive sentences' default-method
    windows, then the full report)."""
    scale = min(IMAGE_AREA[0] / width, IMAGE_AREA[1] / height)  # screen px per image px
    base_res = SCREEN_PX_PER_DEGREE / scale
    findings = [(rng.uniform(0.2, 0.8) * width, rng.uniform(0.25, 0.8) * height) for _ in range(6)]
    rows = []
    t = float(rng.uniform(0.2, 0.6))
    zoom, rect = 1.0, (0, 0, width, height)
    for _ in range(n):
        if rng.random() < 1 / 40:  # toggle a zoom episode
            if zoom == 1.0:
                zoom = float(rng.uniform(2, 3))
                cx, cy = findings[int(rng.integers(len(findings)))]
                w, h = width / zoom, height / zoom
                x0, y0 = int(cx - w / 2), int(cy - h / 2)
                rect = (x0, y0, int(x0 + w), int(y0 + h))  # may extend beyond the image
            else:
                zoom, rect = 1.0, (0, 0, width, height)
        res = base_res * zoom
        u = rng.random()
        if u < 0.05:  # interface glance, left of the image
            x, y = -rng.uniform(100, 1500), rng.uniform(0, height)
        elif u < 0.6:
            cx, cy = findings[int(rng.integers(len(findings)))]
            x, y = rng.normal(cx, 0.05 * width), rng.normal(cy, 0.05 * height)
        else:
            x, y = rng.uniform(rect[0], rect[2]), rng.uniform(rect[1], rect[3])
        duration = float(np.clip(rng.lognormal(np.log(0.26), 0.45), 0.08, 0.8))
        rows.append(row(t, t + duration, x, y, round(res), round(res) - 1, rect))
        t += duration + float(rng.uniform(0.02, 0.07))
    end = t
    # dictation: free search for the first ~8 s, then sentences of 2-5 s with pauses
    n_sentences = positive + 2
    slots = np.linspace(8.0, end, n_sentences + 1)  # one slot per sentence, pause first
    sentences = []
    for i in range(n_sentences):
        s = float(slots[i] + rng.uniform(0.3, 1.5))
        e = float(slots[i + 1])
        m = float(rng.uniform(s, e))
        sentences.append(SentenceTimes(s, e, m, m, m, e))
    chosen = sorted(rng.choice(n_sentences, size=positive, replace=False).tolist())
    windows = [w for i in chosen if (w := window(DEFAULT_METHOD, sentences, i)) is not None]
    windows.append((0.0, end))
    return pl.DataFrame(rows), windows


def edge_case_reading(
    rng: np.random.Generator, width: int, height: int, n: int
) -> tuple[pl.DataFrame, float]:
    """Zoom changes, fixations near and beyond the rectangle's edges and outside the image,
    rectangles beyond the image, sigma 40-120 px (the accuracy bar's conditions)."""
    rows = []
    t = 0.0
    rect, res = (0, 0, width, height), int(rng.integers(40, 121))
    for _ in range(n):
        if rng.random() < 0.3:
            x0 = int(rng.uniform(-0.1, 0.5) * width)
            y0 = int(rng.uniform(-0.1, 0.5) * height)
            rect = (
                x0,
                y0,
                x0 + int(rng.uniform(0.3, 0.8) * width),
                y0 + int(rng.uniform(0.3, 0.8) * height),
            )
            res = int(rng.integers(40, 121))
        kind = rng.random()
        if kind < 0.15:
            x, y = rng.uniform(-0.5, 0) * width, rng.uniform(0, height)
        elif kind < 0.4:
            x = rect[int(rng.integers(0, 2)) * 2] + rng.normal(0, res)
            y = rng.uniform(rect[1], rect[3])
        else:
            x, y = rng.uniform(rect[0], rect[2]), rng.uniform(rect[1], rect[3])
        duration = float(rng.uniform(0.05, 0.6))
        rows.append(row(t, t + duration, x, y, res, res + int(rng.integers(-2, 3)), rect))
        t += duration + float(rng.uniform(0.02, 0.2))
    return pl.DataFrame(rows), t


def bench_accuracy(n_readings: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    diffs, maxima, cases = [], [], 0
    start = time.perf_counter()
    for _ in range(n_readings):
        width, height = int(rng.integers(2000, 3001)), int(rng.integers(2000, 3001))
        fx, end = edge_case_reading(rng, width, height, int(rng.integers(10, 31)))
        renderer = FrameRenderer(fx, image_width=width, image_height=height, size=512)
        a, b = sorted(rng.uniform(0, end, size=2))
        for t0, t1 in ((0.0, end), (a, b)):
            if t1 - t0 < 0.2:
                continue
            ours = renderer.render(t0, t1)
            oracle = heatmap_oracle(fx, t0, t1, image_width=width, image_height=height, size=512)
            diffs.append(float(np.abs(ours - oracle).max()))
            maxima.append(float(oracle.max()))
            cases += 1
    return {
        "heatmaps": cases,
        "readings": n_readings,
        "max_abs_diff": max(diffs),
        "median_max_abs_diff": statistics.median(diffs),
        "min_framed_max": min(maxima),
        "seconds": time.perf_counter() - start,
    }


def render_all(fx: pl.DataFrame, windows, width: int, height: int) -> list[np.ndarray]:
    renderer = FrameRenderer(fx, image_width=width, image_height=height, size=512)
    return [renderer.render(t0, t1) for t0, t1 in windows]


def bench_realistic(repeats: int, oracle: bool, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    width, height = 2500, 3000
    fx, windows = realistic_reading(rng, width, height, 300, 4)
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        ours = render_all(fx, windows, width, height)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    out = {
        "fixations": fx.height,
        "heatmaps": len(windows),
        "fixations_per_window": [
            int(((fx["timestamp_end_fixation"] > a) & (fx["timestamp_start_fixation"] <= b)).sum())
            for a, b in windows
        ],
        "best_ms": min(times) * 1e3,
        "median_ms": statistics.median(times) * 1e3,
        # CPU time of this process: what the wall time is on an otherwise idle core
        "best_cpu_ms": min(cpu) * 1e3,
        "median_cpu_ms": statistics.median(cpu) * 1e3,
    }
    if oracle:
        t, c = time.perf_counter(), time.process_time()
        ref = [
            heatmap_oracle(fx, a, b, image_width=width, image_height=height, size=512)
            for a, b in windows
        ]
        out["oracle_s"] = time.perf_counter() - t
        out["oracle_cpu_s"] = time.process_time() - c
        out["cpu_speedup_vs_best"] = out["oracle_cpu_s"] * 1e3 / out["best_cpu_ms"]
        out["speedup_vs_best"] = out["oracle_s"] * 1e3 / out["best_ms"]
        out["speedup_vs_median"] = out["oracle_s"] * 1e3 / out["median_ms"]
        out["max_abs_diff"] = max(
            float(np.abs(a - b).max()) for a, b in zip(ours, ref, strict=True)
        )
    return out


def bench_reflacx_size(n: int, seed: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    readings = []
    for _ in range(n):
        width, height = int(rng.integers(2000, 3001)), int(rng.integers(2000, 3001))
        fx, windows = realistic_reading(rng, width, height, 300, int(rng.integers(1, 6)))
        readings.append((fx, windows, width, height))
    heatmaps = sum(len(r[1]) for r in readings)
    t, c = time.perf_counter(), time.process_time()
    for fx, windows, width, height in readings:
        render_all(fx, windows, width, height)
    seconds = time.perf_counter() - t
    return {
        "readings": n,
        "heatmaps": heatmaps,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - c,
        "ms_per_reading": seconds / n * 1e3,
    }


KEYWORDS = {
    "effusion": ["pleural_abnormality"],
    "consolidation": ["consolidation", "opacity"],
    "atelectasis": ["atelectasis", "opacity"],
    "pneumothorax": ["pneumothorax"],
    "edema": ["edema", "opacity"],
    "cardiomegaly": ["enlarged_cardiac_silhouette"],
    "nodule": ["lung_lesion", "opacity"],
    "mass": ["lung_lesion", "opacity"],
    "opacity": ["opacity"],
    "fracture": ["fracture"],
}


def keyword_labels(reflacx: Path, phase: int) -> pl.DataFrame:
    """Mentions by keyword (a stand-in for the labeler; 'no ...' sentences are negative)."""
    from gazeloc.io.reflacx import read_readings

    rows = []
    for reading in read_readings(reflacx, [phase]):
        if reading.discarded:
            continue
        text = reading.transcript().text
        for word, labels in KEYWORDS.items():
            for m in re.finditer(rf"\b{word}\b", text):
                sentence_start = (
                    text.rfind(". ", 0, m.start()) + 2 if ". " in text[: m.start()] else 0
                )
                negative = text[sentence_start:].startswith("no ")
                rows.append(
                    {
                        "reading_id": reading.id,
                        "sentence": 0,
                        "sentence_start_char": sentence_start,
                        "sentence_end_char": sentence_start,
                        "category": word,
                        "model_labels": labels,
                        "start": m.start(),
                        "end": m.end(),
                        "status": "negative" if negative else "positive",
                    }
                )
    schema = {"model_labels": pl.List(pl.String())}
    return pl.DataFrame(rows, schema_overrides=schema)


def bench_stage(tree: Path) -> dict:
    from gazeloc.gaze.stage import HeatmapSettings, write_ellipses, write_heatmaps

    reflacx = tree / "reflacx"
    out: dict = {"tree": str(tree), "phases": {}}
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "out") as tmp:
        tmp = Path(tmp)
        total_h = total_e = 0.0
        for phase in (1, 2, 3):
            labels = tmp / f"labels{phase}.parquet"
            keyword_labels(reflacx, phase).write_parquet(labels)
            t = time.perf_counter()
            counts = write_heatmaps(
                reflacx,
                phase,
                labels,
                tree / "val_subjects.txt",
                tmp / f"h{phase}.h5",
                HeatmapSettings(size=512),
                progress=False,
            )
            th = time.perf_counter() - t
            t = time.perf_counter()
            write_ellipses(
                reflacx,
                phase,
                tree / "val_subjects.txt",
                tmp / f"e{phase}.h5",
                size=512,
                progress=False,
            )
            te = time.perf_counter() - t
            total_h += th
            total_e += te
            out["phases"][phase] = {
                **counts,
                "heatmaps_s": th,
                "ellipses_s": te,
                "heatmaps_mb": (tmp / f"h{phase}.h5").stat().st_size / 2**20,
                "ellipses_mb": (tmp / f"e{phase}.h5").stat().st_size / 2**20,
            }
        fixations = 0
        for path in (reflacx / "main_data").glob("P*/fixations.csv"):
            fixations += sum(1 for _ in path.open()) - 1
        out["fixations"] = fixations
        out["heatmaps_s"] = total_h
        out["ellipses_s"] = total_e
    return out


def bench_location(tree: Path, limit: int | None, workers: int = 2) -> dict:
    from gazeloc.gaze.location import (
        EvalSettings,
        first_stage_methods,
        load_tasks,
        overall,
        run_methods,
        second_stage_methods,
    )
    from gazeloc.gaze.stage import write_ellipses
    from gazeloc.gaze.windows import parse_method
    from gazeloc.labeler.reports import label_texts, read_reports

    reflacx = tree / "reflacx"
    out: dict = {"tree": str(tree), "workers": workers}
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "out") as tmp:
        tmp = Path(tmp)
        labels, ellipses = [], []
        t = time.perf_counter()
        for phase in (1, 2):
            mentions, _ = label_texts(read_reports(reflacx, phase), progress=False)
            mentions.write_parquet(tmp / f"labels{phase}.parquet")
            labels.append(tmp / f"labels{phase}.parquet")
        out["labels_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for phase in (1, 2):
            write_ellipses(
                reflacx,
                phase,
                tree / "val_subjects.txt",
                tmp / f"e{phase}.h5",
                size=512,
                workers=workers,
                progress=False,
            )
            ellipses.append(tmp / f"e{phase}.h5")
        out["ellipses_s"] = time.perf_counter() - t
        t = time.perf_counter()
        tasks = load_tasks(reflacx, [1, 2], labels, ellipses, tree / "val_subjects.txt", 512)
        out["load_s"] = time.perf_counter() - t
        out["train_readings"] = len(tasks)
        used = tasks[:limit] if limit else tasks
        out["timed_readings"] = len(used)
        settings = EvalSettings(size=512)
        t = time.perf_counter()
        first = first_stage_methods()
        results = run_methods(used, first, settings, workers=workers, progress=False)
        delay = [m for m in first if parse_method(m).delay is not None]
        best = max(delay, key=lambda m: np.nan_to_num(overall(results[m]), nan=-1.0))
        second = [m for m in second_stage_methods(best) if m not in results]
        results.update(run_methods(used, second, settings, workers=workers, progress=False))
        if DEFAULT_METHOD not in results:
            results.update(
                run_methods(used, [DEFAULT_METHOD], settings, workers=workers, progress=False)
            )
        seconds = time.perf_counter() - t
        out["methods"] = len(results)
        out["grid_s"] = seconds
        out["ms_per_reading_method"] = seconds / len(used) / len(results) * 1e3
        out["grid_s_all_readings"] = seconds * len(tasks) / len(used)
        out["extrapolated"] = len(used) < len(tasks)
        out["default_iou"] = overall(results[DEFAULT_METHOD])
        out["best_first_stage"] = best
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer readings and repeats")
    parser.add_argument("--tree", type=Path, default=None, help="REFLACX-size tree (stage bench)")
    parser.add_argument("--skip-reflacx-size", action="store_true")
    parser.add_argument("--skip-accuracy-speed", action="store_true", help="sections 1-3 off")
    parser.add_argument(
        "--location", type=Path, default=None, help="REFLACX-size tree (location-extraction grid)"
    )
    parser.add_argument(
        "--location-readings", type=int, default=None, help="time the grid on N train readings"
    )
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "out" / "bench_heatmaps.json"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    n_size = 300 if args.quick else 3032
    repeats = 10 if args.quick else 50
    if args.skip_accuracy_speed:
        args.skip_reflacx_size = True
    if not args.skip_accuracy_speed:
        # glibc's default allocator first (every freed array is unmapped and faulted in again)
        results["realistic_default_malloc"] = bench_realistic(repeats, oracle=True)
        print(
            "realistic, default malloc",
            json.dumps(results["realistic_default_malloc"]),
            flush=True,
        )
    if not args.skip_reflacx_size:
        results["reflacx_size_default_malloc"] = bench_reflacx_size(n_size)
        print(
            "REFLACX size, default malloc",
            json.dumps(results["reflacx_size_default_malloc"]),
            flush=True,
        )
    if not args.skip_accuracy_speed:
        results["accuracy"] = bench_accuracy(4 if args.quick else 30)
        print("accuracy", json.dumps(results["accuracy"]), flush=True)
    # then as the gazeloc heatmaps command runs: freed memory kept for reuse
    results["keep_freed_memory"] = keep_freed_memory()
    if not args.skip_accuracy_speed:
        results["realistic"] = bench_realistic(repeats, oracle=False)
        print("realistic", json.dumps(results["realistic"]), flush=True)
    if not args.skip_reflacx_size:
        results["reflacx_size"] = bench_reflacx_size(n_size)
        print("REFLACX size", json.dumps(results["reflacx_size"]), flush=True)
    if args.tree is not None:
        results["stage"] = bench_stage(args.tree)
        print("stage", json.dumps(results["stage"]), flush=True)
    if args.location is not None:
        results["location"] = bench_location(args.location, args.location_readings)
        print("location extraction grid", json.dumps(results["location"]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

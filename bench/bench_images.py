"""Benchmark: image preprocessing into the square frame, HDF5 compression, shard reads.

Usage: python bench/bench_images.py [--images 24] [--size 512] [--rounds 3] [--reads 5000]

Targets (issue "MIMIC-CXR-JPG index and image shards"), on realistic generated JPEGs
(2,500-3,057 px long side, quality 95, about 1.5 MB like MIMIC-CXR-JPG):

* preprocessing (DCT-scaled decode + antialiased resize + pad) at least 1.6x the images/s per
  core of the plain path (Pillow full decode, then resize BILINEAR), measured in the same run,
  with PSNR >= 40 dB against the plain path; a decode at 1/8 DCT scale is the floor;
* random reads from shards at 512 px: at least 2,000 images/s on one core with a warm page
  cache; cold-cache reads too (pages dropped with posix_fadvise(DONTNEED) after fsync,
  residency checked with fincore when available);
* throughput at 1 and 2 processes.

Timings are the best of ``--rounds`` interleaved rounds (wall clock; the machine is shared).
Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import h5py
import numpy as np
import polars as pl
from PIL import Image

from gazeloc.datasets.shards import ShardDataset
from gazeloc.images.frame import frame_geometry, load_frame, load_frame_plain, psnr
from gazeloc.images.shards import (
    COMPRESSIONS,
    LIBVER,
    create_images_dataset,
    shard_name,
    write_shard,
)
from gazeloc.synthetic.anatomy import place_device, place_finding, sample_anatomy
from gazeloc.synthetic.cases import sample_case
from gazeloc.synthetic.render import render_frontal


def make_jpegs(folder: Path, n: int, grain: float = 1.0, seed: int = 0) -> list[Path]:
    """``n`` realistic frontal radiographs (the generator's "real" sizes), quality 95.

    ``grain`` adds Gaussian noise of that standard deviation (grey levels), like a detector's,
    which brings the files to MIMIC-CXR-JPG's typical 1.5 MB (entropy decoding time grows with
    the file size, so this matters for the timings).
    """
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        long_side = int(rng.integers(2500, 3057))
        short = round(long_side * rng.uniform(0.8, 0.96))
        width, height = (short, long_side) if rng.random() < 0.75 else (long_side, short)
        view = "PA" if rng.random() < 0.6 else "AP"
        anatomy = sample_anatomy(width, height, rng, view=view)
        case = sample_case(rng)
        findings = [place_finding(k, anatomy, rng, side=s) for k, s in case.kinds]
        devices = [place_device(k, anatomy, rng) for k in case.devices]
        image = render_frontal(anatomy, findings, devices, rng)
        if grain > 0:
            noisy = image + rng.normal(0.0, grain, image.shape).astype(np.float32)
            image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(image).save(path, format="JPEG", quality=95)
        paths.append(path)
    return paths


def decode_eighth(path: Path) -> Image.Image:
    """The floor: open and decode at 1/8 DCT scale (entropy decoding of every coefficient)."""
    with Image.open(path) as im:
        im.draft("L", (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
        im.load()
        return im


def decode_draft(path: Path, size: int) -> Image.Image:
    """Only the decode of ``load_frame``: at the DCT scale it uses (no resize)."""
    with Image.open(path) as im:
        g = frame_geometry(*im.size, size)
        im.draft("L", (g.w, g.h))
        im.load()
        return im


def decode_full(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im


def best_rate(
    methods: dict[str, Callable[[Path], object]], paths: Sequence[Path], rounds: int
) -> dict[str, float]:
    """Images per second of each method: best of ``rounds`` interleaved rounds."""
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(rounds):
        for name, fn in methods.items():
            start = time.perf_counter()
            for path in paths:
                fn(path)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(paths) / seconds for name, seconds in best.items()}


def _frame_only(path: Path, size: int) -> None:
    """Frame an image in a worker and return nothing (a shard job writes its own file)."""
    load_frame(path, size)


def pool_rate(paths: Sequence[Path], processes: int, size: int) -> float:
    with get_context("fork").Pool(processes) as pool:
        pool.starmap(_frame_only, [(p, size) for p in paths[:processes]])  # warm the workers
        start = time.perf_counter()
        pool.starmap(_frame_only, [(p, size) for p in paths], chunksize=2)
        return len(paths) / (time.perf_counter() - start)


def thread_rate(paths: Sequence[Path], threads: int, size: int) -> float:
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        list(pool.map(lambda p: load_frame(p, size), paths))
        return len(paths) / (time.perf_counter() - start)


def drop_cache(path: Path) -> str:
    """Drop a file's pages from the page cache; returns what fincore says is resident."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if shutil.which("fincore"):
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() + " B resident"
    return "residency not checked"


def write_frames(path: Path, frames: Sequence[np.ndarray], n: int, compression: str) -> float:
    """A shard-like file of ``n`` frames (cycling through ``frames``); returns images/s."""
    size = frames[0].shape[0]
    start = time.perf_counter()
    with h5py.File(path, "w", libver=LIBVER) as f:
        dset = create_images_dataset(f, n, size, compression)
        for i in range(n):
            dset[i] = frames[i % len(frames)]
        f.create_dataset("dicom_id", data=np.array([f"{i:044d}" for i in range(n)], dtype="S"))
        f.create_dataset("split", data=np.array([b"train"] * n))
        f.attrs["shard"], f.attrs["n_shards"] = 0, 1
    return n / (time.perf_counter() - start)


def read_rate(dataset: ShardDataset, indices: np.ndarray) -> float:
    start = time.perf_counter()
    for i in indices:
        dataset[int(i)]
    return len(indices) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="generated JPEGs")
    parser.add_argument("--grain", type=float, default=1.0, help="noise SD (grey levels)")
    parser.add_argument("--size", type=int, default=512, help="frame side S")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reads", type=int, default=5000, help="warm random reads")
    parser.add_argument("--shard-images", type=int, default=1500, help="frames per test shard")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gazeloc-bench-images-"))
    size = args.size
    try:
        t = time.perf_counter()
        paths = make_jpegs(work, args.images, args.grain)
        sizes = [p.stat().st_size / 1e6 for p in paths]
        dims = [Image.open(p).size for p in paths]
        print(
            f"{len(paths)} JPEGs generated in {time.perf_counter() - t:.0f} s: "
            f"{statistics.mean(sizes):.2f} MB mean ({min(sizes):.2f}-{max(sizes):.2f}), "
            f"{min(max(d) for d in dims)}-{max(max(d) for d in dims)} px long side; "
            f"cores: {os.cpu_count()}; frame {size} px\n"
        )

        # --- per-core preprocessing ------------------------------------------------------
        rates = best_rate(
            {
                "plain path (full decode + resize BILINEAR, 8-bit)": lambda p: load_frame_plain(
                    p, size
                ),
                "gazeloc load_frame (DCT-scaled decode + float resize + round + pad)": (
                    lambda p: load_frame(p, size)
                ),
                "gazeloc load_frame, dct_scaling=False": lambda p: load_frame(
                    p, size, dct_scaling=False
                ),
                "its decode alone (DCT scale 1/k, no resize)": lambda p: decode_draft(p, size),
                "floor: decode at 1/8 DCT scale only": decode_eighth,
                "full decode only": decode_full,
            },
            paths,
            args.rounds,
        )
        names = list(rates)
        plain, ours, floor = rates[names[0]], rates[names[1]], rates[names[4]]
        print("| step (1 process) | images/s | ms/image |")
        print("|---|---:|---:|")
        for name, rate in rates.items():
            print(f"| {name} | {rate:.1f} | {1000 / rate:.1f} |")
        print(
            f"\nSpeed-up over the plain path: **{ours / plain:.2f}x**. The whole preprocessing "
            f"takes {1000 / ours:.1f} ms per image against {1000 / floor:.1f} ms for the 1/8 "
            f"decode floor ({floor / ours:.2f}x the floor's time).\n"
        )
        scores = [psnr(load_frame(p, size), load_frame_plain(p, size)) for p in paths]
        exact = [psnr(load_frame(p, size), load_frame(p, size, dct_scaling=False)) for p in paths]
        scales = []
        for p in paths:
            with Image.open(p) as im:
                g = frame_geometry(*im.size, size)
                im.draft("L", (g.w, g.h))
                scales.append(round(g.width / im.size[0]))
        print(
            f"PSNR against the plain path: min {min(scores):.1f} dB, mean "
            f"{statistics.mean(scores):.1f} dB; against full decoding with the same float "
            f"resize: min {min(exact):.1f} dB. DCT scales used: "
            f"{sorted({f'1/{k}' for k in scales})}.\n"
        )

        # --- processes and threads ------------------------------------------------------
        many = list(paths) * 2
        configs: dict[str, tuple[Callable[[], float], int]] = {
            "1 process": (lambda: pool_rate(many, 1, size), 1),
            "2 processes": (lambda: pool_rate(many, 2, size), 2),
            "1 thread (thread pool)": (lambda: thread_rate(many, 1, size), 1),
            "2 threads, 1 process": (lambda: thread_rate(many, 2, size), 2),
        }
        best = dict.fromkeys(configs, 0.0)
        for _ in range(max(1, args.rounds // 2)):
            for name, (fn, _workers) in configs.items():
                best[name] = max(best[name], fn())
        print("| parallelism (load_frame) | images/s | per worker |")
        print("|---|---:|---:|")
        for name, (_fn, workers) in configs.items():
            print(f"| {name} | {best[name]:.1f} | {best[name] / workers:.1f} |")
        rows = list(paths) * 4
        images = pl.DataFrame(
            {
                "dicom_id": [
                    f"{i:08x}-00000000-00000000-00000000-00000000" for i in range(len(rows))
                ],
                "path": [p.name for p in rows],
                "width": [d[0] for d in dims] * 4,
                "height": [d[1] for d in dims] * 4,
                "official_split": ["train"] * len(rows),
            }
        )
        write_shard(images.head(2), work, work / "warm.h5", size=size, progress=False)
        for workers in (1, 2):
            start = time.perf_counter()
            write_shard(
                images,
                work,
                work / "e2e" / shard_name(0, 1),
                shard=0,
                n_shards=1,
                size=size,
                workers=workers,
                progress=False,
            )
            rate = len(rows) / (time.perf_counter() - start)
            print(
                f"| write_shard end to end ({len(rows)} images, blosc-lz4hc), {workers} "
                f"thread(s) | {rate:.1f} | {rate / workers:.1f} |"
            )
        print()

        # --- compression and reads ------------------------------------------------------
        frames = [load_frame(p, size) for p in paths]
        n = args.shard_images
        rng = np.random.default_rng(1)
        print(
            f"Shard-like files of {n} frames at {size} px (chunks of one image), random reads "
            "through ShardDataset on one process (uint8 tensor 1xSxS per item):\n"
        )
        print(
            "| compression | KiB/image | vs none | write images/s | warm reads/s | cold reads/s |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        base = None
        residency = ""
        for compression in COMPRESSIONS:
            folder = work / f"c-{compression}"
            folder.mkdir()
            path = folder / shard_name(0, 1)
            write = write_frames(path, frames, n, compression)
            kib = path.stat().st_size / n / 1024
            base = base or kib
            pl.DataFrame(
                {
                    "dicom_id": [f"{i:044d}" for i in range(n)],
                    "shard": [0] * n,
                    "file": [path.name] * n,
                    "row": list(range(n)),
                    "official_split": ["train"] * n,
                }
            ).write_parquet(folder / "shards.parquet")
            ds = ShardDataset(folder / "shards.parquet")
            read_rate(ds, np.arange(n))  # warm the page cache and the handles
            warm = read_rate(ds, rng.integers(0, n, args.reads))
            ds.close()
            residency = drop_cache(path)
            cold_ds = ShardDataset(folder / "shards.parquet")
            cold = read_rate(cold_ds, rng.permutation(n)[: min(n, 1000)])
            cold_ds.close()
            print(
                f"| {compression} | {kib:.1f} | {kib / base:.2f} | {write:.0f} | {warm:.0f} | "
                f"{cold:.0f} |"
            )
        print(f"\nCold reads: fsync + posix_fadvise(DONTNEED) before reading ({residency}).")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: training step time, data loading with augmentation, GPU throughput.

Usage: python bench/bench_training.py [--section all|cpu|loader|gpu] [--steps 6]
       [--gpu-backbone resnet50] [--gpu-size 512] [--gpu-batch 20] [--gpu-steps 30]
       [--compile] [--device auto|cpu|cuda]

Sections (issue "Model, losses and training"):

* ``cpu``: one optimisation step (forward, L_I + λ_T L_T, backward, AMSGrad step, batch
  augmentation) at the demo size (ResNet-18, 128 px, batch 20, decoder on, one annotated item
  per batch) on the CPU with 1 and 2 threads; seconds per step and images/s.
* ``loader``: images/s of the training input path from HDF5 shards (Blosc LZ4HC, one chunk per
  image, as the image stage writes them) with ET heatmaps for 1% of the items (the paper's
  annotated share): read + collate in the DataLoader (0, 1, 2 worker processes), and the same
  plus the batch augmentation on the CPU; at 128 and 512 px; steady state (worker start-up and
  the first batch excluded), best of 2 passes (the first warms the page cache).
* ``gpu``: :func:`gpu_benchmark` — training images/s and peak GPU memory of the paper's model
  (ResNet-50, 512 px, batch 20, the precision ``training.precision: auto`` picks, channels-last)
  with the training loop's device settings (cuDNN autotuning, TF32), synthetic batches already
  on the device (the loader is measured apart), no synchronisation inside the timed steps.
  Without CUDA it prints "unmeasured (no GPU lent)"; with ``--device cpu`` and tiny sizes it
  runs on the CPU (the tests do this). ``bench/gpu_check.py`` is the fuller GPU check.

Timings are wall clock on whatever machine runs this; the median of ``--steps`` steps after
warm-up. Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import polars as pl
import torch

from gazeloc.datasets.annotations import AnnotationStore
from gazeloc.datasets.sets import ImageLabelSet
from gazeloc.devices import configure_backends, resolve_precision
from gazeloc.experiments import TrainingOptions
from gazeloc.images.shards import create_images_dataset
from gazeloc.labels import MODEL_LABELS
from gazeloc.model import ModelSettings, build_model
from gazeloc.train.augment import augment_batch, sample_params
from gazeloc.train.loop import (
    Step,
    _loader,
    make_optimizer,
    pick_device,
    train_step,
    uses_channels_last,
)

UNMEASURED = "unmeasured (no GPU lent)"


def synthetic_batch(batch: int, size: int, n_annotated: int = 1, seed: int = 0) -> dict:
    """A collated batch like the loader's: uint8 images, labels, one annotated item's maps."""
    g = torch.Generator().manual_seed(seed)
    annotated = torch.zeros(batch, dtype=torch.bool)
    annotated[:n_annotated] = True
    maps = torch.zeros(n_annotated, 10, size, size, dtype=torch.float16)
    if n_annotated:
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        blob = torch.exp(-((xx - size / 3) ** 2 + (yy - size / 2) ** 2) / (2 * (size / 12) ** 2))
        maps[:, 0] = blob.half()
    return {
        "images": torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8, generator=g),
        "labels": (torch.rand(batch, 10, generator=g) > 0.7).float(),
        "known": torch.ones(batch, 10, dtype=torch.bool),
        "annotated": annotated,
        "maps": maps,
        "map_index": torch.arange(n_annotated),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(
    backbone: str,
    size: int,
    batch: int,
    steps: int,
    *,
    device: torch.device,
    warmup: int = 2,
    precision: str = "auto",
    channels_last: bool = True,
    compile_model: bool = False,
    decoder: bool = True,
) -> dict[str, Any]:
    """Seconds per training step (augmentation included) and images/s: the median of the
    steps on the CPU; on a GPU the mean over ``steps`` steps timed as one block (training
    does not synchronise per step)."""
    settings = ModelSettings(backbone=backbone, pretrained="none", input_size=size, decoder=decoder)
    model = build_model(settings, seed=0).to(device)
    options = TrainingOptions(
        batch_size=batch,
        device=device.type,
        precision=precision,
        channels_last=channels_last,
        compile=compile_model,
    )
    configure_backends(device)
    effective = resolve_precision(precision, device)
    if uses_channels_last(options, device):
        model = model.to(memory_format=torch.channels_last)
    compiled = torch.compile(model) if compile_model else None
    step = Step(model, options, device, precision=effective, compiled=compiled)
    optimizer = make_optimizer(model, options)
    data = synthetic_batch(batch, size)
    if device.type == "cuda":
        # on the device already, but map_index stays on the CPU (as the loader's batches)
        data = {k: v if k == "map_index" else v.to(device) for k, v in data.items()}
        torch.cuda.reset_peak_memory_stats(device)
    generator = torch.Generator().manual_seed(1)
    times = []
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            block = time.perf_counter()
        start = time.perf_counter()
        params = sample_params(batch, size, generator)
        train_step(step, optimizer, data, params)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    _sync(device)
    if device.type == "cuda":
        seconds = (time.perf_counter() - block) / steps
    else:
        seconds = statistics.median(times)
    out = {
        "backbone": backbone,
        "size": size,
        "batch": batch,
        "device": str(device),
        "precision": effective,
        "seconds_per_step": seconds,
        "images_per_s": batch / seconds,
        "peak_memory_gib": None,
    }
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def gpu_benchmark(
    backbone: str = "resnet50",
    size: int = 512,
    batch: int = 20,
    steps: int = 30,
    *,
    device: str = "auto",
    compile_model: bool = False,
) -> dict[str, Any] | str:
    """The paper's training step on a GPU: images/s and peak memory (channels-last, the
    precision ``auto`` picks).

    ``device="auto"`` without CUDA returns :data:`UNMEASURED` (never an estimate);
    ``device="cpu"`` runs the same code on the CPU (tiny sizes in the tests).
    """
    if device == "auto" and not torch.cuda.is_available():
        return UNMEASURED
    dev = pick_device(device)
    return time_steps(
        backbone, size, batch, steps, device=dev, warmup=3, compile_model=compile_model
    )


def make_shard_inputs(
    folder: Path, n: int, size: int, annotated_share: float = 0.01, seed: int = 0
) -> tuple[Path, list[str], AnnotationStore, pl.DataFrame]:
    """A shard of ``n`` smooth grainy frames (Blosc LZ4HC) and float16 ET maps for a share."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"d{i:06d}" for i in range(n)]
    shard = folder / "shard-000-of-001.h5"
    coarse = size // 16
    with h5py.File(shard, "w") as f:
        dset = create_images_dataset(f, n, size, "blosc-lz4hc")
        for i in range(n):
            low = rng.uniform(20, 200, (coarse, coarse))
            image = np.kron(low, np.ones((16, 16))) + rng.normal(0, 1.0, (size, size))
            dset[i] = np.clip(image, 0, 255).astype(np.uint8)
    manifest = folder / "shards.parquet"
    pl.DataFrame(
        {
            "dicom_id": ids,
            "shard": [0] * n,
            "file": [shard.name] * n,
            "row": list(range(n)),
            "official_split": ["train"] * n,
        }
    ).write_parquet(manifest)
    n_ann = max(1, round(annotated_share * n))
    heatmaps = folder / "phase3.h5"
    with h5py.File(heatmaps, "w") as f:
        for j in range(n_ann):
            g = f.create_group(f"P3_{j:05d}")
            g.attrs["dicom_id"] = ids[j]
            g.attrs["split"] = "train"
            g.attrs["subject_id"] = j
            et = np.zeros((10, size, size), np.float16)
            et[0] = rng.random((size, size))
            g.create_dataset("et", data=et, chunks=(1, size, size))
            g.create_dataset("et_labels", data=np.eye(10, dtype=bool)[0])
            g.create_dataset("report_labels", data=np.eye(10, dtype=bool)[0])
            g.create_dataset("full_report", data=et[0])
    store = AnnotationStore("et", heatmaps=heatmaps)
    annotated = pl.DataFrame(
        {"reading_id": [f"P3_{j:05d}" for j in range(n_ann)], "dicom_id": ids[:n_ann]}
    )
    return manifest, ids, store, annotated


def loader_benchmark(
    folder: Path,
    n: int,
    size: int,
    batch: int = 20,
    workers: tuple[int, ...] = (0, 1, 2),
    epochs: int = 2,
) -> list[dict]:
    """Images/s of read + collate (and + CPU augmentation) through the training DataLoader."""
    manifest, ids, store, annotated = make_shard_inputs(folder, n, size)
    labels = np.zeros((n, len(MODEL_LABELS)), np.float32)
    dataset = ImageLabelSet(
        manifest, ids, labels, np.ones_like(labels, bool), annotated=annotated, store=store
    )
    rows = []
    device = torch.device("cpu")
    for augment in (False, True):
        for w in workers:
            best = 0.0
            for epoch in range(epochs):  # the first pass also warms the page cache
                g = torch.Generator().manual_seed(epoch)
                order = torch.randperm(len(dataset), generator=g).tolist()
                batches = [order[i : i + batch] for i in range(0, len(order) - batch + 1, batch)]
                start = None
                count = 0
                for b in _loader(dataset, batches, w, device):
                    if augment:
                        params = sample_params(len(b["images"]), size, g)
                        augment_batch(
                            b["images"].float().div_(255), b["maps"].float(), b["map_index"], params
                        )
                    if start is None:  # steady state: worker start-up and first batch excluded
                        start = time.perf_counter()
                    else:
                        count += len(b["images"])
                if start is not None and count:
                    best = max(best, count / (time.perf_counter() - start))
            rows.append(
                {"size": size, "workers": w, "augment_on_cpu": augment, "images_per_s": best}
            )
    return rows


def _fmt(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--section", choices=("all", "cpu", "loader", "gpu"), default="all")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--gpu-backbone", default="resnet50")
    parser.add_argument("--gpu-size", type=int, default=512)
    parser.add_argument("--gpu-batch", type=int, default=20)
    parser.add_argument("--gpu-steps", type=int, default=30)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--loader-images", type=int, default=1000)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available\n")
    if args.section in ("all", "cpu"):
        print("### CPU training step, demo size (ResNet-18, 128 px, batch 20, decoder, augment)\n")
        print("| threads | s/step | images/s |")
        print("|---:|---:|---:|")
        for threads in (1, 2):
            torch.set_num_threads(threads)
            r = time_steps("resnet18", 128, 20, args.steps, device=torch.device("cpu"))
            print(f"| {threads} | {r['seconds_per_step']:.2f} | {r['images_per_s']:.1f} |")
        torch.set_num_threads(1)
        r = time_steps(
            "resnet50", 512, 2, max(2, args.steps // 3), device=torch.device("cpu"), warmup=1
        )
        print(
            f"\nPaper model on the CPU (ResNet-50, 512 px, batch 2, 1 thread): "
            f"{r['seconds_per_step']:.2f} s/step, {r['images_per_s']:.2f} images/s\n"
        )
    if args.section in ("all", "loader"):
        torch.set_num_threads(1)
        print("### Data loading from shards (read + collate; + augmentation on the CPU)\n")
        print("| size | workers | augmentation on CPU | images/s |")
        print("|---:|---:|---|---:|")
        with tempfile.TemporaryDirectory() as tmp:
            for size in (128, 512):
                for r in loader_benchmark(Path(tmp) / str(size), args.loader_images, size):
                    print(
                        f"| {r['size']} | {r['workers']} | {'yes' if r['augment_on_cpu'] else 'no'}"
                        f" | {r['images_per_s']:.0f} |"
                    )
        print()
    if args.section in ("all", "gpu"):
        print("### GPU training step (training.precision auto, channels-last)\n")
        r = gpu_benchmark(
            args.gpu_backbone,
            args.gpu_size,
            args.gpu_batch,
            args.gpu_steps,
            device=args.device,
            compile_model=args.compile,
        )
        if isinstance(r, str):
            print(f"{args.gpu_backbone}, {args.gpu_size} px, batch {args.gpu_batch}: {r}")
        else:
            print(
                f"{r.get('gpu', r['device'])}: {args.gpu_backbone}, {args.gpu_size} px, batch "
                f"{args.gpu_batch}, {r['precision']}: {r['images_per_s']:.1f} images/s, "
                f"{r['seconds_per_step'] * 1000:.0f} ms/step, peak memory "
                f"{_fmt(r['peak_memory_gib'], 2)} GiB"
            )


if __name__ == "__main__":
    main()

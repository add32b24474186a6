"""GPU check: is this machine ready for the paper's training? One command, one table.

Usage: python bench/gpu_check.py [--time-limit 280] [--steps 200] [--warmup 20] [--cpu]
       [--compile-on-cpu]

Self-contained: synthetic batches and a tiny generated dataset (one image shard, heatmaps,
ellipses), no workflow run. On a CUDA GPU (at most about 5 minutes):

* the device, its compute capability and the precision ``training.precision: auto`` picks;
* training steps of the paper's model (ResNet-50, 512 px, batch 20, decoder, augmentation) in
  fp32 (TF32 allowed) and in bf16 (where supported), channels-last, without and with
  ``torch.compile``: images/s sustained over ``--steps`` steps after ``--warmup`` steps, and the
  peak GPU memory;
* the losses of the same batches in fp32 and bf16 side by side;
* host-device synchronisations per training step (the Python-level calls counted by
  :class:`gazeloc.train.syncs.SyncCounter`, and on CUDA what ``torch.cuda.set_sync_debug_mode``
  reports);
* a small training run killed after its first epoch and resumed, against the same run
  uninterrupted;
* one evaluation of that model with Grad-CAM heatmaps (``gazeloc.evaluate``).

The steps are the training loop's own (:class:`gazeloc.train.loop.Step`,
:func:`gazeloc.train.loop.train_step`) with its device settings
(:func:`gazeloc.devices.configure_backends`: cuDNN autotuning, TF32), fed from pinned
host memory as the loader feeds them, and timed without a synchronisation per step (one at the
end of each timed block), as training runs. When the time limit nears, the remaining checks are
skipped with a message and the table is printed.

Without CUDA (or with ``--cpu``) it says that no CUDA device was found and runs the same checks
on the CPU at a tiny size (ResNet-18, 64 px, batch 4, a few steps; bf16 through CPU autocast,
only to exercise the code: CPU training uses fp32; ``torch.compile`` only with
``--compile-on-cpu``), and exits 0, so that ``make test`` runs every code path.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import polars as pl
import torch

from gazeloc.devices import compute_capability, configure_backends, resolve_precision
from gazeloc.experiments import TrainingOptions
from gazeloc.labels import MODEL_LABELS
from gazeloc.model import ModelSettings, build_model
from gazeloc.train import loop
from gazeloc.train.augment import sample_params
from gazeloc.train.loop import Step, make_optimizer, train, train_step
from gazeloc.train.syncs import SyncCounter, optimizer_step_counters

LOSS_BATCHES = 5
"""Batches whose fp32 and bf16 losses are printed side by side."""


@dataclass(frozen=True)
class Size:
    backbone: str
    size: int
    batch: int
    steps: int
    warmup: int


class Budget:
    """Wall-clock limit of the whole check."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, check: str, setting: str, result: str) -> None:
        self.rows.append((check, setting, result))
        print(f"  {check} | {setting} | {result}", file=sys.stderr, flush=True)

    def table(self) -> str:
        lines = ["| check | setting | result |", "|---|---|---|"]
        lines += [f"| {c} | {s} | {r} |" for c, s, r in self.rows]
        return "\n".join(lines)


def synthetic_batches(n: int, size: Size, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """``n`` collated batches like the loader's (pinned on a GPU), one annotated item each."""
    g = torch.Generator().manual_seed(0)
    s, b = size.size, size.batch
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    blob = torch.exp(-((xx - s / 3) ** 2 + (yy - s / 2) ** 2) / (2 * (s / 12) ** 2)).half()
    out = []
    for _ in range(n):
        annotated = torch.zeros(b, dtype=torch.bool)
        annotated[0] = True
        maps = torch.zeros(1, 10, s, s, dtype=torch.float16)
        maps[0, 0] = blob
        batch = {
            "images": torch.randint(0, 256, (b, 1, s, s), dtype=torch.uint8, generator=g),
            "labels": (torch.rand(b, 10, generator=g) > 0.7).float(),
            "known": torch.ones(b, 10, dtype=torch.bool),
            "annotated": annotated,
            "maps": maps,
            "map_index": torch.tensor([0]),
        }
        if device.type == "cuda":
            batch = {k: v.pin_memory() for k, v in batch.items()}
        out.append(batch)
    return out


def _setup(size: Size, precision: str, device: torch.device, compiled: bool):
    settings = ModelSettings(backbone=size.backbone, pretrained="none", input_size=size.size)
    options = TrainingOptions(batch_size=size.batch, channels_last=True, compile=compiled)
    model = build_model(settings, seed=0).to(device)
    if loop.uses_channels_last(options, device):
        model = model.to(memory_format=torch.channels_last)
    step = Step(
        model,
        options,
        device,
        precision=precision,
        compiled=torch.compile(model) if compiled else None,
    )
    return step, make_optimizer(model, options)


def throughput(
    size: Size, precision: str, compiled: bool, device: torch.device, budget: Budget
) -> dict[str, Any]:
    """Images/s sustained over ``size.steps`` steps after ``size.warmup`` (fewer when the time
    limit nears), the first batches' losses, the peak GPU memory."""
    step, optimizer = _setup(size, precision, device, compiled)
    cuda = device.type == "cuda"
    pool = synthetic_batches(min(8, size.steps + size.warmup), size, device)
    generator = torch.Generator().manual_seed(1)
    params = [sample_params(size.batch, size.size, generator) for _ in pool]
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    losses = []
    start = time.perf_counter()
    for i in range(size.warmup):
        loss, _, _ = train_step(step, optimizer, pool[i % len(pool)], params[i % len(pool)], sums)
        if i < LOSS_BATCHES:
            losses.append(loss.detach())
    if cuda:
        torch.cuda.synchronize(device)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    done = 0
    while done < size.steps:
        j = (size.warmup + done) % len(pool)
        loss, _, _ = train_step(step, optimizer, pool[j], params[j], sums)
        if size.warmup + done < LOSS_BATCHES:
            losses.append(loss.detach())
        done += 1
        if done % 25 == 0 and budget.left() < 20:
            break
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else math.nan
    return {
        "images_per_s": done * size.batch / seconds,
        "steps": done,
        "warmup_s": warm,
        "peak_gib": peak,
        "losses": [float(x) for x in losses],
        "finite": bool(torch.isfinite(sums).all()),
    }


def syncs_per_step(size: Size, precision: str, device: torch.device) -> tuple[int, int | None]:
    """Python-level synchronising calls in one step, and on CUDA the synchronisations that
    ``torch.cuda.set_sync_debug_mode`` warns about (None on the CPU)."""
    step, optimizer = _setup(size, precision, device, compiled=False)
    batch = synthetic_batches(1, size, device)[0]
    params = sample_params(size.batch, size.size, torch.Generator().manual_seed(1))
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    train_step(step, optimizer, batch, params, sums)  # the optimizer's state exists from here
    with SyncCounter(ignore=optimizer_step_counters(optimizer)) as counter:
        train_step(step, optimizer, batch, params, sums)
    python_level = len(counter.calls)
    if device.type != "cuda":
        return python_level, None
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_step(step, optimizer, batch, params, sums)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    device_level = sum("synchroniz" in str(w.message) for w in caught)
    torch.cuda.synchronize(device)
    return python_level, device_level


def make_dataset(root: Path, size: int = 64, n_train: int = 24, n_val: int = 8) -> dict[str, Path]:
    """A tiny study in the training inputs' layouts: index, one shard and its manifest, and
    phase-3 heatmaps and ellipses for a few readings (label 0 is a bright square)."""
    rng = np.random.default_rng(0)
    n_ann = 6
    splits = ["train"] * n_train + ["val"] * n_val + ["train"] * n_ann + ["val"] * 4
    rows, images, boxes = [], [], []
    for i, split in enumerate(splits):
        positive = i % 2 == 0
        image = rng.integers(0, 60, (size, size), dtype=np.uint8)
        box = tuple(int(v) for v in rng.integers(2, size // 2, 2)) if positive else None
        if box is not None:
            image[box[0] : box[0] + size // 4, box[1] : box[1] + size // 4] = 230
        images.append(image)
        boxes.append(box)
        labels = {label: bool(rng.random() < 0.3) for label in MODEL_LABELS}
        labels[MODEL_LABELS[0]] = positive
        annotated = i >= n_train + n_val
        rows.append(
            {
                "dicom_id": f"d{i:03d}",
                "subject_id": 100 + i,
                "study_id": 500 + i,
                "path": f"files/p10/p{100 + i}/s{500 + i}/d{i:03d}.jpg",
                "split": split,
                "in_mimic": not annotated,
                "in_reflacx": annotated,
                **labels,
            }
        )
    schema = {
        "dicom_id": pl.String,
        "subject_id": pl.Int64,
        "study_id": pl.Int64,
        "path": pl.String,
        "split": pl.String,
        "in_mimic": pl.Boolean,
        "in_reflacx": pl.Boolean,
    } | {label: pl.Boolean for label in MODEL_LABELS}
    paths = {
        "index": root / "index.parquet",
        "manifest": root / "shards.parquet",
        "heatmaps": root / "heatmaps.h5",
        "ellipses": root / "ellipses.h5",
    }
    pl.DataFrame(rows, schema=schema).write_parquet(paths["index"])
    with h5py.File(root / "shard-000-of-001.h5", "w") as f:
        f.create_dataset("images", data=np.stack(images), chunks=(1, size, size))
    pl.DataFrame(
        {
            "dicom_id": [r["dicom_id"] for r in rows],
            "shard": [0] * len(rows),
            "file": ["shard-000-of-001.h5"] * len(rows),
            "row": list(range(len(rows))),
            "official_split": ["train"] * len(rows),
        }
    ).write_parquet(paths["manifest"])
    yy, xx = np.mgrid[0:size, 0:size]
    with h5py.File(paths["heatmaps"], "w") as fh, h5py.File(paths["ellipses"], "w") as fe:
        for j, (row, box) in enumerate(
            (r, b) for r, b in zip(rows, boxes, strict=True) if r["in_reflacx"]
        ):
            rid = f"P3_{j:03d}"
            et = np.zeros((10, size, size), np.float16)
            ell = np.zeros((10, size, size), bool)
            if box is not None:
                cy, cx = box[0] + size // 8, box[1] + size // 8
                et[0] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 10) ** 2))
                ell[0] = ((xx - cx) / (size / 8)) ** 2 + ((yy - cy) / (size / 8)) ** 2 < 1
            present = ell.reshape(10, -1).any(axis=1)
            for f in (fh, fe):
                g = f.create_group(rid)
                g.attrs.update(
                    split=row["split"], dicom_id=row["dicom_id"], subject_id=row["subject_id"]
                )
            fh[rid].create_dataset("et", data=et)
            fh[rid].create_dataset("et_labels", data=present)
            fh[rid].create_dataset("report_labels", data=present)
            fh[rid].create_dataset("full_report", data=et.max(axis=0))
            fe[rid].create_dataset("ellipses", data=ell)
            fe[rid].create_dataset("ellipse_labels", data=present)
            fe[rid].create_dataset("ellipse_labels_any", data=present)
    return paths


class Killed(Exception):
    pass


def resume_check(root: Path, device: torch.device) -> tuple[str, Path, dict[str, Path]]:
    """Train a tiny ET run twice: uninterrupted, and killed after epoch 1's checkpoint then
    resumed; the largest weight difference between the two (0 on the CPU)."""
    paths = make_dataset(root)
    settings = {
        "experiment": "gpu_check",
        "annotations": "et",
        "label_specific_heatmaps": True,
        "input_size": 64,
        "model": {"backbone": "resnet18", "pretrained": "none", "layers": [3, 4]},
        "training": {
            "epochs": 2,
            "batch_size": 4,
            "workers": 0,
            "device": device.type,
            "checkpoint_minutes": 60.0,
        },
    }
    common = {
        "index": paths["index"],
        "manifest": paths["manifest"],
        "heatmaps": paths["heatmaps"],
        "seed": 1,
        "progress": False,
    }
    train(settings, out_dir=root / "a", **common)
    n_steps = 30 // 4  # 24 MIMIC + 6 annotated training images, batch 4

    def kill(step: int) -> None:
        if step == n_steps + 2:  # in epoch 2, after the epoch-1 checkpoint
            raise Killed

    try:
        train(settings, out_dir=root / "b", on_step=kill, **common)
    except Killed:
        pass
    train(settings, out_dir=root / "b", **common)
    a = torch.load(root / "a" / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(root / "b" / "model.pt", map_location="cpu", weights_only=True)
    diff = max(
        float((a[k].double() - b["state_dict"][k].double()).abs().max()) if a[k].numel() else 0.0
        for k in a
    )
    verdict = "identical weights" if diff == 0 else f"max |Δ weight| {diff:.2e}"
    return (
        f"{verdict}; model.pt: {b['precision']} on {b['device_type']}",
        root / "b" / "model.pt",
        paths,
    )


def evaluation_check(model: Path, paths: dict[str, Path], device: torch.device) -> str:
    from gazeloc.evaluate.run import EvalOptions, evaluate_model

    start = time.perf_counter()
    frame = evaluate_model(
        model,
        index=paths["index"],
        manifest=paths["manifest"],
        ellipses=paths["ellipses"],
        split="val",
        options=EvalOptions(device=device.type, batch_size=4, progress=False),
    )
    seconds = time.perf_counter() - start
    rows = frame.height
    frame = frame.filter(pl.col("value").is_not_nan())  # labels without a positive: NaN
    auc = frame.filter(pl.col("metric") == "auc").get_column("value").mean()
    gradcam = frame.filter((pl.col("metric") == "iou") & (pl.col("source") == "gradcam"))
    best = gradcam.group_by("threshold").agg(pl.col("value").mean()).get_column("value").max()
    return (
        f"{rows} metric rows in {seconds:.1f} s; mean AUC {auc:.3f}, "
        f"best mean Grad-CAM IoU {best:.3f}"
    )


def run(args: argparse.Namespace) -> Report:
    budget = Budget(args.time_limit)
    report = Report()
    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    configure_backends(device)
    if cuda:
        size = Size("resnet50", 512, 20, args.steps, args.warmup)
        capability = compute_capability(device)
        report.add(
            "device", "CUDA", f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
        )
        report.add("compute capability", "", f"{capability[0]}.{capability[1]}")
    else:
        size = Size("resnet18", 64, 4, 3, 1)
        torch.set_num_threads(1)  # a training job's threads at the demo's settings
        reason = "--cpu given" if args.cpu else "no CUDA device found"
        report.add("device", "CPU", f"{reason}: CPU mode at a tiny size, torch {torch.__version__}")
        report.add("compute capability", "", "n/a (no CUDA)")
    chosen = resolve_precision("auto", device)
    report.add("precision chosen", "training.precision: auto", chosen)
    model_name = f"{size.backbone}, {size.size} px, batch {size.batch}"

    bf16_ok = chosen == "bf16" or not cuda  # on the CPU: autocast, to exercise the code only
    precisions = ["fp32", "bf16"] if bf16_ok else ["fp32"]
    if not bf16_ok:
        report.add("training step", f"{model_name}, bf16", "not supported here: training uses fp32")
    compile_too = cuda or args.compile_on_cpu
    plan = [(p, False) for p in precisions]
    if compile_too:
        plan += [(chosen, True)] + [(p, True) for p in precisions if p != chosen]
    else:
        report.add(
            "training step", f"{model_name}, compiled", "skipped on the CPU (--compile-on-cpu)"
        )
    results: dict[tuple[str, bool], dict[str, Any]] = {}
    skipped: list[str] = []

    def section(name: str, needs: float) -> bool:
        if budget.left() < needs:
            skipped.append(name)
            return False
        return True

    for precision, compiled in plan:
        layout = "channels-last" if cuda or loop.CPU_CHANNELS_LAST else "contiguous"
        label = f"{model_name}, {precision}, {layout}{', compiled' if compiled else ''}"
        if not section(label, 90 if compiled else 30):
            continue
        r = throughput(size, precision, compiled, device, budget)
        results[(precision, compiled)] = r
        memory = f", peak {r['peak_gib']:.1f} GiB" if cuda else ""
        report.add(
            "training step",
            label,
            f"{r['images_per_s']:.1f} images/s over {r['steps']} steps (warm-up "
            f"{r['warmup_s']:.1f} s){memory}{'' if r['finite'] else ', NON-FINITE LOSS'}",
        )
    if ("fp32", False) in results and ("bf16", False) in results:
        a, b = results[("fp32", False)]["losses"], results[("bf16", False)]["losses"]
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            report.add(
                "loss, same batch",
                f"batch {i + 1}: fp32 / bf16",
                f"{x:.4f} / {y:.4f} ({(y - x) / x:+.1e})",
            )
    if section("syncs per step", 20):
        python_level, device_level = syncs_per_step(size, chosen, device)
        device_text = "" if device_level is None else f"; CUDA sync debug mode: {device_level}"
        report.add(
            "syncs per step",
            f"{model_name}, {chosen}",
            f"Python-level calls: {python_level}{device_text}",
        )
    model_pt = None
    if section("kill and resume", 60):
        with tempfile.TemporaryDirectory() as tmp:
            text, model_pt, paths = resume_check(Path(tmp), device)
            report.add("kill and resume", f"resnet18, 64 px, 2 epochs, {device.type}", text)
            if section("evaluation with Grad-CAM", 30):
                report.add(
                    "evaluation",
                    f"grid, decoder, Grad-CAM on {device.type}",
                    evaluation_check(model_pt, paths, device),
                )
    else:
        skipped.append("evaluation with Grad-CAM")
    if skipped:
        report.add(
            "stopped early",
            f"time limit {args.time_limit:.0f} s nears",
            "skipped: " + "; ".join(skipped),
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time-limit", type=float, default=280.0, help="seconds (default 280)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per setting on a GPU")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first on a GPU")
    parser.add_argument("--cpu", action="store_true", help="CPU mode even when CUDA is present")
    parser.add_argument(
        "--compile-on-cpu", action="store_true", help="also torch.compile on the CPU"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    before = torch.get_num_threads()
    report = run(args)
    torch.set_num_threads(before)
    print(report.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())

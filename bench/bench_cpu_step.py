"""Benchmark: the demo's training step on the CPU, today's code against faster options.

Usage: python bench/bench_cpu_step.py [--steps 8] [--warmup 2] [--size 96] [--batch 20]
       [--variants eager,channels_last,compile,compile_channels_last,threads2]

The step is the training loop's own (:func:`gazeloc.train.loop.train_step`: forward, L_I +
λ_T L_T, backward, AMSGrad update, batch augmentation) at the demo's size: ResNet-18, 96 px,
batch 20, decoder on, one annotated item per batch. Every variant starts from the same weights
and takes the same batches with the same augmentation parameters, so that its losses can be
compared with the baseline's step by step: step 1 (the same weights and batch) must agree
within 1e-4 relative for a variant to be adoptable; later steps drift apart as the weights do
(any change of rounding, a thread count included, does this). Variants:

* ``eager``: today's step (contiguous tensors, eager mode, the job's one thread);
* ``channels_last``: model and images in channels-last memory layout;
* ``compile`` / ``compile_channels_last``: ``torch.compile`` (inductor, C++ kernels), the same
  with channels-last; compilation is the warm-up and is reported apart;
* ``threads2``: today's step with two intra-op threads (a job with ``threads: 2``).

Prints a Markdown table: seconds per step (median of ``--steps`` after ``--warmup``), the
ratio to ``eager``, the warm-up seconds, and the largest relative loss difference.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

import torch

from gazeloc.experiments import TrainingOptions
from gazeloc.model import ModelSettings, build_model
from gazeloc.train import loop
from gazeloc.train.augment import sample_params
from gazeloc.train.loop import Step, make_optimizer, train_step

VARIANTS = ("eager", "channels_last", "compile", "compile_channels_last", "threads2")


def demo_batches(n: int, batch: int, size: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` collated batches like the loader's (one annotated item with an ET-like map)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for _ in range(n):
        cx, cy = (torch.rand(2, generator=g) * size * 0.6 + size * 0.2).tolist()
        blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 10) ** 2))
        maps = torch.zeros(1, 10, size, size, dtype=torch.float16)
        maps[0, 0] = blob.half()
        annotated = torch.zeros(batch, dtype=torch.bool)
        annotated[0] = True
        out.append(
            {
                "images": torch.randint(
                    0, 256, (batch, 1, size, size), dtype=torch.uint8, generator=g
                ),
                "labels": (torch.rand(batch, 10, generator=g) > 0.7).float(),
                "known": torch.ones(batch, 10, dtype=torch.bool),
                "annotated": annotated,
                "maps": maps,
                "map_index": torch.tensor([0]),
            }
        )
    return out


class Variant:
    """One variant's model, optimizer and step, built from the shared initial weights."""

    def __init__(self, name: str, initial: dict[str, torch.Tensor], settings: ModelSettings):
        self.name = name
        self.threads = 2 if name == "threads2" else 1
        channels_last = name in ("channels_last", "compile_channels_last")
        before = loop.CPU_CHANNELS_LAST
        loop.CPU_CHANNELS_LAST = channels_last
        try:
            model = build_model(settings)
            model.load_state_dict(copy.deepcopy(initial))
            options = TrainingOptions(batch_size=20, channels_last=True)
            if loop.uses_channels_last(options, CPU):
                model = model.to(memory_format=torch.channels_last)
            compiled = torch.compile(model) if name.startswith("compile") else None
            self.step = Step(model, options, CPU, compiled=compiled)
        finally:
            loop.CPU_CHANNELS_LAST = before
        self.optimizer = make_optimizer(model, options)
        self.times: list[float] = []
        self.losses: list[float] = []
        self.warmup_seconds = 0.0

    def run(self, batch: dict[str, Any], params: Any, timed: bool) -> None:
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            start = time.perf_counter()
            loss, _, _ = train_step(self.step, self.optimizer, batch, params)
            elapsed = time.perf_counter() - start
        finally:
            torch.set_num_threads(before)
        self.losses.append(float(loss.detach()))
        if timed:
            self.times.append(elapsed)
        else:
            self.warmup_seconds += elapsed


CPU = torch.device("cpu")


def compare(
    variants: tuple[str, ...] = VARIANTS,
    *,
    steps: int = 8,
    warmup: int = 2,
    size: int = 96,
    batch: int = 20,
) -> list[dict[str, Any]]:
    """Every variant's timing, its ratio to ``eager`` and its relative loss differences from
    ``eager`` on the same batches. The variants take their steps in turn (step 1 of each, then
    step 2 of each, ...), so that a changing load on the machine affects them alike."""
    settings = ModelSettings(backbone="resnet18", pretrained="none", input_size=size)
    initial = build_model(settings, seed=0).state_dict()
    batches = demo_batches(warmup + steps, batch, size)
    generator = torch.Generator().manual_seed(1)
    params = [sample_params(batch, size, generator) for _ in batches]
    names = ("eager", *(v for v in variants if v != "eager"))
    runs = [Variant(name, initial, settings) for name in names]
    for i, (b, p) in enumerate(zip(batches, params, strict=True)):
        for run in runs:
            run.run(b, p, timed=i >= warmup)
    base = runs[0]
    rows = []
    for run in runs:
        diffs = [
            abs(a - b) / max(abs(b), 1e-12) for a, b in zip(run.losses, base.losses, strict=True)
        ]
        rows.append(
            {
                "variant": run.name,
                "seconds_per_step": statistics.median(run.times),
                "warmup_seconds": run.warmup_seconds,
                "losses": run.losses,
                "first_rel_loss_diff": diffs[0],  # the same weights and batch
                "max_rel_loss_diff": max(diffs),  # the weights drift apart step by step
            }
        )
    for row in rows:
        row["ratio"] = rows[0]["seconds_per_step"] / row["seconds_per_step"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    variants = tuple(v for v in args.variants.split(",") if v)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r} (one of {', '.join(VARIANTS)})")
    rows = compare(variants, steps=args.steps, warmup=args.warmup, size=args.size, batch=args.batch)
    print(
        f"torch {torch.__version__}; ResNet-18, {args.size} px, batch {args.batch}, decoder, "
        f"augmentation; median of {args.steps} steps after {args.warmup} warm-up steps\n"
    )
    print(
        "| variant | s/step | speed vs eager | warm-up s | rel. loss diff, step 1 | "
        "max rel. loss diff, all steps |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['seconds_per_step']:.3f} | {r['ratio']:.2f}x | "
            f"{r['warmup_seconds']:.1f} | {r['first_rel_loss_diff']:.1e} | "
            f"{r['max_rel_loss_diff']:.1e} |"
        )


if __name__ == "__main__":
    main()

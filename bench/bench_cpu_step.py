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

from gazeloc.model import ModelSettings, build_model
from gazeloc.train import loop
from gazeloc.train.augment import sample_params
from gazeloc.train.loop import Step, make_optimizer, train_step
from gazeloc.train.settings import TrainingOptions

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


def run_variant(
    variant: str,
    initial: dict[str, torch.Tensor],
    settings: ModelSettings,
    batches: list[dict[str, Any]],
    warmup: int,
) -> dict[str, Any]:
    """Seconds per step and losses of one variant over ``batches`` (the first ``warmup``
    steps are timed apart)."""
    channels_last = variant in ("channels_last", "compile_channels_last")
    compiled = variant.startswith("compile")
    threads = 2 if variant == "threads2" else 1
    before_threads, before_cl = torch.get_num_threads(), loop.CPU_CHANNELS_LAST
    torch.set_num_threads(threads)
    loop.CPU_CHANNELS_LAST = channels_last
    try:
        model = build_model(settings)
        model.load_state_dict(copy.deepcopy(initial))
        options = TrainingOptions(batch_size=len(batches[0]["images"]), channels_last=True)
        device = torch.device("cpu")
        if loop.uses_channels_last(options, device):
            model = model.to(memory_format=torch.channels_last)
        step = Step(model, options, device, compiled=torch.compile(model) if compiled else None)
        optimizer = make_optimizer(model, options)
        generator = torch.Generator().manual_seed(1)
        times, losses, warm = [], [], 0.0
        for i, batch in enumerate(batches):
            params = sample_params(len(batch["images"]), settings.input_size, generator)
            start = time.perf_counter()
            loss, _, _ = train_step(step, optimizer, batch, params)
            losses.append(float(loss.detach()))
            elapsed = time.perf_counter() - start
            if i < warmup:
                warm += elapsed
            else:
                times.append(elapsed)
    finally:
        torch.set_num_threads(before_threads)
        loop.CPU_CHANNELS_LAST = before_cl
    return {
        "variant": variant,
        "seconds_per_step": statistics.median(times),
        "warmup_seconds": warm,
        "losses": losses,
    }


def compare(
    variants: tuple[str, ...] = VARIANTS,
    *,
    steps: int = 8,
    warmup: int = 2,
    size: int = 96,
    batch: int = 20,
) -> list[dict[str, Any]]:
    """Every variant's timing, its ratio to ``eager`` and its largest relative loss
    difference from ``eager`` on the same batches."""
    settings = ModelSettings(backbone="resnet18", pretrained="none", input_size=size)
    initial = build_model(settings, seed=0).state_dict()
    batches = demo_batches(warmup + steps, batch, size)
    names = ("eager", *(v for v in variants if v != "eager"))
    rows = [run_variant(v, initial, settings, batches, warmup) for v in names]
    base = rows[0]
    for row in rows:
        row["ratio"] = base["seconds_per_step"] / row["seconds_per_step"]
        diffs = [
            abs(a - b) / max(abs(b), 1e-12)
            for a, b in zip(row["losses"], base["losses"], strict=True)
        ]
        row["first_rel_loss_diff"] = diffs[0]  # the same weights and batch
        row["max_rel_loss_diff"] = max(diffs)  # the weights drift apart step by step
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

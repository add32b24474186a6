"""Benchmark: IoU at the 26 reference thresholds for a batch of paper-size maps, three ways.

Run: ``python bench/bench_evaluate.py [--quick]`` (one CPU thread).

For 8 readings × 10 labels in the 512 frame, with random ellipse masks:

* ``gazeloc.evaluate.maps.iou_thresholds`` (what ``gazeloc evaluate`` uses): the native map
  (grid 32×32 or decoder 256×256) with each cell's count of mask pixels, one sort per map,
  every threshold a binary search; the upscaled map is never built;
* ``gazeloc.metrics.iou_at_thresholds`` on the maps upscaled to 512×512 (one sort of 262,144
  values per map);
* the definition: upscale, then one comparison and two counts per threshold (26 passes).

It checks that the three agree and prints seconds per batch (best of repeats). Also the
Grad-CAM closed form against one autograd backward pass per label (ResNet-18, 128 px).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gazeloc.evaluate.maps import gradcam, gradcam_autograd, iou_thresholds, upscale_nearest
from gazeloc.metrics import REFERENCE_THRESHOLDS, iou_at_thresholds
from gazeloc.model import ModelSettings, build_model


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def definition(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    up = upscale_nearest(maps, masks.shape[-1])
    out = []
    for t in REFERENCE_THRESHOLDS:
        pred = up > t
        inter = (pred & masks).sum(dim=(-2, -1))
        union = (pred | masks).sum(dim=(-2, -1))
        out.append(torch.where(union > 0, inter / union.clamp(min=1), 0.0))
    return torch.stack(out, dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 1 if args.quick else 3
    n = 4 if args.quick else 8
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512]
    masks = np.zeros((n, 10, 512, 512), bool)
    for i in range(n):
        for k in range(10):
            cx, cy, a, b = rng.uniform(100, 400), rng.uniform(100, 400), *rng.uniform(20, 120, 2)
            masks[i, k] = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1
    tm = torch.from_numpy(masks)
    print(f"{n} readings x 10 labels, frame 512, {len(REFERENCE_THRESHOLDS)} thresholds")
    print("| map | block-sorted (used) | full-res sort | per-threshold definition |")
    print("|---|---:|---:|---:|")
    for side in (32, 256):
        maps = torch.rand(n, 10, side, side)
        fast = iou_thresholds(maps, tm, REFERENCE_THRESHOLDS)
        slow = iou_at_thresholds(upscale_nearest(maps, 512).numpy(), masks)
        ref = definition(maps, tm)
        # metrics.iou_at_thresholds compares in float64, torch (and the evaluation) in float32
        assert np.allclose(iou_thresholds(maps.double(), tm, REFERENCE_THRESHOLDS).numpy(), slow)
        assert np.allclose(fast.numpy(), ref.numpy(), atol=1e-6)
        a = best(lambda m=maps: iou_thresholds(m, tm, REFERENCE_THRESHOLDS), repeats)
        b = best(lambda m=maps: iou_at_thresholds(upscale_nearest(m, 512).numpy(), masks), 1)
        c = best(lambda m=maps: definition(m, tm), 1)
        print(f"| {side}x{side} | {a:.3f} s | {b:.2f} s | {c:.2f} s |")
    model = build_model(ModelSettings(backbone="resnet18", pretrained="none", input_size=128))
    model.eval()
    images = torch.rand(n, 1, 128, 128)

    def closed() -> None:
        with torch.no_grad():
            gradcam(model, model(images, decoder=False))

    a = best(closed, repeats)
    b = best(lambda: gradcam_autograd(model, images), repeats)
    print(f"Grad-CAM, ResNet-18 128 px, batch {n}: closed form (incl. forward) {a:.3f} s,")
    print(f"autograd (forward + 10 backward passes) {b:.3f} s")


if __name__ == "__main__":
    main()

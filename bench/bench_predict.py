"""Benchmark: ``gazeloc predict`` from JPEG files, images per second and where the time goes.

Run: ``python bench/bench_predict.py [--quick] [--threads N] [--device cpu|cuda]``.

Two cases, each with a random-weight model (the speed does not depend on the weights):

* ``paper``: ResNet-50 at 512 px, on MIMIC-CXR-JPG-sized JPEGs (2544 × 3056 portrait and
  3056 × 2544 landscape, quality 95), batches of 8;
* ``demo``: the demo's model (ResNet-18 at 96 px) on the demo's 512-px JPEGs, batches of 16.

The whole command runs (``gazeloc.predict.predict``: read, frame, forward, write
``predictions.csv``, ``heatmaps.h5`` at the original size for every reported label, and the
overlays at 512 px per panel), with the time split into its four phases. In the same process, the
forward pass alone (the network, the image probabilities and the source's maps, on frames
already in memory, the same batches) gives the forward-only rate. The target at 512 px: all
but the forward pass at most 25% of the whole, i.e. a whole rate at least 0.8 of the
forward-only rate.

The model's classifier bias makes 3 of the 10 labels certain and the others absent, so that
3 heatmaps (the decoder's, unaffected by that bias) are written per image, as for an image
with three findings; ``--all-labels`` writes all 10 (the heaviest writing load).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gazeloc.model import ModelSettings, build_model
from gazeloc.predict import PredictOptions, predict
from gazeloc.predict.run import forward_batch

CASES = {
    "paper": {
        "backbone": "resnet50",
        "size": 512,
        "shapes": [(2544, 3056), (3056, 2544)],
        "batch": 8,
    },
    "demo": {"backbone": "resnet18", "size": 96, "shapes": [(426, 512), (512, 426)], "batch": 16},
}


def make_jpegs(folder: Path, shapes, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        w, h = shapes[i % len(shapes)]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        image = 110 + 50 * np.sin(xx / 97.0 + i) * np.cos(yy / 131.0) + rng.normal(0, 12, (h, w))
        path = folder / f"cxr{i:03d}.jpg"
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(path, quality=95)
        paths.append(path)
    return paths


REPORTED = 3
"""Labels the benchmark model reports per image by default (probability >= 0.5)."""


def run_case(name: str, n: int, device: str, workdir: Path, all_labels: bool) -> dict:
    case = CASES[name]
    folder = workdir / name
    folder.mkdir()
    paths = make_jpegs(folder, case["shapes"], n)
    settings = ModelSettings(backbone=case["backbone"], pretrained="none", input_size=case["size"])
    model = build_model(settings, seed=0).eval()
    with torch.no_grad():  # the first labels certain, the others absent (decoder maps as is)
        model.classifier.bias[:REPORTED] = 12.0
        model.classifier.bias[REPORTED:] = -12.0
    model_path = workdir / f"{name}.pt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "model": settings.to_dict(),
            "experiment": "et",
            "seed": 1,
            "images": {"size": case["size"], "dct_scaling": True, "resample": "bilinear"},
        },
        model_path,
    )
    options = PredictOptions(
        batch_size=case["batch"], device=device, progress=False, all_labels=all_labels
    )
    # warm-up (first-call allocations, lazy imports, the batch shape) on one batch
    predict(model_path, paths[: case["batch"]], workdir / f"{name}-warm", options)
    t0 = time.perf_counter()
    summary = predict(model_path, paths, workdir / f"{name}-out", options)
    whole = time.perf_counter() - t0
    # the forward pass alone, on the same frames and batches
    from gazeloc.predict.read import load_image

    frames = torch.from_numpy(np.stack([load_image(p, case["size"]).frame for p in paths]))[:, None]
    dev = torch.device("cuda" if device == "cuda" else "cpu")
    model.to(dev)
    forward_batch(model, frames[: case["batch"]].to(dev), summary["source"])
    t1 = time.perf_counter()
    for i in range(0, n, case["batch"]):
        forward_batch(model, frames[i : i + case["batch"]].to(dev), summary["source"])
    forward_only = time.perf_counter() - t1
    seconds = summary["seconds"]
    total = sum(seconds.values())
    return {
        "case": name,
        "labels": "all 10" if all_labels else f"{REPORTED} of 10",
        "backbone": case["backbone"],
        "frame": case["size"],
        "images": n,
        "jpeg": f"{case['shapes'][0][0]}x{case['shapes'][0][1]}",
        "source": summary["source"],
        "whole_s": whole,
        "images_per_s": n / whole,
        "forward_only_images_per_s": n / forward_only,
        "ratio": (n / whole) / (n / forward_only),
        "phase_s": seconds,
        "phase_share": {k: v / total for k, v in seconds.items()},
        "non_forward_share": 1 - seconds["forward"] / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--all-labels", action="store_true", help="write all 10 maps per image")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            n = {"paper": 8 if args.quick else 32, "demo": 32 if args.quick else 128}[name]
            r = run_case(name, n, args.device, Path(tmp), args.all_labels)
            results.append(r)
            share = ", ".join(f"{k} {v:.1%}" for k, v in r["phase_share"].items())
            print(
                f"{name}: {r['backbone']} at {r['frame']} px, {n} JPEGs of {r['jpeg']}, "
                f"{r['labels']} labels reported, "
                f"{args.device}, {args.threads} threads: {r['images_per_s']:.2f} images/s "
                f"(forward only {r['forward_only_images_per_s']:.2f}; ratio {r['ratio']:.2f}); "
                f"split: {share}; non-forward {r['non_forward_share']:.1%}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark: what changes a CPU training's numbers on the same software and data.

Usage: python bench/bench_numerics.py [--steps 6] [--size 96] [--batch 20]
       [--settings default,repeat,threads2,aten_default,onednn_avx,no_mkldnn]

Each setting runs in its own process (kernel-path variables are read when torch starts):
the training loop's own step (:func:`gazeloc.train.loop.train_step`, as in
``bench_cpu_step.py``: ResNet-18, decoder, augmentation, AMSGrad) for ``--steps`` steps from
the same initial weights on the same batches. Settings:

* ``default``: one intra-op thread, the machine's own kernel path;
* ``repeat``: the same again (is a run reproducible on one machine?);
* ``threads2``: two intra-op threads;
* ``aten_default``: ``ATEN_CPU_CAPABILITY=default`` (ATen's non-vectorised kernels, as on a
  CPU without AVX2);
* ``onednn_avx``: ``ONEDNN_MAX_CPU_ISA=AVX`` (oneDNN's convolutions without AVX2/FMA, as on
  an older CPU);
* ``no_mkldnn``: ``torch.backends.mkldnn.enabled = False`` (convolutions outside oneDNN).

Prints a Markdown table: the kernel path each process reports, seconds per step, the
relative loss difference from ``default`` at step 1 and at the last step, the largest
absolute weight difference after the last step, and whether the weights are bit-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gazeloc.numerics import ISA_VARIABLES

SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "repeat": {},
    "threads2": {"BENCH_THREADS": "2"},
    "aten_default": {"ATEN_CPU_CAPABILITY": "default"},
    "onednn_avx": {"ONEDNN_MAX_CPU_ISA": "AVX"},
    "no_mkldnn": {"BENCH_NO_MKLDNN": "1"},
}


def child(steps: int, size: int, batch: int, out: Path) -> None:
    """One setting's run (in a fresh process): losses, s/step and final weights to ``out``."""
    import torch
    from bench_cpu_step import demo_batches

    from gazeloc.experiments import TrainingOptions
    from gazeloc.model import ModelSettings, build_model
    from gazeloc.numerics import numeric_facts
    from gazeloc.train.augment import sample_params
    from gazeloc.train.loop import Step, make_optimizer, train_step

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    if os.environ.get("BENCH_NO_MKLDNN"):
        torch.backends.mkldnn.enabled = False
    cpu = torch.device("cpu")
    settings = ModelSettings(backbone="resnet18", pretrained="none", input_size=size)
    model = build_model(settings, seed=0)
    options = TrainingOptions(batch_size=batch)
    step = Step(model, options, cpu)
    optimizer = make_optimizer(model, options)
    generator = torch.Generator().manual_seed(1)
    losses, times = [], []
    for b in demo_batches(steps, batch, size):
        params = sample_params(batch, size, generator)
        start = time.perf_counter()
        loss, _, _ = train_step(step, optimizer, b, params)
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out)
    facts = numeric_facts("cpu")
    out.with_suffix(".json").write_text(json.dumps({"losses": losses, "times": times, **facts}))


def run_setting(name: str, steps: int, size: int, batch: int, tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ISA_VARIABLES}
    env.update(SETTINGS[name])
    bench_dir = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [bench_dir, env.get("PYTHONPATH")]))
    out = tmp / f"{name}.pt"
    args = [sys.executable, __file__, "--child", str(out)]
    args += ["--steps", str(steps), "--size", str(size), "--batch", str(batch)]
    subprocess.run(args, env=env, check=True)
    return {"name": name, "weights": out, **json.loads(out.with_suffix(".json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.steps, args.size, args.batch, args.child)
        return
    names = ["default", *(n for n in args.settings.split(",") if n and n != "default")]
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown setting {unknown[0]!r} (one of {', '.join(SETTINGS)})")
    import statistics

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_setting(n, args.steps, args.size, args.batch, Path(tmp)) for n in names]
        base = runs[0]
        base_w = torch.load(base["weights"], weights_only=True)
        print(
            f"torch {torch.__version__}; {base['cpu_model']}; ResNet-18, {args.size} px, batch "
            f"{args.batch}, decoder, augmentation, AMSGrad; {args.steps} steps from the same "
            "weights on the same batches\n"
        )
        print(
            "| setting | ATen capability | oneDNN | threads | s/step | rel. loss diff, step 1 "
            f"| rel. loss diff, step {args.steps} | max abs weight diff | bit-identical |"
        )
        print("|---|---|---|---:|---:|---:|---:|---:|---|")
        for run in runs:
            w = torch.load(run["weights"], weights_only=True)
            diff = max(float((w[k].double() - base_w[k].double()).abs().max()) for k in w)
            same = all(torch.equal(w[k], base_w[k]) for k in w)
            rel = [
                abs(a - b) / max(abs(b), 1e-12)
                for a, b in zip(run["losses"], base["losses"], strict=True)
            ]
            onednn = run.get("ONEDNN_MAX_CPU_ISA", "machine's ISA")
            if not run["mkldnn_enabled"]:
                onednn = "off"
            print(
                f"| {run['name']} | {run['cpu_capability']} | {onednn} | {run['threads']} | "
                f"{statistics.median(run['times'][1:] or run['times']):.3f} | {rel[0]:.1e} | "
                f"{rel[-1]:.1e} | {diff:.1e} | {'yes' if same else 'no'} |"
            )


if __name__ == "__main__":
    main()

"""bench/gpu_check.py runs in CPU mode (tiny sizes) without CUDA, prints its one table with
the GPU path's facts, and exits 0 (so every code path of the GPU check runs in `make test`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_mode():
    args = ["--cpu"] if torch.cuda.is_available() else []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--time-limit", "1200", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    rows = {tuple(c.strip() for c in line.strip("|").split("|")) for line in table.splitlines()}
    checks = {row[0] for row in rows if len(row) == 3}
    assert {
        "device",
        "compute capability",
        "precision chosen",
        "training step",
        "loss, same batch",
        "syncs per step",
        "kill and resume",
        "evaluation",
    } <= checks, table
    assert "stopped early" not in checks, table
    reason = "--cpu given" if args else "no CUDA device found"
    assert f"| device | CPU | {reason}: CPU mode" in table
    assert "| precision chosen | training.precision: auto | fp32 |" in table
    assert "Python-level calls: 0 |" in table
    assert "identical weights; model.pt: fp32 on cpu" in table
    assert "Grad-CAM IoU" in table

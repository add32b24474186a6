"""The training benchmarks run end to end at tiny sizes on the CPU (no timing asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_training", ROOT / "bench" / "bench_training.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(before)


def test_gpu_benchmark_runs_on_cpu_with_tiny_sizes(bench):
    result = bench.gpu_benchmark("resnet18", 32, 2, 2, device="cpu")
    assert result["images_per_s"] > 0 and result["peak_memory_gib"] is None
    assert result["backbone"] == "resnet18" and result["device"] == "cpu"


def test_gpu_benchmark_without_cuda_is_unmeasured(bench, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.gpu_benchmark() == "unmeasured (no GPU lent)"


def test_loader_benchmark_tiny(bench, tmp_path):
    rows = bench.loader_benchmark(tmp_path, n=24, size=32, batch=4, workers=(0,), epochs=1)
    assert [r["augment_on_cpu"] for r in rows] == [False, True]
    assert all(r["images_per_s"] > 0 for r in rows)

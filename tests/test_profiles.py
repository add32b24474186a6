"""The shipped profiles: SLURM jobs get CPUs = threads (GPU jobs too), failed logs are shown,
preempted jobs requeue; the workstation profile sits where Snakemake finds it by itself and
leaves the GPU limit to the Snakefile."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SLURM = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())


class _Resources(dict):
    def __getattr__(self, name):
        return self[name]


class _Job:
    def __init__(self, rule: str) -> None:
        resources = {**SLURM["default-resources"], **SLURM["set-resources"].get(rule, {})}
        self.resources = _Resources(resources)
        self.threads = SLURM["set-threads"].get(rule, 1)


def test_no_explicit_cpu_counts_that_would_override_threads():
    blocks = [SLURM["default-resources"], *SLURM["set-resources"].values()]
    assert not any(key in block for block in blocks for key in ("cpus_per_task", "cpus_per_gpu"))
    assert "slurm_extra" not in str(SLURM)


@pytest.mark.parametrize(
    ("rule", "cpus"), [("train", 9), ("evaluate", 4), ("heatmaps", 8), ("image_shard", 1)]
)
def test_the_plugin_asks_slurm_for_the_jobs_threads(rule, cpus):
    jobstep = pytest.importorskip("snakemake_executor_plugin_slurm_jobstep")
    job = _Job(rule)
    gpu_job = bool(job.resources.get("gpu"))
    assert gpu_job == (rule in ("train", "evaluate"))
    assert jobstep.get_cpu_setting(job, gpu_job) == f"--cpus-per-task={cpus}"


def test_failed_logs_and_requeue():
    assert SLURM["show-failed-logs"] is True and SLURM["slurm-requeue"] is True


def test_workstation_profile_is_found_beside_the_snakefile_and_sets_no_gpu_limit():
    default = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    assert (ROOT / "Snakefile").is_file() and not (ROOT / "workflow/profiles/default").exists()
    assert "resources" not in default and default["show-failed-logs"] is True
    assert default["rerun-incomplete"] is True

"""The workflow through the SLURM profile on a real single-node SLURM (munge, slurmdbd with
MariaDB so the executor plugin's default `sacct` status path is exercised, one fake GPU).

Needs root and apt (Debian 12). Elsewhere the test skips and says why; `.ci/run` sets
GAZELOC_REQUIRE_SLURM=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).parent / "slurm"
TINY = ROOT / "workflow" / "presets" / "tiny.yaml"
REQUIRED = os.environ.get("GAZELOC_REQUIRE_SLURM") == "1"

pytestmark = pytest.mark.slow


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install and start SLURM daemons"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs apt-get (Debian) to install SLURM"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = _why_not()
    if reason:
        if REQUIRED:
            pytest.fail(f"GAZELOC_REQUIRE_SLURM=1 but the SLURM test cannot run: {reason}")
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm-state")
    try:
        up = subprocess.run(
            ["bash", str(SCRIPTS / "slurm-up.sh"), str(state)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield state
    finally:
        subprocess.run(["bash", str(SCRIPTS / "slurm-down.sh"), str(state)], timeout=60)


def ci_profile(folder: Path) -> Path:
    """The slurm profile with only the site values changed (partition, memory, CPUs) and a
    short first status check so that CI does not wait 40 s per job."""
    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    profile["default-resources"].update(slurm_partition="ci", mem_mb=1000, runtime=10)
    for resources in profile["set-resources"].values():
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], 2000)
        for cpus in ("cpus_per_task", "cpus_per_gpu"):
            if cpus in resources:
                resources[cpus] = min(resources[cpus], 2)
        resources.pop("gpu_model", None)
        resources.pop("slurm_partition", None)
    profile["set-threads"] = {k: min(v, 2) for k, v in profile.get("set-threads", {}).items()}
    profile["jobs"] = 2
    profile["latency-wait"] = 10
    profile["slurm-init-seconds-before-status-checks"] = 2
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def _rules_submitted(log: str) -> set[str]:
    """Rules of the jobs Snakemake ran as cluster jobs, from its log ("rule NAME:" lines;
    localrules print "localrule NAME:" and run in the Snakemake process)."""
    return {
        line.split()[1].rstrip(":")
        for line in log.splitlines()
        if line.startswith("rule ") and line.rstrip().endswith(":")
    }


def _sacct(start: str) -> list[tuple[str, ...]]:
    out = subprocess.run(
        [
            "sacct",
            "-X",
            "--parsable2",
            "--noheader",
            "--starttime",
            start,
            "--format=JobID,Comment,State,AllocTRES%120",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def test_fake_gpu_is_schedulable(slurm, tmp_path):
    job = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--gpus=1",
            "-o",
            str(tmp_path / "out"),
            "--wait",
            "--wrap",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 0, job.stderr
    jobid = job.stdout.strip().split(";")[0]
    out = subprocess.run(
        ["sacct", "-j", jobid, "-X", "--parsable2", "--noheader", "--format=State,AllocTRES%80"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    state, tres = out.strip().split("|")
    assert state == "COMPLETED" and "gres/gpu=1" in tres


def test_tiny_workflow_runs_as_slurm_jobs(slurm, tmp_path):
    profile = ci_profile(tmp_path / "profile")
    workdir = tmp_path / "work"
    workdir.mkdir()
    start = time.strftime("%Y-%m-%dT%H:%M:%S")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        [
            "timeout",
            "-k",
            "10",
            "600",
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(workdir),
            "--workflow-profile",
            str(profile),
            "--configfile",
            str(TINY),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=700,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    jobs = _sacct(start)
    by_rule: dict[str, list[tuple[str, str]]] = {}
    for _, comment, state, tres in jobs:
        by_rule.setdefault(comment.removeprefix("rule_"), []).append((state, tres))
    # every job Snakemake ran was a SLURM job that completed (localrules run in the
    # Snakemake process and have no SLURM record)
    assert all(state == "COMPLETED" for runs in by_rule.values() for state, _ in runs), jobs
    ran = _rules_submitted(run.stdout + run.stderr)
    assert ran, run.stderr[-4000:]
    assert ran <= set(by_rule), (sorted(ran - set(by_rule)), jobs)
    # one GPU per training job, from SLURM's own allocation record
    assert len(by_rule["train"]) == len(yaml.safe_load(TINY.read_text())["seeds"]) * 3
    assert all("gres/gpu=1" in tres for _, tres in by_rule["train"]), jobs
    assert not any("gres/gpu" in tres for _, tres in by_rule["check_data"]), jobs
    assert (workdir / "results-tiny" / "data" / "check.json").is_file()

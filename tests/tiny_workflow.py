"""The one tiny workflow run shared by the end-to-end, rerun and SLURM tests.

Where a single-node SLURM can be started (root and apt, tests/slurm/slurm-up.sh), the tiny
preset runs through the SLURM profile (with only its site values changed); elsewhere it runs
on the local machine. Either way the run uses its own copy of the workflow inside the work
folder, so that tests may edit it, and later tests dry-run against the finished results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).parent / "slurm"
TINY = str(ROOT / "workflow" / "presets" / "tiny.yaml")
CHECKOUT = ("Snakefile", "config.yaml", "README.md", "workflow", "profiles", "src", "envs")
REQUIRE_SLURM = os.environ.get("GAZELOC_REQUIRE_SLURM") == "1"
SLURM_RUN = "slurm-run.json"
"""Written into the work folder when the tiny run went through SLURM (start time, log)."""


def slurm_unavailable() -> str | None:
    """Why a local SLURM cannot be started here, or None. GAZELOC_SKIP_SLURM=1 opts out (for
    a developer running tests beside another session that owns the machine's SLURM)."""
    if os.environ.get("GAZELOC_SKIP_SLURM") == "1" and not REQUIRE_SLURM:
        return "GAZELOC_SKIP_SLURM=1"
    if os.geteuid() != 0:
        return "needs root to install and start SLURM daemons"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs apt-get (Debian) to install SLURM"
    return None


def slurm_up(state: Path) -> None:
    up = subprocess.run(
        ["bash", str(SCRIPTS / "slurm-up.sh"), str(state)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]


def slurm_down(state: Path) -> None:
    subprocess.run(["bash", str(SCRIPTS / "slurm-down.sh"), str(state)], timeout=60)


CI_GPU_THREADS = 2
"""Threads (= SLURM CPUs) the CI profile gives each train and evaluate job: the node's 2 cores."""


def ci_profile(folder: Path) -> Path:
    """The slurm profile with only the site values changed (partition, memory, threads that
    fit the 2-CPU node: 2 for train and evaluate, 1 for the rest) and a short first status
    check so that CI does not wait 40 s per job."""
    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    profile["default-resources"].update(slurm_partition="ci", mem_mb=1000, runtime=10)
    for resources in profile["set-resources"].values():
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], 2000)
        resources.pop("gpu_model", None)
        resources.pop("slurm_partition", None)
    profile["set-threads"] = {
        k: CI_GPU_THREADS if k in ("train", "evaluate") else 1
        for k in {*profile.get("set-threads", {}), "train", "evaluate"}
    }
    profile["jobs"] = 2
    profile["latency-wait"] = 10
    profile["slurm-init-seconds-before-status-checks"] = 2
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def snakefile(workdir: Path) -> Path:
    """The tiny run's own copy of the workflow (tests may edit it), else this checkout's."""
    copy = workdir / "checkout" / "Snakefile"
    return copy if copy.is_file() else ROOT / "Snakefile"


def run(
    args: list[str],
    workdir: Path,
    timeout: int = 600,
    prefix: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Snakemake on ``workdir`` with the test's interpreter first on PATH (jobs run
    ``python -m gazeloc``); ``env``: more environment variables."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    snakemake = [sys.executable, "-m", "snakemake", "-s", str(snakefile(workdir))]
    return subprocess.run(
        [*prefix, *snakemake, "-d", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        env={**os.environ, "PATH": path, **(env or {})},
    )


def copy_checkout(target: Path) -> None:
    for name in CHECKOUT:
        source, dest = ROOT / name, target / name
        if source.is_dir():
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)


def tiny_run(workdir: Path, slurm_state: Path | None) -> Path:
    """Run the tiny preset in ``workdir`` (through SLURM when ``slurm_state`` is given)."""
    copy_checkout(workdir / "checkout")
    if slurm_state is None:
        # two CPU trainings side by side on the 2 cores (no GPU here: the default is one)
        result = run(["--cores", "2", "--resources", "gpu=2", "--configfile", TINY], workdir)
        assert result.returncode == 0, result.stderr[-4000:]
        return workdir
    profile = ci_profile(workdir / "ci-profile")
    start = time.strftime("%Y-%m-%dT%H:%M:%S")
    result = run(
        ["--workflow-profile", str(profile), "--configfile", TINY],
        workdir,
        # every train/evaluate job takes both cores of the CI node, so GPU jobs run one at a
        # time: about 10 minutes on a quiet 2-core machine, more when it is shared
        timeout=1800,
        prefix=("timeout", "-k", "10", "1800"),
    )
    log = workdir / "slurm-run.log"
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (workdir / SLURM_RUN).write_text(json.dumps({"start": start, "log": str(log)}))
    return workdir

"""The workflow end to end on the tiny preset, dry runs, lint and config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
TINY = str(ROOT / "workflow" / "presets" / "tiny.yaml")


def _run(args: list[str], workdir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # jobs run `python -m gazeloc`: the test's interpreter must be the `python` on PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        [*SNAKEMAKE, "-d", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PATH": path},
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    result = _run(["--cores", "2", "--configfile", TINY], workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.mark.slow
def test_tiny_run_outputs(tiny_run):
    results = tiny_run / "results-tiny"
    check = json.loads((results / "data" / "check.json").read_text())
    assert check["reflacx"]["phase_3"]["readings"] == 8
    assert check["reflacx"]["phase_1"]["readings"] == 10
    assert check["warnings"] >= 0  # fixations outside the image are logged, not errors
    realism = (results / "synthetic" / "realism.md").read_text()
    assert "share in sentence windows" in realism
    png = (results / "figures" / "synthetic_examples.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    for rule in ("synthetic_data", "synthetic_realism", "check_data"):
        assert (results / "logs" / f"{rule}.log").is_file()
        assert (results / "benchmarks" / f"{rule}.tsv").is_file()


@pytest.mark.slow
def test_rerun_is_a_no_op(tiny_run):
    result = _run(["-n", "--configfile", TINY], tiny_run)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_only_stale_stages_rerun(tiny_run, tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text("synthetic:\n  seed: 8\n")
    result = _run(["-n", "--configfile", TINY, str(seed)], tiny_run)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "synthetic_data" in out and "check_data" in out
    workers = tmp_path / "workers.yaml"
    workers.write_text("synthetic:\n  workers: 2\n")
    result = _run(["-n", "--configfile", TINY, str(workers)], tiny_run)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_dry_run_default_config(tmp_path):
    result = _run(["-n"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "synthetic_data" in result.stdout


def test_bad_config_stops_before_any_job(tmp_path):
    result = _run(["-n", "--config", "images={'size': 'big'}"], tmp_path)
    assert result.returncode != 0
    assert "config key 'images.size'" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def test_real_source_requires_paths(tmp_path):
    result = _run(["-n", "--config", "data={'source': 'real'}"], tmp_path)
    assert result.returncode != 0
    assert "data.reflacx_dir" in result.stderr + result.stdout


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_report_builds(tiny_run):
    report = tiny_run / "results-tiny" / "report.html"
    result = _run(["--cores", "1", "--configfile", TINY, "--report", str(report)], tiny_run)
    assert result.returncode == 0, result.stderr[-2000:]
    html = report.read_text(errors="replace")
    assert "synthetic_examples.png" in html


def test_project_never_reads_shared():
    """The spec folder beside the checkout does not exist for users."""
    needle = "../" + "shared"
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("src", "workflow", "tests", "bench")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".smk", ".yaml", ".txt", ".md"}
        and needle in path.read_text(errors="ignore")
    ]
    assert offenders == []

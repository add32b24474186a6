"""The workflow through the SLURM profile on a real single-node SLURM (munge, slurmdbd with
MariaDB so the executor plugin's default `sacct` status path is exercised, one fake GPU).

The tiny run shared with tests/test_workflow.py (fixture ``tiny_run``, tests/tiny_workflow.py)
goes through SLURM when SLURM can be started here; these tests check SLURM's own records of
it. Needs root and apt (Debian 12); elsewhere they skip and say why, and `.ci/run` sets
GAZELOC_REQUIRE_SLURM=1, which turns the skip into a failure.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from tiny_workflow import CI_GPU_THREADS, REQUIRE_SLURM, SLURM_RUN, TINY, slurm_unavailable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(slurm_cluster):
    if slurm_cluster is None:
        reason = slurm_unavailable() or "SLURM was not started"
        if REQUIRE_SLURM:
            pytest.fail(f"GAZELOC_REQUIRE_SLURM=1 but the SLURM test cannot run: {reason}")
        pytest.skip(reason)
    return slurm_cluster


# the rules with a `message:`, by the start of their message
MESSAGES = {"check_data": "Checking the REFLACX and MIMIC-CXR-JPG copies"}


def _rules_submitted(log: str) -> set[str]:
    """Rules of the jobs Snakemake ran as cluster jobs, from its log ("rule NAME:" lines;
    localrules print "localrule NAME:" and run in the Snakemake process)."""
    submitted = {
        line.split()[1].rstrip(":")
        for line in log.splitlines()
        if line.startswith("rule ") and line.rstrip().endswith(":")
    }
    # a rule with a `message:` prints "Job ID: MESSAGE" instead of its "rule NAME:" block
    messages = [line.split(": ", 1)[-1] for line in log.splitlines() if line.startswith("Job ")]
    submitted |= {
        rule for rule, text in MESSAGES.items() if any(m.startswith(text) for m in messages)
    }
    return submitted


def _threads_by_rule(log: str) -> dict[str, set[int]]:
    """Threads of each submitted job, by rule, from Snakemake's job blocks ("rule NAME:" then
    indented fields; a "threads:" field is printed only when it is not 1)."""
    found: dict[str, set[int]] = {}
    rule, threads = None, 1
    for line in [*log.splitlines(), ""]:
        if rule is not None and not line.startswith("    "):
            found.setdefault(rule, set()).add(threads)
            rule = None
        if line.startswith("rule ") and line.rstrip().endswith(":"):
            rule, threads = line.split()[1].rstrip(":"), 1
        elif rule is not None and line.strip().startswith("threads:"):
            threads = int(line.split(":")[1])
    return found


def _sacct(start: str) -> list[tuple[str, ...]]:
    out = subprocess.run(
        [
            "sacct",
            "-X",
            "--parsable2",
            "--noheader",
            "--starttime",
            start,
            "--format=JobID,Comment,State,AllocTRES%120,AllocCPUS,ReqCPUS,Submit,End",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def _rule_of(comment: str) -> str:
    """The rule of a job from the plugin's comment ("rule_NAME" or "rule_NAME_wildcards_…")."""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


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


def test_tiny_workflow_ran_as_slurm_jobs(slurm, tiny_run):
    record = tiny_run / SLURM_RUN
    assert record.is_file(), "the shared tiny run did not go through SLURM"
    info = json.loads(record.read_text())
    log = open(info["log"]).read()
    jobs = [job for job in _sacct(info["start"]) if job[1].startswith("rule_")]
    by_rule: dict[str, list[tuple[str, str]]] = {}
    cpus: dict[str, list[tuple[int, int]]] = {}
    gpu_times: list[tuple[str, str]] = []
    for _, comment, state, tres, alloc, req, submit, end in jobs:
        by_rule.setdefault(_rule_of(comment), []).append((state, tres))
        cpus.setdefault(_rule_of(comment), []).append((int(alloc), int(req)))
        if _rule_of(comment) in ("train", "evaluate"):
            gpu_times.append((submit, end))
    # every job Snakemake submitted is a SLURM job that completed (localrules run in the
    # Snakemake process and have no SLURM record)
    assert all(state == "COMPLETED" for runs in by_rule.values() for state, _ in runs), jobs
    # every job got exactly the CPUs of its threads (requested and allocated), GPU jobs too;
    # the CI profile gives train and evaluate 2 threads, the node's 2 cores
    threads = _threads_by_rule(log)
    assert threads["train"] == threads["evaluate"] == {CI_GPU_THREADS}, threads
    for rule, counts in cpus.items():
        # a rule with a `message:` (check_data) prints it instead of its job block: its threads
        # are the CI profile's one thread of every rule other than train and evaluate
        (expected,) = threads.get(rule, {1})
        assert counts == [(expected, expected)] * len(counts), (rule, counts, jobs)
        assert all(f"cpu={expected}," in tres for _, tres in by_rule[rule]), (rule, jobs)
    submitted = _rules_submitted(log)
    assert {"synthetic_data", "image_shard", "heatmaps", "train", "evaluate"} <= submitted
    assert submitted == set(by_rule), (sorted(submitted ^ set(by_rule)), jobs)
    # one GPU per training and evaluation job, from SLURM's own allocation records
    seeds = len(yaml.safe_load(open(TINY).read())["seeds"])
    # one evaluation job per experiment and seed (both splits)
    assert len(by_rule["train"]) == 3 * seeds and len(by_rule["evaluate"]) == 3 * seeds
    for rule, runs in by_rule.items():
        gpu_job = rule in ("train", "evaluate")
        assert all(("gres/gpu=1" in tres) == gpu_job for _, tres in runs), (rule, jobs)
    assert (tiny_run / "results-tiny" / "tables" / "summary.md").is_file()
    # no local GPU limit or slot under the SLURM executor: Snakemake submitted a GPU job while
    # another was still in SLURM (the node's one GPU made it wait there), and each job used
    # the CUDA_VISIBLE_DEVICES that SLURM set
    assert "gazeloc: at most" not in log
    assert any(s < e for s, _ in gpu_times for _, e in gpu_times), gpu_times
    logs = sorted((tiny_run / "results-tiny" / "logs").glob("train/*/*.log"))
    assert logs and all(
        "GPU from the scheduler: CUDA_VISIBLE_DEVICES=" in f.read_text() for f in logs
    ), logs

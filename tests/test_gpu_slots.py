"""GPUs on a workstation (gazeloc.gpus): the local GPU-job limit set by the Snakefile, and one
GPU slot per running train/evaluate job, tested with fake devices (GAZELOC_GPUS)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from tiny_workflow import TINY, copy_checkout, snakefile

from gazeloc import gpus

ROOT = Path(__file__).resolve().parents[1]


# --- devices found ---------------------------------------------------------------------------


def test_override_wins_over_cuda_visible_devices():
    env = {gpus.ENV_DEVICES: "a, b", "CUDA_VISIBLE_DEVICES": "0"}
    assert gpus.visible_gpus(env) == gpus.Devices(("a", "b"), gpus.ENV_DEVICES)
    assert gpus.visible_gpus({gpus.ENV_DEVICES: "none", "CUDA_VISIBLE_DEVICES": "0"}).ids == ()


@pytest.mark.parametrize(
    ("value", "ids"),
    [("0,1", ("0", "1")), ("", ()), ("-1", ()), ("2,-1,3", ("2",)), ("GPU-9f2a", ("GPU-9f2a",))],
)
def test_cuda_visible_devices(value, ids):
    assert gpus.visible_gpus({"CUDA_VISIBLE_DEVICES": value}).ids == ids


def test_nvidia_smi_or_none(monkeypatch):
    monkeypatch.setattr(gpus, "_nvidia_smi", lambda: ("0", "1", "2"))
    assert gpus.visible_gpus({}) == gpus.Devices(("0", "1", "2"), "nvidia-smi")
    monkeypatch.setattr(gpus, "_nvidia_smi", lambda: None)
    assert gpus.visible_gpus({}).ids == ()


# --- the limit -------------------------------------------------------------------------------


def test_limit_is_one_per_gpu_or_one_without_gpu_unless_given():
    env = {gpus.ENV_DEVICES: "a,b"}
    limit, message = gpus.configure_local(None, env)
    assert limit == 2 and "at most 2 GPU job(s)" in message
    assert env[gpus.ENV_SLOTS] == "2" and env[gpus.ENV_SLOT_DEVICES] == "a,b"
    env = {gpus.ENV_DEVICES: "none"}
    assert gpus.configure_local(None, env)[0] == 1 and env[gpus.ENV_SLOT_DEVICES] == ""
    env = {gpus.ENV_DEVICES: "a,b"}
    assert gpus.configure_local(5, env)[0] == 5 and env[gpus.ENV_SLOTS] == "5"


def test_device_order_follows_nvidia_smi(monkeypatch):
    monkeypatch.setattr(gpus, "_nvidia_smi", lambda: ("0", "1"))
    env: dict[str, str] = {}
    gpus.configure_local(None, env)
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


# --- slots, across processes -----------------------------------------------------------------

HOLD = """
import logging, sys, time
from gazeloc import gpus
logging.basicConfig(level=logging.INFO)
with gpus.job_slot(poll_s=0.05) as device:
    print(device, flush=True)
    import os
    print(os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
    time.sleep(float(sys.argv[1]))
"""


def _holder(env: dict[str, str], seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(seconds)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_jobs_get_different_devices_and_a_killed_job_frees_its_slot(tmp_path):
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        gpus.ENV_SLOTS: "2",
        gpus.ENV_SLOT_DEVICES: f"a{tag},b{tag}",
        gpus.ENV_LOCK_DIR: str(tmp_path / "locks"),
    }
    first = _holder(env, 60)
    dev_first = first.stdout.readline().strip()
    assert first.stdout.readline().strip() == dev_first  # CUDA_VISIBLE_DEVICES is the slot's
    second = _holder(env, 60)
    dev_second = second.stdout.readline().strip()
    assert {dev_first, dev_second} == {f"a{tag}", f"b{tag}"}
    third = _holder(env, 0)  # both slots taken: it waits
    time.sleep(1.0)
    assert third.poll() is None
    first.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
    first.wait(10)
    out, err = third.communicate(timeout=30)
    assert out.split()[0] == dev_first, err
    assert "waiting for a free GPU slot" in err and "released: device" in err
    second.kill()
    second.wait(10)


def test_more_slots_than_devices_share_them(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        gpus.ENV_SLOTS: "3",
        gpus.ENV_SLOT_DEVICES: "x",
        gpus.ENV_LOCK_DIR: str(tmp_path),
    }
    holders = [_holder(env, 30) for _ in range(3)]
    assert [h.stdout.readline().strip() for h in holders] == ["x"] * 3
    for h in holders:
        h.kill()
        h.wait(10)


def test_without_slots_the_environment_is_left_as_it_is():
    env = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "3"}
    with gpus.job_slot(env) as device:
        assert device is None and env["CUDA_VISIBLE_DEVICES"] == "3"
    env = {gpus.ENV_SLOTS: "1", gpus.ENV_SLOT_DEVICES: ""}
    with gpus.job_slot(env) as device:
        assert device is None and "CUDA_VISIBLE_DEVICES" not in env


# --- the workflow ----------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, **extra}


@pytest.mark.parametrize(("devices", "limit"), [("f0,f1,f2", 3), ("none", 1)])
def test_plain_dry_run_from_a_clone_applies_the_limit(tmp_path, devices, limit):
    copy_checkout(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(GAZELOC_GPUS=devices),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "Using workflow specific profile profiles/default" in text
    assert f"gazeloc: at most {limit} GPU job(s) (train, evaluate) at once (one per GPU)" in text


STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO gazeloc\.gpus: "


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")


def _jobs(logs: Path) -> dict[Path, dict]:
    """Each GPU job's log: start, slot taken (device, pid), end (released), from its lines."""
    jobs = {}
    for log in sorted([*logs.glob("train/*/*.log"), *logs.glob("evaluate/*/*.log")]):
        text = log.read_text(errors="replace")
        start = re.search(STAMP + r"GPU job started \(pid (\d+)\)", text)
        taken = re.search(STAMP + r"GPU slot \d+/\d+ taken: device (\S+) .*pid (\d+)\)", text)
        end = re.search(STAMP + r"GPU slot \d+/\d+ released", text)
        if start is None:
            continue
        jobs[log] = {
            "start": _stamp(start.group(1)),
            "device": taken.group(2) if taken else None,
            "taken": _stamp(taken.group(1)) if taken else None,
            "pid": int(start.group(2)),
            "end": _stamp(end.group(1)) if end else None,
        }
    return jobs


@pytest.mark.slow
def test_two_fake_gpus_two_jobs_at_once_each_on_its_own(tiny_run, tmp_path):
    """The tiny run's finished work folder, copied; models and metrics removed, so that its 3
    trainings are ready at once and then the evaluations: only these GPU jobs rerun, with
    --cores 4 (room for 4 one-thread jobs) and two fake GPUs. The first training that takes a
    slot is killed with SIGKILL."""
    work = tmp_path / "work"
    shutil.copytree(tiny_run, work, symlinks=True)
    results = work / "results-tiny"
    for name in ("models", "metrics", "logs/train", "logs/evaluate"):
        shutil.rmtree(results / name, ignore_errors=True)
    tag = uuid.uuid4().hex[:6]
    devices = (f"fake{tag}a", f"fake{tag}b")
    cmd = [
        *(sys.executable, "-m", "snakemake", "-s", str(snakefile(work)), "-d", str(work)),
        *("--cores", "4", "--configfile", TINY, "--keep-going"),
        *("--set-threads", "train=1", "evaluate=1"),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(GAZELOC_GPUS=",".join(devices)),
    )
    killed: dict = {}

    def kill_first_training() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            for log, job in _jobs(results / "logs").items():
                if "train" in log.parts and job["device"] is not None:
                    time.sleep(1.0)  # mid-run
                    os.kill(job["pid"], signal.SIGKILL)
                    killed.update(job, log=log, at=datetime.now())
                    return
            time.sleep(0.2)

    watcher = threading.Thread(target=kill_first_training)
    watcher.start()
    try:
        out, _ = proc.communicate(timeout=1200)
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.join(30)
    assert killed, out[-4000:]
    assert "gazeloc: at most 2 GPU job(s) (train, evaluate) at once (one per GPU)" in out
    assert proc.returncode != 0  # the killed training failed; --keep-going ran the rest
    jobs = _jobs(results / "logs")
    assert jobs[killed["log"]]["end"] is None
    jobs[killed["log"]]["end"] = killed["at"]
    trained = sorted(results.glob("models/*/seed*/model.pt"))
    assert len(trained) == 2, out[-4000:]
    assert all(job["device"] in devices and job["end"] for job in jobs.values()), jobs
    assert len(jobs) >= 4, jobs  # 3 trainings and at least one evaluation
    # at most two GPU jobs on the devices at once (slot taken to slot released), and two did
    # overlap. (Snakemake's own count is not checked after the kill: with --keep-going it
    # started more `gpu` jobs than its limit once the killed job had failed; those jobs
    # waited for a slot, which is what keeps two jobs off one GPU.)
    events = sorted(
        [(j["taken"], 1) for j in jobs.values()] + [(j["end"], -1) for j in jobs.values()]
    )
    running, most = 0, 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most == 2, jobs
    items = list(jobs.values())
    overlapping = [
        (a, b)
        for i, a in enumerate(items)
        for b in items[i + 1 :]
        if a["taken"] < b["end"] and b["taken"] < a["end"]
    ]
    assert overlapping, jobs
    assert all(a["device"] != b["device"] for a, b in overlapping), overlapping
    # the killed job's slot was taken again by a later job
    later = [j for j in items if j["taken"] and j["taken"] > killed["at"]]
    assert any(j["device"] == killed["device"] for j in later), (killed, later)

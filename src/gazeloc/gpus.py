"""GPUs on a workstation: how many GPU jobs run at once, and which GPU each one uses.

Snakemake limits jobs only by the resources it is told about, and it never assigns GPU ids.
The workflow therefore does both itself when it runs jobs on the local machine:

* **The limit.** The Snakefile calls :func:`configure_local` in the main Snakemake process.
  Unless ``--resources gpu=K`` was given, the ``gpu`` resource (one unit per ``train`` or
  ``evaluate`` job) is limited to the number of GPUs found (:func:`visible_gpus`), or to 1 on
  a machine without a GPU. The chosen limit and the devices are passed to the jobs in the
  environment (:data:`ENV_SLOTS`, :data:`ENV_SLOT_DEVICES`).
* **The assignment.** Each GPU job calls :func:`job_slot` before it touches CUDA. It takes the
  first free slot (an exclusive POSIX lock on a small file, one per slot, in a per-user folder
  of the temporary directory), sets ``CUDA_VISIBLE_DEVICES`` to that slot's device and logs it.
  The kernel drops the lock when the process ends for any reason (normal exit, crash,
  ``SIGKILL``), so a slot is never lost. Slot ``i`` of ``K`` uses device ``i mod G`` of the
  ``G`` devices: with ``K <= G`` concurrent jobs never share a GPU; a larger ``K`` given with
  ``--resources`` puts several jobs on one GPU, as asked.

Under a cluster executor (SLURM) nothing here applies: the scheduler grants the GPU and its
``CUDA_VISIBLE_DEVICES`` is used as it is.

Devices are found, in this order, from :data:`ENV_DEVICES` (a documented override: a
comma-separated list of device ids, ``none`` for no GPU; fake ids make a CPU-only machine
behave as one with that many GPUs, for tests), ``CUDA_VISIBLE_DEVICES`` when set, and
``nvidia-smi`` (without importing torch, which would cost seconds on every Snakemake call).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV_DEVICES = "GAZELOC_GPUS"
"""User override: the GPU ids this machine offers (comma-separated), or ``none``."""
ENV_SLOTS = "GAZELOC_GPU_SLOTS"
"""Set by the workflow for its local jobs: how many GPU jobs may run at once."""
ENV_SLOT_DEVICES = "GAZELOC_GPU_SLOT_DEVICES"
"""Set by the workflow for its local jobs: the devices the slots map onto (comma-separated)."""
ENV_LOCK_DIR = "GAZELOC_GPU_LOCK_DIR"
"""Where the slot lock files live (default: a per-user folder in the temporary directory)."""


@dataclass(frozen=True)
class Devices:
    ids: tuple[str, ...]
    source: str


def _split(value: str) -> tuple[str, ...]:
    ids = []
    for part in value.split(","):
        part = part.strip()
        if not part or part.startswith("-"):  # CUDA stops at the first invalid entry
            break
        ids.append(part)
    return tuple(ids)


def _nvidia_smi() -> tuple[str, ...] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if out.returncode != 0:
        return ()
    return tuple(line.strip() for line in out.stdout.splitlines() if line.strip().isdigit())


def visible_gpus(environ: Mapping[str, str] = os.environ) -> Devices:
    """The GPUs jobs on this machine may use, and where that answer came from."""
    if ENV_DEVICES in environ:
        value = environ[ENV_DEVICES].strip()
        ids = () if value.lower() in ("", "none") else _split(value)
        return Devices(ids, ENV_DEVICES)
    if "CUDA_VISIBLE_DEVICES" in environ:
        return Devices(_split(environ["CUDA_VISIBLE_DEVICES"]), "CUDA_VISIBLE_DEVICES")
    smi = _nvidia_smi()
    if smi is None:
        return Devices((), "no nvidia-smi")
    return Devices(smi, "nvidia-smi")


def configure_local(
    given: int | None, environ: MutableMapping[str, str] = os.environ
) -> tuple[int, str]:
    """For local execution: the number of GPU jobs at once (``given``, from
    ``--resources gpu=K``, or the number of GPUs found, at least 1), exported to the jobs in
    ``environ``; returns it with a one-line message for the Snakemake log."""
    devices = visible_gpus(environ)
    limit = given if given is not None else max(1, len(devices.ids))
    environ[ENV_SLOTS] = str(limit)
    environ[ENV_SLOT_DEVICES] = ",".join(devices.ids)
    if devices.source == "nvidia-smi":
        environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # ids as nvidia-smi numbers them
    how = "--resources gpu" if given is not None else "one per GPU"
    if devices.ids:
        found = f"{len(devices.ids)} GPU(s) [{','.join(devices.ids)}] from {devices.source}"
    else:
        found = f"no GPU found ({devices.source}): train/evaluate run on the CPU"
    message = (
        f"gazeloc: at most {limit} GPU job(s) (train, evaluate) at once ({how}); {found}."
        f" Override the count with --resources gpu=K, the devices with {ENV_DEVICES}=ids|none."
    )
    return limit, message


def _lock_dir(environ: Mapping[str, str]) -> Path:
    if environ.get(ENV_LOCK_DIR):
        return Path(environ[ENV_LOCK_DIR])
    return Path(tempfile.gettempdir()) / f"gazeloc-gpu-slots-{os.getuid()}"


def _slot_file(folder: Path, slot: int, devices: tuple[str, ...]) -> Path:
    device = devices[slot % len(devices)]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", device)
    return folder / f"gpu-{safe}.{slot // len(devices)}.lock"


@contextmanager
def job_slot(
    environ: MutableMapping[str, str] = os.environ, poll_s: float = 0.5
) -> Iterator[str | None]:
    """Hold a GPU slot for the life of this job; yields the device id (or None).

    Only for jobs the workflow runs locally (``ENV_SLOTS`` set by :func:`configure_local`).
    Sets ``CUDA_VISIBLE_DEVICES`` to the slot's device, so ``cuda`` means that GPU.
    """
    pid = os.getpid()
    log.info("GPU job started (pid %d)", pid)
    devices = _split(environ.get(ENV_SLOT_DEVICES, ""))
    if ENV_SLOTS not in environ or not devices:
        if ENV_SLOTS in environ:
            log.info("no GPU on this machine: running on the CPU")
        elif environ.get("SLURM_JOB_ID"):
            log.info(
                "GPU from the scheduler: CUDA_VISIBLE_DEVICES=%s (SLURM job %s)",
                environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
                environ["SLURM_JOB_ID"],
            )
        else:
            log.info("no GPU slot: not started by the workflow's local executor")
        try:
            yield None
        finally:
            log.info("GPU job ended (pid %d)", pid)
        return
    slots = max(1, int(environ[ENV_SLOTS]))
    folder = _lock_dir(environ)
    folder.mkdir(parents=True, exist_ok=True)
    fd, slot, waited = None, -1, False
    while fd is None:
        for i in range(slots):
            candidate = os.open(_slot_file(folder, i, devices), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(candidate, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(candidate)
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                continue
            fd, slot = candidate, i
            break
        if fd is None:
            if not waited:
                log.info("waiting for a free GPU slot (all %d taken)", slots)
                waited = True
            time.sleep(poll_s)
    device = devices[slot % len(devices)]
    previous = environ.get("CUDA_VISIBLE_DEVICES")
    environ["CUDA_VISIBLE_DEVICES"] = device
    log.info(
        "GPU slot %d/%d taken: device %s (CUDA_VISIBLE_DEVICES=%s, pid %d)",
        slot + 1,
        slots,
        device,
        device,
        pid,
    )
    try:
        yield device
    finally:
        os.close(fd)  # releases the lock (the kernel also does on any exit)
        if previous is None:
            environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            environ["CUDA_VISIBLE_DEVICES"] = previous
        log.info("GPU slot %d/%d released: device %s (pid %d)", slot + 1, slots, device, pid)

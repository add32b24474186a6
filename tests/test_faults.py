"""Faults while writing: a full disk, interrupted and killed writers (gazeloc.ioutil)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gazeloc import ioutil
from gazeloc.ioutil import DiskFullError, atomic_path, atomic_write_text


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_failure_removes_the_temporary_and_keeps_the_target(tmp_path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    for exc in (ValueError("bad"), KeyboardInterrupt(), SystemExit(143)):
        with pytest.raises(type(exc)), atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise exc
        assert _leftovers(tmp_path) == []
        assert target.read_text() == "old"


def test_stale_temporaries_of_a_target_are_removed_when_it_is_next_written(
    tmp_path, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    target = tmp_path / "last.pt"
    (tmp_path / ".last.pt.k1ll3d.tmp").write_bytes(b"x" * 1000)  # a killed write
    (tmp_path / ".last.pt.dir0.tmp").mkdir()  # a killed folder write
    (tmp_path / ".other.pt.abc.tmp").write_bytes(b"y")  # another target's: kept
    (tmp_path / ".last.pt.notes").write_bytes(b"z")  # not a temporary: kept
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert _leftovers(tmp_path) == [".other.pt.abc.tmp"]
    assert (tmp_path / ".last.pt.notes").exists()
    messages = [r.getMessage() for r in caplog.records]
    assert any(".last.pt.k1ll3d.tmp (1000 bytes), left by an earlier" in m for m in messages)


def test_enospc_is_reported_with_the_path(tmp_path) -> None:
    target = tmp_path / "sub" / "heat.h5"
    with pytest.raises(DiskFullError) as info, atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    message = str(info.value)
    assert message.startswith(f"no space left on device while writing {target}")
    assert "MiB free" in message
    assert info.value.errno == errno.ENOSPC
    assert _leftovers(target.parent) == [] and not target.exists()


def test_a_writer_error_on_a_full_disk_is_a_disk_full_error(tmp_path, monkeypatch) -> None:
    """PyTorch reports a full disk as RuntimeError('[enforce fail at inline_container...]')."""
    torch_error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64")
    monkeypatch.setattr(ioutil, "free_bytes", lambda folder: 4096)
    with pytest.raises(DiskFullError) as info, atomic_path(tmp_path / "m.pt"):
        raise torch_error
    assert "inline_container" in str(info.value) and info.value.__cause__ is torch_error
    # With space left, the same error is what it says; bad data is never a full disk.
    monkeypatch.setattr(ioutil, "free_bytes", lambda folder: 10 << 30)
    with pytest.raises(RuntimeError) as other, atomic_path(tmp_path / "m.pt"):
        raise torch_error
    assert not isinstance(other.value, DiskFullError)
    monkeypatch.setattr(ioutil, "free_bytes", lambda folder: 0)
    with pytest.raises(ValueError), atomic_path(tmp_path / "m.pt"):
        raise ValueError("bad value")
    assert _leftovers(tmp_path) == []


def test_checkpoint_write_on_a_full_disk(tmp_path, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    from gazeloc.train import loop

    def full_disk_save(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"\0" * 4096)  # part of the archive, then the failure
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096")

    monkeypatch.setattr(torch, "save", full_disk_save)
    monkeypatch.setattr(ioutil, "free_bytes", lambda folder: 0)
    target = tmp_path / "resume" / "last.pt"
    with pytest.raises(DiskFullError, match="no space left on device while writing"):
        loop._save({"step": 1}, target)
    assert _leftovers(target.parent) == [] and not target.exists()


def test_sigterm_removes_the_temporary(tmp_path) -> None:
    """Snakemake and SLURM stop jobs with SIGTERM; the CLI turns it into SystemExit."""
    target = tmp_path / "big.bin"
    script = (
        "import signal, sys, time\n"
        "from gazeloc.cli import _terminate\n"
        "from gazeloc.ioutil import atomic_path\n"
        "signal.signal(signal.SIGTERM, _terminate)\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    tmp.write_bytes(b'x' * 100000)\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "writing"
    assert len(_leftovers(tmp_path)) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert _leftovers(tmp_path) == [] and not target.exists()


def test_hdf5_writers_stop_before_the_disk_fills(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(ioutil, "free_bytes", lambda folder: 10 << 20)
    with pytest.raises(DiskFullError) as info:
        ioutil.ensure_space(tmp_path / "phase3.h5", 1 << 20)
    assert "10.0 MiB free, 65.0 MiB kept free" in str(info.value)
    monkeypatch.setattr(ioutil, "free_bytes", lambda folder: 1 << 30)
    ioutil.ensure_space(tmp_path / "phase3.h5", 1 << 20)


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
    )
    return done.returncode == 0


def test_checkpoint_write_on_a_real_full_tmpfs(tmp_path) -> None:
    """Where a tmpfs can be mounted (root): a real ENOSPC from torch.save."""
    torch = pytest.importorskip("torch")
    from gazeloc.train import loop

    small = tmp_path / "small"
    if not _mount_tmpfs(small, "512k"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(DiskFullError, match="no space left on device while writing"):
            loop._save({"w": torch.zeros(1 << 20)}, small / "resume" / "last.pt")
        assert _leftovers(small / "resume") == []
    finally:
        time.sleep(0.1)
        subprocess.run(["umount", str(small)], check=False)

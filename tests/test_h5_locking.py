"""HDF5 files open where the filesystem refuses file locks: every open goes through
gazeloc.h5.open_h5, which turns HDF5's file locking off. A file whose lock is held
exclusively by another file descriptor stands in for a filesystem that refuses locks."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest

from gazeloc.h5 import open_h5

SRC = Path(__file__).resolve().parents[1] / "src" / "gazeloc"


@contextmanager
def exclusive_flock(path: Path):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


@pytest.fixture
def h5file(tmp_path) -> Path:
    path = tmp_path / "maps.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(6, dtype=np.uint8)
    return path


def test_default_open_fails_and_ours_reads_under_a_held_lock(h5file, monkeypatch):
    monkeypatch.delenv("HDF5_USE_FILE_LOCKING", raising=False)
    with exclusive_flock(h5file):
        with pytest.raises(OSError, match="lock"):
            h5py.File(h5file, "r")
        with open_h5(h5file, "r") as f:
            assert f["x"][()].tolist() == [0, 1, 2, 3, 4, 5]


def test_ours_writes_under_a_held_lock(h5file, tmp_path, monkeypatch):
    monkeypatch.delenv("HDF5_USE_FILE_LOCKING", raising=False)
    with exclusive_flock(h5file):
        with pytest.raises(OSError, match="lock"):
            h5py.File(h5file, "a")
        with open_h5(h5file, "a") as f:
            f["y"] = np.ones(3)
    with h5py.File(h5file, "r") as f:
        assert sorted(f) == ["x", "y"] and f["y"][()].tolist() == [1.0, 1.0, 1.0]


def test_every_open_in_the_package_goes_through_open_h5():
    """No direct h5py.File(...) call in the package outside gazeloc/h5.py."""
    direct = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        if path.name != "h5.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "h5py.File(" in line
    ]
    assert direct == []

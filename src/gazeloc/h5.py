"""Opening the workflow's HDF5 files (image shards, heatmaps, ellipses) on any filesystem.

HDF5 normally takes a file lock (``flock``) on every open. Network and parallel filesystems
used by clusters (NFS, Lustre, some GPFS setups) often refuse these locks, and the open then
fails with "unable to lock file". The workflow never has two writers on one file (each output
is written once under a temporary name and renamed), so every read and write here opens
without HDF5's file locking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_h5(path: str | Path, mode: str = "r", **kwargs: Any) -> Any:
    """``h5py.File(path, mode, **kwargs)`` without HDF5 file locking (``locking=False``)."""
    import h5py

    return h5py.File(path, mode, locking=False, **kwargs)

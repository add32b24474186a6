"""Atomic writes: write to a temporary name beside the target, then rename.

The temporary is ``.<target name>.<random>.tmp`` in the target's folder. It is removed on
every failure path (an exception, ``KeyboardInterrupt``, ``SystemExit`` from SIGTERM); a
process killed outright (SIGKILL, a node lost) cannot clean up, so the next write of the same
target removes the temporaries earlier writes of it left behind (Snakemake runs one job per
output at a time, so none of them is still being written). A full disk is reported as
:class:`DiskFullError`, "no space left on device", with the target's path.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

LOW_SPACE_BYTES = 1 << 20
"""Below this much free space after a failed write, the failure is taken for a full disk
(writers such as PyTorch's or HDF5's do not always pass the system's ENOSPC on)."""


class DiskFullError(OSError):
    """A write failed because its file system is full (or the user's quota is used up)."""

    def __init__(self, target: str | Path, detail: str = "") -> None:
        self.target = Path(target)
        free = free_bytes(self.target.parent)
        text = f"no space left on device while writing {self.target}"
        if free is not None:
            text += f" ({free / 2**20:.1f} MiB free)"
        text += "; free some space (the partial file was removed) and rerun"
        if detail:
            text += f" [{detail}]"
        super().__init__(errno.ENOSPC, text)

    def __str__(self) -> str:
        return self.strerror


def free_bytes(folder: str | Path) -> int | None:
    """Bytes free to this user on ``folder``'s file system (None if unknown)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def is_disk_full(exc: BaseException, folder: str | Path) -> bool:
    """Whether ``exc`` (raised while writing into ``folder``) comes from a full disk."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(current) or "Disk quota exceeded" in str(current):
            return True
        current = current.__cause__ or current.__context__
    if not isinstance(exc, (OSError, RuntimeError)):
        return False  # bad data, an interrupt: whatever the free space
    free = free_bytes(folder)
    return free is not None and free < LOW_SPACE_BYTES


def stale_temporaries(target: str | Path) -> list[Path]:
    """Temporaries that earlier writes of ``target`` left beside it."""
    target = Path(target)
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return []
    prefix = f".{target.name}."
    return sorted(target.parent / n for n in names if n.startswith(prefix) and n.endswith(".tmp"))


def remove_stale_temporaries(target: str | Path) -> int:
    """Remove what :func:`stale_temporaries` finds; return how many (each is logged)."""
    removed = 0
    for path in stale_temporaries(target):
        try:
            size = path.stat().st_size
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        log.warning("removed %s (%d bytes), left by an earlier, interrupted write", path, size)
        removed += 1
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any failure the temporary file or folder is removed and ``target`` is untouched; a
    full disk raises :class:`DiskFullError`. Temporaries of ``target`` left by killed
    processes are removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        if is_disk_full(exc, target.parent):
            raise DiskFullError(target, str(exc)) from exc
        raise
    os.close(fd)
    os.unlink(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp_path, target)
    except BaseException as exc:
        _remove(tmp_path)
        if not isinstance(exc, DiskFullError) and is_disk_full(exc, target.parent):
            raise DiskFullError(target, f"{type(exc).__name__}: {exc}"[:300]) from exc
        raise
    finally:
        if tmp_path.exists() and not target.exists():
            _remove(tmp_path)


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


SPACE_RESERVE_BYTES = 64 << 20
"""What HDF5 writers keep free: HDF5 does not report a full disk from the writes it makes
while closing a file (it can crash instead), so the writers stop before the disk fills."""


def ensure_space(target: str | Path, need: int = 0) -> None:
    """Raise :class:`DiskFullError` unless ``need`` bytes plus :data:`SPACE_RESERVE_BYTES`
    are free beside ``target`` (a statvfs call: cheap enough to run per record)."""
    target = Path(target)
    free = free_bytes(target.parent)
    if free is not None and free < need + SPACE_RESERVE_BYTES:
        raise DiskFullError(
            target,
            f"{free / 2**20:.1f} MiB free, {(need + SPACE_RESERVE_BYTES) / 2**20:.1f} MiB "
            "kept free for the next record and the file's closing writes",
        )

"""Count the calls that make the CPU wait for the device, without a GPU.

:class:`SyncCounter` patches, while it is active, the Python-level operations that synchronise
the host with a CUDA device or copy to it blocking: read-backs (``Tensor.item``, ``tolist``,
``cpu``, ``numpy``, ``bool``/``float``/``int`` of a tensor), data-dependent shapes
(``nonzero``), ``Tensor.to`` with a device and without ``non_blocking=True``, tensors made from
host data with a ``device`` (``torch.tensor``, ``torch.as_tensor``), and
``torch.cuda.synchronize``. On the CPU these calls cost nothing, so counting them is how the
tests and ``bench/gpu_check.py`` check that a training step never waits for a GPU; on a GPU,
``torch.cuda.set_sync_debug_mode`` sees the synchronisations of the kernels as well.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

_HOST = threading.local()


@contextmanager
def host_only() -> Iterator[None]:
    """Marks code that reads host tensors only (e.g. the loader's CPU copy of a batch): a
    :class:`SyncCounter` does not count what it does. On the CPU the counter cannot tell host
    from device tensors; on a GPU, CUDA's sync debug mode would catch a wrong mark."""
    before = getattr(_HOST, "active", False)
    _HOST.active = True
    try:
        yield
    finally:
        _HOST.active = before


def _counting() -> bool:
    return not getattr(_HOST, "active", False)


READBACKS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "nonzero")
FACTORIES = ("tensor", "as_tensor", "nonzero")


class SyncCounter:
    """A context manager; ``calls`` lists what it saw, in order. ``ignore()`` returns tensors
    whose read-backs are free by design (e.g. the optimizer's CPU step counters)."""

    def __init__(self, ignore: Callable[[], Iterable[torch.Tensor]] = tuple) -> None:
        self.calls: list[str] = []
        self.ignore = ignore
        self._saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> SyncCounter:
        for name in READBACKS:
            self._patch(torch.Tensor, name, self._readback(name, getattr(torch.Tensor, name)))
        self._patch(torch.Tensor, "to", self._to(torch.Tensor.to))
        for name in FACTORIES:
            self._patch(torch, name, self._factory(name, getattr(torch, name)))
        self._patch(torch.cuda, "synchronize", self._sync(torch.cuda.synchronize))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    def _readback(self, name: str, original: Callable) -> Callable:
        def wrapper(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if _counting() and not any(tensor is t for t in self.ignore()):
                self.calls.append(f"Tensor.{name}")
            return original(tensor, *args, **kwargs)

        return wrapper

    def _to(self, original: Callable) -> Callable:
        def wrapper(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            to_device = "device" in kwargs or any(isinstance(a, torch.device | str) for a in args)
            if to_device and not kwargs.get("non_blocking", False) and _counting():
                self.calls.append("Tensor.to (blocking)")
            return original(tensor, *args, **kwargs)

        return wrapper

    def _factory(self, name: str, original: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _counting() and (name == "nonzero" or kwargs.get("device") is not None):
                self.calls.append(f"torch.{name}")
            return original(*args, **kwargs)

        return wrapper

    def _sync(self, original: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls.append("torch.cuda.synchronize")
            return original(*args, **kwargs)

        return wrapper


def optimizer_step_counters(optimizer: torch.optim.Optimizer) -> Callable[[], list[torch.Tensor]]:
    """``ignore`` for :class:`SyncCounter`: Adam's per-parameter step counts, CPU scalars that
    it reads each step (free: they never live on the device)."""

    def tensors() -> list[torch.Tensor]:
        return [s["step"] for s in optimizer.state.values() if torch.is_tensor(s.get("step"))]

    return tensors

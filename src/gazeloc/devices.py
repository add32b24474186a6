"""The device of a job (training, evaluation, the report's figures, prediction) and the numeric
precision training runs at.

``training.precision`` (a method setting):

* ``fp32``: float32 everywhere. On a CUDA GPU, matrix products and convolutions may use TF32
  tensor cores (float32 range, a 10-bit mantissa inside the product; PyTorch's default for
  cuDNN convolutions, enabled here for matrix products too).
* ``bf16``: bfloat16 autocast for the forward pass of training steps, on a CUDA GPU of compute
  capability 8.0 or newer (A100, H100, RTX 30xx and later). Losses, validation and evaluation
  stay in float32. On an older GPU, or on the CPU, it falls back to ``fp32`` with a logged
  warning (older GPUs either refuse bfloat16 or emulate it slowly).
* ``auto``: ``bf16`` where the GPU supports it, else ``fp32`` (the CPU always trains in fp32).

:func:`resolve_precision` returns the *effective* precision; the training loop records it, with
the device type, in its checkpoints and in ``model.pt``. This module imports torch lazily so
that :mod:`gazeloc.experiments` (imported by the Snakefile) stays free of it.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "auto")
EFFECTIVE = ("fp32", "bf16")
BF16_CAPABILITY = (8, 0)
"""The first CUDA compute capability with native bfloat16 (Ampere)."""


def pick_device(name: str, what: str = "training.device") -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from gazeloc.config import ConfigError

        raise ConfigError(
            f"{what} is cuda but PyTorch sees no CUDA device here (torch.cuda.is_available() "
            "is False); set it to auto or cpu, or run on a GPU node"
        )
    return torch.device(name)


def compute_capability(device: torch.device) -> tuple[int, int] | None:
    """``(major, minor)`` of a CUDA device; None for any other device."""
    import torch

    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def resolve_precision(requested: str, device: torch.device) -> str:
    """The effective precision (``fp32`` or ``bf16``) of ``requested`` on ``device`` (module
    doc); logs a warning when ``bf16`` was asked for and cannot be used."""
    if requested not in PRECISIONS:
        raise ValueError(f"training.precision must be one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return "fp32"
    capability = compute_capability(device)
    if capability is None:
        if requested == "bf16":
            log.warning("training.precision is bf16 but the device is %s: training in fp32", device)
        return "fp32"
    if capability >= BF16_CAPABILITY:
        return "bf16"
    if requested == "bf16":
        log.warning(
            "training.precision is bf16 but %s has compute capability %d.%d (bf16 needs %d.%d "
            "or newer): training in fp32",
            device,
            *capability,
            *BF16_CAPABILITY,
        )
    else:
        log.info(
            "compute capability %d.%d has no bf16: training in fp32 (training.precision auto)",
            *capability,
        )
    return "fp32"


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The forward pass's autocast context for an effective precision."""
    import torch

    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"effective precision must be fp32 or bf16, not {precision!r}")
    return nullcontext()


def configure_backends(device: torch.device) -> None:
    """Process-wide settings of a CUDA job: cuDNN autotuning (one input shape per run) and
    TF32 for matrix products and convolutions. Nothing on the CPU."""
    import torch

    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

"""The facts that decide a run's floating-point results on the same software.

Two trainings with the same code, data, settings and seed give bit-identical weights only when
the arithmetic is the same, which on CPU depends on (measured, see ``docs/data.md``):

* the torch build (``torch_version``; MKL and oneDNN come with it);
* the SIMD kernel path: ATen's vectorised kernels are picked by ``cpu_capability`` (``AVX512``,
  ``AVX2``, ``DEFAULT``; ``ATEN_CPU_CAPABILITY`` can lower it) and oneDNN's convolutions by
  its own ISA dispatch (``ONEDNN_MAX_CPU_ISA`` can lower it); an AVX-512 machine and an
  AVX2-only machine round differently;
* the number of intra-op threads (``threads``): reductions are split among threads, so 1 and 2
  threads sum in different orders;
* on GPUs: the device model, CUDA/cuDNN versions and ``precision``.

:func:`numeric_facts` returns them for ``model.pt`` and its model card, so that two runs can be
compared before their numbers are.
"""

from __future__ import annotations

import os
import platform
from typing import Any

ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR")
"""Environment variables that change the CPU kernel path; recorded when set."""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def numeric_facts(device_type: str = "cpu") -> dict[str, Any]:
    """Torch version, CPU model, kernel path (ATen capability, oneDNN on or off and any ISA
    variable set), intra-op thread count and, on CUDA, the device and CUDA/cuDNN versions."""
    import torch

    facts: dict[str, Any] = {
        "torch_version": str(torch.__version__),
        "cpu_model": cpu_model(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "threads": int(torch.get_num_threads()),
    }
    facts.update({name: os.environ[name] for name in ISA_VARIABLES if os.environ.get(name)})
    if device_type == "cuda" and torch.cuda.is_available():
        facts["cuda_device"] = str(torch.cuda.get_device_name())
        facts["cuda_version"] = str(torch.version.cuda)
        facts["cudnn_version"] = str(torch.backends.cudnn.version())
    return facts

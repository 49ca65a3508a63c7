"""What a job ran on, for its run record (`run.json["device"]`) and the benchmark's environment.

A run's figures depend on more than its config: ms per step and peak memory on the device and the thread count, and
on a GPU even the float32 results on the CUDA and cuDNN builds and their switches (cuDNN's RNN kernels use TF32 on
Ampere and later GPUs while `torch.backends.cudnn.allow_tf32` is on, torch's default, whereas the custom path's
matmuls follow `torch.get_float32_matmul_precision()`, "highest" by default: full float32). `device_record` gathers
them in one flat mapping, read when the Trainer has chosen its device and applied its cuDNN flags (`benchmark`,
`deterministic`).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what `platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_record(device: torch.device, precision: str | None) -> dict[str, Any]:
    """The `device` block of a run record: the accelerator and its name, CUDA and cuDNN versions and settings (null
    off CUDA), the Trainer's effective precision and torch's intra-op threads."""
    cuda = device.type == "cuda"
    return {
        "accelerator": device.type,
        "name": torch.cuda.get_device_name(device) if cuda else cpu_name(),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(device))) if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": {
            "version": torch.backends.cudnn.version() if cuda else None,
            "enabled": torch.backends.cudnn.enabled,
            "benchmark": torch.backends.cudnn.benchmark,
            "deterministic": torch.backends.cudnn.deterministic,
            "allow_tf32": torch.backends.cudnn.allow_tf32,
        },
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "precision": precision,
        "threads": torch.get_num_threads(),
    }

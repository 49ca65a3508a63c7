"""run.json's `device` block (tracking/device.py): what a job ran on, on CPU as measured here and on CUDA with
torch's CUDA queries stood in for (no GPU here; tests/test_gpu.py checks a real one)."""

from __future__ import annotations

import json

import pytest
import torch

from rnnbench.tracking.device import device_record

KEYS = {"accelerator", "name", "capability", "cuda", "cudnn", "float32_matmul_precision", "precision", "threads"}


def test_cpu_block() -> None:
    torch.set_num_threads(1)  # the conftest's one_thread fixture restores torch's default afterwards
    block = device_record(torch.device("cpu"), "bf16-mixed")
    assert set(block) == KEYS and json.loads(json.dumps(block)) == block
    assert (block["accelerator"], block["precision"], block["threads"]) == ("cpu", "bf16-mixed", 1)
    assert isinstance(block["name"], str) and block["name"]
    assert block["capability"] is None and block["cuda"] is None and block["cudnn"]["version"] is None
    assert set(block["cudnn"]) == {"version", "enabled", "benchmark", "deterministic", "allow_tf32"}
    assert block["cudnn"]["benchmark"] is torch.backends.cudnn.benchmark
    assert block["float32_matmul_precision"] == torch.get_float32_matmul_precision()


def test_cuda_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"NVIDIA H200 (index {device.index})")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    block = device_record(torch.device("cuda", 1), "16-mixed")
    assert block["accelerator"] == "cuda" and block["name"] == "NVIDIA H200 (index 1)"
    assert (block["capability"], block["cuda"], block["precision"]) == ("9.0", "12.8", "16-mixed")
    assert block["cudnn"]["version"] == 91002 and block["cudnn"]["deterministic"] is True

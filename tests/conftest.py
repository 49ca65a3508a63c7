"""Shared test setup: every test gets its own dataset cache and offline W&B, so nothing touches ~ or the network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline W&B and a per-session dataset cache (shared across tests so data is built once)."""
    cache = tmp_path_factory.getbasetemp() / "rnnbench-cache"
    monkeypatch.setenv("RNNBENCH_CACHE", str(cache))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path_factory.getbasetemp() / "wandb"))
    # The Python time loops (the reference) unless the caller asks: test_fast_kernels.py builds and checks the
    # compiled ones (the default outside tests) against them, and no other test waits for that build.
    monkeypatch.setenv("RNNBENCH_COMPILED_LOOPS", os.environ.get("RNNBENCH_COMPILED_LOOPS", "0"))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Test models are tiny: intra-op threads only add sync overhead, which shared CI cores turn 10-40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh output directory for one training job."""
    return tmp_path / "run"

"""benchmarks/gpu_check.sh, the one-command GPU check: without a GPU it stops at once in one line (exit 3); its
--dry-run goes through every step on CPU and leaves the files a GPU run leaves (slow: ~1-2 min on 2 busy cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def _run(*args: str, out: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out)}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the machine without a GPU")
def test_without_a_gpu_it_stops_in_one_line(tmp_path: Path) -> None:
    result = _run("run", out=tmp_path, timeout=120)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr == (
        "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine, or add --dry-run\n"
    )
    assert _run("bogus", out=tmp_path, timeout=30).returncode == 2


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is the CPU stand-in for a GPU run")
def test_the_dry_run_goes_through_every_step(tmp_path: Path) -> None:
    result = _run("run", "--dry-run", out=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("gpu_check: done on cpu: ")
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"device.json", "gpu_tests.txt", "bench_4x5x3x8.txt", "bench_cpu_4x5x3x8.json"}  # no nvidia-smi
    assert "Same-implementation ratios" in (tmp_path / "bench_4x5x3x8.txt").read_text()
    assert json.loads((tmp_path / "device.json").read_text())["accelerator"] == "cpu"
    assert "skipped" in (tmp_path / "gpu_tests.txt").read_text()  # tests/test_gpu.py needs CUDA
    doc = json.loads((tmp_path / "bench_cpu_4x5x3x8.json").read_text())
    assert doc["schema"] == "rnnbench-bench" and {e["impl"] for e in doc["entries"]} == {"torch.nn", "fused", "custom"}

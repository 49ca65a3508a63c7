"""Per-job peak memory: a reused worker process (joblib) reports the job's own peak, not its lifetime maximum.

On Linux the RSS high-water mark is reset when a job starts (/proc/self/clear_refs), and the record says which
figure it holds (`peak_memory_scope`); elsewhere it falls back to the process's max RSS and says so."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnbench.training import allocator, callbacks
from rnnbench.training.callbacks import MEMORY_SCOPES, peak_memory_mb, reset_peak_memory
from rnnbench.training.config import compose_config
from rnnbench.training.train import train

BIG_MB = 400
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or callbacks._vm_hwm_kib() is None, reason="needs /proc/self/status (Linux)"
)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def an_earlier_big_job() -> float:
    """What a reused worker carries: a peak BIG_MB above today's RSS, long since freed; returns that peak (MiB).
    In 16 MiB blocks, which the tuned heap (training/allocator.py) serves and keeps after they are freed.
    (Read before any reset: on Linux the reset lowers ru_maxrss too, being the same high-water mark.)"""
    blocks = [np.ones(16 * 2**20 // 8) for _ in range(BIG_MB // 16)]  # np.ones writes every page: resident
    assert sum(b.sum() for b in blocks) > 0
    del blocks
    return max_rss_mb()


@linux_only
def test_the_high_water_mark_is_reset_per_job() -> None:
    allocator.tune()  # as every training job is: the freed blocks stay in the heap until the reset releases them
    earlier = an_earlier_big_job()
    assert reset_peak_memory() == "job"
    peak = peak_memory_mb(torch.device("cpu"), "job")
    assert 0 < peak < earlier - BIG_MB * 0.75  # the earlier job's peak is not this one's
    small = np.ones(50 * 2**20 // 8)
    assert small.sum() > 0
    assert peak_memory_mb(torch.device("cpu"), "job") >= peak + 40  # but this job's own allocations count


@linux_only
def test_a_run_after_a_bigger_one_in_the_same_process_records_its_own_peak(run_dir: Path) -> None:
    earlier = an_earlier_big_job()
    cfg = compose_config(["trainer=smoke", "logger=none", "task.n_train=64", "task.n_val=32", "task.n_test=32"])
    record = train(cfg, run_dir)
    assert record["status"] == "finished" and record["peak_memory_scope"] == "job"
    assert 0 < record["peak_memory_mb"] < earlier - BIG_MB * 0.75


def test_without_a_resettable_mark_it_falls_back_to_the_process_max_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callbacks, "PROC_CLEAR_REFS", tmp_path)  # a folder: the write fails, as where it is denied
    assert reset_peak_memory() == "process"
    assert peak_memory_mb(torch.device("cpu"), "process") == pytest.approx(max_rss_mb(), rel=0.01)
    monkeypatch.setattr(callbacks, "PROC_STATUS", tmp_path / "absent")  # not Linux
    assert reset_peak_memory() == "process"
    assert set(MEMORY_SCOPES) == {"job", "process", "cuda"}

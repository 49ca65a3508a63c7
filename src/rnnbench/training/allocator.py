"""glibc malloc settings for rnnbench's own training and benchmark processes: large buffers stay in the heap.

Why: a recurrent layer's step allocates and frees the same few buffers (gates, states, their gradients) thousands
of times. From 128 KiB up glibc serves them with mmap and hands them back to the kernel on free (its dynamic
threshold rises only to the largest block freed so far), and it trims the heap's top past 128 KiB of free space,
so the next step pays page faults and zeroing for fresh pages again. The custom path allocates per step, so it
suffers most: measured (issue 19, 2026-12-04, `rnnbench-bench`, train step, 2 threads, 30 rounds, one process,
two runs each) at 32x200x64x256 custom / torch.nn LSTM 0.94-1.06x and peephole 1.13-1.22x with glibc's defaults,
0.90-0.93x and 0.98-1.01x with these settings (64x100x32x128: 0.77-0.78x -> 0.69-0.77x, 0.91-1.10x -> 0.79-0.85x);
torch.nn.LSTM itself moved within its noise. The cost is memory the process keeps after its peak instead of
returning it, bounded by that peak; `release` hands it back when a job starts (training/callbacks.py
`reset_peak_memory`), so a reused worker's next job neither inherits it nor counts it in its own peak RSS.

The settings are the ones glibc reads from `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` (mallopt's
M_MMAP_THRESHOLD at glibc's 64-bit maximum of 32 MiB, M_TRIM_THRESHOLD 1 GiB), applied with mallopt at start-up so
that the default environment gets them. A user who sets any `MALLOC_*` variable or glibc.malloc tunables has
chosen their own and is left alone; `RNNBENCH_MALLOC=default` leaves glibc's defaults; elsewhere than glibc
(macOS, musl) nothing is done. What was applied is recorded (run.json `malloc`, the bench's `environment.malloc`).
"""

from __future__ import annotations

import ctypes
import functools
import os

ENV = "RNNBENCH_MALLOC"
CHOICES = ("tuned", "default")
# mallopt parameter numbers, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
SETTINGS = {"mmap_threshold": (M_MMAP_THRESHOLD, 32 * 1024 * 1024), "trim_threshold": (M_TRIM_THRESHOLD, 1 << 30)}


def choice() -> str:
    """`RNNBENCH_MALLOC` (tuned unless set), validated so that a typo fails at once instead of silently."""
    value = os.environ.get(ENV, "tuned").strip().lower() or "tuned"
    if value not in CHOICES:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected one of {', '.join(CHOICES)} (or unset: tuned)")
    return value


def user_settings() -> dict[str, str]:
    """The malloc settings the user chose in the environment (glibc reads these itself at start-up)."""
    chosen = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        chosen["GLIBC_TUNABLES"] = os.environ["GLIBC_TUNABLES"]
    return dict(sorted(chosen.items()))


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (mallopt, malloc_trim), else None; looked up once per process."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def tune() -> dict[str, int]:
    """Apply the settings (see the module docstring) unless the user chose otherwise; returns what was applied,
    {} where nothing was. Idempotent: a second call sets the same values again."""
    if choice() == "default" or user_settings():
        return {}
    libc = _glibc()
    if libc is None:
        return {}
    applied = {}
    for name, (param, value) in SETTINGS.items():
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1:  # mallopt returns 1 on success
            applied[name] = value
    return applied


def release() -> None:
    """Hand the free memory the heap kept (up to the trim threshold) back to the kernel: glibc's malloc_trim(0).
    Called as a job starts, before its peak RSS is reset, so an earlier job's freed buffers are not resident in
    this one's baseline; a few ms once per job. Elsewhere than glibc nothing is kept, and nothing is done."""
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(ctypes.c_size_t(0))

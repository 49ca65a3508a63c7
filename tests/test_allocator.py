"""training/allocator.py: the glibc malloc settings are really applied (large blocks stop going to mmap), the
user's own settings and RNNBENCH_MALLOC=default are respected, and a bad value is a one-line error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from rnnbench import benchmark
from rnnbench.training import allocator

glibc = pytest.mark.skipif(allocator._glibc() is None, reason="glibc only: elsewhere nothing is tuned")

# In a fresh process: apply the settings (or not), malloc a 4 MiB block, print how many more mmapped blocks glibc
# holds (mallinfo2's hblks). glibc's default mmap threshold is 128 KiB, so untuned the block is mmapped.
PROBE = """
import ctypes
from rnnbench.training import allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
applied = allocator.tune()
before = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)
print(sorted(applied), libc.mallinfo2().hblks - before)
libc.free(ctypes.c_void_p(block))
"""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv(allocator.ENV, raising=False)
    return monkeypatch


def _probe(env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    base.pop(allocator.ENV, None)
    done = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@glibc
def test_tuned_keeps_a_4_mib_block_in_the_heap_and_default_leaves_it_to_mmap() -> None:
    assert _probe({}) == "['mmap_threshold', 'trim_threshold'] 0"
    assert _probe({allocator.ENV: "default"}) == "[] 1"


@glibc
def test_tune_reports_the_settings_it_applied(clean_env: pytest.MonkeyPatch) -> None:
    assert allocator.tune() == {"mmap_threshold": 32 << 20, "trim_threshold": 1 << 30}
    assert allocator.tune() == allocator.tune()  # idempotent


@pytest.mark.parametrize(
    ("key", "value"),
    [("MALLOC_ARENA_MAX", "2"), ("MALLOC_MMAP_THRESHOLD_", "65536"), ("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")],
)
def test_the_users_own_malloc_settings_are_left_alone(clean_env: pytest.MonkeyPatch, key: str, value: str) -> None:
    clean_env.setenv(key, value)
    assert allocator.user_settings() == {key: value}
    assert allocator.tune() == {}
    assert benchmark.environment(torch.device("cpu"), 1)["malloc_env"] == {key: value}  # and the bench records them


def test_default_applies_nothing(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(allocator.ENV, " Default ")
    assert allocator.tune() == {}


def test_a_bad_choice_is_a_one_line_error_naming_the_choices(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(allocator.ENV, "jemalloc")
    with pytest.raises(ValueError, match=r"^RNNBENCH_MALLOC='jemalloc': expected one of tuned, default"):
        allocator.tune()
    with pytest.raises(SystemExit, match=r"^rnnbench-bench: RNNBENCH_MALLOC='jemalloc': expected one of"):
        benchmark.run(["--shapes", "2x3x2x4", "--repeats", "1"])

"""The compiled time loops of `fast_lstm` and `fast_gru` (fast_loops.cpp): built once, cached, optional.

Why: after `fast_lstm`'s hand-written BPTT the custom path's remaining gap to torch's fused kernel on CPU is
Python's own per-op cost, ~17 small ops per time step forward + backward, ~100 us per step on a loaded 2-core
machine; it grows with contention (issue 19 measured 1.25x -> 1.54x with one other busy process). The C++ loops
run the GRU's and the masked LSTM's steps as the same ATen ops in the same order; an unmasked LSTM step's
elementwise work is one fused, vectorised loop (fast_loops.cpp says why and how). Both agree with the Python
loops to float rounding (tests/test_fast_kernels.py), and both stay: the Python loops are the reference and the
fallback.

The extension is compiled by `torch.utils.cpp_extension.load` on first use (1-2 min on 2 busy cores) into torch's
extension cache (`TORCH_EXTENSIONS_DIR`, default ~/.cache/torch_extensions), in a folder named after a hash of the
source's path and text, torch's version and Python's: a changed source, a second checkout or another torch builds
its own copy instead of rebuilding another's back and forth. Later processes load the cached library in about half a
second. Where it cannot be built (no C++ compiler or ninja) one warning says why and the Python loops run. A build
killed mid-way leaves torch's lock file behind; the next build clears it (`_exclusive`) instead of waiting forever.

On by default; `RNNBENCH_COMPILED_LOOPS=0` (or false/off/no) turns them off (the Python loops run, nothing is
built). Measured (issue 19, `rnnbench-bench`, train step, 2 threads, 2-core machine): the ATen-op loops took 6-15 %
off the Python loops' step (2026-12-02: 64x100x32x128 91.5 -> 77.8 ms; 32x200x64x256 257.5 -> 242.8 ms); the fused
elementwise step brought custom / torch.nn LSTM to 0.88x and 1.12x at those shapes (2026-12-03). What then bounded
the custom path at 2 threads (2026-12-04, B32 T200 H256): the 200 recurrent matmuls h (32, 256) @ W (256, 1024) in
MKL took 37.6 ms, more than torch.nn.LSTM's whole forward; MKL repacks W on every call and gains 1.5x from a second
thread at M = 32, and splitting the steps over threads that each called MKL on their slice measured no better.
Hence the packed loops (fast_loops.cpp): each thread packs its units' columns of W once per time loop, multiplies
with its own register-blocked AVX2 kernel and runs its units' elementwise step, one barrier per step. In one
process, A/B against the same loops calling MKL (train step, custom / torch.nn.LSTM, 2026-12-04): 64x100x32x128
0.66-0.87x vs 0.90-0.97x, 32x200x64x256 0.84-0.89x vs 1.01-1.05x at 2 threads; at one thread 0.70x vs 0.76x and
0.82x vs 0.92x. Where the CPU lacks AVX2 / FMA the fused loops call ATen's matmul.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("fast_loops.cpp")
ENV = "RNNBENCH_COMPILED_LOOPS"
# GCC vectorises the fused elementwise loops (and their float32 exp) only at -O3 (-O2's cost model keeps them
# scalar) and, for the exp's clamps and float-to-int step, only without -ftrapping-math (nothing here reads the
# floating-point exception flags). -fopenmp for the packed loops' threads (one barrier per step): on Linux it links
# libgomp.so.1, the OpenMP runtime torch itself loaded, so both share one runtime; elsewhere (Apple's clang has no
# -fopenmp) the packed loops run on one thread. Part of the cache folder's name, as the source is.
OPENMP = ("-fopenmp",) if sys.platform.startswith("linux") else ()
FLAGS = ("-O3", "-fno-trapping-math", *OPENMP)
_state: dict[str, ModuleType | None] = {}


OFF = ("0", "false", "off", "no")
ON = ("1", "true", "on", "yes", "")


def enabled() -> bool:
    """Whether the compiled loops are wanted: unless the environment variable says off (0/false/off/no)."""
    value = os.environ.get(ENV, "1").strip().lower()
    if value not in OFF + ON:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected one of {', '.join(OFF + ON[:-1])} (or unset: on)")
    return value not in OFF


_calls: Counter[str] = Counter()  # time-loop launches in this process, by the loops that ran them


def compiled() -> ModuleType | None:
    """The compiled loops module, built on first call; None when disabled or when it cannot be built. Each call is
    one time loop about to run, counted by which loops run it (`loops_since`)."""
    module = None
    if enabled():
        if "module" not in _state:
            _state["module"] = _build()
        module = _state["module"]
    _calls["compiled" if module is not None else "python"] += 1
    return module


def calls() -> dict[str, int]:
    """A snapshot of the time-loop launches so far, for `loops_since`."""
    return dict(_calls)


def loops_since(before: dict[str, int]) -> str | None:
    """Which time loops ran since the snapshot `before`: "compiled", "python", "compiled+python", or None where no
    custom time loop ran (fused kernels only). Why a snapshot: a launcher's worker process runs many jobs, and a run's
    record must say what ran in that run, not in an earlier job of the same process."""
    return "+".join(sorted(k for k, n in _calls.items() if n > before.get(k, 0))) or None


def _name() -> str:
    """The extension's (and its cache folder's) name: unique per source path and text, compiler flags, torch and
    Python (an extension built against one torch's ABI must not be loaded by another)."""
    import torch

    built_for = f"{SOURCE.resolve()}\0{torch.__version__}\0{sys.version}\0{' '.join(FLAGS)}\0".encode()
    digest = hashlib.sha1(built_for + SOURCE.read_bytes()).hexdigest()[:12]
    return f"rnnbench_fast_loops_{digest}"


def build_directory(name: str) -> Path:
    """Where torch builds and caches the extension: `TORCH_EXTENSIONS_DIR`, else torch's default root."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / name


@contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold an flock on the build folder while building or loading, and clear a lock file left behind.

    Why: torch's own build lock is a plain file (`lock`) that a build killed mid-way (a timeout, Ctrl-C, an OOM)
    leaves behind, and every later process then waits on it forever, silently. An flock is released by the
    kernel when its holder dies, so whoever holds it knows no build is running and a `lock` there is stale.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "rnnbench.flock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        stale = folder / "lock"
        if stale.exists():
            warnings.warn(f"rnnbench: removing a stale build lock left by a killed build: {stale}", stacklevel=4)
            stale.unlink(missing_ok=True)
        yield


def _build() -> ModuleType | None:
    from torch.utils import cpp_extension

    name = _name()
    folder = build_directory(name)
    try:
        with _exclusive(folder):
            return cpp_extension.load(
                name=name,
                sources=[str(SOURCE)],
                extra_cflags=list(FLAGS),
                extra_ldflags=list(OPENMP),
                build_directory=str(folder),
                verbose=False,
            )
    except (OSError, RuntimeError, ImportError) as err:  # no compiler / ninja, or a failed build
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warnings.warn(
            f"rnnbench: the compiled time loops ({SOURCE.name}) could not be built ({reason}); "
            f"using the pure-PyTorch loops (set {ENV}=0 to skip the attempt)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None

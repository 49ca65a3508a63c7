"""The compiled time loops of `fast_lstm` and `fast_gru` (fast_loops.cpp): built once, cached, optional.

Why: after `fast_lstm`'s hand-written BPTT the custom path's remaining gap to torch's fused kernel on CPU is
Python's own per-op cost, ~17 small ops per time step forward + backward, ~100 us per step on a loaded 2-core
machine; it grows with contention (issue 19 measured 1.25x -> 1.54x with one other busy process). The C++ loops
run the same ATen ops in the same order, so they agree with the Python loops to rounding, and both stay: the
Python loops are the reference and the fallback.

The extension is compiled by `torch.utils.cpp_extension.load` on first use (1-2 min on 2 busy cores) into torch's
extension cache (`TORCH_EXTENSIONS_DIR`, default ~/.cache/torch_extensions), in a folder named after a hash of the
source's path and text: a changed source, or a second checkout, builds its own copy instead of rebuilding another's
back and forth. Later processes load the cached library in about half a second. Where it cannot be built (no C++
compiler or ninja) one warning says why and the Python loops run.

On by default; `RNNBENCH_COMPILED_LOOPS=0` turns them off (the Python loops run, nothing is built). Measured
(issue 19, `rnnbench-bench`, train step, 2 threads, quiet 2-core machine, 2026-12-02): the compiled loops take
6-15 % off the Python loops' step (64x100x32x128: 91.5 -> 77.8 ms; 32x200x64x256: 257.5 -> 242.8 ms), more under
contention, where the Python per-op cost grows; the one-time build is paid once per machine (the cache), later
processes load it in 0.2-0.5 s.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("fast_loops.cpp")
ENV = "RNNBENCH_COMPILED_LOOPS"
_state: dict[str, ModuleType | None] = {}


def enabled() -> bool:
    """Whether the compiled loops are wanted: unless the environment variable is '0'."""
    return os.environ.get(ENV, "1") != "0"


def compiled() -> ModuleType | None:
    """The compiled loops module, built on first call; None when disabled or when it cannot be built."""
    if not enabled():
        return None
    if "module" not in _state:
        _state["module"] = _build()
    return _state["module"]


def _name() -> str:
    """The extension's (and its cache folder's) name: unique per source path and text."""
    digest = hashlib.sha1(str(SOURCE.resolve()).encode() + b"\0" + SOURCE.read_bytes()).hexdigest()[:12]
    return f"rnnbench_fast_loops_{digest}"


def _build() -> ModuleType | None:
    from torch.utils import cpp_extension

    try:
        return cpp_extension.load(name=_name(), sources=[str(SOURCE)], extra_cflags=["-O2"], verbose=False)
    except (OSError, RuntimeError, ImportError) as err:  # no compiler / ninja, or a failed build
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warnings.warn(
            f"rnnbench: the compiled time loops ({SOURCE.name}) could not be built ({reason}); "
            f"using the pure-PyTorch loops (set {ENV}=0 to skip the attempt)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None

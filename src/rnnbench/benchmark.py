"""`rnnbench-bench`: the cost of every cell on every implementation, the source of the study's cost figures.

The seed's cost claims (the GRU has fewer parameters and is faster than the LSTM; a bidirectional layer costs ~2x
parameters, compute and memory; peepholes add little) are only fair within one implementation: torch's fused
kernels and the custom path (`layer.run_layer`: `fast_lstm` for the LSTM family, `fast_gru`, the per-step loop
for the Elman RNN) differ by more than the cells do. So every cell is measured on every implementation it has,
uni- and bidirectional, at equal hidden size and at equal parameter count (each cell's hidden size solved to give
the reference LSTM's parameter count, `equal_param_hidden`), in two modes: `train` (forward + backward of the
sum of the outputs, gradients set to None) and `forward` (inference, under `torch.no_grad`). `cost_ratios`
turns the JSON into same-implementation ratios (cell / LSTM, bidirectional / unidirectional); nothing in it ever
divides a figure of one implementation by one of another.

Timing: `torch.utils.benchmark.Timer` (it sets the thread count and synchronises CUDA), one step per call, the
models of one shape visited round-robin (one step each per round, `--repeats` rounds after `--warmup` untimed
steps each) in this one process, so machine load, drifting clocks and allocator state hit all of them alike;
`Timer.blocked_autorange` would time each model back to back, in different load. `first_ms` is a model's first
step, including any one-time set-up (the first custom model builds or loads `fast_loops`). Every time is also a
ratio to plain `torch.nn.LSTM` (impl `torch.nn`) of the same direction and mode, measured in the same rounds.

Peak memory: on CUDA `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, less what was allocated
before the step. On CPU the peak, over one step, of the bytes torch's CPU allocator holds beyond what it held
when the step began, from the allocation and free events of `torch.profiler` (profile_memory=True): the saved
activations, workspaces and gradients of the step, whatever library computed them, since every ATen tensor comes
from that allocator. It is the same measure for every cell and implementation, deterministic (unlike the
process RSS, which glibc's caching blurs) and blind only to library-internal scratch (MKL packing buffers,
oneDNN scratchpads) that lives outside ATen; tracemalloc sees none of torch's memory. Gradients count, so a
training peak includes one copy of the parameters.

JSON (`--json PATH`, or `--print-json` for stdout, as PyTorch's benchmarks/fastrnns), schema version 1:

    {"schema": "rnnbench-bench", "version": 1,
     "environment": {"torch", "python", "platform", "cpu", "cpu_count", "device", "threads",
                     "malloc_env" (the user's own: MALLOC_* variables, glibc.malloc GLIBC_TUNABLES),
                     "malloc" (what training/allocator.py applied: {"mmap_threshold", "trim_threshold"} in
                     bytes, {} where nothing),
                     "compiled_loops" (bool: fast_loops in use), "packed_loops" (bool: their packed-weight AVX2
                     matmuls too), "loadavg_before", "loadavg_after" ([1, 5, 15 min]),
                     "device_settings" (run.json's `device` block: CUDA / cuDNN versions and flags, TF32)},
     "settings": {"repeats", "warmup", "modes", "reference": {"cell": "lstm", "impl": "torch.nn"},
                  "memory": <how peak memory was measured>},
     "entries": [{"shape": {"batch", "steps", "input_size", "hidden_size"} (the requested shape),
                  "cell", "impl" ("custom" | "fused" | "torch.nn"), "direction" ("uni" | "bi"),
                  "sizing" ("equal_hidden" | "equal_params"), "mode" ("train" | "forward"),
                  "hidden_size" (int, used), "params" (int),
                  "time_ms": {"median", "iqr", "min", "max", "samples"}, "first_ms",
                  "peak_bytes" (int), "ratio_to_reference" (median / torch.nn.LSTM's)}, ...]}

One entry per (shape, cell, impl, direction, sizing, mode); `torch.nn` has only the LSTM at equal hidden size.
Where two sizings give a cell the same hidden size (the LSTM itself) they share one measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Measurement, Timer

from rnnbench.models import cells as cell_registry
from rnnbench.models import fast_loops
from rnnbench.models.params import count_parameters, recurrent_parameter_count
from rnnbench.models.recurrent import Recurrent
from rnnbench.tracking.device import cpu_name, device_record
from rnnbench.training import allocator

SCHEMA = "rnnbench-bench"
SCHEMA_VERSION = 1
CELLS = tuple(name for name in cell_registry.CELLS if name != "rnn_relu")  # rnn_relu: a nonlinearity of "rnn"
IMPLS = ("custom", "fused")
REFERENCE_CELL, REFERENCE_IMPL = "lstm", "torch.nn"
DIRECTIONS = ("uni", "bi")
SIZINGS = ("equal_hidden", "equal_params")
MODES = ("train", "forward")
DEFAULT_SHAPES = ("64x100x32x128", "32x200x64x256")
MEMORY_CPU = "torch.profiler: peak of CPU-allocator bytes held beyond the step's start (ATen tensors only)"
MEMORY_CUDA = "torch.cuda.max_memory_allocated after reset_peak_memory_stats, less the bytes held before"


@dataclass(frozen=True)
class Shape:
    """Batch, steps, input and hidden size of one benchmark point."""

    batch: int
    steps: int
    input_size: int
    hidden_size: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        """Parse 'BxTxIxH', e.g. '64x100x32x128'."""
        parts = text.lower().split("x")
        if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(f"shape must be BxTxIxH with positive ints, got {text!r}")
        return cls(*map(int, parts))

    def __str__(self) -> str:
        return f"{self.batch}x{self.steps}x{self.input_size}x{self.hidden_size}"


@dataclass(frozen=True)
class Case:
    """One model to measure: a cell on an implementation, a direction, a sizing rule and the hidden size it gives."""

    shape: Shape
    cell: str
    impl: str
    direction: str
    sizing: str
    hidden_size: int

    @property
    def model_key(self) -> tuple[str, str, str, int]:
        """Cases with equal keys are the same model (e.g. the LSTM under both sizings): measured once."""
        return self.cell, self.impl, self.direction, self.hidden_size


def impls_of(cell: str) -> tuple[str, ...]:
    """The implementations a cell has: custom always, fused where torch has a kernel."""
    return IMPLS if cell_registry.get_cell(cell).fused_mode is not None else ("custom",)


def equal_param_hidden(
    cell: str, input_size: int, hidden_size: int, bidirectional: bool = False, reference: str = REFERENCE_CELL
) -> int:
    """The hidden size whose `cell` layer has the parameter count nearest to `reference`'s at `hidden_size`."""
    target = recurrent_parameter_count(reference, input_size, hidden_size, bidirectional=bidirectional)

    def count(h: int) -> int:
        return recurrent_parameter_count(cell, input_size, h, bidirectional=bidirectional)

    lo, hi = 1, 1  # the count grows with h: find the first h with count(h) >= target by doubling, then bisecting
    while count(hi) < target:
        lo, hi = hi, 2 * hi
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < target else (lo, mid)
    return lo - 1 if lo > 1 and target - count(lo - 1) < count(lo) - target else lo


def cases(
    shape: Shape,
    cells: Iterable[str] = CELLS,
    impls: Iterable[str] = IMPLS,
    directions: Iterable[str] = DIRECTIONS,
    sizings: Iterable[str] = SIZINGS,
) -> list[Case]:
    """Every requested (cell, impl, direction, sizing) at one shape, the torch.nn.LSTM reference of each direction
    first."""
    out = [Case(shape, REFERENCE_CELL, REFERENCE_IMPL, d, "equal_hidden", shape.hidden_size) for d in directions]
    for cell in cells:
        for impl in (i for i in impls_of(cell) if i in impls):
            for direction in directions:
                for sizing in sizings:
                    hidden = shape.hidden_size
                    if sizing == "equal_params":
                        hidden = equal_param_hidden(cell, shape.input_size, hidden, direction == "bi")
                    out.append(Case(shape, cell, impl, direction, sizing, hidden))
    return out


def build_model(case: Case, device: torch.device) -> nn.Module:
    """The module a case measures, time-major ((T, B, I) in)."""
    bidirectional = case.direction == "bi"
    if case.impl == REFERENCE_IMPL:
        model: nn.Module = nn.LSTM(case.shape.input_size, case.hidden_size, bidirectional=bidirectional)
    else:
        model = Recurrent(
            case.cell, case.shape.input_size, case.hidden_size, bidirectional=bidirectional, impl=case.impl,
            batch_first=False,
        )  # fmt: skip
    return model.to(device)


def step_fn(model: nn.Module, x: Tensor, mode: str) -> Callable[[], None]:
    """One `train` step (forward + backward of out.sum(), grads set to None) or one `forward` (no_grad) call."""

    def train() -> None:
        out, _ = model(x)
        out.sum().backward()
        model.zero_grad(set_to_none=True)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    return train if mode == "train" else forward


def peak_bytes(fn: Callable[[], None], device: torch.device) -> int:
    """Peak bytes allocated during one call of fn, beyond what was allocated before it (see the module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # kineto_results holds every allocation (+bytes) and free (-bytes) with its time; the FunctionEvents that
    # prof.events() builds attribute allocations to ops and lose their order.
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    held = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == torch.autograd.DeviceType.CPU:
            held += event.nbytes()
            peak = max(peak, held)
    return peak


def _time_summary(measurement: Measurement) -> dict[str, float | int]:
    times = [t * 1e3 for t in measurement.raw_times]
    return {
        "median": measurement.median * 1e3,
        "iqr": measurement.iqr * 1e3,
        "min": min(times),
        "max": max(times),
        "samples": len(times),
    }


def bench_shape(
    shape: Shape,
    cells: Iterable[str] = CELLS,
    impls: Iterable[str] = IMPLS,
    directions: Iterable[str] = DIRECTIONS,
    sizings: Iterable[str] = SIZINGS,
    modes: Iterable[str] = MODES,
    repeats: int = 10,
    warmup: int = 2,
    threads: int = 2,
    device: torch.device | str = "cpu",
) -> list[dict[str, Any]]:
    """Measure every case at one shape round-robin; returns the JSON entries (see the module docstring)."""
    device = torch.device(device)
    modes = list(modes)
    all_cases = cases(shape, cells, impls, directions, sizings)
    models = {c.model_key: build_model(c, device) for c in all_cases}
    x = torch.randn(shape.steps, shape.batch, shape.input_size, device=device)  # (T, B, I)
    keys = [(key, mode) for key in models for mode in modes]
    timers = {
        (key, mode): Timer("step()", globals={"step": step_fn(models[key], x, mode)}, num_threads=threads)
        for key, mode in keys
    }
    first, rounds = {}, {k: [] for k in keys}
    for k, timer in timers.items():
        first[k] = timer.timeit(1).median * 1e3
        for _ in range(warmup):
            timer.timeit(1)
    for _ in range(repeats):
        for k, timer in timers.items():
            rounds[k].append(timer.timeit(1))
    summary = {k: _time_summary(Measurement.merge(ms)[0]) for k, ms in rounds.items()}
    with _threads(threads):
        peaks = {(key, mode): peak_bytes(step_fn(models[key], x, mode), device) for key, mode in keys}
    entries = []
    for case in all_cases:
        for mode in modes:
            k = (case.model_key, mode)
            ref = ((REFERENCE_CELL, REFERENCE_IMPL, case.direction, shape.hidden_size), mode)
            entries.append(
                {
                    "shape": asdict(shape),
                    "cell": case.cell,
                    "impl": case.impl,
                    "direction": case.direction,
                    "sizing": case.sizing,
                    "mode": mode,
                    "hidden_size": case.hidden_size,
                    "params": count_parameters(models[case.model_key]),
                    "time_ms": summary[k],
                    "first_ms": first[k],
                    "peak_bytes": peaks[k],
                    "ratio_to_reference": summary[k]["median"] / summary[ref]["median"],
                }
            )
    return entries


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch.set_num_threads(n) for a block, restored after."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else []


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    """What the figures depend on besides the code: versions, CPU, threads, glibc malloc settings."""
    loops = fast_loops.compiled()
    return {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": threads,
        "malloc_env": allocator.user_settings(),
        "compiled_loops": loops is not None,
        "packed_loops": loops is not None and loops.packed_available(),
        "loadavg_before": _loadavg(),
        "device_settings": device_record(device, "32-true"),  # CUDA / cuDNN versions and flags (TF32), threads
    }


# -- reading the JSON ------------------------------------------------------------------------------------------


def _index(doc: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    return {
        (Shape(**e["shape"]), e["cell"], e["impl"], e["direction"], e["sizing"], e["mode"]): e for e in doc["entries"]
    }


def _ratio(num: dict[str, Any], den: dict[str, Any]) -> dict[str, float]:
    return {
        "time": num["time_ms"]["median"] / den["time_ms"]["median"],
        "peak_bytes": num["peak_bytes"] / den["peak_bytes"] if den["peak_bytes"] else float("nan"),
        "params": num["params"] / den["params"],
    }


def cost_ratios(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Same-implementation ratios from a bench JSON document: every cell / the LSTM (same impl, direction, sizing,
    mode), and bidirectional / unidirectional (same cell, impl, sizing, mode). Each row: shape (str), mode,
    sizing, impl, kind ("cell" | "direction"), numerator, denominator, direction ("uni" | "bi" for kind "cell",
    None for "direction", whose numerator is "bi" and denominator "uni"), cell (the cell for kind "direction"),
    and the ratios of time (median), peak_bytes and params."""
    if doc.get("schema") != SCHEMA or doc.get("version") != SCHEMA_VERSION:
        raise ValueError(f"not an {SCHEMA} v{SCHEMA_VERSION} document: {doc.get('schema')!r} v{doc.get('version')!r}")
    index = _index(doc)
    rows = []
    for (shape, cell, impl, direction, sizing, mode), entry in index.items():
        common = {"shape": str(shape), "mode": mode, "sizing": sizing, "impl": impl}
        lstm = index.get((shape, REFERENCE_CELL, impl, direction, sizing, mode))
        if cell != REFERENCE_CELL and lstm is not None:
            rows.append(
                common | {"kind": "cell", "numerator": cell, "denominator": REFERENCE_CELL, "direction": direction,
                          "cell": None} | _ratio(entry, lstm)
            )  # fmt: skip
        uni = index.get((shape, cell, impl, "uni", sizing, mode))
        if direction == "bi" and uni is not None:
            rows.append(
                common | {"kind": "direction", "numerator": "bi", "denominator": "uni", "direction": None,
                          "cell": cell} | _ratio(entry, uni)
            )  # fmt: skip
    order = ("shape", "kind", "impl", "numerator", "cell", "direction", "sizing", "mode")
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in order))


# -- output ----------------------------------------------------------------------------------------------------


def _fmt(entry: dict[str, Any] | None, what: str) -> str:
    if entry is None:
        return "-"
    if what == "ms":
        t = entry["time_ms"]
        return f"{t['median']:.2f} ±{t['iqr'] / 2:.2f}"
    if what == "mib":
        return f"{entry['peak_bytes'] / 2**20:.1f}"
    return f"{entry['ratio_to_reference']:.2f}"


def markdown(doc: dict[str, Any]) -> str:
    """The entries as one markdown row per (shape, cell, impl, direction, sizing); times as median ±IQR/2."""
    index = _index(doc)
    lines = [
        "| shape BxTxIxH | cell | impl | dir | sizing | H | params | train ms | fwd ms | train MiB | fwd MiB "
        "| train x nn.LSTM | fwd x nn.LSTM |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    seen = set()
    for shape, cell, impl, direction, sizing, _ in index:
        row = (shape, cell, impl, direction, sizing)
        if row in seen:
            continue
        seen.add(row)
        train, fwd = index.get((*row, "train")), index.get((*row, "forward"))
        any_entry = train or fwd
        lines.append(
            f"| {shape} | {cell} | {impl} | {direction} | {sizing} | {any_entry['hidden_size']} | "
            f"{any_entry['params']} | {_fmt(train, 'ms')} | {_fmt(fwd, 'ms')} | {_fmt(train, 'mib')} | "
            f"{_fmt(fwd, 'mib')} | {_fmt(train, 'x')} | {_fmt(fwd, 'x')} |"
        )
    return "\n".join(lines)


def ratios_markdown(rows: list[dict[str, Any]]) -> str:
    """`cost_ratios` rows as a markdown table."""
    lines = [
        "| shape | mode | sizing | impl | ratio | time | peak mem | params |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        what = (
            f"{r['numerator']}/{r['denominator']} ({r['direction']})" if r["kind"] == "cell" else f"{r['cell']}: bi/uni"
        )
        lines.append(
            f"| {r['shape']} | {r['mode']} | {r['sizing']} | {r['impl']} | {what} | {r['time']:.2f} | "
            f"{r['peak_bytes']:.2f} | {r['params']:.2f} |"
        )
    return "\n".join(lines)


def _device(text: str) -> torch.device:
    """--device: cpu or cuda[:N] (the devices `rnnbench-bench` measures)."""
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"must be cpu or cuda[:N], got {text!r}")
    return device


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnbench-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (one step per model each; median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model before timing")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (torch.utils.benchmark num_threads)")
    parser.add_argument("--device", type=_device, default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--directions", nargs="+", choices=DIRECTIONS, default=list(DIRECTIONS))
    parser.add_argument("--sizings", nargs="+", choices=SIZINGS, default=list(SIZINGS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--shapes", nargs="+", type=Shape.parse, default=[Shape.parse(s) for s in DEFAULT_SHAPES])
    parser.add_argument("--out", type=Path, help="also write the markdown tables here")
    parser.add_argument("--json", type=Path, help="also write the JSON document here")
    parser.add_argument("--print-json", action="store_true", help="print the JSON document instead of markdown")
    return parser


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print markdown (or JSON), optionally write both; returns the JSON document."""
    args = _parser().parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        raise SystemExit("rnnbench-bench: --repeats and --threads must be >= 1, --warmup >= 0")
    try:
        fast_loops.enabled()
        malloc = allocator.tune()  # as in training jobs, so the bench times what they run
    except ValueError as err:
        raise SystemExit(f"rnnbench-bench: {err}") from None
    device = args.device
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"rnnbench-bench: --device {device}: CUDA is not available here (torch {torch.__version__})")
    env = {**environment(device, args.threads), "malloc": malloc}
    grid = {k: getattr(args, k) for k in ("cells", "impls", "directions", "sizings", "modes", "repeats", "warmup")}
    entries = [e for shape in args.shapes for e in bench_shape(shape, **grid, threads=args.threads, device=device)]
    env["loadavg_after"] = _loadavg()
    doc = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "environment": env,
        "settings": {
            "repeats": args.repeats,
            "warmup": args.warmup,
            "modes": args.modes,
            "reference": {"cell": REFERENCE_CELL, "impl": REFERENCE_IMPL},
            "memory": MEMORY_CUDA if device.type == "cuda" else MEMORY_CPU,
        },
        "entries": entries,
    }
    tables = f"{markdown(doc)}\n\nSame-implementation ratios:\n\n{ratios_markdown(cost_ratios(doc))}\n"
    header = (
        f"torch {env['torch']}, {env['device']}, {args.threads} threads, compiled loops {env['compiled_loops']} "
        f"(packed {env['packed_loops']}), "
        f"malloc env {env['malloc_env']}, malloc tuned {env['malloc']}, "
        f"load {env['loadavg_before']} -> {env['loadavg_after']}"
    )
    print(json.dumps(doc, indent=1) if args.print_json else f"{header}\n\n{tables}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"{header}\n\n{tables}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def main(argv: list[str] | None = None) -> None:
    """Console entry point `rnnbench-bench`."""
    run(argv)


if __name__ == "__main__":
    main()

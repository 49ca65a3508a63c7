"""Train-step speed of every cell under the custom and fused paths, relative to plain `torch.nn.LSTM`.

Why: the custom path (`layer.run_layer`, with `fast_lstm` for the LSTM family and `fast_gru`) must stay within a
small factor of torch's fused kernels, or custom-cell comparisons measure the implementation rather than the cell;
and `impl=auto` takes whichever is faster (the GRU's custom path, on CPU). A train step is forward + backward of
the sum of the outputs, gradients zeroed; the reported time is the median over `--repeats`
steps after `--warmup` untimed ones. The models of one shape are timed round-robin (one step each per round) in
this one process, so machine load and allocator state (glibc's MALLOC_* settings change the fused kernel's CPU
speed) hit all of them alike; the ratio is to `torch.nn.LSTM` in the same run. `first ms` is the first step,
including any one-time set-up.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rnnbench.models.recurrent import Recurrent

CELLS = ("rnn", "lstm", "gru", "peephole_lstm")
DEFAULT_SHAPES = ("64x100x32x128", "32x200x64x256")
REFERENCE = ("torch.nn.LSTM", "reference")


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
class Row:
    """One timed model at one shape."""

    shape: Shape
    cell: str
    impl: str
    ms: float
    first_ms: float
    ratio: float


def _train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        out, _ = model(x)
        out.sum().backward()
        model.zero_grad(set_to_none=True)

    return step


def _models(cells: list[str], shape: Shape) -> dict[tuple[str, str], nn.Module]:
    models: dict[tuple[str, str], nn.Module] = {REFERENCE: nn.LSTM(shape.input_size, shape.hidden_size)}
    for cell in cells:
        for impl in ("custom", "fused"):
            if impl == "fused" and cell == "peephole_lstm":
                continue
            models[cell, impl] = Recurrent(cell, shape.input_size, shape.hidden_size, impl=impl, batch_first=False)
    return models


def bench_shape(cells: list[str], shape: Shape, repeats: int, warmup: int) -> list[Row]:
    """Time every (cell, impl) and the reference round-robin at one shape; ratios are to the reference."""
    x = torch.randn(shape.steps, shape.batch, shape.input_size)  # (T, B, I)
    steps = {key: _train_step(model, x) for key, model in _models(cells, shape).items()}
    first: dict[tuple[str, str], float] = {}
    for key, step in steps.items():
        start = time.perf_counter()
        step()
        first[key] = time.perf_counter() - start
        for _ in range(warmup):
            step()
    times: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
    median = {key: statistics.median(ts) * 1e3 for key, ts in times.items()}
    return [Row(shape, *key, median[key], first[key] * 1e3, median[key] / median[REFERENCE]) for key in steps]


def markdown(rows: list[Row]) -> str:
    """Rows as a markdown table."""
    lines = [
        "| shape BxTxIxH | cell | impl | ms/step | first ms | x torch.nn.LSTM |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [f"| {r.shape} | {r.cell} | {r.impl} | {r.ms:.2f} | {r.first_ms:.1f} | {r.ratio:.2f} |" for r in rows]
    return "\n".join(lines)


def write(rows: list[Row], path: Path) -> None:
    """Write rows as CSV (for a .csv path) or as the markdown table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix != ".csv":
        path.write_text(markdown(rows) + "\n")
        return
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["shape", "cell", "impl", "ms_per_step", "first_ms", "ratio_to_torch_lstm"])
        writer.writerows(
            [str(r.shape), r.cell, r.impl, f"{r.ms:.4f}", f"{r.first_ms:.4f}", f"{r.ratio:.4f}"] for r in rows
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnbench-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed train steps per model (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed train steps per model before timing")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument("--shapes", nargs="+", type=Shape.parse, default=[Shape.parse(s) for s in DEFAULT_SHAPES])
    parser.add_argument("--out", type=Path, help="also write the table here (.csv for CSV, else markdown)")
    return parser


def run(argv: list[str] | None = None) -> list[Row]:
    """Run the benchmark, print the markdown table, optionally write it; returns the rows."""
    args = _parser().parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        raise SystemExit("rnnbench-bench: --repeats and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(
        f"torch {torch.__version__}, {args.threads} threads, train step = fwd + bwd of out.sum(), malloc env {malloc}"
    )
    rows = [row for shape in args.shapes for row in bench_shape(args.cells, shape, args.repeats, args.warmup)]
    print(markdown(rows))
    if args.out is not None:
        write(rows, args.out)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Console entry point `rnnbench-bench`."""
    run(argv)


if __name__ == "__main__":
    main()

"""`rnnbench-vanishing`: the classic vanishing-gradient figure, RNN vs LSTM vs GRU on the adding problem.

For each cell, ||dL/dh_t|| over the lag T-1-t for the adding task's loss at the last step (T = 100), measured by
`models.probe` on a fixed batch at initialisation and after a short Adam run; the LSTM's ||dL/dc_t|| is drawn
dashed. Curves are normalised by their value at lag 0, on a log axis, so a geometric decay is a straight line. The
seed's claim under test: the vanilla RNN's gradient vanishes geometrically with the lag, while the LSTM's additive
cell path decays only as fast as its forget gate is below 1 (f = sigmoid(1) = 0.73 at this init). Writes one PNG
and a CSV of the raw curves; about 10 s on two idle CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import copy
import csv
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from rnnbench.models.probe import ProbeResult, probe
from rnnbench.models.recurrent import Recurrent
from rnnbench.tasks.adding import AddingTask
from rnnbench.training.diagnostics import last_step_loss

CELLS = ("rnn", "lstm", "gru")
STAGES = ("init", "trained")
COLOURS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}


def _batch(n: int, rng: np.random.Generator, seq_len: int) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) for k, v in AddingTask.generate(n, rng, seq_len=seq_len).items()}


def measure(cell: str, args: argparse.Namespace, probe_batch: dict[str, torch.Tensor]) -> dict[str, ProbeResult]:
    """Probe one cell at initialisation, train it for `args.steps` Adam steps, probe again."""
    torch.manual_seed(args.seed)
    task = AddingTask(seq_len=args.seq_len)
    body = Recurrent(cell, AddingTask.input_size, args.hidden)
    head = nn.Linear(args.hidden, AddingTask.output_size)
    params = [*body.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=args.lr)
    rng = np.random.default_rng(args.seed)

    def probe_now() -> ProbeResult:
        """Probe float64 copies: a trained RNN's gradient at lag 99 is below float32's range (it would read 0)."""
        body64, head64 = copy.deepcopy(body).double(), copy.deepcopy(head).double()
        batch64 = {k: v.double() for k, v in probe_batch.items()}
        return probe(body64, lambda b: last_step_loss(task, b, head64, batch64))

    results = {"init": probe_now()}
    for _ in range(args.steps):
        batch = _batch(args.batch_size, rng, args.seq_len)
        optimizer.zero_grad()
        task.loss(task.predict(body, head, batch), batch).backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
    results["trained"] = probe_now()
    return results


def plot(results: dict[str, dict[str, ProbeResult]], steps: int, path: Path) -> None:
    """Two panels (init, trained): normalised ||dL/dh_t|| against the lag, log y."""
    fig = Figure(figsize=(11, 4.2))  # no pyplot: no GUI backend, no global figure state
    axes = fig.subplots(1, 2, sharey=True)
    for ax, stage in zip(axes, STAGES, strict=True):
        for cell, by_stage in results.items():
            res = by_stage[stage]
            curve = res.grad_h[0, 0].flip(0)  # (T,), index = lag
            lag = np.arange(len(curve))
            label = f"{cell}: first/last {res.first_over_last():.2g}"
            ax.semilogy(lag, (curve / curve[0]).numpy(), color=COLOURS[cell], label=label)
            if res.grad_c is not None:
                c_curve = res.grad_c[0, 0].flip(0)
                ax.semilogy(
                    lag, (c_curve / c_curve[0]).numpy(), "--", color=COLOURS[cell], label=f"{cell}: ||dL/dc_t||"
                )
        ax.set_title("at initialisation" if stage == "init" else f"after {steps} Adam steps")
        ax.set_xlabel("lag T-1-t (steps back from the loss)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("||dL/dh_t|| / ||dL/dh_T-1||")
    fig.suptitle("Vanishing gradients on the adding problem (loss at the last step)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def write_csv(results: dict[str, dict[str, ProbeResult]], path: Path) -> None:
    """Raw curves: one row per (cell, stage, t), with ||dL/dc_t|| empty for cells without a cell state."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["cell", "stage", "t", "lag", "grad_h", "grad_c"])
        for cell, by_stage in results.items():
            for stage, res in by_stage.items():
                steps = res.grad_h.shape[-1]
                for t in range(steps):
                    grad_c = "" if res.grad_c is None else f"{float(res.grad_c[0, 0, t]):.4g}"
                    writer.writerow([cell, stage, t, steps - 1 - t, f"{float(res.grad_h[0, 0, t]):.4g}", grad_c])


def main(argv: list[str] | None = None) -> int:
    """Console entry `rnnbench-vanishing`."""
    parser = argparse.ArgumentParser(prog="rnnbench-vanishing", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/vanishing_gradients.png"), help="PNG path")
    parser.add_argument("--seq-len", type=int, default=100, help="adding-problem length T")
    parser.add_argument("--steps", type=int, default=150, help="Adam steps per cell")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size")
    parser.add_argument("--probe-size", type=int, default=32, help="probe batch size")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (these sizes gain nothing from more)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    probe_batch = _batch(args.probe_size, np.random.default_rng(args.seed + 1), args.seq_len)
    results = {cell: measure(cell, args, probe_batch) for cell in CELLS}
    plot(results, args.steps, args.out)
    csv_path = args.out.with_suffix(".csv")
    write_csv(results, csv_path)
    for cell, by_stage in results.items():
        ratios = ", ".join(f"{stage} {res.first_over_last():.3g}" for stage, res in by_stage.items())
        print(f"{cell:5s} ||dL/dh_0|| / ||dL/dh_T-1||: {ratios}")
    print(f"wrote {args.out} and {csv_path} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

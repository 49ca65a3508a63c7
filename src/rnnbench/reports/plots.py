"""The figures of a sweep report, as PNG files that are byte-identical for the same runs.

Matplotlib's Agg backend with its default style (not the user's matplotlibrc), no 'Software' or date metadata, and
fixed sizes and dpi, so regenerating a report does not churn the committed images.
Sweeps run with `diagnostics.enabled=true` also get gradient-vs-lag and forget-gate figures (curves: `probes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from rnnbench.reports.analysis import Analysis, VariantStats, variant_order
from rnnbench.reports.probes import gate_curves, has_probes, lag_curves

DPI = 100
PANEL = (4.2, 3.2)


def _save(fig: plt.Figure, path: Path) -> None:
    """Write a PNG without metadata that would differ between runs or machines."""
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def _panels(n: int, draw: Callable[[plt.Axes, int], None], path: Path, title: str) -> None:
    """One row of `n` panels, each drawn by `draw(ax, i)`, saved to `path`."""
    with plt.style.context("default"):
        fig, axes = plt.subplots(1, n, figsize=(PANEL[0] * n, PANEL[1]), squeeze=False)
        for i, ax in enumerate(axes[0]):
            draw(ax, i)
            ax.grid(True, alpha=0.3)
        fig.suptitle(title, fontsize=10)
        _save(fig, path)


def _tasks(analysis: Analysis) -> list[str]:
    return sorted({v.task for v in analysis.variants})


def _variants(analysis: Analysis) -> list[str]:
    return sorted({v.variant for v in analysis.variants}, key=lambda v: variant_order(analysis.claim, v))


def _by_task(analysis: Analysis, task: str) -> list[VariantStats]:
    return [v for v in analysis.variants if v.task == task]


def factor_plot(analysis: Analysis, path: Path) -> None:
    """The primary test metric against the swept factor (or per variant), mean with its 95% CI, one panel per task."""
    tasks, variants, x_name = _tasks(analysis), _variants(analysis), analysis.claim.x

    def draw(ax: plt.Axes, i: int) -> None:
        stats = _by_task(analysis, tasks[i])
        for j, name in enumerate(variants):
            own = [v for v in stats if v.variant == name and v.summary.n]
            if not own:
                continue
            means = np.array([v.summary.mean for v in own])
            low = np.array([v.summary.ci_low if v.summary.n > 1 else v.summary.mean for v in own])
            high = np.array([v.summary.ci_high if v.summary.n > 1 else v.summary.mean for v in own])
            if x_name:
                xs = np.array([v.x for v in own])
                ax.plot(xs, means, marker="o", label=name, color=f"C{j}")
                ax.fill_between(xs, low, high, alpha=0.2, color=f"C{j}")
            else:
                ax.errorbar([j], means, yerr=[means - low, high - means], fmt="o", capsize=4, color=f"C{j}", label=name)
        if stats and stats[0].baseline is not None:
            ax.axhline(stats[0].baseline, color="grey", linestyle=":", label="baseline")
        ax.set_title(tasks[i])
        ax.set_xlabel(x_name or "variant")
        if not x_name:
            ax.set_xticks(range(len(variants)), variants, rotation=20)
        ax.set_ylabel(f"test {stats[0].metric}" if stats else "")
        ax.legend(fontsize=7)

    _panels(len(tasks), draw, path, f"{analysis.experiment}: test metric, mean and 95% CI over seeds")


def curves_plot(analysis: Analysis, path: Path) -> None:
    """Validation metric per epoch, mean ± std over seeds per variant; at the largest factor value for each task."""
    tasks, variants = _tasks(analysis), _variants(analysis)

    def draw(ax: plt.Axes, i: int) -> None:
        rows = [r for r in analysis.rows if r.task == tasks[i] and r.curve]
        top = max((r.x for r in rows if r.x is not None), default=None)
        for j, name in enumerate(variants):
            curves = [dict(r.curve) for r in rows if r.variant == name and r.x == top]
            epochs = sorted({e for c in curves for e in c})
            if not epochs:
                continue
            values = [[c[e] for c in curves if e in c and math.isfinite(c[e])] for e in epochs]
            means = np.array([np.mean(v) if v else np.nan for v in values])
            spread = np.array([np.std(v) if v else np.nan for v in values])
            ax.plot(epochs, means, marker=".", label=name, color=f"C{j}")
            ax.fill_between(epochs, means - spread, means + spread, alpha=0.2, color=f"C{j}")
        at = "" if top is None else f" ({analysis.claim.x}={top:g})"
        ax.set_title(tasks[i] + at)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"val {rows[0].metric}" if rows else "")
        ax.legend(fontsize=7)

    _panels(len(tasks), draw, path, f"{analysis.experiment}: learning curves, mean ± std over seeds")


def cost_plot(analysis: Analysis, path: Path) -> None:
    """Parameters and seconds per training epoch per variant, averaged over all of the variant's runs."""
    variants = _variants(analysis)
    measures = (("num_parameters", "parameters"), ("epoch_time_s", "seconds per epoch"))

    def draw(ax: plt.Axes, i: int) -> None:
        field, label = measures[i]
        values = [[getattr(v, field) for v in analysis.variants if v.variant == name] for name in variants]
        heights = [float(np.nanmean(v)) if v and not all(math.isnan(x) for x in v) else 0.0 for v in values]
        ax.bar(range(len(variants)), heights, color=[f"C{j}" for j in range(len(variants))])
        ax.set_xticks(range(len(variants)), variants, rotation=20)
        ax.set_ylabel(label)
        ax.set_title(f"{label} (mean over tasks)")

    _panels(len(measures), draw, path, f"{analysis.experiment}: cost per variant")


LINESTYLES = ("-", "--", "-.", ":")


def _factor_label(analysis: Analysis, x: float | None) -> str:
    """' seq_len=200' for a swept-factor value, '' without one."""
    return "" if x is None or not analysis.claim.x else f" {analysis.claim.x.rsplit('.', 1)[-1]}={x:g}"


def grad_lag_plot(analysis: Analysis, path: Path) -> None:
    """||dL/dh|| against the lag on a log axis, layer 0, last probe, mean over seeds; colour = variant,
    line style = swept-factor value; one panel per task."""
    curves = lag_curves(analysis.rows)
    tasks, variants = sorted({c.task for c in curves}), _variants(analysis)
    xs = sorted({c.x for c in curves if c.x is not None})

    def draw(ax: plt.Axes, i: int) -> None:
        for c in (c for c in curves if c.task == tasks[i]):
            style = LINESTYLES[xs.index(c.x) % len(LINESTYLES)] if c.x is not None else "-"
            colour = f"C{variants.index(c.variant)}"
            label = c.variant + _factor_label(analysis, c.x)
            ax.semilogy(range(len(c.grad_h)), c.grad_h, linestyle=style, color=colour, label=label)
        ax.set_title(tasks[i])
        ax.set_xlabel("lag T-1-t (steps back from the loss)")
        ax.set_ylabel("||dL/dh_t||, layer 0")
        ax.legend(fontsize=6, ncol=2 if len(xs) > 1 else 1)

    title = f"{analysis.experiment}: gradient vs lag, last probe, mean over seeds"
    _panels(len(tasks), draw, path, title)


def forget_gate_plot(analysis: Analysis, path: Path) -> None:
    """Forget-gate mean (GRU: update gate) of layer 0 against the training step, mean over seeds, one panel per task;
    at the largest factor value for each task."""
    curves = gate_curves(analysis.rows)
    tasks, variants = sorted({c.task for c in curves}), _variants(analysis)

    def draw(ax: plt.Axes, i: int) -> None:
        own = [c for c in curves if c.task == tasks[i]]
        top = max((c.x for c in own if c.x is not None), default=None)
        for c in (c for c in own if c.x == top):
            gate = "" if c.gate == "forget" else f" ({c.gate} gate)"
            ax.plot(c.steps, c.mean, marker=".", color=f"C{variants.index(c.variant)}", label=c.variant + gate)
        ax.set_title(tasks[i] + _factor_label(analysis, top))
        ax.set_xlabel("training step")
        ax.set_ylabel("forget-gate mean, layer 0")
        ax.legend(fontsize=7)

    _panels(len(tasks), draw, path, f"{analysis.experiment}: forget gate over training, mean over seeds")


def _always(analysis: Analysis) -> bool:
    return True


def _probed(analysis: Analysis) -> bool:
    return has_probes(analysis.rows)


def _gated(analysis: Analysis) -> bool:
    return bool(gate_curves(analysis.rows))


Plot = Callable[[Analysis, Path], None]
PLOTS: dict[str, tuple[Plot, Callable[[Analysis], bool]]] = {  # file name: (draw it, whether this sweep gets it)
    "factor.png": (factor_plot, _always),
    "curves.png": (curves_plot, _always),
    "cost.png": (cost_plot, _always),
    "grad_vs_lag.png": (grad_lag_plot, _probed),  # runs with diagnostics.enabled=true only
    "forget_gate.png": (forget_gate_plot, _gated),  # ... and a gated cell
}


def write_plots(analysis: Analysis, out: Path) -> list[str]:
    """Write every figure this sweep gets into `out`; returns their file names."""
    names = [name for name, (_, applies) in PLOTS.items() if applies(analysis)]
    for name in names:
        PLOTS[name][0](analysis, out / name)
    return names

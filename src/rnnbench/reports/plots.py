"""The figures of a sweep report, as PNG files that are byte-identical for the same runs.

Matplotlib's Agg backend with its default style (not the user's matplotlibrc), no 'Software' or date metadata, and
fixed sizes and dpi, so regenerating a report does not churn the committed images.
Sweeps run with `diagnostics.enabled=true` also get gradient-vs-lag and forget-gate figures (curves: `probes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from rnnbench.reports.aggregate import TAUS
from rnnbench.reports.analysis import Analysis, VariantStats, variant_order
from rnnbench.reports.cost import one_implementation
from rnnbench.reports.probes import gate_curves, has_probes, lag_curves
from rnnbench.reports.stats import fraction_solved

DPI = 100
PANEL = (4.2, 3.2)
COLUMNS = 4  # panels per row of a figure


def _save(fig: plt.Figure, path: Path) -> None:
    """Write a PNG without metadata that would differ between runs or machines."""
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def _panels(n: int, draw: Callable[[plt.Axes, int], None], path: Path, title: str) -> None:
    """`n` panels, up to COLUMNS a row, each drawn by `draw(ax, i)`, saved to `path`."""
    cols, lines = min(n, COLUMNS), math.ceil(n / COLUMNS)
    with plt.style.context("default"):
        fig, axes = plt.subplots(lines, cols, figsize=(PANEL[0] * cols, PANEL[1] * lines), squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i >= n:
                ax.set_visible(False)
                continue
            draw(ax, i)
            ax.grid(True, alpha=0.3)
        fig.suptitle(title, fontsize=10)
        _save(fig, path)


def _tasks(analysis: Analysis) -> list[str]:
    return sorted({v.task for v in analysis.variants})


def _variants(analysis: Analysis) -> list[str]:
    return sorted({v.variant for v in analysis.variants}, key=lambda v: variant_order(analysis.study, v))


def _by_task(analysis: Analysis, task: str) -> list[VariantStats]:
    return [v for v in analysis.variants if v.task == task]


def _panel_title(analysis: Analysis, task: str, setting: str) -> str:
    return f"{task} [{setting}]" if setting else task


def _places(analysis: Analysis) -> list[tuple[str, str]]:
    """(task, setting) pairs, one panel each."""
    return sorted({(v.task, v.setting) for v in analysis.variants})


def factor_plot(analysis: Analysis, path: Path) -> None:
    """The primary test metric of every finished seed (dots) and the median per variant (line or bar), against the
    swept factor or per variant, one panel per task; failed and diverged runs are counted in the legend."""
    places, variants, x_name = _places(analysis), _variants(analysis), analysis.study.factor

    def draw(ax: plt.Axes, i: int) -> None:
        stats = [v for v in analysis.variants if (v.task, v.setting) == places[i]]
        for j, name in enumerate(variants):
            own = [v for v in stats if v.variant == name]
            if not own:
                continue
            lost = sum(v.runs - len(v.values) for v in own)
            label = name + (f" ({lost} without a value)" if lost else "")
            offset = (j - (len(variants) - 1) / 2) * 0.08
            positions = [v.x if x_name else j for v in own]
            for pos, v in zip(positions, own, strict=True):
                at = pos * (1 + offset / 4) if x_name else pos + offset
                ax.scatter([at] * len(v.values), v.values, s=14, color=f"C{j}", alpha=0.7, zorder=3)
            medians = [float(np.median(v.values)) if v.values else np.nan for v in own]
            if x_name:
                ax.plot(positions, medians, marker="_", label=label, color=f"C{j}")
            else:
                ax.scatter(positions, medians, marker="_", s=300, color=f"C{j}", label=label)
        if stats and stats[0].baseline is not None:
            ax.axhline(stats[0].baseline, color="grey", linestyle=":", label="baseline")
        ax.set_title(_panel_title(analysis, *places[i]))
        ax.set_xlabel(x_name or "variant")
        # a log axis needs a point on it: a group whose runs are all still running has none (matplotlib refuses)
        if x_name and any(v.values for v in stats) and all(v.x and v.x > 0 for v in stats):
            ax.set_xscale("log")
        if not x_name:
            ax.set_xticks(range(len(variants)), variants, rotation=20)
        ax.set_ylabel(f"test {stats[0].metric}" if stats else "")
        ax.legend(fontsize=7)

    _panels(len(places), draw, path, f"{analysis.experiment}: test metric, each seed (dots) and the median")


def median_curve(curves: list[dict[int, float]], higher_is_better: bool) -> tuple[list[int], np.ndarray]:
    """The median of every run at every step any run reached.

    Why not the median of the values present at each step: runs leave the plot early, a solved run stopped by
    `stop_on_solve`, a diverged or failed one, and the median of those still going is then the median of the
    unsolved (or of the survivors), drifting away from what the variant does. So each run holds its last value to
    the end (a solved run stays solved), and a non-finite value (diverged) counts as the worst possible one."""
    worst = -math.inf if higher_is_better else math.inf
    steps = sorted({e for c in curves for e in c})
    held = []
    for c in curves:
        last, row = np.nan, []
        for e in steps:
            if e in c:
                last = c[e] if math.isfinite(c[e]) else worst
            row.append(last)
        held.append(row)
    table = np.array(held)  # (runs, steps); NaN before a run's first check
    medians = np.array([np.median(col[~np.isnan(col)]) for col in table.T])
    return steps, medians


def curves_plot(analysis: Analysis, path: Path) -> None:
    """Validation metric against the optimiser step, one thin line per seed and the median per variant (runs that
    ended early held at their last value: `median_curve`); at the largest factor value for each task."""
    places, variants = _places(analysis), _variants(analysis)

    def draw(ax: plt.Axes, i: int) -> None:
        rows = [r for r in analysis.eval_rows if (r.task, _setting(analysis, r)) == places[i] and r.curve]
        top = max((r.x for r in rows if r.x is not None), default=None)
        for j, name in enumerate(variants):
            curves = [dict(r.curve) for r in rows if r.variant == name and r.x == top]
            for c in curves:
                ax.plot(list(c), list(c.values()), color=f"C{j}", alpha=0.35, linewidth=0.8)
            if not curves:
                continue
            higher = next(r.higher_is_better for r in rows if r.variant == name)
            steps, medians = median_curve(curves, higher)
            ax.plot(steps, medians, label=name, color=f"C{j}", linewidth=1.8)
        at = "" if top is None else f" ({analysis.study.factor}={top:g})"
        ax.set_title(_panel_title(analysis, *places[i]) + at)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(f"val {rows[0].metric}" if rows else "")
        ax.legend(fontsize=7)

    _panels(len(places), draw, path, f"{analysis.experiment}: learning curves, each seed and the median")


def _setting(analysis: Analysis, row: object) -> str:
    """The setting of a row's cell."""
    for v in analysis.variants:
        if any(r is row for r in v.rows):
            return v.setting
    return ""


def _bench_times(analysis: Analysis) -> dict[str, dict[str, float]]:
    """Per shape, each variant's train-step time / the reference's from the bench, on the custom path (the one
    implementation every cell has), at equal hidden size; the reference itself is 1."""
    if analysis.cost is None:
        return {}
    # one architecture per variant, the same one in every process (a frozenset's order follows string hashing)
    cell_of = {v: min(found, key=astuple) for v, found in analysis.archs.items() if found}
    times: dict[str, dict[str, float]] = {}
    for r in analysis.cost.rows:
        if (r["mode"], r["sizing"], r["impl"]) != ("train", "equal_hidden", "custom"):
            continue
        for variant, arch in cell_of.items():
            by_cell = r["kind"] == "cell" and (arch.cell, arch.direction) == (r["numerator"], r["direction"])
            by_direction = r["kind"] == "direction" and (arch.cell, arch.direction) == (r["cell"], "bi")
            if by_cell or by_direction:
                times.setdefault(r["shape"], {analysis.study.reference or "": 1.0})[variant] = r["time"]
    return times


def cost_plot(analysis: Analysis, path: Path) -> None:
    """Parameters per variant (mean over tasks); time as seconds per epoch where every variant ran on one
    implementation, else as the bench's train-step ratio on one implementation (reports/cost.py says why)."""
    variants = _variants(analysis)
    same = one_implementation(analysis.archs)
    bench = {} if same else _bench_times(analysis)
    panels = 2 if same or bench else 1

    def bars(ax: plt.Axes, values: list[list[float]], label: str) -> None:
        heights = [float(np.nanmean(v)) if v and not all(math.isnan(x) for x in v) else 0.0 for v in values]
        ax.bar(range(len(variants)), heights, color=[f"C{j}" for j in range(len(variants))])
        ax.set_xticks(range(len(variants)), variants, rotation=20)
        ax.set_ylabel(label)

    def draw(ax: plt.Axes, i: int) -> None:
        field = "num_parameters" if i == 0 else "epoch_time_s"
        if i == 0 or same:
            label = "parameters" if i == 0 else "seconds per epoch"
            bars(ax, [[getattr(v, field) for v in analysis.variants if v.variant == n] for n in variants], label)
            ax.set_title(f"{label} (mean over tasks)")
            return
        width = 0.8 / len(bench)
        for k, (shape, ratio) in enumerate(sorted(bench.items())):
            xs = [j - 0.4 + width * (k + 0.5) for j in range(len(variants))]
            ax.bar(xs, [ratio.get(n, math.nan) for n in variants], width, label=shape, color=f"C{k}")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(variants)), variants, rotation=20)
        ax.set_ylabel(f"train step time / {analysis.study.reference}'s")
        ax.set_title("rnnbench-bench, custom path, equal hidden size", fontsize=8)
        ax.legend(fontsize=7, title="BxTxIxH", title_fontsize=7)

    _panels(panels, draw, path, f"{analysis.experiment}: cost per variant")


LINESTYLES = ("-", "--", "-.", ":")


def _factor_label(analysis: Analysis, x: float | None) -> str:
    """' seq_len=200' for a swept-factor value, '' without one."""
    return "" if x is None or not analysis.study.factor else f" {analysis.study.factor.rsplit('.', 1)[-1]}={x:g}"


def grad_lag_plot(analysis: Analysis, path: Path) -> None:
    """||dL/dh|| against the lag on a log axis, layer 0, last probe, mean over seeds; colour = variant,
    line style = swept-factor value; one panel per task."""
    curves = lag_curves(analysis.eval_rows)
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
    curves = gate_curves(analysis.eval_rows)
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


def solved_plot(analysis: Analysis, path: Path) -> None:
    """Kaplan-Meier fraction of runs solved against the optimiser step (unsolved runs censored at their budget),
    per variant, one panel per group."""
    groups = sorted({(v.task, v.setting, v.x) for v in analysis.variants if v.solved is not None}, key=_group_key)
    variants = _variants(analysis)

    def draw(ax: plt.Axes, i: int) -> None:
        task, setting, x = groups[i]
        for j, name in enumerate(variants):
            own = [v for v in analysis.variants if (v.task, v.setting, v.x, v.variant) == (task, setting, x, name)]
            if not own:
                continue
            steps = [r.steps_to_solve if r.solved and r.status == "finished" else None for r in own[0].rows]
            top = max([r.max_steps or 0 for r in own[0].rows] + [s or 0 for s in steps] + [1])
            budgets = [float(r.max_steps or top) for r in own[0].rows]
            at, frac = fraction_solved(steps, budgets)
            at, frac = np.append(at, max(budgets)), np.append(frac, frac[-1])
            ax.step(at, frac, where="post", color=f"C{j}", label=f"{name} ({own[0].n_solved}/{own[0].runs})")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(_panel_title(analysis, task, setting) + _factor_label(analysis, x))
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("fraction solved (Kaplan-Meier)")
        ax.legend(fontsize=7)

    _panels(len(groups), draw, path, f"{analysis.experiment}: fraction of runs solved vs steps")


def _group_key(group: tuple) -> tuple:
    return group[0], group[1], -math.inf if group[2] is None else group[2]


def tuning_plot(analysis: Analysis, path: Path) -> None:
    """Each variant's validation metric against the tuned value: every tuning seed (dots), the median (line), the
    chosen value (star; a ring around it when it is at the edge of the grid)."""
    groups = sorted({(s.task, s.setting, s.x) for s in analysis.tuning}, key=_group_key)
    variants = _variants(analysis)
    key = analysis.study.tuning.key if analysis.study.tuning else "tuned value"

    def draw(ax: plt.Axes, i: int) -> None:
        for s in (s for s in analysis.tuning if (s.task, s.setting, s.x) == groups[i]):
            j = variants.index(s.variant) if s.variant in variants else len(variants)
            for value, scores in zip(s.values, s.scores, strict=True):
                ax.scatter([value] * len(scores), scores, s=12, color=f"C{j}", alpha=0.6)
            medians = [s.median(k) for k in range(len(s.values))]
            ax.plot(s.values, medians, color=f"C{j}", label=s.variant)
            if s.chosen is not None and s.chosen in s.values:
                chosen = medians[s.values.index(s.chosen)]
                ax.scatter([s.chosen], [chosen], marker="*", s=120, color=f"C{j}", zorder=4)
                if s.at_edge:
                    ax.scatter([s.chosen], [chosen], marker="o", s=260, facecolors="none", edgecolors="red")
        ax.set_xscale("log")
        ax.set_title(_panel_title(analysis, *groups[i][:2]) + _factor_label(analysis, groups[i][2]))
        ax.set_xlabel(key)
        ax.set_ylabel("validation metric (tuning seeds)")
        ax.legend(fontsize=7)

    _panels(len(groups), draw, path, f"{analysis.experiment}: sensitivity to {key} (red ring: choice at the edge)")


def profile_plot(analysis: Analysis, path: Path) -> None:
    """Performance profiles: the fraction of runs (each group weighted equally) whose normalised score exceeds tau."""

    def draw(ax: plt.Axes, i: int) -> None:
        variants = _variants(analysis)
        for a in analysis.aggregates:
            ax.plot(TAUS, a.profile, color=f"C{variants.index(a.variant)}", label=f"{a.variant} ({a.strata} groups)")
        ax.set_xlabel("normalised score tau (0 = trivial baseline, 1 = perfect)")
        ax.set_ylabel("fraction of runs with score > tau")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)

    _panels(1, draw, path, f"{analysis.experiment}: performance profile over groups")


def _evaluated(analysis: Analysis) -> bool:
    """Whether any evaluation run finished: a study whose tuning stage alone has run has no test metric to draw."""
    return bool(analysis.variants)


def _probed(analysis: Analysis) -> bool:
    return has_probes(analysis.eval_rows)


def _gated(analysis: Analysis) -> bool:
    return bool(gate_curves(analysis.eval_rows))


def _solvable(analysis: Analysis) -> bool:
    return any(v.solved is not None for v in analysis.variants)


def _tuned(analysis: Analysis) -> bool:
    return bool(analysis.tuning)


def _aggregated(analysis: Analysis) -> bool:
    return bool(analysis.aggregates)


Plot = Callable[[Analysis, Path], None]
PLOTS: dict[str, tuple[Plot, Callable[[Analysis], bool]]] = {  # file name: (draw it, whether this sweep gets it)
    "factor.png": (factor_plot, _evaluated),
    "curves.png": (curves_plot, _evaluated),
    "cost.png": (cost_plot, _evaluated),
    "grad_vs_lag.png": (grad_lag_plot, _probed),  # runs with diagnostics.enabled=true only
    "forget_gate.png": (forget_gate_plot, _gated),  # ... and a gated cell
    "solved.png": (solved_plot, _solvable),  # tasks with a solve criterion
    "tuning.png": (tuning_plot, _tuned),  # studies with tuning records
    "profile.png": (profile_plot, _aggregated),
}


def write_plots(analysis: Analysis, out: Path) -> list[str]:
    """Write every figure this sweep gets into `out`; returns their file names."""
    names = [name for name, (_, applies) in PLOTS.items() if applies(analysis)]
    for name in names:
        PLOTS[name][0](analysis, out / name)
    return names

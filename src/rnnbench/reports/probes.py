"""The curves the diagnostics plots draw, computed from the rows' probes (pure: no plotting here).

Gradient against lag: each finished run's last probe, layer 0, ||dL/dh_t|| re-indexed by the lag T-1-t (steps back
from the loss), averaged over seeds per (task, factor value, variant). Keep gate over training: the LSTM family's
forget-gate mean (GRU: the update gate z, its analogue, h' = (1-z) n + z h) per probe step, averaged over seeds.
Non-finite values are left out of a mean; a lag or step no seed has a finite value for is nan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from rnnbench.reports.rows import OK, Row

KEEP_GATES = ("forget", "update")  # the gate that keeps the old state, by preference; the vanilla RNN has none


@dataclass(frozen=True)
class LagCurve:
    """Mean over seeds of ||dL/dh|| at each lag, from the last probe of each run."""

    task: str
    x: float | None
    variant: str
    grad_h: tuple[float, ...]  # index = lag T-1-t
    runs: int


@dataclass(frozen=True)
class GateCurve:
    """Mean over seeds of the keep gate's mean at each probe step."""

    task: str
    x: float | None
    variant: str
    gate: str  # "forget" or "update"
    steps: tuple[int, ...]
    mean: tuple[float, ...]
    runs: int


def _finite_mean(values: Iterable[float]) -> float:
    """Mean of the finite values, nan when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return math.fsum(finite) / len(finite) if finite else math.nan


def _groups(rows: Iterable[Row]) -> dict[tuple[str, float | None, str], list[Row]]:
    """Finished runs with probes by (task, factor value, variant), in the rows' order."""
    groups: dict[tuple[str, float | None, str], list[Row]] = {}
    for row in rows:
        if row.status == OK and row.probes:
            groups.setdefault((row.task, row.x, row.variant), []).append(row)
    return groups


def has_probes(rows: Iterable[Row]) -> bool:
    """Whether any finished run carries diagnostics probes."""
    return bool(_groups(rows))


def lag_curves(rows: Iterable[Row]) -> list[LagCurve]:
    """One gradient-vs-lag curve per (task, factor value, variant), over the lags every run has."""
    curves = []
    for (task, x, variant), group in _groups(rows).items():
        by_lag = [r.probes[-1].grad_h[::-1] for r in group]
        lags = min(len(g) for g in by_lag)
        mean = tuple(_finite_mean(g[lag] for g in by_lag) for lag in range(lags))
        curves.append(LagCurve(task, x, variant, mean, len(group)))
    return curves


def keep_gate(probe_gates: tuple[tuple[str, float], ...]) -> tuple[str, float] | None:
    """The (name, mean) of the probe's keep gate: forget for the LSTM family, update for the GRU, else None."""
    means = dict(probe_gates)
    return next(((g, means[g]) for g in KEEP_GATES if g in means), None)


def gate_curves(rows: Iterable[Row]) -> list[GateCurve]:
    """One keep-gate-over-training curve per (task, factor value, variant) whose runs have a keep gate."""
    curves = []
    for (task, x, variant), group in _groups(rows).items():
        by_step: dict[int, list[float]] = {}
        names = set()
        for row in group:
            for probe in row.probes:
                gate = keep_gate(probe.gate_means)
                if gate is not None:
                    names.add(gate[0])
                    by_step.setdefault(probe.step, []).append(gate[1])
        if not by_step:
            continue
        steps = tuple(sorted(by_step))
        mean = tuple(_finite_mean(by_step[s]) for s in steps)
        curves.append(GateCurve(task, x, variant, "/".join(sorted(names)), steps, mean, len(group)))
    return curves

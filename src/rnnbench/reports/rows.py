"""One row per run, the only thing tables, statistics and plots read, whatever the source of the runs.

Both sources (local run.json files and W&B runs) first produce a record shaped like run.json; `to_row` flattens it
here, so the two give the same rows by construction. Every field is derived from parts both sources hold (config,
status, test metrics, baseline, per-epoch history, parameter count), except the diagnostics probes, which only
run.json holds (a W&B-sourced row has none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rnnbench.reports.claims import Claim
from rnnbench.training.train import run_name

OK = "finished"


@dataclass(frozen=True)
class Probe:
    """One diagnostics probe of a run, layer 0: ||dL/dh_t|| over t (forward direction) and the gate means."""

    step: int
    grad_h: tuple[float, ...]  # index t = 0 .. T-1; the loss is read at t = T-1
    gate_means: tuple[tuple[str, float], ...]  # ("forget", 0.73), ...; empty for the vanilla RNN


@dataclass(frozen=True)
class Row:
    """One run as the report sees it; `value` is the primary test metric, None unless the run finished."""

    experiment: str
    task: str
    x: float | None
    variant: str
    seed: int
    status: str
    metric: str
    higher_is_better: bool
    value: float | None
    baseline: float | None
    beats_baseline: bool | None
    num_parameters: int | None
    epoch_time_s: float | None
    epochs: int
    run: str
    overrides: tuple[str, ...]
    curve: tuple[tuple[int, float], ...]  # (epoch, validation primary metric)
    probes: tuple[Probe, ...] = ()  # run.json's "diagnostics", in step order; empty when they were off

    @property
    def ok(self) -> bool:
        """Finished with a finite primary metric: the runs statistics are computed over."""
        return self.status == OK and self.value is not None and math.isfinite(self.value)


def lookup(config: dict[str, Any], dotted: str) -> Any:
    """A value from a nested config by its dotted key, None where absent."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _number(value: Any) -> float | None:
    """A float, or None for missing and non-numeric values (run.json stores nan as the string 'nan')."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float:
    """A float, nan for missing and non-numeric values."""
    number = _number(value)
    return math.nan if number is None else number


def probes_of(record: dict[str, Any]) -> tuple[Probe, ...]:
    """Layer 0 of each entry of the record's "diagnostics" list (written with `diagnostics.enabled=true`)."""
    probes = []
    for entry in record.get("diagnostics") or []:
        gates = (entry.get("gates") or [{}])[0]
        means = sorted((k.removesuffix("_mean"), _float(v)) for k, v in gates.items() if k.endswith("_mean"))
        probes.append(Probe(int(entry["step"]), tuple(_float(v) for v in entry["grad_h"][0]), tuple(means)))
    return tuple(probes)


def experiment_of(record: dict[str, Any]) -> str:
    """The sweep a record belongs to (its `experiment`, the W&B group)."""
    return str(record.get("experiment") or record.get("config", {}).get("experiment") or "default")


def to_row(record: dict[str, Any], claim: Claim) -> Row:
    """Flatten a run.json-shaped record into a report row, labelling its variant with the sweep's claim."""
    config = record.get("config", {})
    metric = record.get("primary_metric", "loss")
    history = record.get("history", [])
    times = [h["perf/epoch_time_s"] for h in history if "perf/epoch_time_s" in h]
    x = lookup(config, claim.x) if claim.x else None
    overrides = tuple(record.get("overrides", []))
    return Row(
        experiment=experiment_of(record),
        task=str(record.get("task")),
        x=None if x is None else float(x),
        variant=claim.label(lookup(config, claim.compare)),
        seed=int(record.get("seed", config.get("seed", 0))),
        status=str(record.get("status")),
        metric=metric,
        higher_is_better=bool(record.get("higher_is_better", False)),
        value=_number(record.get("test", {}).get(f"test/{metric}")),
        baseline=_number(record.get("baseline", {}).get(metric)),
        beats_baseline=record.get("beats_baseline"),
        num_parameters=record.get("num_parameters"),
        epoch_time_s=sum(times) / len(times) if times else None,
        epochs=len(times),
        run=run_name(list(overrides)),
        overrides=overrides,
        curve=tuple((int(h["epoch"]), float(h[f"val/{metric}"])) for h in history if f"val/{metric}" in h),
        probes=probes_of(record),
    )

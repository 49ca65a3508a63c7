"""One row per run, the only thing tables, statistics and plots read, whatever the source of the runs.

Both sources (local run.json files and W&B runs) first produce a record shaped like run.json; `to_row` flattens it
here, so the two give the same rows by construction. Every field is derived from parts both sources hold (config,
status, test metrics, baseline, per-epoch history, parameter count), except the diagnostics probes, which only
run.json holds (a W&B-sourced row has none).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from hydra.utils import get_class, instantiate

from rnnbench.study.spec import Study, lookup
from rnnbench.training.train import run_name

OK = "finished"
LOWER_IS_BETTER = ("loss", "mse", "mae", "nll", "bpc", "smape", "ce", "error")  # metric names, other than primary


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
    curve: tuple[tuple[int, float], ...]  # (optimiser step, or epoch where no step is recorded; val primary metric)
    probes: tuple[Probe, ...] = ()  # run.json's "diagnostics", in step order; empty when they were off
    stage: str | None = None  # "tune" (validation only) | "eval" | None (a plain run)
    solved: bool | None = None  # the task's solve criterion held (None: the task has none)
    steps_to_solve: int | None = None  # first optimiser step at which it held; None: censored at max_steps
    max_steps: int | None = None
    val_value: float | None = None  # the primary metric on validation at the tested checkpoint (tuning scores)
    perfect: float | None = None  # the primary metric's best possible value (normalised scores)
    tuned: float | None = None  # the study's tuned key (e.g. the learning rate) in this run's config
    tuning: dict[str, Any] | None = None  # eval runs of a study: {"key", "value", "selection", "at_edge"}
    test: dict[str, Any] = field(default_factory=dict)  # every test metric, without the `test/` prefix
    baselines: dict[str, Any] = field(default_factory=dict)  # every metric's trivial baseline
    config: dict[str, Any] = field(default_factory=dict, compare=False)  # the resolved config (pooling guard)

    @property
    def ok(self) -> bool:
        """Finished with a finite primary metric: the runs statistics are computed over."""
        return self.status == OK and self.value is not None and math.isfinite(self.value)

    @property
    def learned(self) -> bool:
        """Beat the task's trivial baseline, or solved the task: the run learned something."""
        return bool(self.beats_baseline) or bool(self.solved)

    def metric_value(self, metric: str | None) -> float | None:
        """A test metric (the primary one by default), None unless the run finished with a finite value."""
        if metric is None or metric == self.metric:
            return self.value if self.ok else None
        value = _number(self.test.get(metric))
        return value if self.status == OK and value is not None and math.isfinite(value) else None

    def higher_is_better_for(self, metric: str | None) -> bool:
        """The direction of a metric: recorded for the primary one, from its name for the others."""
        if metric is None or metric == self.metric:
            return self.higher_is_better
        return not any(metric == name or metric.endswith(f"_{name}") for name in LOWER_IS_BETTER)

    def baseline_for(self, metric: str | None) -> float | None:
        """The task's trivial baseline of a metric (the primary one by default)."""
        return self.baseline if metric is None or metric == self.metric else _number(self.baselines.get(metric))


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


def _perfect(config: dict[str, Any]) -> float | None:
    """The primary metric's best possible value for records written before run.json held it: the task's, built from
    its config (an instance's value can depend on it: counting's is its longest tested n), else its class's."""
    task = config.get("task") if isinstance(config.get("task"), dict) else None
    return None if task is None else _task_perfect(json.dumps(task, sort_keys=True))


@functools.lru_cache(maxsize=64)
def _task_perfect(task_json: str) -> float | None:
    task = json.loads(task_json)
    try:
        return _number(instantiate(task).perfect)  # builds no data: tasks read it in setup()
    except Exception:  # a task that cannot be built here (its data absent): its class's value
        try:
            return _number(getattr(get_class(str(task["_target_"])), "perfect", None))
        except (KeyError, TypeError, ImportError, ValueError):
            return None


def _val_value(record: dict[str, Any], metric: str) -> float | None:
    """The primary metric of `best_val` (keys `val/<metric>` or `<metric>`)."""
    best = record.get("best_val") or {}
    return _number(best.get(f"val/{metric}", best.get(metric)))


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def to_row(record: dict[str, Any], study: Study) -> Row:
    """Flatten a run.json-shaped record into a report row, its variant and factor told by the sweep's study."""
    config = record.get("config", {})
    metric = record.get("primary_metric", "loss")
    history = record.get("history", [])
    times = [h["perf/epoch_time_s"] for h in history if "perf/epoch_time_s" in h]
    overrides = tuple(record.get("overrides", []))
    tuned = _number(lookup(config, study.tuning.key)) if study.tuning else None
    test = {k.removeprefix("test/"): v for k, v in (record.get("test") or {}).items()}
    return Row(
        experiment=experiment_of(record),
        task=str(record.get("task")),
        x=study.factor_of(config),
        variant=study.variant_of(config),
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
        curve=tuple(
            (int(h.get("step", h["epoch"])), _float(h[f"val/{metric}"])) for h in history if f"val/{metric}" in h
        ),
        probes=probes_of(record),
        stage=record.get("stage", config.get("stage")),
        solved=record.get("solved"),
        steps_to_solve=_int(record.get("steps_to_solve")),
        max_steps=_int(record.get("max_steps", lookup(config, "trainer.max_steps"))),
        val_value=_val_value(record, metric),
        perfect=_number(record["perfect"]) if "perfect" in record else _perfect(config),
        tuned=tuned,
        tuning=record.get("tuning"),
        test=test,
        baselines=dict(record.get("baseline") or {}),
        config=config,
    )

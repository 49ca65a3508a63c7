"""A task's solve criterion: what "solved" means for it (`solve: {metric, op, threshold, source}` in its config).

A task concept (the paper a task follows says when it is solved), so it lives with the tasks; the training side
(`rnnbench.training.solve.SolveTracker`) tests it at every validation check.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
FIELDS = ("metric", "op", "threshold", "source")


@dataclass(frozen=True)
class SolveCriterion:
    """`val/<metric> <op> threshold` on a validation check means solved; `source` says where the criterion is from."""

    metric: str
    op: str
    threshold: float
    source: str

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> SolveCriterion:
        """Validate a config mapping; a ValueError names the key (`solve.<field>`) and what is allowed."""
        if not isinstance(spec, Mapping):
            raise ValueError(f"solve must be a mapping {{{', '.join(FIELDS)}}} or null, got {spec!r}")
        unknown = sorted(set(spec) - set(FIELDS))
        missing = [f for f in FIELDS if f not in spec]
        if unknown or missing:
            wrong = f"unknown key solve.{unknown[0]}" if unknown else f"solve.{missing[0]} is missing"
            raise ValueError(f"{wrong}; solve needs exactly: {', '.join(FIELDS)}")
        metric, op, threshold, source = (spec[f] for f in FIELDS)
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"solve.metric must be the name of a metric the task logs, got {metric!r}")
        if op not in OPS:
            raise ValueError(f"solve.op must be one of {', '.join(OPS)}, got {op!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError(f"solve.threshold must be a number, got {threshold!r}")
        if not isinstance(source, str) or not source.strip():
            raise ValueError(f"solve.source must say where the criterion comes from (a paper), got {source!r}")
        return cls(metric, op, float(threshold), source)

    @property
    def key(self) -> str:
        """The logged validation metric the criterion reads."""
        return f"val/{self.metric}"

    def met(self, value: float) -> bool:
        """True when a validation value satisfies the criterion (never for NaN)."""
        return bool(OPS[self.op](value, self.threshold))

    def as_dict(self) -> dict[str, Any]:
        """The criterion as it goes into run.json."""
        return asdict(self)

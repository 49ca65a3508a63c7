"""A study's declaration, read from the `study:` block of its sweep file: what is compared, and what is claimed.

A sweep file (`sweeps/<name>.yaml`, or one in a user's `--config-dir`) holds its grid in `hydra.sweeper.params`
and, next to it, the study: the config key(s) that tell variants apart, the reference variant, the factor on the
x axis, the tuning protocol, the evaluation seeds and each hypothesis, declared before any run. The block is a
top-level config key, so every run records it in its config (and W&B holds it too); reports read it from the runs
and never from Python, so a user's own sweep gets verdicts with no code change.

Parsing is strict: an unknown key, relation or kind, or a `similar` without a margin, is one `StudyError` line
naming the key (`study.hypotheses[1].relation`) and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RELATIONS = ("better", "worse", "similar", "solves", "faster", "interaction")
MARGIN_KINDS = ("fraction", "absolute")  # of the reference's gain over the task's baseline | in metric units
PER_FACTOR = ("each", "hardest")  # tune at every factor value | once at the largest, the choice reused below it
DEFAULT_LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


class StudyError(ValueError):
    """A malformed study block: one line naming the key and what is allowed."""


@dataclass(frozen=True)
class Hypothesis:
    """One claim about `variant` against the study's reference, on `tasks` (all if empty) within a factor range.

    relation: better / worse (the metric), similar (equivalence within `margin`), solves (a higher solve rate),
    faster (fewer steps to solve), interaction (the variant's gain over the reference is larger at the largest
    factor value than at the smallest)."""

    id: str
    variant: str
    relation: str
    claim: str = ""
    tasks: tuple[str, ...] = ()
    factor_min: float | None = None
    factor_max: float | None = None
    metric: str | None = None  # a test metric name without `test/` (default: the task's primary metric)
    margin: float | None = None  # `similar` only
    margin_kind: str = "fraction"
    literature: str = ""  # what published work found on this claim: the report's front page sets it beside the verdict
    figure: str | None = None  # the plot that shows it (default: solved.png for solves/faster, else factor.png)

    @property
    def figure_name(self) -> str:
        """The plot file of the sweep's report that shows this hypothesis."""
        return self.figure or ("solved.png" if self.relation in ("solves", "faster") else "factor.png")

    def applies(self, task: str, x: float | None) -> bool:
        """Whether a (task, factor value) group is one this hypothesis speaks about."""
        if self.tasks and task not in self.tasks:
            return False
        if self.factor_min is not None and (x is None or x < self.factor_min):
            return False
        return self.factor_max is None or (x is not None and x <= self.factor_max)


@dataclass(frozen=True)
class Tuning:
    """The tuning stage: `key` searched over `grid` on `seeds`, scored on validation only, per variant and task."""

    key: str = "optim.optimizer.lr"
    grid: tuple[float, ...] = DEFAULT_LR_GRID
    seeds: tuple[int, ...] = (1000, 1001)
    per_factor: str = "each"


@dataclass(frozen=True)
class Study:
    """How a sweep's runs are told apart and compared, and what is claimed about them."""

    compare: tuple[str, ...] = ("model.cell",)
    reference: str | None = None
    factor: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    claim: str = ""
    seeds: tuple[int, ...] = ()  # evaluation seeds (disjoint from the tuning seeds)
    tuning: Tuning | None = None
    hypotheses: tuple[Hypothesis, ...] = ()

    def variant_of(self, config: Mapping[str, Any]) -> str:
        """A run's variant label: the compared key(s)' values in its config, '/'-joined, renamed by `labels`."""
        return self.label_of([lookup(config, key) for key in self.compare])

    def label_of(self, values: Sequence[Any]) -> str:
        """The variant label of the compared keys' values (in `compare`'s order)."""
        raw = "/".join(str(value) for value in values)
        return self.labels.get(raw, raw)

    def factor_of(self, config: Mapping[str, Any]) -> float | None:
        """A run's value of the swept factor (None without a factor, or where the run's config lacks it)."""
        value = lookup(config, self.factor) if self.factor else None
        return None if value is None or isinstance(value, bool) else float(value)


def lookup(config: Mapping[str, Any], dotted: str) -> Any:
    """A value from a nested config by its dotted key, None where absent."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _keys(where: str, node: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(node) - set(allowed))
    if unknown:
        raise StudyError(f"unknown key {where}.{unknown[0]}; allowed: {', '.join(allowed)}")


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StudyError(f"{where} must be a mapping, got {value!r}")
    return value


def _str(where: str, value: Any, allowed: Sequence[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise StudyError(f"{where} must be a non-empty string, got {value!r}")
    if allowed is not None and value not in allowed:
        raise StudyError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StudyError(f"{where} must be a number, got {value!r}")
    return float(value)


def _list(where: str, value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise StudyError(f"{where} must be a list, got {value!r}")
    return list(value)


def _ints(where: str, value: Any) -> tuple[int, ...]:
    items = _list(where, value)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise StudyError(f"{where} must be a list of ints, got {value!r}")
    if len(set(items)) != len(items):
        raise StudyError(f"{where} must not repeat a seed, got {value!r}")
    return tuple(items)


def _hypothesis(where: str, node: Any) -> Hypothesis:
    node = _mapping(where, node)
    fields = ("id", "variant", "relation", "claim", "tasks", "factor", "metric", "margin", "margin_kind")
    fields += ("literature", "figure")
    _keys(where, node, fields)
    for required in ("id", "variant", "relation"):
        if required not in node:
            raise StudyError(f"{where}.{required} is missing; a hypothesis needs id, variant and relation")
    relation = _str(f"{where}.relation", node["relation"], RELATIONS)
    factor = _mapping(f"{where}.factor", node.get("factor") or {})
    _keys(f"{where}.factor", factor, ("min", "max"))
    low, high = (None if factor.get(k) is None else _number(f"{where}.factor.{k}", factor[k]) for k in ("min", "max"))
    margin = node.get("margin")
    if relation == "similar":
        if margin is None:
            raise StudyError(f"{where}.margin is missing: a 'similar' hypothesis declares its margin in advance")
        if _number(f"{where}.margin", margin) <= 0:
            raise StudyError(f"{where}.margin must be positive, got {margin!r}")
    elif margin is not None:
        raise StudyError(f"{where}.margin applies to relation 'similar' only, got relation {relation!r}")
    tasks = tuple(_str(f"{where}.tasks", t) for t in _list(f"{where}.tasks", node.get("tasks") or []))
    metric = node.get("metric")
    return Hypothesis(
        id=_str(f"{where}.id", node["id"]),
        variant=str(node["variant"]),
        relation=relation,
        claim=str(node.get("claim") or ""),
        tasks=tasks,
        factor_min=low,
        factor_max=high,
        metric=None if metric is None else _str(f"{where}.metric", metric).removeprefix("test/"),
        margin=None if margin is None else float(margin),
        margin_kind=_str(f"{where}.margin_kind", node.get("margin_kind", "fraction"), MARGIN_KINDS),
        literature=str(node.get("literature") or ""),
        figure=None if node.get("figure") is None else _str(f"{where}.figure", node["figure"]),
    )


def _tuning(node: Any) -> Tuning:
    node = _mapping("study.tuning", node)
    _keys("study.tuning", node, ("key", "grid", "seeds", "per_factor"))
    grid = tuple(_number("study.tuning.grid", v) for v in _list("study.tuning.grid", node.get("grid", DEFAULT_LR_GRID)))
    if len(grid) < 2 or any(v <= 0 for v in grid) or len(set(grid)) != len(grid):
        raise StudyError(f"study.tuning.grid must hold at least two distinct positive values, got {list(grid)}")
    return Tuning(
        key=_str("study.tuning.key", node.get("key", "optim.optimizer.lr")),
        grid=tuple(sorted(grid)),
        seeds=_ints("study.tuning.seeds", node.get("seeds", [1000, 1001])),
        per_factor=_str("study.tuning.per_factor", node.get("per_factor", "each"), PER_FACTOR),
    )


def parse_study(node: Any) -> Study:
    """A `Study` from the `study:` block (a plain mapping, e.g. `OmegaConf.to_container(cfg.study)`)."""
    node = _mapping("study", node)
    allowed = ("compare", "reference", "factor", "labels", "claim", "seeds", "tuning", "hypotheses")
    _keys("study", node, allowed)
    compare = node.get("compare", "model.cell")
    keys = (compare,) if isinstance(compare, str) else tuple(_list("study.compare", compare))
    keys = tuple(_str("study.compare", k) for k in keys)
    if not keys:
        raise StudyError("study.compare must name at least one config key")
    labels = _mapping("study.labels", node.get("labels") or {})
    hypotheses = tuple(_hypothesis(f"study.hypotheses[{i}]", h) for i, h in enumerate(node.get("hypotheses") or []))
    ids = [h.id for h in hypotheses]
    if len(set(ids)) != len(ids):
        raise StudyError(f"study.hypotheses ids must be unique, got {ids}")
    reference = node.get("reference")
    if hypotheses and reference is None:
        raise StudyError("study.reference is missing: hypotheses compare a variant against the reference")
    factor = node.get("factor")
    seeds = _ints("study.seeds", node.get("seeds") or [])
    tuning = None if node.get("tuning") is None else _tuning(node["tuning"])
    if tuning is not None and set(tuning.seeds) & set(seeds):
        raise StudyError(
            f"study.tuning.seeds must be disjoint from study.seeds, both hold {sorted(set(tuning.seeds) & set(seeds))}"
        )
    return Study(
        compare=keys,
        reference=None if reference is None else str(reference),
        factor=None if factor is None else _str("study.factor", factor),
        labels={str(k): str(v) for k, v in labels.items()},
        claim=str(node.get("claim") or ""),
        seeds=seeds,
        tuning=tuning,
        hypotheses=hypotheses,
    )


def check_variants(study: Study, variants: set[str]) -> None:
    """The reference and every hypothesis's variant must be variants the sweep's grid produces."""
    allowed = ", ".join(sorted(variants))
    if study.reference is not None and study.reference not in variants:
        raise StudyError(f"study.reference {study.reference!r} is not a variant of this sweep; allowed: {allowed}")
    for i, h in enumerate(study.hypotheses):
        if h.variant not in variants:
            raise StudyError(
                f"study.hypotheses[{i}].variant {h.variant!r} is not a variant of this sweep; allowed: {allowed}"
            )
        if h.variant == study.reference:
            raise StudyError(
                f"study.hypotheses[{i}].variant is the reference {study.reference!r}; compare another variant"
            )


def eval_stops(study: Study) -> bool:
    """Whether evaluation runs stop at their first solved check: only when every hypothesis reads solves or steps
    (solves, faster). Stopped there, a solved run's test metric sits just past the threshold, so a better, worse,
    similar or interaction claim on the metric would compare runs cut off at the same line; those studies train
    their evaluation runs for the whole budget and test the best checkpoint (tuning always stops on solve)."""
    return all(h.relation in ("solves", "faster") for h in study.hypotheses)

"""The tuning stage's choice is a pure function of the tuning records: known answers for each tie-break, the same
selection for the same records in any order, edges flagged, and incomplete or conflated tuning refused."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from rnnbench.study.selection import find_choice
from rnnbench.study.spec import StudyError, parse_study
from rnnbench.study.tuning import RULE, select

GRID = [1e-3, 3e-3, 1e-2]
BUDGET = 1000


def study(per_factor: str = "each", factor: str | None = None, seeds: list[int] | None = None) -> Any:
    tuning = {"key": "optim.optimizer.lr", "grid": GRID, "seeds": seeds or [100, 101], "per_factor": per_factor}
    return parse_study({"compare": "model.cell", "factor": factor, "seeds": [0, 1, 2], "tuning": tuning})


def run(
    lr: float,
    seed: int,
    steps: int | None = None,
    val: float | None = 0.5,
    cell: str = "lstm",
    task: str = "adding",
    seq_len: int = 100,
    status: str = "finished",
    higher: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A tuning run record as train.py writes it: solved at `steps`, or censored at the budget when None."""
    return {
        "status": status,
        "stage": "tune",
        "task": task,
        "seed": seed,
        "config": {"model": {"cell": cell}, "task": {"seq_len": seq_len}, "optim": {"optimizer": {"lr": lr}}},
        "overrides": [
            f"model={cell}",
            f"task={task}",
            f"task.seq_len={seq_len}",
            f"optim.optimizer.lr={lr}",
            f"seed={seed}",
        ],
        "primary_metric": "mse",
        "higher_is_better": higher,
        "max_steps": BUDGET,
        "solve": {"metric": "mse", "op": "<", "threshold": 0.01},
        "solved": steps is not None,
        "steps_to_solve": steps,
        "best_val": {} if val is None else {"val/mse": val, "step": steps or BUDGET},
        **extra,
    }


def grid_runs(outcomes: dict[float, list[tuple[int | None, float | None]]], **kw: Any) -> list[dict[str, Any]]:
    """Runs for each grid value from (steps, val) per tuning seed."""
    return [run(lr, 100 + i, s, v, **kw) for lr, per_seed in outcomes.items() for i, (s, v) in enumerate(per_seed)]


def choice(records: list[dict[str, Any]], spec: Any = None) -> dict[str, Any]:
    (only,) = select(records, spec or study())["choices"]
    return only


def test_solve_rate_comes_first_even_against_faster_solves() -> None:
    records = grid_runs(
        {1e-3: [(900, 0.009), (900, 0.009)], 3e-3: [(100, 0.009), (None, 0.1)], 1e-2: [(None, 0.2)] * 2}
    )
    best = choice(records)
    assert best["value"] == 1e-3 and best["at_edge"] is True  # the smallest value: at the edge
    scores = {s["value"]: s for s in best["scores"]}
    assert [scores[v]["solve_rate"] for v in GRID] == [1.0, 0.5, 0.0]
    assert scores[3e-3]["median_steps_to_solve"] == (100 + BUDGET) / 2  # the censored run counts as the budget
    assert scores[1e-2]["median_steps_to_solve"] == BUDGET and scores[1e-2]["val_metric"] == pytest.approx(0.2)


def test_median_steps_to_solve_breaks_equal_solve_rates() -> None:
    records = grid_runs({1e-3: [(600, 0.001)] * 2, 3e-3: [(200, 0.009), (400, 0.009)], 1e-2: [(500, 0.0)] * 2})
    best = choice(records)
    assert best["value"] == 3e-3 and best["at_edge"] is False
    assert [s["median_steps_to_solve"] for s in best["scores"]] == [600, 300, 500]


def test_censored_steps_count_as_the_budget_not_as_missing() -> None:
    # Both half solved: 3e-3's solve at 100 with a censored run (median 550) beats 1e-3's at 700 (median 850).
    records = grid_runs({1e-3: [(700, 0.0), (None, 0.1)], 3e-3: [(100, 0.1), (None, 0.3)], 1e-2: [(None, 0.0)] * 2})
    assert choice(records)["value"] == 3e-3


@pytest.mark.parametrize(("higher", "expected"), [(False, 1e-2), (True, 1e-3)])
def test_validation_metric_breaks_the_rest_in_the_tasks_direction(higher: bool, expected: float) -> None:
    records = grid_runs({1e-3: [(None, 0.9)] * 2, 3e-3: [(None, 0.5)] * 2, 1e-2: [(None, 0.1)] * 2}, higher=higher)
    best = choice(records)
    assert best["value"] == expected and best["at_edge"] is True
    assert [s["val_metric"] for s in best["scores"]] == pytest.approx([0.9, 0.5, 0.1])


def test_a_full_tie_goes_to_the_smaller_value() -> None:
    records = grid_runs({1e-3: [(None, 0.2)] * 2, 3e-3: [(300, 0.1), (None, 0.3)], 1e-2: [(300, 0.1), (None, 0.3)]})
    assert choice(records)["value"] == 3e-3


def test_records_without_solve_fields_count_unsolved_and_are_ranked_by_validation() -> None:
    """Before the solve criteria: no `solved`, `steps_to_solve` or `max_steps`; val decides, steps are null."""
    records = grid_runs({1e-3: [(None, 0.3)] * 2, 3e-3: [(None, 0.2)] * 2, 1e-2: [(None, 0.25)] * 2})
    for r in records:
        for key in ("solved", "steps_to_solve", "max_steps", "solve"):
            del r[key]
    best = choice(records)
    assert best["value"] == 3e-3
    assert {s["solve_rate"] for s in best["scores"]} == {0.0}
    assert {s["median_steps_to_solve"] for s in best["scores"]} == {None}


def test_a_diverged_run_counts_as_unsolved_with_the_worst_validation_score() -> None:
    records = grid_runs({1e-3: [(None, 0.3)] * 2, 3e-3: [(None, 0.2)] * 2, 1e-2: [(50, 0.0), (50, 0.0)]})
    records[-1].update(status="diverged", best_val={})  # 1e-2: one solved run, one diverged (no val score)
    records[-2].update(status="diverged")  # a diverged run is never solved, whatever its fields say
    best = choice(records)
    scores = {s["value"]: s for s in best["scores"]}
    assert scores[1e-2]["solve_rate"] == 0.0 and scores[1e-2]["val_metric"] is None  # median of 0.0 and +inf
    assert best["value"] == 3e-3


def test_same_records_in_any_order_give_the_same_selection_file() -> None:
    outcomes = {1e-3: [(800, 0.01), (None, 0.2)], 3e-3: [(400, 0.01), (None, 0.3)], 1e-2: [(None, 0.4)] * 2}
    records = [
        r
        for cell, task, seq_len in itertools.product(["lstm", "gru"], ["adding", "temporal_order"], [50, 100])
        for r in grid_runs(outcomes, cell=cell, task=task, seq_len=seq_len)
    ]
    spec = study(factor="task.seq_len")
    expected = json.dumps(select(records, spec, "s"), sort_keys=True)
    rng = random.Random(0)
    for _ in range(5):
        shuffled = rng.sample(records, len(records))
        assert json.dumps(select(shuffled, spec, "s"), sort_keys=True) == expected
    selection = json.loads(expected)
    assert selection["rule"] == RULE and selection["key"] == "optim.optimizer.lr" and selection["grid"] == GRID
    groups = [(c["variant"], c["task"], c["factor"]) for c in selection["choices"]]
    assert groups == sorted(groups) and len(groups) == 8 and {c["value"] for c in selection["choices"]} == {3e-3}
    assert set(selection["choices"][0]["scores"][0]) == {
        "value",
        "runs",
        "solve_rate",
        "median_steps_to_solve",
        "val_metric",
    }


def test_only_tuning_runs_of_the_grid_and_tuning_seeds_count() -> None:
    records = grid_runs({1e-3: [(None, 0.3)] * 2, 3e-3: [(None, 0.2)] * 2, 1e-2: [(None, 0.25)] * 2})
    noise = [
        run(1e-2, 100, 10, 0.0, stage="eval"),  # an evaluation run: never a tuning result
        run(1e-2, 0, 10, 0.0),  # an evaluation seed
        run(3e-2, 100, 10, 0.0),  # off the grid
        run(1e-2, 100, 10, 0.0, status="failed"),  # no result
        {**records[0]},  # the same job twice (restored and run): counted once
    ]
    assert select(records + noise, study()) == select(records, study())


def test_one_job_is_counted_once_by_the_shared_job_identity() -> None:
    """A restored record written before a config key existed, the same job run with a fault injected, and a
    stale copy: tracking/job_identity.py's rule, as the relaunch applies it."""
    records = grid_runs({1e-3: [(None, 0.3)] * 2, 3e-3: [(None, 0.2)] * 2, 1e-2: [(None, 0.25)] * 2})
    newer = {**records[0], "config": {**records[0]["config"], "stop_on_solve": True}}  # a key older code lacked
    faulted = {**records[1], "overrides": [*records[1]["overrides"], "+fault=raise_at_step"]}
    assert select([*records, newer, faulted], study()) == select(records, study())
    budget = [{**r, "config": {**r["config"], "trainer": {"max_steps": BUDGET}}} for r in records]
    stale = {**budget[0], "config": {**budget[0]["config"], "trainer": {"max_steps": 2 * BUDGET}}}
    with pytest.raises(StudyError, match="repeat a seed with configs that their overrides do not tell apart"):
        select([*budget, stale], study())  # one job at two budgets: not one result


def test_incomplete_tuning_is_refused_naming_the_group_and_value() -> None:
    records = grid_runs({1e-3: [(None, 0.3)] * 2, 3e-3: [(None, 0.2)] * 2, 1e-2: [(None, 0.25)] * 2})
    records[-1]["status"] = "failed"
    with pytest.raises(
        StudyError, match=r"lstm / adding has 1 of 2 finished or diverged runs at optim.optimizer.lr=0.01"
    ):
        select(records, study())


def test_a_key_the_grid_varies_beyond_the_compared_ones_is_a_setting_tuned_on_its_own() -> None:
    """e.g. model.forget_bias=1 vs chrono for the LSTM: each setting gets its own choice, never a pooled one."""
    one = grid_runs({1e-3: [(None, 0.3)] * 2, 3e-3: [(None, 0.2)] * 2, 1e-2: [(None, 0.25)] * 2})
    chrono = grid_runs({1e-3: [(100, 0.0)] * 2, 3e-3: [(None, 0.2)] * 2, 1e-2: [(None, 0.25)] * 2})
    for runs, bias in ((one, "1"), (chrono, "chrono")):
        for r in runs:
            r["overrides"].append(f"model.forget_bias={bias}")
    selection = select(one + chrono, study())
    assert [(c["setting"], c["value"]) for c in selection["choices"]] == [
        ({"model.forget_bias": "1"}, 3e-3),
        ({"model.forget_bias": "chrono"}, 1e-3),
    ]
    job = ("lstm", "adding", None)
    assert find_choice(selection, job, ["model=lstm", "+model.forget_bias=chrono", "seed=0"])["value"] == 1e-3
    assert find_choice(selection, job, ["model.forget_bias=1"])["value"] == 3e-3
    assert find_choice(selection, job, ["model.forget_bias=0"]) is None
    plain = select(one, study())["choices"][0]
    assert plain["setting"] == {} and find_choice(select(one, study()), job, ["seed=3"]) == plain


def test_hardest_tunes_at_the_largest_factor_and_reuses_the_choice_below_it() -> None:
    at_200 = grid_runs({1e-3: [(None, 0.1)] * 2, 3e-3: [(None, 0.3)] * 2, 1e-2: [(None, 0.2)] * 2}, seq_len=200)
    at_50 = grid_runs({1e-3: [(None, 0.9)] * 2, 3e-3: [(None, 0.1)] * 2, 1e-2: [(None, 0.9)] * 2}, seq_len=50)
    selection = select(at_50 + at_200, study("hardest", "task.seq_len"))
    assert [(c["factor"], c["value"]) for c in selection["choices"]] == [(200.0, 1e-3)]
    assert selection["per_factor"] == "hardest"
    for seq_len in (10, 50, 200):
        assert find_choice(selection, ("lstm", "adding", float(seq_len)))["value"] == 1e-3
    assert find_choice(selection, ("lstm", "adding", 400.0)) is None  # never reused above the tuned value
    assert find_choice(selection, ("gru", "adding", 50.0)) is None


def test_each_keeps_one_choice_per_factor_value() -> None:
    at_200 = grid_runs({1e-3: [(None, 0.1)] * 2, 3e-3: [(None, 0.3)] * 2, 1e-2: [(None, 0.2)] * 2}, seq_len=200)
    at_50 = grid_runs({1e-3: [(None, 0.9)] * 2, 3e-3: [(None, 0.1)] * 2, 1e-2: [(None, 0.9)] * 2}, seq_len=50)
    selection = select(at_50 + at_200, study("each", "task.seq_len"))
    assert [(c["factor"], c["value"]) for c in selection["choices"]] == [(50.0, 3e-3), (200.0, 1e-3)]
    assert find_choice(selection, ("lstm", "adding", 50.0))["value"] == 3e-3
    assert find_choice(selection, ("lstm", "adding", 100.0)) is None

"""The hypothesis machinery on cases with known answers: tests by kind, the learned gate, failed runs, Holm,
intervals inside the metric's range, and the pooling guard (issue 13's acceptance cases)."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from report_fakes import study_record
from rnnbench.reports.analysis import analyse
from rnnbench.reports.findings import (
    INCONCLUSIVE,
    NEITHER,
    NOT_REPRODUCED,
    REFERENCE_FAILED,
    REPRODUCED,
    merge_plans,
)
from rnnbench.reports.groups import PoolingError
from rnnbench.reports.stats import equivalence, mean_ci, min_rank_p, rank_test, rate_ci, seeds_for_equivalence
from rnnbench.reports.sweep_report import late_lines
from rnnbench.reports.tables import findings_table


def study(*hypotheses: dict[str, Any], factor: str | None = None) -> dict[str, Any]:
    return {"compare": "model.cell", "reference": "lstm", "factor": factor, "hypotheses": list(hypotheses)}


def runs(block: dict[str, Any], values: dict[str, list[float | None]], **kwargs: Any) -> list[dict[str, Any]]:
    """One record per (variant, seed); None is a diverged run."""
    return [
        study_record(v, s, x, block, status="finished" if x is not None else "diverged", **kwargs)
        for v, xs in values.items()
        for s, x in enumerate(xs)
    ]


def only(records: list[dict[str, Any]]):
    analysis = analyse("study", records)
    return analysis, analysis.results, analysis.findings


SIMILAR = {"id": "h", "variant": "gru", "relation": "similar", "margin": 0.1}


def test_similar_is_reproduced_for_a_tiny_significant_difference_between_two_solvers() -> None:
    # reports/cell, adding: GRU vs LSTM MSE differ by 0.00096 (Welch p = 0.012), both far below the 1/6 baseline
    lstm, gru = [0.001306, 0.000951, 0.00104], [0.0001335, 0.0001479, 0.0001382]
    assert scipy_stats.ttest_ind(gru, lstm, equal_var=False).pvalue < 0.05
    as_acc = {"lstm": [1 - v for v in lstm], "gru": [1 - v for v in gru]}  # same differences, higher is better
    _, (result,), (found,) = only(runs(study(SIMILAR), as_acc, baseline=1 - 1 / 6))
    assert result.tested and result.towards_claim and result.verdict == REPRODUCED
    assert found.verdict == REPRODUCED
    margin = 0.1 * (sum(as_acc["lstm"]) / 3 - (1 - 1 / 6))
    e = equivalence(as_acc["gru"], as_acc["lstm"], margin)
    assert -margin < e.low < e.high < margin  # the 90 % CI lies inside the margin


def test_a_large_effect_that_is_not_significant_is_not_called_similar() -> None:
    # reports/peephole, tagging: Hedges' g = -1.6 and Welch p = 0.068 at n = 3 was "similar reproduced"
    lstm, peephole = [0.5283, 0.5313, 0.5315], [0.5238, 0.5279, 0.5272]
    assert scipy_stats.ttest_ind(peephole, lstm, equal_var=False).pvalue == pytest.approx(0.07, abs=0.003)
    hypothesis = {**SIMILAR, "variant": "peephole_lstm", "margin": 0.005, "margin_kind": "absolute"}
    _, (result,), (found,) = only(runs(study(hypothesis), {"lstm": lstm, "peephole_lstm": peephole}, baseline=0.28))
    assert result.verdict == INCONCLUSIVE and found.verdict != REPRODUCED  # the 90 % CI crosses -0.005
    assert "seeds per variant" in result.to_decide and "width" in result.estimate
    # the CI lies wholly outside a margin of 0.0005: a difference larger than the margin, "not reproduced"
    tight = {**hypothesis, "margin": 0.0005}
    _, (result,), _ = only(runs(study(tight), {"lstm": lstm, "peephole_lstm": peephole}, baseline=0.28))
    assert result.verdict == NOT_REPRODUCED


def test_zero_variance_decisive_result_is_reproduced() -> None:
    better = {"id": "h", "variant": "gru", "relation": "better"}
    _, (result,), (found,) = only(runs(study(better), {"lstm": [0.25] * 5, "gru": [1.0] * 5}, baseline=0.0))
    assert result.p == pytest.approx(1 / 252) == pytest.approx(min_rank_p(5, 5))  # exact: 1 / C(10, 5)
    assert result.verdict == REPRODUCED and found.verdict == REPRODUCED
    assert "P(gru better) = 1 [1, 1]" in result.estimate


def test_both_at_chance_is_neither_learned_even_when_significant() -> None:
    worse = {"id": "h", "variant": "gru", "relation": "better"}
    values = {"lstm": [0.24, 0.245, 0.24, 0.245, 0.24], "gru": [0.26, 0.27, 0.26, 0.27, 0.265]}
    assert rank_test(values["gru"], values["lstm"], True).p_better < 0.05
    _, (result,), (found,) = only(runs(study(worse), values, max_steps=4000))
    assert (result.verdict, result.tested, found.verdict) == (NEITHER, False, NEITHER)
    # either variant learning would test a "better" claim, so the budget asked for is one at which either learns,
    # beyond the steps these runs had
    assert result.to_decide.startswith("a budget beyond the 4,000 steps run at which either learns (lstm 0/5, gru ")
    assert found.to_decide.startswith(  # the hypothesis's plan names the group each count is from
        "a budget beyond the 4,000 steps run at which either learns (temporal_order: lstm 0/5"
    )
    # a "better" claim is tested when only the variant learned: the reference failing is the effect it predicts
    values["gru"] = [0.9, 0.91, 0.92, 0.93, 0.94]
    _, (result,), (found,) = only(runs(study(worse), values))
    assert (result.tested, result.verdict, found.verdict) == (True, REPRODUCED, REPRODUCED)
    # and a "worse" or "similar" claim is contradicted by it (seq_len_copy: the GRU learned, the LSTM did not)
    for relation in ("worse", "similar"):
        claim = {"id": "h", "variant": "gru", "relation": relation} | ({"margin": 0.1} if relation == "similar" else {})
        _, (result,), (found,) = only(runs(study(claim), values))
        assert (result.tested, result.verdict, found.verdict) == (True, NOT_REPRODUCED, NOT_REPRODUCED), relation


def test_an_interaction_needs_the_reference_to_have_learned() -> None:
    # its gains are the variant's distance from the reference at each factor value: from a reference at chance
    # they measure the reference's failure as much as the variant's gain
    block = study({"id": "h", "variant": "gru", "relation": "interaction"}, factor="task.seq_len")
    short = runs(block, {"lstm": [0.24, 0.25, 0.24, 0.25, 0.24], "gru": [0.6] * 5}, seq_len=10)
    long = runs(block, {"lstm": [0.24, 0.25, 0.24, 0.25, 0.24], "gru": [0.9] * 5}, seq_len=100, max_steps=4000)
    _, (result,), (found,) = only(short + long)
    assert (result.tested, result.verdict, found.verdict) == (False, REFERENCE_FAILED, INCONCLUSIVE)
    assert "at which lstm learns (lstm beat its baseline in 0/5 runs)" in result.to_decide


def test_a_diverged_run_is_counted_as_the_worst_value_not_dropped() -> None:
    better = {"id": "h", "variant": "gru", "relation": "better"}
    values = {"lstm": [0.5, 0.52, 0.51, 0.53, 0.54], "gru": [0.9, 0.91, 0.92, 0.93, None]}
    analysis, (result,), _ = only(runs(study(better), values, baseline=0.25))
    assert result.variant.runs == 5 and result.estimate.startswith("P(gru better) = 0.8 ")  # 20 of 25 pairs
    (gru,) = [v for v in analysis.variants if v.variant == "gru"]
    assert (gru.runs, gru.status["diverged"], len(gru.values)) == (5, 1, 4)
    assert result.p == pytest.approx(
        scipy_stats.mannwhitneyu(
            [0.9, 0.91, 0.92, 0.93, -math.inf], values["lstm"], alternative="greater", method="exact"
        ).pvalue
    )


def test_holm_adjustment_equals_statsmodels_over_the_whole_study() -> None:
    hypotheses = [
        {"id": "a", "variant": "gru", "relation": "better"},
        {"id": "b", "variant": "rnn", "relation": "worse"},
        {"id": "c", "variant": "gru", "relation": "similar", "margin": 0.5},
    ]
    values = {"lstm": [0.6, 0.62, 0.64, 0.61], "gru": [0.7, 0.65, 0.9, 0.8], "rnn": [0.4, 0.66, 0.3, 0.35]}
    records = runs(study(*hypotheses), values) + runs(study(*hypotheses), values, task="copy", seq_len=10)
    analysis, results, _ = only(records)
    assert analysis.family == len(results) == 6  # 3 hypotheses x 2 tasks
    expected = multipletests([r.p for r in results], alpha=0.05, method="holm")[1]
    assert [r.p_adj for r in results] == pytest.approx(list(expected), rel=1e-12)
    assert any(r.p_adj > r.p for r in results)


def test_bimodal_three_seed_interval_stays_inside_the_metric_range() -> None:
    # reports/cell, temporal_order: GRU 0.2285, 1, 1 had the t-based CI [-0.36, 1.85]
    ci = mean_ci([0.2285, 1.0, 1.0])
    assert 0.2285 <= ci.low <= ci.estimate <= ci.high <= 1.0
    rate = rate_ci(2, 3)
    assert 0 <= rate.low < rate.high <= 1 and rate.low == pytest.approx(0.0943, abs=1e-4)  # Clopper-Pearson


def test_two_sweep_folders_with_different_seq_len_are_not_pooled() -> None:
    block = study({"id": "h", "variant": "gru", "relation": "better"})
    short = runs(block, {"lstm": [0.5, 0.6, 0.55], "gru": [0.9, 0.8, 0.85]}, seq_len=50)
    long = runs(block, {"lstm": [0.3, 0.35, 0.4], "gru": [0.7, 0.75, 0.6]}, seq_len=100)
    analysis, results, _ = only(short + long)
    assert sorted({v.setting for v in analysis.variants}) == ["task.seq_len=100", "task.seq_len=50"]
    assert all(v.runs == 3 for v in analysis.variants) and len(results) == 2  # one test per seq_len, n = 3 each
    assert analysis.splits == {("eval", "temporal_order"): ["task.seq_len"]}
    with pytest.raises(PoolingError, match=r"have seed 0 .*the same job reported twice"):
        analyse("study", short + short)


def test_runs_of_a_study_that_added_seeds_pool_and_a_changed_hypothesis_stops_the_report() -> None:
    """Blocks that differ only in their evaluation seeds are one study (seeds 0-2, then 3-5 added); another
    difference in the block is a different study, reported apart."""
    block = study({"id": "h", "variant": "gru", "relation": "better"})
    first = runs({**block, "seeds": [0, 1, 2]}, {"lstm": [0.5, 0.6, 0.55], "gru": [0.9, 0.8, 0.85]})
    more = [{**r, "seed": r["seed"] + 3} for r in runs({**block, "seeds": [0, 1, 2, 3, 4, 5]}, {"lstm": [0.5] * 3})]
    for r in more:
        r["config"] = {**r["config"], "seed": r["seed"]}
    analysis, (result,), _ = only(first + more)
    assert analysis.study.seeds == (0, 1, 2, 3, 4, 5) and analysis.splits == {}
    assert (result.reference.runs, result.variant.runs) == (6, 3)
    other = runs({**study(), "reference": "gru"}, {"lstm": [0.5], "gru": [0.9]})
    with pytest.raises(PoolingError, match="different study blocks"):
        analyse("study", first + other)


def test_tuning_and_evaluation_runs_never_pool() -> None:
    block = {**study(), "tuning": {"grid": [1e-3, 1e-2], "seeds": [1000]}}
    evals = runs(block, {"lstm": [0.5, 0.6], "gru": [0.9, 0.8]}, tuning={"value": 1e-2, "at_edge": True})
    tunes = [
        study_record(
            v,
            1000,
            None,
            block,
            stage="tune",
            status="finished",
            best_val={"val/acc": acc},
            **{"config.optim.optimizer.lr": lr, "config.stage": "tune"},
        )
        for v in ("lstm", "gru")
        for lr, acc in ((1e-3, 0.4), (1e-2, 0.7))
    ]
    analysis = analyse("study", evals + tunes)
    assert all(r.stage != "tune" for v in analysis.variants for r in v.rows) and len(analysis.eval_rows) == 4
    curves = {s.variant: s for s in analysis.tuning}
    assert curves["gru"].values == (1e-3, 1e-2) and curves["gru"].scores == ((0.4,), (0.7,))
    assert curves["gru"].chosen == 1e-2 and curves["gru"].at_edge


def test_a_widened_tuning_grid_pools_with_the_first_and_its_curve_shows_every_rate() -> None:
    """A grid widened after a choice at its edge (1e-3, 1e-2, then 1e-4 added for every variant): one study, its
    grid the union; a changed tuning seed list is still another study."""
    first = {**study(), "tuning": {"grid": [1e-3, 1e-2], "seeds": [1000]}}
    widened = {**study(), "tuning": {"grid": [1e-4, 1e-3, 1e-2], "seeds": [1000]}}

    def tune(block: dict[str, Any], lr: float, acc: float) -> list[dict[str, Any]]:
        extra = {"config.optim.optimizer.lr": lr, "config.stage": "tune"}
        return [
            study_record(v, 1000, None, block, stage="tune", status="finished", best_val={"val/acc": acc}, **extra)
            for v in ("lstm", "gru")
        ]

    tunes = tune(first, 1e-3, 0.4) + tune(first, 1e-2, 0.3) + tune(widened, 1e-4, 0.8)
    evals = runs(widened, {"lstm": [0.5, 0.6], "gru": [0.9, 0.8]}, tuning={"value": 1e-4, "at_edge": True})
    analysis = analyse("study", evals + tunes)
    assert analysis.study.tuning.grid == (1e-4, 1e-3, 1e-2)
    curve = {s.variant: s for s in analysis.tuning}["gru"]
    assert curve.values == (1e-4, 1e-3, 1e-2) and curve.scores == ((0.8,), (0.4,), (0.3,)) and curve.chosen == 1e-4
    # evaluated at 1e-3, the first grid's edge, before the widening: inside the widened grid, so not at its edge
    inside = runs(widened, {"lstm": [0.5, 0.6], "gru": [0.9, 0.8]}, tuning={"value": 1e-3, "at_edge": True})
    assert not {s.variant: s for s in analyse("study", inside + tunes).tuning}["gru"].at_edge
    other_seeds = {**study(), "tuning": {"grid": [1e-4], "seeds": [1001]}}
    with pytest.raises(PoolingError, match=r"different study blocks \(evaluation seeds, tuning grid and hypotheses"):
        analyse("study", evals + tune(other_seeds, 1e-4, 0.8))


def test_a_citation_added_to_a_hypothesis_after_some_runs_parts_no_study_and_the_latest_text_is_reported() -> None:
    """seq_len's adding runs predate the hypotheses' `literature`; its temporal_order runs carry it."""
    better = {"id": "h", "variant": "gru", "relation": "better"}
    old = runs(study(better), {"lstm": [0.5, 0.6], "gru": [0.9, 0.8]}, started_at="2026-12-01T10:00:00+0000")
    cited = study({**better, "literature": "Chung et al. (2014)"})
    new = [
        study_record(v, 5, x, cited, started_at="2026-12-03T10:00:00+0000") for v, x in (("lstm", 0.4), ("gru", 0.7))
    ]
    (hypothesis,) = analyse("study", old + new).study.hypotheses
    assert hypothesis.literature == "Chung et al. (2014)"
    (plain,) = analyse("study", old).study.hypotheses
    assert plain.literature == ""


def test_a_hypothesis_declared_after_runs_pools_with_them_and_the_report_says_when() -> None:
    """seq_len_copy's chrono_better_copy: declared after the tuning stage, before any evaluation run; a hypothesis
    declared (or changed) after evaluation runs is reported as not pre-registered."""
    first = {"id": "h", "variant": "gru", "relation": "better"}
    late = {"id": "late", "variant": "gru", "relation": "worse"}
    tunes = [
        study_record(v, 1000, None, study(first), stage="tune", best_val={"val/acc": 0.5}, started_at="2026-12-01")
        for v in ("lstm", "gru")
    ]
    evals = runs(study(first, late), {"lstm": [0.5, 0.6], "gru": [0.9, 0.8]}, started_at="2026-12-02")
    analysis = analyse("study", tunes + evals)
    assert [h.id for h in analysis.study.hypotheses] == ["h", "late"] and analysis.late == {"late": (0, 2)}
    (line,) = late_lines(analysis)
    assert "`late` was declared after 2 tuning run(s) and 0 evaluation run(s)" in line and "before any" in line
    # changed (its relation) after an evaluation run had been recorded: those runs were seen before it was set
    changed = runs(study(first, {**late, "relation": "better"}), {"lstm": [0.5], "gru": [0.9]}, started_at="2026-12-03")
    analysis = analyse("study", tunes + evals[:1] + [{**r, "seed": 7} for r in changed])
    assert analysis.late == {"late": (1, 2)}
    assert "not a pre-registered test" in late_lines(analysis)[0]
    assert late_lines(analyse("study", evals)) == []  # declared from the start: no line


def test_a_hypothesis_on_tasks_the_runs_do_not_cover_is_not_this_sweeps() -> None:
    """seq_len.yaml declares chrono_better_copy for copy memory, which only seq_len_copy runs."""
    elsewhere = {"id": "copy", "variant": "gru", "relation": "better", "tasks": ["copy_memory"]}
    here = {"id": "h", "variant": "gru", "relation": "better"}
    analysis = analyse("study", runs(study(here, elsewhere), {"lstm": [0.5, 0.6], "gru": [0.9, 0.8]}))
    assert [f.hypothesis.id for f in analysis.findings] == ["h"]
    assert [h.id for h in analysis.study.hypotheses] == ["h"]


def test_solves_uses_boschloo_on_solved_counts() -> None:
    solves = {"id": "h", "variant": "gru", "relation": "solves"}
    values = {"lstm": [0.5, 0.9, 0.5, 0.5, 0.9], "gru": [0.99] * 5}
    records = runs(study(solves), values, baseline=0.25)
    for r in records:
        r["solved"] = r["test"]["test/acc"] >= 0.99
    _, (result,), _ = only(records)
    expected = scipy_stats.boschloo_exact([[5, 0], [0, 5]], alternative="greater").pvalue
    assert result.estimate == "solved: 5/5 vs 0/5" and result.p == pytest.approx(expected)
    assert result.verdict == REPRODUCED


def test_faster_is_a_log_rank_test_with_a_permutation_p_value() -> None:
    faster = {"id": "h", "variant": "gru", "relation": "faster"}
    records = runs(study(faster), {"lstm": [1.0] * 4, "gru": [1.0] * 4}, baseline=0.25)
    for r in records:  # gru solves at 100-130 steps, lstm at 800-950 or never (censored at 1000)
        seed, cell = r["seed"], r["config"]["model"]["cell"]
        steps = 100 + 10 * seed if cell == "gru" else (None if seed == 3 else 800 + 50 * seed)
        r.update(solved=steps is not None, steps_to_solve=steps, max_steps=1000)
    _, (result,), _ = only(records)
    assert result.tested and result.towards_claim
    assert result.p == pytest.approx(1 / 70)  # exact: the most extreme of C(8, 4) = 70 relabellings


def test_faster_where_no_run_solved_asks_for_a_budget_not_a_log_rank_of_nan() -> None:
    # reports/seq_len_copy: lstm_chrono beat the baseline in 5/6 runs, lstm in 0/6, neither solved in 4,000 steps
    faster = {"id": "h", "variant": "gru", "relation": "faster"}
    records = runs(study(faster), {"lstm": [0.3] * 4, "gru": [0.6] * 4}, baseline=0.25)
    for r in records:
        r.update(solved=False, steps_to_solve=None, max_steps=4000)
    _, (result,), (found,) = only(records)
    assert result.status == "none solved" and not result.tested and "nan" not in result.estimate
    assert result.to_decide == "a budget beyond the 4,000 steps run at which either solves"
    assert found.verdict == INCONCLUSIVE and found.to_decide == result.to_decide


def test_one_run_against_several_is_too_few_runs_not_a_crash() -> None:
    # reports/seq_len mid-rerun: one finished run of a variant against three of the reference
    faster = {"id": "h", "variant": "gru", "relation": "faster"}
    records = runs(study(faster), {"lstm": [1.0] * 3, "gru": [1.0]}, baseline=0.25)
    for r in records:
        r.update(solved=True, steps_to_solve=100 + 10 * r["seed"], max_steps=1000)
    _, (result,), _ = only(records)
    assert result.status == "too few runs" and result.to_decide == "at least 2 runs of each variant"


def test_evaluation_runs_of_an_earlier_protocol_are_left_out_not_pooled() -> None:
    # reports/seq_len: adding's evaluation runs stopped at their first solve, before studies with metric claims
    # trained theirs for the whole budget; the reruns are other jobs, and pooling both counts each seed twice
    values = {"lstm": [0.9, 0.91, 0.89, 0.9, 0.905], "gru": [0.9, 0.905, 0.895, 0.9, 0.91]}
    current = runs(study(SIMILAR), values, stage="eval")
    stopped = runs(
        study(SIMILAR), {"lstm": [0.3] * 5, "gru": [0.99] * 5}, stage="eval", **{"config.stop_on_solve": True}
    )
    analysis, (result,), (found,) = only(current + stopped)
    assert analysis.superseded == 10 and result.reference.runs == result.variant.runs == 5
    assert result.verdict == REPRODUCED == found.verdict  # the stopped runs' 0.3 vs 0.99 never entered
    assert only(current)[0].superseded == 0


def test_interaction_compares_per_seed_gains_at_the_ends_of_the_factor_range() -> None:
    grows = {"id": "h", "variant": "gru", "relation": "interaction"}
    block = study(grows, factor="task.seq_len")
    short = runs(block, {"lstm": [0.9, 0.9, 0.9, 0.9, 0.9], "gru": [0.91, 0.9, 0.92, 0.9, 0.91]}, seq_len=10)
    long = runs(block, {"lstm": [0.5, 0.5, 0.55, 0.5, 0.5], "gru": [0.9, 0.85, 0.95, 0.9, 0.9]}, seq_len=100)
    _, (result,), (found,) = only(short + long)
    assert result.x is None and result.p == pytest.approx(1 / 252)  # every long gain beats every short one
    assert result.verdict == REPRODUCED == found.verdict


def test_one_group_of_several_cannot_carry_a_hypothesis() -> None:
    better = {"id": "h", "variant": "gru", "relation": "better"}
    win = runs(study(better), {"lstm": [0.5] * 5, "gru": [0.9] * 5}, task="a")
    tie = runs(study(better), {"lstm": [0.6, 0.7, 0.8, 0.9, 0.5], "gru": [0.7, 0.6, 0.9, 0.8, 0.5]}, task="b")
    _, results, (found,) = only(win + tie)
    assert [r.verdict for r in results] == [REPRODUCED, INCONCLUSIVE]
    assert found.verdict == INCONCLUSIVE and "reproduced in 1 of 2 groups" in found.sentence


def test_groups_that_disagree_significantly_ask_for_no_more_runs_and_say_where_the_claim_held() -> None:
    # reports/seq_len: the GRU matched the LSTM on adding and far outdid it on temporal order
    better = {"id": "h", "variant": "gru", "relation": "better"}
    win = runs(study(better), {"lstm": [0.5] * 5, "gru": [0.9] * 5}, task="a")
    loss = runs(study(better), {"lstm": [0.9] * 5, "gru": [0.5] * 5}, task="b")
    _, results, (found,) = only(win + loss)
    assert [r.verdict for r in results] == [REPRODUCED, NOT_REPRODUCED]
    assert found.verdict == INCONCLUSIVE and "seeds per variant" not in found.to_decide
    assert found.to_decide.startswith("no more seeds or budget: its groups disagree, each significantly (held on a")
    assert "contradicted on b" in found.to_decide


def test_a_hypothesis_on_tasks_the_study_did_not_run_names_only_those_it_tested() -> None:
    # peephole_long shares peephole's hypotheses (timing_msd, timing_gts) and runs timing_gts alone
    better = {"id": "h", "variant": "gru", "relation": "better", "tasks": ["timing_msd", "timing_gts"]}
    analysis, _, (found,) = only(runs(study(better), {"lstm": [0.5] * 5, "gru": [0.9] * 5}, task="timing_gts"))
    assert found.described == "gru better than lstm on timing_gts (timing_msd not run)"
    assert found.described in found.sentence
    assert found.described in findings_table(analysis).rows[0]


def test_plans_that_differ_only_in_their_counts_merge_into_one_naming_each_group() -> None:
    head = "a budget beyond the 4,000 steps run at which either learns"
    plans = [
        ("timing_gts", f"{head} (lstm 0/5, peephole_lstm 2/5 runs learned)"),
        ("timing_msd", f"{head} (lstm 0/5, peephole_lstm 0/5 runs learned)"),
        ("timing_msd", f"{head} (lstm 0/5, peephole_lstm 0/5 runs learned)"),
        ("adding", "about 25 seeds per variant"),
    ]
    assert merge_plans(plans) == (
        "a budget beyond the 4,000 steps run at which either learns (timing_gts: lstm 0/5, peephole_lstm 2/5 runs "
        "learned; timing_msd: lstm 0/5, peephole_lstm 0/5 runs learned); about 25 seeds per variant"
    )
    assert merge_plans([("adding", "about 25 seeds per variant")] * 2) == "about 25 seeds per variant"


def test_a_tied_rank_test_of_20_vs_20_runs_is_monte_carlo_and_quick() -> None:
    """peephole_long's timed accuracy at 20 seeds: mostly 0s and 1s, so ties, and C(40, 20) = 1.4e11 relabellings,
    which the exact permutation distribution enumerated for hours. Past RANK_PERMUTATIONS it samples them (seeded:
    the same p every time), and agrees with the normal approximation of U with its tie correction."""
    a = [1.0] * 12 + [0.0] * 6 + [0.5, 0.9]
    b = [1.0] * 5 + [0.0] * 13 + [0.3, 0.8]
    start = time.perf_counter()
    test = rank_test(a, b, higher_is_better=True)
    assert time.perf_counter() - start < 60
    assert test.method == "Monte Carlo permutation Mann-Whitney U (ties)"
    assert test == rank_test(a, b, higher_is_better=True)
    normal = scipy_stats.mannwhitneyu(a, b, alternative="greater", method="asymptotic").pvalue
    assert test.p_better == pytest.approx(normal, rel=0.25) and test.p_better < 0.05 < test.p_worse
    assert rank_test(a[:5], b[:5], higher_is_better=True).method == "exact permutation Mann-Whitney U (ties)"


def test_the_seeds_a_similar_claim_needs_are_counted_at_the_per_test_level_with_welch_degrees_of_freedom() -> None:
    # reports/seq_len, temporal_order T=200: one GRU run of five stayed at chance, so Welch's p (0.0076) missed the
    # per-test level of a 10-test family (0.005); "about 3 seeds" (at alpha 0.05, pooled df) was fewer than it had
    gru, lstm = [1, 1, 1, 0.2617, 1], [0.2539, 0.2617, 0.248, 0.2363, 0.2598]
    margin = 0.000195
    assert seeds_for_equivalence(gru, lstm, margin, 0.05) < len(gru) < seeds_for_equivalence(gru, lstm, margin, 0.005)
    n = seeds_for_equivalence(gru, lstm, margin, 0.005)
    # runs with the observed means and spreads at n seeds pass Welch's test at that level, at n - 1 they do not
    assert equivalence(alike(gru, n), alike(lstm, n), margin).p_outside < 0.005
    assert equivalence(alike(gru, n - 1), alike(lstm, n - 1), margin).p_outside >= 0.005


def alike(values: list[float], n: int) -> list[float]:
    """n values with the mean and sample standard deviation of `values`."""
    mean, sd = statistics.mean(values), statistics.stdev(values)
    z = [i - (n - 1) / 2 for i in range(n)]
    scale = statistics.stdev(z)
    return [mean + sd * v / scale for v in z]

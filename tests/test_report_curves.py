"""The learning-curve median: runs that end early are held at their last value, not dropped from the median."""

from __future__ import annotations

import math

import numpy as np

from rnnbench.reports.plots import median_curve


def test_a_run_stopped_on_solve_stays_in_the_median_at_its_last_value() -> None:
    solved = {100: 0.5, 200: 0.01}  # stopped at step 200, solved
    stuck = [{100: 0.5, 200: 0.4, 300: 0.4, 400: 0.4} for _ in range(2)]
    solved_too = [{100: 0.5, 200: 0.02} for _ in range(2)]
    steps, medians = median_curve([solved, *stuck, *solved_too], higher_is_better=False)
    assert steps == [100, 200, 300, 400]
    # 3 of 5 runs solved by step 200: the median is a solved value at every later step, not the stuck runs' 0.4
    np.testing.assert_allclose(medians, [0.5, 0.02, 0.02, 0.02])


def test_a_diverged_run_counts_as_the_worst_value_in_the_task_direction() -> None:
    runs = [{1: 0.9, 2: math.nan}, {1: 0.5, 2: 0.6}, {1: 0.4, 2: 0.7}]
    _, lower = median_curve(runs, higher_is_better=False)
    _, higher = median_curve(runs, higher_is_better=True)
    np.testing.assert_allclose(lower, [0.5, 0.7])  # NaN -> +inf: the median moves to the worse of the others
    np.testing.assert_allclose(higher, [0.5, 0.6])  # NaN -> -inf


def test_a_run_that_starts_checking_later_is_left_out_only_before_its_first_check() -> None:
    steps, medians = median_curve([{1: 1.0, 2: 3.0}, {2: 5.0}], higher_is_better=False)
    assert steps == [1, 2]
    np.testing.assert_allclose(medians, [1.0, 4.0])

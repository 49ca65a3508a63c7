"""rnnbench-bench runs end to end on tiny shapes and reports one row per (cell, impl); no timing thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnbench.benchmark import REFERENCE, Shape, main, run


def test_rows_per_cell_and_impl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.csv"
    rows = run(
        ["--shapes", "4x5x3x8", "2x3x2x4", "--repeats", "2", "--warmup", "0", "--threads", "1", "--out", str(out)]
    )
    expected = {REFERENCE} | {(c, i) for c in ("rnn", "lstm", "gru") for i in ("custom", "fused")}
    expected.add(("peephole_lstm", "custom"))
    for shape in (Shape(4, 5, 3, 8), Shape(2, 3, 2, 4)):
        got = [(r.cell, r.impl) for r in rows if r.shape == shape]
        assert sorted(got) == sorted(expected)
    assert all(r.ratio > 0 and r.ms > 0 and r.first_ms > 0 for r in rows)
    assert [r.ratio for r in rows if (r.cell, r.impl) == REFERENCE] == [1.0, 1.0]
    table = capsys.readouterr().out
    assert "| 4x5x3x8 | peephole_lstm | custom |" in table
    assert len(out.read_text().splitlines()) == 1 + len(rows)


def test_markdown_out_and_cell_subset(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    main(["--shapes", "4x5x3x8", "--repeats", "2", "--cells", "peephole_lstm", "--out", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("| shape")
    assert len(lines) == 2 + 2  # header, rule, reference, peephole_lstm custom


def test_bad_shape_is_rejected() -> None:
    with pytest.raises(SystemExit):
        main(["--shapes", "4x5x3"])

"""The diagnostics plots of a sweep report: drawn only from runs that carry probes, from the right numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from report_fakes import fake_record, fake_sweep
from rnnbench.reports.cli import analyses, main
from rnnbench.reports.probes import gate_curves, keep_gate, lag_curves
from rnnbench.tracking.run_record import write_record

DIAGNOSTIC_PNGS = ("grad_vs_lag.png", "forget_gate.png")
GATE = {"lstm": "forget", "gru": "update"}


def probe(step: int, grad_h: list[float], cell: str, gate: float) -> dict[str, Any]:
    """A run.json "diagnostics" entry of a one-layer cell, shaped like `GradientDiagnostics.records`."""
    name = GATE[cell]
    other = "input" if cell == "lstm" else "reset"
    entry: dict[str, Any] = {"step": step, "epoch": 0, "grad_h": [grad_h], "grad_norm": 1.0, "clip_count": 0}
    entry["gates"] = [{f"{name}_mean": gate, f"{name}_low": 0.0, f"{other}_mean": 0.5, f"{other}_high": 0.0}]
    if cell == "lstm":
        entry["grad_c"] = [[2 * g for g in grad_h]]
    return entry


def probed_record(cell: str, seed: int, value: float, scale: float) -> dict[str, Any]:
    """A finished run with two probes (steps 0 and 10); the last one's grad_h is scale * (1, 10, 100) over t."""
    record = fake_record(cell, seed, value)
    record["diagnostics"] = [
        probe(0, [1.0, 1.0, 1.0], cell, 0.7 + 0.01 * seed),
        probe(10, [scale, 10 * scale, 100 * scale], cell, 0.8 + 0.01 * seed),
    ]
    return record


def probed_sweep() -> list[dict[str, Any]]:
    """lstm (seeds scale 1 and 3) and gru (scales 2 and 4, and a failed seed whose probes must be ignored)."""
    failed = fake_record("gru", 2, None, status="failed")
    failed["diagnostics"] = [probe(0, [1e6, 1e6, 1e6], "gru", 0.0)]
    return [
        probed_record("lstm", 0, 0.02, 1.0),
        probed_record("lstm", 1, 0.03, 3.0),
        probed_record("gru", 0, 0.028, 2.0),
        probed_record("gru", 1, 0.022, 4.0),
        failed,
    ]


def report(records: list[dict[str, Any]], root: Path) -> Path:
    """Write the records as a multirun folder, report it into `root/reports`, return the sweep's folder."""
    for i, record in enumerate(records):
        write_record(root / "multirun" / str(i) / "run.json", record)
    assert main([str(root / "multirun"), "--out", str(root / "reports")]) == 0
    return root / "reports" / "cell"


def test_lag_curve_is_the_mean_over_seeds_of_the_last_probe_by_lag() -> None:
    (analysis,) = analyses(probed_sweep())
    curves = {c.variant: c for c in lag_curves(analysis.rows)}
    assert list(curves) == ["lstm", "gru"]  # reference first, as in the other plots
    # last probe: scale * (1, 10, 100) over t = 0, 1, 2, so lag 0 (t = T-1) is the largest; lstm mean scale = 2
    assert curves["lstm"].grad_h == pytest.approx((200.0, 20.0, 2.0))
    assert curves["gru"].grad_h == pytest.approx((300.0, 30.0, 3.0))  # the failed seed's 1e6 is not in it
    assert (curves["lstm"].runs, curves["gru"].runs) == (2, 2)
    assert {(c.task, c.x) for c in curves.values()} == {("adding", None)}


def test_gate_curve_is_the_forget_gate_or_the_grus_update_gate_per_step() -> None:
    (analysis,) = analyses(probed_sweep())
    curves = {c.variant: c for c in gate_curves(analysis.rows)}
    assert (curves["lstm"].gate, curves["gru"].gate) == ("forget", "update")
    for c in curves.values():
        assert c.steps == (0, 10)
        assert c.mean == pytest.approx((0.705, 0.805))  # seeds 0 and 1: 0.70/0.71, then 0.80/0.81
    assert keep_gate((("input", 0.5), ("output", 0.5))) is None  # no keep gate: no curve


def test_vanilla_rnn_has_a_gradient_curve_but_no_gate_curve() -> None:
    record = fake_record("lstm", 0, 0.02)
    record["config"]["model"]["cell"] = "rnn"
    record["diagnostics"] = [{"step": 0, "epoch": 0, "grad_h": [[0.1, 1.0]], "grad_norm": 1.0, "clip_count": 0}]
    (analysis,) = analyses([record])
    assert [(c.variant, c.grad_h) for c in lag_curves(analysis.rows)] == [("rnn", (1.0, 0.1))]
    assert gate_curves(analysis.rows) == []


def test_pngs_only_when_runs_carry_diagnostics_and_they_regenerate_byte_identical(tmp_path: Path) -> None:
    plain = report(fake_sweep(), tmp_path / "plain")
    assert not any((plain / name).exists() for name in DIAGNOSTIC_PNGS)
    assert "grad_vs_lag" not in (plain / "README.md").read_text()
    probed = report(probed_sweep(), tmp_path / "probed")
    readme, page = (probed / "README.md").read_text(), (probed / "index.html").read_text()
    for name in DIAGNOSTIC_PNGS:
        assert (probed / name).stat().st_size > 0
        assert f"![{name[:-4]}]({name})" in readme and f'alt="{name[:-4]}"' in page
    again = report(probed_sweep(), tmp_path / "again")
    for name in DIAGNOSTIC_PNGS:
        assert (again / name).read_bytes() == (probed / name).read_bytes()


def test_seq_len_sweep_gets_one_lag_curve_per_length(tmp_path: Path) -> None:
    records = []
    for seq_len in (3, 5):
        record = probed_record("lstm", 0, 0.02, 1.0)
        record["diagnostics"][-1]["grad_h"] = [[float(t) for t in range(1, seq_len + 1)]]
        record["experiment"] = record["config"]["experiment"] = "seq_len"
        record["config"]["task"]["seq_len"] = seq_len
        record["config"]["study"] = {"compare": "model.cell", "factor": "task.seq_len"}  # the x axis
        records.append(record)
    (analysis,) = analyses(records)
    assert [(c.x, c.grad_h) for c in lag_curves(analysis.rows)] == [
        (3.0, (3.0, 2.0, 1.0)),
        (5.0, (5.0, 4.0, 3.0, 2.0, 1.0)),
    ]
    folder = report(records, tmp_path).with_name("seq_len")
    assert all((folder / name).is_file() for name in DIAGNOSTIC_PNGS)

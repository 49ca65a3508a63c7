"""Reports compare cost on one implementation: which implementation each variant ran, epoch times only where all
ran the same one, and otherwise the bench's same-implementation ratios (`rnnbench-report --bench`)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch

from bench_fakes import FIXED
from report_fakes import fake_sweep, study_record
from rnnbench.models.recurrent import Recurrent
from rnnbench.reports.analysis import analyse
from rnnbench.reports.cli import main
from rnnbench.reports.cost import Architecture, architecture, load_bench, one_implementation, study_cost
from rnnbench.reports.sweep_report import cost_text
from rnnbench.study.spec import parse_study


def _record(model: dict, accelerator: str = "cpu") -> dict:
    return {"config": {"model": model}, "device": {"accelerator": accelerator}}


@pytest.mark.parametrize(
    ("model", "accelerator", "impl"),
    [
        ({"cell": "lstm"}, "cpu", "fused"),
        ({"cell": "gru"}, "cpu", "custom"),  # torch's CPU GRU is slower than the custom path
        ({"cell": "gru"}, "gpu", "fused"),
        ({"cell": "peephole_lstm"}, "cpu", "custom"),  # no fused kernel
        ({"cell": "lstm", "layer_norm": "cell"}, "cpu", "custom"),
        ({"cell": "rnn", "nonlinearity": "relu"}, "cpu", "fused"),
        ({"cell": "lstm", "impl": "custom"}, "cpu", "custom"),
    ],
)
def test_architecture_resolves_the_implementation_as_the_model_does(model: dict, accelerator: str, impl: str) -> None:
    arch = architecture(_record({**model, "bidirectional": True}, accelerator))
    name = "rnn_relu" if model.get("nonlinearity") == "relu" else model["cell"]  # the bench has no ReLU rows
    assert arch == Architecture(name, "bi", impl)
    if accelerator == "cpu":  # the report's reading agrees with the module that ran
        kwargs = {k: v for k, v in model.items() if k != "cell"}
        net = Recurrent(cell=model["cell"], input_size=3, hidden_size=4, **kwargs)
        assert net.fused_on(torch.device("cpu")) == (impl == "fused")


def test_a_model_without_a_recurrent_cell_has_no_architecture() -> None:
    assert architecture(_record({"cell": "transformer"})) is None
    assert architecture({"config": {}}) is None
    seq2seq = {"_target_": "rnnbench.models.seq2seq.Seq2Seq", "cell": "lstm", "attention": "dot"}
    assert architecture(_record(seq2seq)) is None  # its decoder steps in Python: no bench row measures it
    recurrent = {"_target_": "rnnbench.models.recurrent.Recurrent", "cell": "lstm"}
    assert architecture(_record(recurrent)) == Architecture("lstm", "uni", "fused")


def test_study_cost_keeps_only_the_ratios_that_compare_the_studys_variants() -> None:
    study = parse_study({"compare": "model.cell", "reference": "lstm"})
    records = [_record({"cell": c}) | {"stage": "eval", "config": {"model": {"cell": c}}} for c in ("lstm", "gru")]
    cost = study_cost(records, study, "bench.json", copy.deepcopy(FIXED))
    assert cost is not None and cost.source == "bench.json"
    assert {(r["numerator"], r["impl"], r["direction"]) for r in cost.rows} == {
        ("gru", "custom", "uni"),
        ("gru", "fused", "uni"),
    }
    assert (
        "torch 2.13.0, AMD EPYC (2 cores)" in cost.environment
        and "compiled loops on, packed AVX2 matmuls" in cost.environment
    )
    bi = parse_study({"compare": "model.bidirectional", "reference": "False"})
    directions = [{"stage": "eval", "config": {"model": {"cell": "lstm", "bidirectional": b}}} for b in (True, False)]
    rows = study_cost(directions, bi, "b.json", copy.deepcopy(FIXED)).rows
    assert [(r["kind"], r["cell"], r["time"]) for r in rows] == [("direction", "lstm", 2.0)]
    same = [{"stage": "eval", "config": {"model": {"cell": "lstm", "num_layers": n}}} for n in (1, 2)]
    depth = parse_study({"compare": "model.num_layers", "reference": "1"})
    assert study_cost(same, depth, "b.json", copy.deepcopy(FIXED)).rows == ()  # one architecture: nothing to divide


def test_a_report_of_cells_on_different_implementations_quotes_the_bench(tmp_path: Path, monkeypatch) -> None:
    records = [r | {"device": {"accelerator": "cpu"}} for r in fake_sweep()]  # lstm (fused) and gru (custom)
    plain = analyse("cell", records)
    assert not one_implementation(plain.archs) and plain.cost is None
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(FIXED))
    for r in records:
        (tmp_path / "runs" / f"{r['config']['model']['cell']}-{r['seed']}").mkdir(parents=True)
        (tmp_path / "runs" / f"{r['config']['model']['cell']}-{r['seed']}" / "run.json").write_text(json.dumps(r))
    assert main([str(tmp_path / "runs"), "--bench", str(bench), "--out", str(tmp_path / "reports")]) == 0
    readme = (tmp_path / "reports" / "cell" / "README.md").read_text()
    assert "## Cost" in readme and "(gru: custom; lstm: fused;" in readme
    assert "| 2x3x4x5 | train | equal_hidden | custom | gru / lstm (uni) | 0.75 | 0.75 | 0.75 |" in readme
    assert f"--bench {bench} --out" in readme  # the Regenerate block repeats the bench file (outside the cwd: as given)
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "--bench", str(bench.resolve()), "--out", "reports"]) == 0
    assert "--bench bench.json --out reports" in (tmp_path / "reports" / "cell" / "README.md").read_text()
    assert (tmp_path / "reports" / "cell" / "cost.png").stat().st_size > 0
    without = tmp_path / "plain"
    assert main([str(tmp_path / "runs"), "--out", str(without)]) == 0
    text = (without / "cell" / "README.md").read_text()
    assert "they are not compared here" in text and "--bench FILE" in text and "| gru / lstm" not in text


def test_one_implementation_lets_epoch_times_compare() -> None:
    study = {"compare": "model.cell", "reference": "lstm"}
    records = [study_record(c, s, 0.9, study, stage="eval") for c in ("lstm", "rnn") for s in (0, 1)]
    analysis = analyse("study", records)
    assert one_implementation(analysis.archs)  # both fused on CPU


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", "not JSON"),  # a binary file, not UTF-8
        ("[1, 2]", "not an rnnbench-bench document (a JSON list, not an object)"),
        ("dir", "cannot read it"),
        ('{"schema": "other", "version": 1}', "not an rnnbench-bench v1 document"),
    ],
)
def test_a_bad_bench_file_is_one_line_naming_it(
    tmp_path: Path, content: str | bytes | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bench.json"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_bench(path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps(fake_sweep()[0]))
    assert main([str(run), "--bench", str(path), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rnnbench-report: error: --bench {path}: ") and message in err and "\n" not in err
    assert not (tmp_path / "reports").exists()  # nothing written


def test_the_front_page_states_the_seeds_cost_claims_from_the_committed_bench(tmp_path: Path) -> None:
    """With <out>/bench/bench.json present every later rnnbench-report writes the claims with the bench's ratios
    (ranges over shapes, one implementation each); without it the front page has no cost section."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps(fake_sweep()[0]))
    assert main([str(run), "--out", str(tmp_path / "reports")]) == 0
    assert "Cost claims" not in (tmp_path / "reports" / "README.md").read_text()
    (tmp_path / "reports" / "bench").mkdir()
    (tmp_path / "reports" / "bench" / "bench.json").write_text(json.dumps(FIXED))
    assert main([str(run), "--out", str(tmp_path / "reports")]) == 0
    front = (tmp_path / "reports" / "README.md").read_text()
    assert "Cost claims, on one implementation (`rnnbench-bench`, [bench/bench.json](bench/bench.json)" in front
    assert (
        "| GRU: fewer parameters and less time than the LSTM | gru / lstm | custom | 0.75 | 0.75 | - | 0.75 |" in front
    )
    assert (
        "| bidirectional: twice the parameters, compute and memory | lstm: bi / uni | custom | 2.00 | 2.00 |" in front
    )
    assert "| peepholes: minimal overhead | peephole_lstm / lstm | custom | 1.03 | 1.10 | - | 1.05 |" in front


def test_a_corrupt_front_page_bench_stops_the_report_before_it_writes_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps(fake_sweep()[0]))
    (tmp_path / "reports" / "bench").mkdir(parents=True)
    (tmp_path / "reports" / "bench" / "bench.json").write_text("{truncated")
    assert main([str(run), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnbench-report: error: the front page's bench ") and "not JSON" in err
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["bench"]  # no sweep folder, no index


def test_the_cost_plot_reads_one_architecture_per_variant_whatever_the_set_order() -> None:
    """A variant that ran two architectures (here GRU on the custom and the fused path) is plotted by the same one
    in every process: the least as a tuple, not whichever a frozenset yields first under string hashing."""
    from dataclasses import replace

    from rnnbench.reports.plots import _bench_times

    study = parse_study({"compare": "model.cell", "reference": "lstm"})
    records = [{"stage": "eval", "config": {"model": {"cell": c}}} for c in ("lstm", "gru")]
    analysis = analyse("cell", [r | {"device": {"accelerator": "cpu"}} for r in fake_sweep()])
    cost = study_cost(records, study, "bench.json", copy.deepcopy(FIXED))
    two = frozenset({Architecture("gru", "uni", "fused"), Architecture("gru", "uni", "custom")})
    times = _bench_times(replace(analysis, cost=cost, archs={**analysis.archs, "gru": two}))
    assert times == {"2x3x4x5": {"lstm": 1.0, "gru": pytest.approx(0.75)}}


def test_a_bench_with_no_ratio_for_the_study_says_so_rather_than_suggest_one() -> None:
    archs = {
        "lstm": frozenset({Architecture("lstm", "uni", "fused")}),
        "rnn": frozenset({Architecture("rnn_relu", "uni", "custom")}),  # the bench times the tanh RNN only
    }
    study = parse_study({"compare": "model.cell", "reference": "lstm"})
    records = [
        {"stage": "eval", "config": {"model": {"cell": "lstm"}}},
        {"stage": "eval", "config": {"model": {"cell": "rnn", "nonlinearity": "relu", "impl": "custom"}}},
    ]
    cost = study_cost(records, study, "b.json", copy.deepcopy(FIXED))
    assert cost.rows == ()
    (text,) = cost_text(cost, archs)
    assert "The bench (b.json) measures none of these variants against the reference." in text
    assert "--bench FILE" not in text
    (without,) = cost_text(None, archs)
    assert "`rnnbench-report --bench FILE` adds" in without

"""The bad-input catalogue: every wrong override gets one line on stderr naming the key and what is allowed, exit 2,
nothing built or trained, no traceback unless HYDRA_FULL_ERROR=1; `rnnbench-report` on a missing or empty path, or
with a corrupt run.json among good ones, says so in one line (and still writes the report from the rest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from report_fakes import fake_sweep
from rnnbench.reports import cli as report_cli
from rnnbench.tracking.run_record import write_record
from rnnbench.training import cli as train_cli
from rnnbench.training.config import ConfigError

PRECISIONS = "one of 32-true, bf16-mixed, 64-true, 16-mixed (16-mixed on a GPU only; short forms 32, 64, bf16, 16)"
CATALOGUE = [  # (command-line arguments, the line after "rnnbench-train: error: " (a prefix where it is long))
    # wrong types, for keys of every group (checked against the constructor's annotations)
    (["trainer.max_epochs=abc"], "trainer.max_epochs must be an int or null, got 'abc'"),
    (["trainer.max_epochs=1.5"], "trainer.max_epochs must be an int or null, got 1.5"),
    (["model.hidden_size=1.5"], "model.hidden_size must be an int or a list of ints, got 1.5"),
    (["optim.optimizer.lr=fast"], "optim.optimizer.lr must be a number, got 'fast'"),
    (["model.bidirectional=maybe"], "model.bidirectional must be true or false, got 'maybe'"),
    (["task.seq_len=abc"], "task.seq_len must be an int, got 'abc'"),
    (["task.batch_size=1.5"], "task.batch_size must be an int, got 1.5"),
    (["optim=sgd", "optim.optimizer.momentum=abc"], "optim.optimizer.momentum must be a number, got 'abc'"),
    (["trainer.precision=abc"], f"trainer.precision must be {PRECISIONS}"),
    (["diagnostics.every_n_steps=abc"], "diagnostics.every_n_steps must be an int, got 'abc'"),
    (["seed=abc"], "seed must be an int, got 'abc'"),
    (["resume=maybe"], "resume must be true or false, got 'maybe'"),
    (["threads=abc"], "threads must be a positive int or null (torch's default), got 'abc'"),
    (["experiment=[a]"], "experiment must be a string, got ['a']"),
    # unknown names: options of a group, keys, launcher
    (["model=lstmm"], "unknown model 'lstmm'; allowed: gru, lstm, lstm_chrono, peephole_lstm, rnn, seq2seq"),
    (["task=nope"], "unknown task 'nope'; allowed: adding, char_lm, chorales, copy_memory,"),
    (["-m", "+sweep=cell", "budget=tiny"], "unknown budget 'tiny'; allowed: cpu, cpu_long, full, smoke"),
    (
        ["-m", "+sweep=nope"],
        "unknown sweep 'nope'; allowed: attention, bidirectional, cell, counting, depth, depth_lm, peephole, "
        "peephole_lm, peephole_long, seq_len, seq_len_copy, seq_len_long",
    ),
    (
        ["-m", "+sweep=cell", "hydra/launcher=nope"],
        "unknown launcher 'nope' for hydra/launcher; allowed: basic, joblib",
    ),
    (["logger=wandbb"], "unknown logger 'wandbb'; allowed: csv, none, wandb"),
    (
        ["model.hiden_size=3"],
        "unknown key model.hiden_size; allowed keys under model: bidirectional, cell, chrono_t_max, dropout,",
    ),
    (
        ["foo=1"],
        "unknown top-level key foo; allowed: checkpoint, checkpoint_metric, diagnostics, divergence, experiment,",
    ),
    (
        ["trainer.foo=1"],
        "unknown key trainer.foo; allowed keys under trainer: accelerator, check_val_every_n_epoch, devices,",
    ),
    (["-m", "+sweep=cell", "model.cell=lstm,abc"], "model.cell: unknown cell 'abc'; allowed: gru, lstm,"),
    # out of range
    (["trainer.max_epochs=-3"], "trainer.max_epochs must be an int >= -1 (-1: no limit) or null, got -3"),
    (["+trainer.limit_train_batches=1.5"], "trainer.limit_train_batches must be an int >= 0 (batches) or a float in"),
    (["trainer.accelerator=tpux"], "trainer.accelerator must be one of auto, gpu, cpu, cuda, mps, tpu, got 'tpux'"),
    # precisions Lightning knows that rnnbench refuses (training/precision.py says why)
    (["trainer.precision=16-true"], "trainer.precision=16-true is not supported: it trains the weights in float16:"),
    (["trainer.precision=bf16-true"], "trainer.precision=bf16-true is not supported: it trains the weights in bf"),
    (["trainer=cpu", "trainer.precision=16"], "trainer.precision=16 needs a GPU (float16 autocast; on CPU Lightning"),
    (["trainer.devices=0"], "trainer.devices must be auto, a positive int, -1 (all), a list of device ids or a"),
    (["optim.optimizer.lr=-1"], "optim.optimizer.lr must be a number >= 0, got -1"),
    (["optim.grad_clip=-1"], "optim.grad_clip must be a positive number or null (no clipping), got -1"),
    (["model.hidden_size=-4"], "model.hidden_size must be a positive int, got -4"),
    (["model.dropout=1.5"], "model.dropout must be a float in [0, 1), got 1.5"),
    (["task.n_train=-1"], "task.n_train must be a positive int, got -1"),
    (["threads=0"], "threads must be a positive int or null (torch's default), got 0"),
    (["logger.mode=onlin"], "logger.mode must be one of offline, online, disabled, got 'onlin'"),
    # impossible combinations (the pairing is checked before any data: translate's Bibles need not be installed)
    (["model=seq2seq", "task=adding"], "task adding needs a recurrent model, got a seq2seq model (Seq2Seq)"),
    (["task=translate", "model=lstm"], "task translate needs a seq2seq model, got a recurrent model (Recurrent)"),
    (["model.bidirectional=true", "task=timing"], "model.bidirectional=true would let task timing_msd see its future"),
    (["+budget=smoke"], "budget is already in the defaults list: select it with budget=smoke (no +)"),
    # a malformed study block
    (["study=5"], "study must be a mapping (the study block of a sweep file) or null, got 5"),
    (["study={claim:x,bogus:1}"], "unknown key study.bogus; allowed: compare, reference, factor, labels, claim,"),
    (
        ["study={reference:lstm,hypotheses:[{id:a,variant:gru,relation:nicer}]}"],
        "study.hypotheses[0].relation must be one of better, worse, similar, solves, faster, interaction, got 'nicer'",
    ),
]


@pytest.mark.parametrize(("argv", "line"), CATALOGUE, ids=[" ".join(a) for a, _ in CATALOGUE])
def test_each_bad_input_gets_one_line_and_exit_2_and_nothing_runs(
    argv: list[str], line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["rnnbench-train", *argv])
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"rnnbench-train: error: {line}"), err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no outputs/, no run folder: nothing was built or trained


def test_the_console_command_exits_2_with_one_line_and_a_traceback_only_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-m", "rnnbench.training.cli", "trainer.max_epochs=abc"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "rnnbench-train: error: trainer.max_epochs must be an int or null, got 'abc'"
    # on request the error propagates with its traceback (the same function, in this process)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(sys, "argv", command[2:])
    with pytest.raises(ConfigError, match=r"trainer\.max_epochs must be"):
        train_cli.main()
    assert not (tmp_path / "outputs").exists()


def test_a_check_that_breaks_still_gives_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise KeyError("surprise")

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(train_cli, "preflight", broken)
    monkeypatch.setattr(sys, "argv", ["rnnbench-train"])
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err == "rnnbench-train: error: KeyError: 'surprise' (HYDRA_FULL_ERROR=1 shows the traceback)\n"


def test_report_on_a_missing_or_empty_path_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere"
    assert report_cli.main([str(missing), "--out", str(tmp_path / "out")]) == 2
    why = "pass a run.json, a runs.jsonl.gz or a directory holding them"
    assert capsys.readouterr().err == f"rnnbench-report: error: no run records at {missing}: {why}\n"
    (tmp_path / "empty").mkdir()
    assert report_cli.main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"rnnbench-report: error: no runs in {tmp_path / 'empty'}\n"
    assert not (tmp_path / "out").exists()


def test_a_corrupt_or_truncated_record_is_skipped_with_a_warning_and_the_report_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    records = fake_sweep()
    for i, record in enumerate(records):
        write_record(sweep / str(i) / "run.json", record)
    text = json.dumps(records[0])
    truncated, garbage, not_a_record = (sweep / str(len(records) + k) / "run.json" for k in range(3))
    for path, content in ((truncated, text[: len(text) // 2]), (garbage, "\x00\xff{"), (not_a_record, "[1, 2]")):
        path.parent.mkdir(parents=True)
        path.write_text(content, encoding="latin-1")
    assert report_cli.main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 3
    for path, why in (
        (truncated, "not a readable run record"),
        (garbage, "not a readable"),
        (not_a_record, "no status"),
    ):
        assert any(
            w.startswith(f"rnnbench-report: warning: skipping {path.resolve()}: ") and why in w for w in warnings
        )
    rows = (tmp_path / "out" / "cell" / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(records)  # header + every readable run, failed and diverged ones included

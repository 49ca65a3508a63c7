"""The diagnostics callback: off by default and then never built; on, it records compact per-probe arrays in
run.json without touching the module's grads or mode; bad settings fail preflight; the figure script runs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from rnnbench.models.recurrent import Recurrent
from rnnbench.reports import vanishing
from rnnbench.tasks.adding import AddingTask
from rnnbench.tasks.copy_memory import CopyMemoryTask
from rnnbench.tracking.run_record import read_record
from rnnbench.training import diagnostics
from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.diagnostics import GradientDiagnostics, last_step_loss
from rnnbench.training.module import SequenceModule
from rnnbench.training.train import train
from test_sword import write_module

SMOKE = ["trainer=smoke", "task.n_train=128", "task.n_val=64", "task.n_test=64", "task.batch_size=32"]


def test_disabled_by_default_and_then_never_built(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("GradientDiagnostics built while disabled")

    monkeypatch.setattr(diagnostics, "GradientDiagnostics", refuse)
    cfg = compose_config([*SMOKE, "logger=none", "task.seq_len=10"])
    assert cfg.diagnostics.enabled is False
    assert train(cfg, run_dir)["status"] == "finished"
    assert "diagnostics" not in read_record(run_dir / "run.json")


def test_enabled_run_records_each_probe_in_run_json(run_dir: Path) -> None:
    overrides = ["task.seq_len=20", "diagnostics.enabled=true", "diagnostics.every_n_steps=1"]
    record = train(compose_config([*SMOKE, *overrides]), run_dir)  # offline W&B: the line plots are logged too
    assert record["status"] == "finished"
    probes = read_record(run_dir / "run.json")["diagnostics"]
    assert [p["step"] for p in probes] == [0, 1, 2]  # before the first step, then after each of the 2 smoke steps
    first, last = probes[0], probes[-1]
    assert len(first["grad_h"]) == len(first["grad_c"]) == 1 and len(first["grad_h"][0]) == 20
    assert {"forget_mean", "forget_low", "forget_high", "input_mean", "output_high"} <= set(first["gates"][0])
    assert first["grad_norm"] is None and last["grad_norm"] > 0 and last["clip_count"] in (0, 1, 2)
    values = [*first["grad_h"][0], *first["grad_c"][0], *first["gates"][0].values(), *first["cell_abs_mean"]]
    assert all(v == float(f"{v:.4g}") for v in values)  # 4 significant digits: compact
    assert first["grad_h"][0][-1] > first["grad_h"][0][0] > 0  # the gradient shrinks with the lag


def test_diagnostics_do_not_change_training(tmp_path: Path) -> None:
    """Same seed, diagnostics on or off: the same batches and the same trained model (the probe's batch fetch used to
    draw from torch's RNG and reshuffle training)."""
    cfg = [*SMOKE, "logger=none", "task.seq_len=10", "trainer.max_steps=4"]
    off = train(compose_config(cfg), tmp_path / "off")
    on = train(compose_config([*cfg, "diagnostics.enabled=true", "diagnostics.every_n_steps=1"]), tmp_path / "on")
    assert on["test"] == off["test"] and on["history"][-1]["train/loss"] == off["history"][-1]["train/loss"]


def test_measure_leaves_the_modules_grads_and_mode_alone() -> None:
    cfg = compose_config(["model=gru", "task.seq_len=8"])
    task = instantiate(cfg.task)
    module = SequenceModule(instantiate(cfg.model, **task.model_kwargs()), task, cfg.optim)
    for p in module.parameters():
        p.grad = torch.ones_like(p)
    callback = GradientDiagnostics(every_n_steps=5, probe_batch_size=4)
    callback.batch = {k: torch.as_tensor(v) for k, v in AddingTask.generate(4, np.random.default_rng(0), 8).items()}
    module.train()
    result = callback.measure(module)
    assert module.training and result.grad_h.shape == (1, 1, 8) and set(result.gates[0]) >= {"update_mean"}
    assert all(bool((p.grad == 1).all()) for p in module.parameters())


def test_last_step_loss_of_a_per_step_task_is_the_final_steps_term() -> None:
    task = CopyMemoryTask(seq_len=5)
    columns = CopyMemoryTask.generate(3, np.random.default_rng(0), seq_len=5)
    batch = task.collate({k: torch.as_tensor(v) for k, v in columns.items()})
    body, head = Recurrent("gru", 10, 8), task.make_head(8)
    pred = task.predict(body, head, batch)  # (B, T+20, 10)
    expected = F.cross_entropy(pred[:, -1], batch["y"][:, -1])
    torch.testing.assert_close(last_step_loss(task, body, head, batch), expected)


@pytest.mark.parametrize(
    "overrides",
    [
        ["task=timing", "task.variant=msd"],  # masked: only spike steps are scored, the last step usually is not
        ["task=timing", "task.variant=gts"],
        ["task=tagging"],
        ["task=char_lm", "task.seq_len=16"],
        ["task=copy_memory", "model=peephole_lstm"],
        ["task=chorales", "task.n_chorales=8"],  # variable lengths, masked frames
    ],
    ids=["timing-msd", "timing-gts", "tagging", "char_lm", "copy_memory", "chorales"],
)
def test_every_per_step_task_gets_a_finite_last_step_probe(
    overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ztext = tmp_path / "sword" / "modules" / "texts" / "ztext"  # char_lm reads a tiny KJV: no Debian package needed
    write_module(
        ztext / "engKJV2006eb", ["", "", "<div/>", "<chapter/>", *(f"Verse {i}: it was good." for i in range(99))]
    )
    monkeypatch.setenv("RNNBENCH_SWORD_DIR", str(tmp_path / "sword"))
    cfg = compose_config([*overrides, "task.n_train=32", "task.n_val=16", "task.n_test=16"])
    task = instantiate(cfg.task)
    task.setup("fit")
    module = SequenceModule(instantiate(cfg.model, **task.model_kwargs()), task, cfg.optim)
    callback = GradientDiagnostics(every_n_steps=5, probe_batch_size=4)
    callback.batch = next(iter(task.val_dataloader()))
    callback.batch = {k: v[:4] if isinstance(v, torch.Tensor) else v for k, v in callback.batch.items()}
    result = callback.measure(module)
    curve = result.grad_h[0, 0]
    assert torch.isfinite(curve).all() and curve[-1] > 0  # a real loss at the final step reaches h_T


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["diagnostics.enabled=maybe"], "diagnostics.enabled must be true or false, got 'maybe'"),
        (
            ["diagnostics.enabled=true", "diagnostics.every_n_steps=0"],
            "diagnostics.every_n_steps must be a positive int, got 0",
        ),
        (["diagnostics.every_n=3"], "unknown key diagnostics.every_n; allowed keys under diagnostics: enabled,"),
    ],
)
def test_bad_diagnostics_settings_fail_preflight_in_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        preflight(overrides)
    assert str(info.value).startswith(message)


def test_vanishing_figure_script_writes_the_png_and_the_curves(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "figs" / "vanishing.png"
    tiny = ["--steps", "2", "--seq-len", "12", "--hidden", "8", "--batch-size", "8", "--probe-size", "4"]
    assert vanishing.main(["--out", str(out), *tiny]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * 12 and {r["cell"] for r in rows} == {"rnn", "lstm", "gru"}
    assert all(r["grad_c"] for r in rows if r["cell"] == "lstm") and not any(r["grad_c"] for r in rows[:12])
    assert str(out) in capsys.readouterr().out

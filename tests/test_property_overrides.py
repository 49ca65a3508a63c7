"""Property: any combination of overrides, valid or not, either trains at the smoke budget (finished, or diverged
for a wild learning rate) or is refused in one line before anything is built; never a traceback, never a hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.train import train

BASE = ["trainer=smoke", "logger=none", "checkpoint=false", "task.n_train=32", "task.n_val=16", "task.n_test=16"]
CHOICES = {  # per key, valid values and wrong ones (wrong type, out of range, unknown name)
    "model": ["rnn", "lstm", "gru", "peephole_lstm", "lstmm"],
    "model.hidden_size": ["4", "8", "[4,4]", "0", "1.5", "abc"],
    "model.num_layers": ["1", "2", "0", "abc"],
    "model.bidirectional": ["true", "false", "maybe"],
    "model.dropout": ["0.0", "0.3", "1.5"],
    "task": ["adding", "copy_memory", "temporal_order", "nope"],
    "task.seq_len": ["6", "12", "0", "abc"],
    "task.batch_size": ["8", "16", "0", "2.5"],
    "optim": ["adam", "sgd", "rmsprop"],
    "optim.optimizer.lr": ["1e-3", "0.1", "1e6", "-1", "fast"],
    "optim.grad_clip": ["null", "1.0", "-1"],
    "trainer.max_epochs": ["1", "abc", "-3", "1.5"],
    "seed": ["0", "1", "abc"],
    "divergence.factor": ["1000", "null", "0"],
}
OVERRIDES = st.lists(
    st.sampled_from(sorted(CHOICES)).flatmap(lambda key: st.sampled_from(CHOICES[key]).map(lambda v: f"{key}={v}")),
    max_size=6,
    unique_by=lambda o: o.partition("=")[0],
).map(lambda os: sorted(os, key=lambda o: (o.count("."), o)))  # group choices before their keys, as users write


def _check(overrides: list[str], out: Path) -> None:
    try:
        preflight([*BASE, *overrides])
    except ConfigError as err:
        assert str(err) and "\n" not in str(err)  # refused in one line (the CLI prints it and exits 2)
        return
    record = train(compose_config([*BASE, *overrides]), out, overrides)
    assert record["status"] in ("finished", "diverged"), record.get("error")


@pytest.mark.timeout(300)
@settings(
    max_examples=6, deadline=60_000, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(overrides=OVERRIDES)
def test_random_overrides_train_or_are_refused_in_one_line(overrides: list[str], tmp_path: Path) -> None:
    _check(overrides, tmp_path / "_".join(o.replace("/", "-") for o in overrides)[:200] or tmp_path / "defaults")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=150, deadline=120_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=OVERRIDES)
def test_many_random_overrides_train_or_are_refused_in_one_line(overrides: list[str], tmp_path: Path) -> None:
    _check(overrides, tmp_path / "_".join(o.replace("/", "-") for o in overrides)[:200] or tmp_path / "defaults")

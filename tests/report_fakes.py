"""Fake run records for the report tests: shaped like rnnbench-train's run.json, with honest baselines."""

from __future__ import annotations

from typing import Any

from rnnbench.tasks.adding import AddingTask

TASK_CONFIG = {
    "_target_": "rnnbench.tasks.adding.AddingTask",
    "seq_len": 50,
    "n_train": 64,
    "n_val": 32,
    "n_test": 32,
    "batch_size": 32,
    "data_seed": 0,
    "cache_dir": None,
}
PARAMS = {"lstm": 17473, "gru": 13121}


def fake_record(cell: str, seed: int, value: float | None, status: str = "finished") -> dict[str, Any]:
    """One run of the `cell` sweep on adding; `value` is the test MSE (None: the run never got to testing)."""
    task = AddingTask(seq_len=50)
    curve = {"finished": [0.3, 0.2, value], "failed": [0.3], "diverged": [0.3, "nan"]}[status]
    history = [
        {"epoch": e, "step": 2 * (e + 1), "train/loss": v, "val/mse": v, "val/loss": v, "perf/epoch_time_s": 1.5 + e}
        for e, v in enumerate(curve)
    ]
    return {
        "status": status,
        "task": "adding",
        "experiment": "cell",
        "seed": seed,
        "overrides": [f"model={cell}", f"seed={seed}", "+sweep=cell", "budget=smoke", "task=adding"],
        "config": {
            "experiment": "cell",
            "seed": seed,
            "model": {"_target_": "rnnbench.models.recurrent.Recurrent", "cell": cell, "hidden_size": 64},
            "task": {**TASK_CONFIG, "data_seed": seed},
        },
        "primary_metric": "mse",
        "higher_is_better": False,
        "baseline": task.baseline(),
        "test": {} if value is None else {"test/mse": value, "test/loss": value},
        "beats_baseline": None if value is None else task.beats_baseline(value),
        "num_parameters": PARAMS[cell],
        "history": history,
    }


def fake_sweep() -> list[dict[str, Any]]:
    """lstm and gru over 4 seeds; one gru seed failed and one diverged."""
    return [
        *(fake_record("lstm", s, v) for s, v in enumerate([0.02, 0.03, 0.025, 0.035])),
        fake_record("gru", 0, 0.028),
        fake_record("gru", 1, 0.022),
        fake_record("gru", 2, None, status="failed"),
        fake_record("gru", 3, None, status="diverged"),
    ]

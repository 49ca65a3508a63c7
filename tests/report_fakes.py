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
STUDY = {  # the block a sweep file declares; every run records it in its config
    "claim": "GRU matches LSTM accuracy with fewer parameters.",
    "compare": "model.cell",
    "reference": "lstm",
    "hypotheses": [{"id": "gru_similar", "variant": "gru", "relation": "similar", "margin": 0.1}],
}


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
            "study": STUDY,
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


def study_record(
    variant: str,
    seed: int,
    value: float | None,
    study: dict[str, Any],
    *,
    task: str = "temporal_order",
    status: str = "finished",
    seq_len: int = 50,
    baseline: float = 0.25,
    stage: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A run of an accuracy task (higher is better, perfect 1.0) whose variant is `model.cell`; `fields` adds or
    replaces record fields (solved, steps_to_solve, max_steps, best_val, tuning, ...) and `config.*` keys."""
    config_fields = {k.removeprefix("config."): v for k, v in fields.items() if k.startswith("config.")}
    config = {
        "experiment": "study",
        "seed": seed,
        "stage": stage,
        "model": {"_target_": "rnnbench.models.recurrent.Recurrent", "cell": variant, "hidden_size": 64},
        "task": {"_target_": "rnnbench.tasks.temporal_order.TemporalOrderTask", "seq_len": seq_len, "data_seed": seed},
        "optim": {"optimizer": {"lr": 0.01}},
        "study": study,
    }
    for dotted, v in config_fields.items():
        node = config
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = v
    record = {
        "status": status,
        "task": task,
        "experiment": "study",
        "seed": seed,
        "stage": stage,
        "overrides": [f"model={variant}", f"seed={seed}", f"task.seq_len={seq_len}"],
        "config": config,
        "primary_metric": "acc",
        "higher_is_better": True,
        "baseline": {"acc": baseline},
        "test": {} if value is None or stage == "tune" else {"test/acc": value},
        "beats_baseline": None if value is None else value - baseline > 0.1 * (1 - baseline),
        "num_parameters": 1000,
        "history": [{"epoch": 0, "step": 10, "val/acc": value if value is not None else "nan"}],
    }
    record.update({k: v for k, v in fields.items() if not k.startswith("config.")})
    return record


FIXTURE_STUDY = {
    "claim": "GRU solves temporal order sooner than LSTM, more so at long lags.",
    "compare": "model.cell",
    "reference": "lstm",
    "factor": "task.seq_len",
    "seeds": [0, 1, 2],
    "tuning": {"key": "optim.optimizer.lr", "grid": [0.001, 0.01], "seeds": [1000], "per_factor": "each"},
    "hypotheses": [
        {"id": "gru_faster", "variant": "gru", "relation": "faster"},
        {"id": "gru_similar", "variant": "gru", "relation": "similar", "margin": 0.1, "factor": {"max": 10}},
        {"id": "gru_long", "variant": "gru", "relation": "interaction"},
    ],
}


def fixture_records() -> list[dict[str, Any]]:
    """A small study (the committed report fixture, tests/data/reports/fixture): tuning and evaluation records of
    lstm and gru on temporal order at T = 10 and 50, with solve criteria and steps to solve."""
    records = []
    for seq_len in (10, 50):
        for cell in ("lstm", "gru"):
            for lr, acc in ((0.001, 0.6), (0.01, 0.9 if cell == "gru" or seq_len == 10 else 0.4)):
                tuned = {"config.optim.optimizer.lr": lr, "config.stage": "tune"}
                best = {"val/acc": acc, "step": 400}
                records.append(
                    study_record(
                        cell,
                        1000,
                        None,
                        FIXTURE_STUDY,
                        stage="tune",
                        seq_len=seq_len,
                        best_val=best,
                        solved=acc >= 0.9,
                        steps_to_solve=300 if acc >= 0.9 else None,
                        max_steps=1000,
                        **tuned,
                    )
                )
            for seed in range(3):
                solves = cell == "gru" or seq_len == 10 or seed == 0
                acc = 1.0 if solves else 0.3 + 0.05 * seed
                steps = (200 if cell == "gru" else 500) + 50 * seed + 2 * seq_len if solves else None
                records.append(
                    study_record(
                        cell,
                        seed,
                        acc,
                        FIXTURE_STUDY,
                        stage="eval",
                        seq_len=seq_len,
                        solved=solves,
                        steps_to_solve=steps,
                        max_steps=1000,
                        best_val={"val/acc": acc, "step": 400},
                        tuning={
                            "key": "optim.optimizer.lr",
                            "value": 0.01,
                            "at_edge": True,
                            "selection": "outputs/studies/fixture/selection.json",
                        },
                        **{"config.optim.optimizer.lr": 0.01, "config.stage": "eval"},
                    )
                )
    for r in records:
        r["experiment"] = r["config"]["experiment"] = "fixture"
    return records

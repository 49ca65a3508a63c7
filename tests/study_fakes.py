"""A tiny study in a user's --config-dir, for the study command's tests: two cells, a two-value learning-rate grid,
budget=smoke and no W&B, so each job trains in about a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TINY_STUDY: dict[str, Any] = {
    "compare": "model.cell",
    "reference": "rnn",
    "factor": "task.seq_len",
    "seeds": [0],
    "tuning": {"key": "optim.optimizer.lr", "grid": [1.0e-3, 1.0e-2], "seeds": [100], "per_factor": "hardest"},
}
TINY_GRID = {"model": "rnn,gru", "task.seq_len": "5,10"}


def write_sweep(config_dir: Path, name: str = "tiny", study: dict[str, Any] | None = None) -> Path:
    """conf_dir/sweep/<name>.yaml: the tiny grid at budget=smoke, with `study` (TINY_STUDY by default)."""
    body = {
        "defaults": ["_self_", {"override /budget": "smoke"}, {"override /logger": "none"}],
        "experiment": name,
        "tags": [f"sweep:{name}"],
        "task": {"n_train": 64, "n_val": 32, "n_test": 32, "batch_size": 32},
        "study": TINY_STUDY if study is None else study,
        "hydra": {"sweeper": {"params": TINY_GRID}},
    }
    path = config_dir / "sweep" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# @package _global_\n" + yaml.safe_dump(body, sort_keys=False))
    return path

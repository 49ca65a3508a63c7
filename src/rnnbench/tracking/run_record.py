"""The local run record: `run.json` in each job's output directory, the source of truth for reports.

Written atomically (temp file + rename) at start, after every epoch and at the end, so a crash, a Ctrl-C or a
diverged loss still leaves a readable record saying so; reports count such runs instead of silently dropping them.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

RECORD_NAME = "run.json"
STATUSES = ("running", "finished", "failed", "diverged", "interrupted")


def _jsonable(value: Any) -> Any:
    """Floats that JSON cannot hold (nan, inf) become strings, so the file stays standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Atomically replace `path` with the JSON of `record`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".run.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(_jsonable(record), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_record(path: Path) -> dict[str, Any]:
    """Load a run.json."""
    with open(path) as f:
        return json.load(f)


def git_sha(start: Path | None = None) -> str | None:
    """The commit of the rnnbench checkout (None when installed from a wheel or git is absent)."""
    here = start or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def versions() -> dict[str, str]:
    """Versions of the stack, so a number in a report can be traced to the software that produced it."""
    import datasets
    import hydra
    import pytorch_lightning
    import torch
    import torchmetrics
    import wandb

    import rnnbench

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "hydra": hydra.__version__,
        "wandb": wandb.__version__,
        "torchmetrics": torchmetrics.__version__,
        "datasets": datasets.__version__,
        "rnnbench": rnnbench.__version__,
    }

"""What a job's W&B run already holds: the last step each metric reached, so an attempt resumed from a checkpoint
never logs a (metric, step) pair twice.

A resumed attempt restarts at its last checkpoint's step, but the attempt before it ran, and logged, past that
checkpoint until it stopped. W&B keeps every row a run logs: online a resumed run appends to its history, offline
`wandb sync --id <id>` uploads every attempt's folder into the one run. Without a filter the steps between the
checkpoint and the kill would appear twice in the charts, so a resumed attempt drops from every row the metrics
that an earlier attempt already logged at that step or later. What "already logged" is:
- offline, what W&B itself stored: each earlier attempt's `wandb/offline-run-*-<id>/` read with W&B's own reader
  (`wandb leet inspect --json`). A killed process takes W&B's unwritten buffer with it (a short run's whole file,
  measured: 5 rows and 3 s before a SIGKILL leave an empty log), so only what reached the file counts;
- online, or where W&B's reader is missing, what rnnbench handed W&B: every logged step is noted in
  `<job>/logged_steps.json` before the row goes out. What the server lost to the kill then leaves a gap (the
  upload of the last rows is not confirmed to the client), never a repeat.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import Logger

from rnnbench.tracking.run_record import write_record
from rnnbench.tracking.wandb_run import STEP_METRIC

log = logging.getLogger(__name__)
LOG_NAME = "logged_steps.json"


def wandb_steps(folder: Path) -> dict[str, int] | None:
    """The last `trainer/global_step` of each metric in one W&B run folder, as W&B's own reader sees the run's
    transaction log; None where the reader is missing or fails."""
    reader = Path(sys.executable).parent / "wandb"
    try:
        out = subprocess.run(
            [str(reader), "leet", "inspect", "--json", str(folder)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("W&B's reader could not read %s (%s): the steps rnnbench logged count instead", folder, err)
        return None
    steps: dict[str, int] = {}
    for line in out.stdout.splitlines():
        row = json.loads(line) if line.startswith("{") else {}
        if row.get("type") != "history" or STEP_METRIC not in row["history"].get("item", {}):
            continue
        item = row["history"]["item"]
        step = int(item[STEP_METRIC])
        for key in item:
            if not key.startswith("_") and key != STEP_METRIC:
                steps[key] = max(step, steps.get(key, step))
    return steps


def earlier_steps(noted: Path, offline_folders: Iterable[Path] | None) -> dict[str, int]:
    """The steps a resumed attempt must not log again: W&B's reading of the earlier attempts' offline folders where
    there are such folders (`offline_folders`; None for an online run), else what `noted` says was handed over."""
    folders = list(offline_folders or [])
    read = [wandb_steps(f) for f in folders]
    if folders and all(r is not None for r in read):
        merged: dict[str, int] = {}
        for steps in read:
            for key, step in steps.items():
                merged[key] = max(step, merged.get(key, step))
        return merged
    return {k: int(v) for k, v in json.loads(noted.read_text()).items()} if noted.is_file() else {}


class StepLog:
    """A logger filter: drops the (metric, step) pairs at or below `floors`, and notes each step it passes on in
    `path` (the floors of a later resume, online)."""

    def __init__(self, path: Path, floors: dict[str, int] | None = None) -> None:
        self.path = path
        self.floors = dict(floors or {})
        self.logged = dict(self.floors)

    def attach(self, logger: Logger) -> None:
        """Route the logger's `log_metrics` through this log (Lightning, the callbacks and the module all call it)."""
        send = logger.log_metrics

        def log_metrics(metrics: dict[str, Any], step: int | None = None) -> None:
            if step is not None:
                metrics = {k: v for k, v in metrics.items() if step > self.floors.get(k, -1)}
                if not metrics:
                    return
                self._note(metrics, step)
            send(metrics, step)

        logger.log_metrics = log_metrics  # type: ignore[method-assign]

    def _note(self, metrics: dict[str, Any], step: int) -> None:
        changed = {k: step for k in metrics if step > self.logged.get(k, -1)}
        if changed:
            self.logged.update(changed)
            write_record(self.path, self.logged)

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
import time
from datetime import datetime
from pathlib import Path
from typing import Any

RECORD_NAME = "run.json"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # started_at / finished_at: local time with its UTC offset
STATUSES = ("running", "finished", "failed", "diverged", "interrupted")
RESULTS = ("finished", "diverged")  # what a relaunch keeps: rerunning a diverged job would diverge again
SUPERSEDED_DIR = "superseded"  # <job>/superseded/<n>/: earlier attempts a fresh start set aside (training/resume.py)


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


def now_stamp() -> str:
    """The current time as a record's `started_at` / `finished_at` hold it."""
    return time.strftime(TIME_FORMAT)


def stamp_seconds(value: Any) -> float | None:
    """A record's time stamp as seconds since the epoch; None where it is missing or malformed."""
    try:
        return datetime.strptime(str(value), TIME_FORMAT).timestamp()
    except ValueError:
        return None


def read_record(path: Path) -> dict[str, Any]:
    """Load a run.json."""
    with open(path) as f:
        return json.load(f)


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])  # fields after the command name, which may hold spaces


def process_identity() -> dict[str, Any]:
    """Who is writing a record: host, pid and the process's start time (so a reused pid is not mistaken for it)."""
    return {"host": platform.node(), "pid": os.getpid(), "start_ticks": _start_ticks(os.getpid())}


def process_alive(process: dict[str, Any] | None) -> bool | None:
    """Whether the process that wrote a record still runs: None when it cannot be told (another host, no pid)."""
    if not isinstance(process, dict) or process.get("host") != platform.node() or not process.get("pid"):
        return None
    pid = int(process["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds the pid now
        return False
    started = process.get("start_ticks")
    return started is None or _start_ticks(pid) in (None, started)


def effective_status(record: dict[str, Any]) -> str | None:
    """A record's status, except that a `running` one whose process is gone (killed: SIGKILL, a lost node, an OOM
    kill leave no chance to write) is `interrupted`."""
    status = record.get("status")
    if status == "running" and process_alive(record.get("process")) is False:
        return "interrupted"
    return status


def _git(args: list[str], cwd: Path) -> str | None:
    """A git command's stdout, None where git is absent or the command fails."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _checkout(start: Path | None) -> Path | None:
    """The git checkout holding rnnbench's running code (`start`: a file of it), None for an installed wheel.

    The code that trains is the code imported, so its checkout is read: with an editable install or PYTHONPATH
    that is the working tree the job's code runs from, wherever the job's own folder or working directory is (a
    study's outputs, another checkout). The file must be tracked there, so a wheel in a virtualenv that happens to
    sit inside some checkout does not borrow that checkout's commit."""
    here = (start or Path(__file__)).resolve()
    top = _git(["rev-parse", "--show-toplevel"], here.parent)
    if not top or _git(["ls-files", "--error-unmatch", str(here)], Path(top.strip())) is None:
        return None
    return Path(top.strip())


def git_sha(start: Path | None = None) -> str | None:
    """The commit of the checkout rnnbench's code runs from (None when installed from a wheel or git is absent)."""
    top = _checkout(start)
    sha = _git(["rev-parse", "HEAD"], top) if top else None
    return (sha.strip() or None) if sha else None


def git_dirty(start: Path | None = None) -> bool | None:
    """Whether that checkout's tracked files differ from its commit (`git describe --dirty`'s sense: untracked
    files, such as outputs, do not count); None where there is no checkout."""
    top = _checkout(start)
    status = _git(["status", "--porcelain", "--untracked-files=no"], top) if top else None
    return None if status is None else bool(status.strip())


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

"""What W&B itself records for rnnbench's runs, read back from the offline run files with W&B's own inspector
(`wandb leet inspect --summary --json`), not from rnnbench's calls: the config of agent-launched runs, step axes and
summaries that agree with run.json, one run per job across retries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rnnbench.tracking.run_record import read_record

BIN = Path(sys.executable).parent
SMALL = ["trainer=smoke", "task.n_train=128", "task.n_val=64", "task.n_test=64", "task.batch_size=32"]


def inspect(run_dir: Path) -> dict[str, Any]:
    """W&B's own reading of a job's latest offline run: state, config, summary, as one JSON object."""
    out = subprocess.run(
        [str(BIN / "wandb"), "leet", "inspect", "--summary", "--json", str(run_dir / "wandb" / "latest-run")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def train_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`rnnbench-train` in its own process, as a user or `wandb agent` starts it."""
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run(
        [str(BIN / "rnnbench-train"), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600
    )


def agent_env(tmp_path: Path, params: dict[str, Any], run_id: str = "agentrun1") -> dict[str, str]:
    """The environment `wandb agent` gives the program (wandb_agent.py `_command_run`): its run id, sweep id and a
    params file written the agent's way (`config_util.save_config_file_from_dict`)."""
    from wandb.sdk.lib import config_util

    path = tmp_path / "wandb" / "sweep-sw33p" / f"config-{run_id}.yaml"
    config_util.save_config_file_from_dict(str(path), {k: {"value": v} for k, v in params.items()})
    return {
        "WANDB_SWEEP_ID": "sw33p",
        "WANDB_RUN_ID": run_id,
        "WANDB_SWEEP_PARAM_PATH": str(path),
        "WANDB_PROJECT": "rnnbench",
        "WANDB_DIR": str(tmp_path),
    }


def test_an_agent_launched_run_keeps_the_composed_config(tmp_path: Path) -> None:
    """The agent's parameters arrive twice: as Hydra overrides (`${args_no_hyphens}`) and in the params file."""
    params = {"task": "adding", "model": "gru", "task.seq_len": 7, "seed": 1}
    overrides = [f"{k}={v}" for k, v in params.items()]
    job = tmp_path / "job"
    result = train_cli([*overrides, *SMALL, f"hydra.run.dir={job}"], tmp_path, agent_env(tmp_path, params))
    assert result.returncode == 0, result.stderr[-2000:]
    seen = inspect(job)
    assert seen["run_id"] == "agentrun1" and seen["state"] == "finished"  # the agent's run, so its sweep finds it
    config = seen["config"]
    assert config["model"]["cell"] == "gru" and config["model"]["hidden_size"] == 64  # nested, not "gru"
    assert config["task"]["_target_"].endswith("AddingTask") and config["task"]["seq_len"] == 7
    assert config["seed"] == 1
    assert config["sweep_params"] == params  # the sweep's own parameters, visible without clobbering
    record = read_record(job / "run.json")
    assert {k: v for k, v in config.items() if k not in ("sweep_params", "_wandb")} == record["config"]

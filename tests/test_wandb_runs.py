"""What W&B itself records for rnnbench's runs, read back from the offline run files with W&B's own inspector
(`wandb leet inspect --summary --json`), not from rnnbench's calls: the config of agent-launched runs, step axes and
summaries that agree with run.json, one run per job across retries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rnnbench.tracking.run_record import read_record
from rnnbench.tracking.wandb_run import job_run_id, record_summary, start_run
from rnnbench.training.config import compose_config
from rnnbench.training.train import train

BIN = Path(sys.executable).parent
SMALL = ["trainer=smoke", "task.n_train=128", "task.n_val=64", "task.n_test=64", "task.batch_size=32"]


def inspect(run_dir: Path) -> dict[str, Any]:
    """W&B's own reading of a job's latest offline run: state, config, summary, as one JSON object."""
    return inspect_folder(run_dir / "wandb" / "latest-run")


def inspect_folder(folder: Path) -> dict[str, Any]:
    """`wandb leet inspect --summary --json` of one offline run folder."""
    out = subprocess.run(
        [str(BIN / "wandb"), "leet", "inspect", "--summary", "--json", str(folder)],
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


@pytest.mark.slow  # a W&B sweep agent in a subprocess: ~20 s
def test_an_agent_launched_run_keeps_the_composed_config(tmp_path: Path) -> None:
    """The agent's parameters arrive twice: as Hydra overrides (`${args_no_hyphens}`) and in the params file."""
    params = {"task": "adding", "model": "gru", "task.seq_len": 7, "seed": 1}
    overrides = [f"{k}={v}" for k, v in params.items()]
    job = tmp_path / "job"
    result = train_cli([*overrides, *SMALL, f"hydra.run.dir={job}"], tmp_path, agent_env(tmp_path, params))
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]  # a single run ends on its result (rnnbench.training.progress)
    assert last.startswith("result: adding finished: test/mse ") and last.endswith(f"record: {job / 'run.json'}")
    seen = inspect(job)
    assert seen["run_id"] == "agentrun1" and seen["state"] == "finished"  # the agent's run, so its sweep finds it
    config = seen["config"]
    assert config["model"]["cell"] == "gru" and config["model"]["hidden_size"] == 64  # nested, not "gru"
    assert config["task"]["_target_"].endswith("AddingTask") and config["task"]["seq_len"] == 7
    assert config["seed"] == 1
    assert config["sweep_params"] == params  # the sweep's own parameters, visible without clobbering
    assert not [r for r in records(job) if r["type"] == "artifact"]  # no checkpoint upload unless asked
    record = read_record(job / "run.json")
    assert {k: v for k, v in config.items() if k not in ("sweep_params", "_wandb")} == record["config"]


def records(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of a job's latest offline run, as W&B's inspector prints them (one JSON object a line)."""
    out = subprocess.run(
        [str(BIN / "wandb"), "leet", "inspect", "--json", str(run_dir / "wandb" / "latest-run")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def smoke(overrides: list[str], out: Path) -> dict[str, Any]:
    cfg = compose_config([*SMALL, *overrides])
    return train(cfg, out, overrides)


def test_steps_are_the_x_axis_and_the_summary_says_what_run_json_says(run_dir: Path) -> None:
    record = smoke(["model=gru", "trainer.max_epochs=3", "logger.log_checkpoint=true"], run_dir)
    seen = records(run_dir)
    (artifact,) = [r["artifact"] for r in seen if r["type"] == "artifact"]  # the tested checkpoint, opted in
    assert (artifact["type"], artifact["name"]) == ("model", f"model-{record['wandb']['id']}")
    assert json.loads(artifact["metadata"])["best_val"] == record["best_val"]
    steps = {m["metric"].get("glob_name"): m["metric"].get("step_metric") for m in seen if m["type"] == "metric"}
    assert {steps[p] for p in ("train/*", "val/*", "diag/*", "test/*")} == {"trainer/global_step"}
    rows = [r["history"]["item"] for r in seen if r["type"] == "history"]
    assert all("trainer/global_step" in row for row in rows)
    assert [row["val/mse"] for row in rows if "val/mse" in row] == [h["val/mse"] for h in record["history"]]
    assert sum("test/mse" in row for row in rows) == 1  # the test metrics are logged once
    summary = inspect(run_dir)["summary"]
    best = record["best_val"]
    assert {k: summary[k] for k in best if k.startswith("val/")} == {
        k: v for k, v in best.items() if k.startswith("val/")
    }
    assert summary["best_val"] == best  # whole, as run.json has it
    assert {k: summary[k] for k in record["test"]} == record["test"]
    assert (summary["status"], summary["beats_baseline"]) == ("finished", record["beats_baseline"])
    assert summary["baseline/mse"] == record["baseline"]["mse"] and summary["num_parameters"] == 13121
    assert summary["time_loops"] == record["time_loops"] == "python"  # the GRU's custom path, compiled loops off


def test_the_summary_holds_the_tested_epoch_not_the_last() -> None:
    """The issue's run: val/loss 250.9, 5.28, 105.6, 64.0, 4.15, 28.9; the tested checkpoint is the 4.15 epoch."""
    record = {
        "status": "finished",
        "best_val": {"val/loss": 4.15, "val/mse": 4.15, "epoch": 4, "step": 500},
        "test": {"test/mse": 4.3},
        "baseline": {"mse": 0.17},
        "solved": False,
        "steps_to_solve": None,
        "diverged_at_step": 12,
    }
    assert record_summary(record) == {
        "val/loss": 4.15,
        "val/mse": 4.15,
        "best_val": {"val/loss": 4.15, "val/mse": 4.15, "epoch": 4, "step": 500},
        "test/mse": 4.3,
        "baseline/mse": 0.17,
        "status": "finished",
        "solved": False,
        "steps_to_solve": None,
        "diverged_at_step": 12,
    }


def test_a_relaunched_job_continues_its_w_and_b_run(tmp_path: Path) -> None:
    """Two attempts of one job: one run id, each attempt in its own offline folder; another job gets another id."""
    job, other = tmp_path / "sweep" / "3", tmp_path / "sweep" / "4"
    ids = []
    for attempt in range(2):
        run = start_run(job, "rnnbench", "model=gru", "cell", "adding", [], {"seed": 0}, run_id=job_run_id(job))
        run.log({"attempt": attempt})
        ids.append(run.id)
        run.finish()
        time.sleep(1.1)  # W&B names offline folders by the second; a real retry comes later than that
    assert ids[0] == ids[1] == job_run_id(tmp_path / "sweep" / ".." / "sweep" / "3")
    folders = sorted((job / "wandb").glob("offline-run-*"))
    assert [inspect_folder(f)["run_id"] for f in folders] == ids  # as W&B reads them: two attempts, one run
    assert job_run_id(other) != ids[0]

"""Launchers (conf/hydra/launcher/, README "Scaling out"): submitit_local, slurm and ray compose on rnnbench's
defaults; a failed job fails for the scheduler while the sweep still lists every job and exits 1; the same smoke
multirun gives the same run records under basic, joblib, submitit_local (and Ray, in its own venv)."""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rnnbench.tracking.run_record import read_record, write_record
from rnnbench.training.cli import unfinished_runs
from rnnbench.training.config import compose_config as compose
from rnnbench.training.config import hydra_group_options, missing_plugin
from rnnbench.training.scheduled import JobFailed, gather, raise_if_failed

submitit = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="needs the submitit extra: pip install -e '.[submitit]'",
)
BASE = ["budget=smoke", "logger=none", "checkpoint=false", "threads=1", "+fault=by_seed"]
SWEEP = ["-m", *BASE, "seed=0,1,4"]  # seeds 0 and 1 finish, 4 raises at its first step (conf/fault/by_seed.yaml)
STATUSES = {"seed=0": "finished", "seed=1": "finished", "seed=4": "failed"}
FAILED_FOR_SCHEDULER = re.compile(r"job #\d+ failed \(")  # Hydra logs it (to stdout) only when the scheduler did


def _cli(python: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    exe = python.parent / "rnnbench-train"
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=900, env=os.environ)


def _records(sweep: Path) -> dict[tuple[str, ...], str]:
    """Each job's overrides (in any order) -> its status: what must not depend on the launcher."""
    records = {tuple(sorted(r["overrides"])): r["status"] for r in map(read_record, sweep.glob("*/run.json"))}
    seeds = {next(o for o in overrides if o.startswith("seed=")): status for overrides, status in records.items()}
    assert seeds == STATUSES
    return records


def _job(folder: Path, status: JobStatus = JobStatus.COMPLETED) -> JobReturn:
    hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(folder)}}})
    return JobReturn(overrides=["seed=0"], hydra_cfg=hydra_cfg, status=status, _return_value=0.5)


def test_the_launchers_are_options_whether_or_not_their_plugin_is_installed() -> None:
    assert {"basic", "joblib", "ray", "slurm", "submitit_local"} <= set(hydra_group_options("hydra/launcher"))
    assert "submitit_slurm" not in hydra_group_options("hydra/launcher")  # the plugin's own: replaced by `slurm`
    text = "In 'hydra/launcher/ray': Could not find 'hydra/launcher/_ray'"
    found = importlib.util.find_spec
    fake = {"hydra_plugins.hydra_ray_launcher": None, "ray": None}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(importlib.util, "find_spec", lambda name, *a: fake.get(name, found(name, *a)))
        assert missing_plugin(text) == (
            "hydra/launcher=ray needs the ray extra, which is not installed: pip install 'rnnbench[ray]'"
        )
        assert missing_plugin("Could not find 'hydra/sweeper/optuna'", ["hydra/launcher=ray"]).startswith(
            "hydra/launcher=ray needs the ray extra"
        )  # picked on the command line
    assert missing_plugin("In 'model/x': Could not find 'model/y'", ["model=x"]) is None


@submitit
def test_submitit_local_and_slurm_compose_on_rnnbench_defaults_with_any_budget() -> None:
    local = compose(["hydra/launcher=submitit_local"], hydra=True).hydra.launcher
    assert local._target_ == "hydra_plugins.rnnbench_launchers.submitit_launchers.LocalLauncher"
    assert (local.n_jobs, local.timeout_min) == (-1, 1440)
    slurm = compose(["+sweep=cell", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"], hydra=True)
    launcher = slurm.hydra.launcher  # +sweep=cell picks budget=cpu, which leaves n_jobs to the launcher
    assert launcher._target_ == "hydra_plugins.rnnbench_launchers.submitit_launchers.SlurmLauncher"
    assert (launcher.partition, launcher.cpus_per_task, launcher.array_parallelism, launcher.setup) == (
        "gpu",
        1,
        64,
        [],
    )
    assert slurm.threads == 1 and "qos" in launcher  # every option of the plugin's schema stays available
    assert compose(["budget=cpu"], hydra=True).hydra.launcher.n_jobs == -1  # joblib: one job per core (2 here)


@submitit
def test_slurm_settings_reach_the_sbatch_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cluster here: a stand-in `srun` on PATH lets submitit build the job array's sbatch script, unsent."""
    from submitit.slurm.slurm import _make_sbatch_string

    (tmp_path / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    settings = ["partition=gpu", "gpus_per_node=1", "cpus_per_task=4", "timeout_min=120", "array_parallelism=4"]
    settings += ['setup=["source ~/venv/bin/activate"]']
    launcher = ["hydra/launcher=slurm", *(f"hydra.launcher.{s}" for s in settings)]
    cfg = compose(["+sweep=cell", *launcher, "hydra.job.name=cell", f"hydra.sweep.dir={tmp_path}"], hydra=True)
    executor, slots = instantiate(cfg.hydra.launcher).executor(12)
    assert slots == 12  # all submitted as one array; SLURM runs array_parallelism of it at once
    script = _make_sbatch_string(command="true", folder=tmp_path, map_count=12, **executor._executor.parameters)
    for line in ("--array=0-11%4", "--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=4", "--time=120"):
        assert f"#SBATCH {line}\n" in script, line
    assert "\n# setup\nsource ~/venv/bin/activate\n" in script


def test_a_failed_job_raises_in_its_own_process_and_a_result_does_not(tmp_path: Path) -> None:
    write_record(tmp_path / "ok" / "run.json", {"status": "finished"})
    write_record(tmp_path / "blew" / "run.json", {"status": "diverged"})
    write_record(tmp_path / "bad" / "run.json", {"status": "failed", "error": "RuntimeError: injected"})
    assert raise_if_failed(_job(tmp_path / "ok")).return_value == 0.5
    assert raise_if_failed(_job(tmp_path / "blew")).return_value == 0.5
    with pytest.raises(JobFailed, match=r"bad: RuntimeError: injected \(its run.json says failed\)$"):
        raise_if_failed(_job(tmp_path / "bad"))
    crashed = JobReturn(overrides=[], status=JobStatus.FAILED, _return_value=KeyError("outside train"))
    with pytest.raises(KeyError, match="outside train"):
        raise_if_failed(crashed)


def test_gather_returns_every_job_in_order_and_a_failed_one_as_basic_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_record(tmp_path / "0" / "run.json", {"status": "finished", "overrides": ["seed=0"]})
    write_record(tmp_path / "1" / "run.json", {"status": "failed", "overrides": ["seed=1"], "error": "E: x"})
    config = OmegaConf.create({"hydra": {"job": {}, "sweep": {"dir": str(tmp_path), "subdir": "${hydra.job.num}"}}})
    loader = SimpleNamespace(load_sweep_config=lambda cfg, overrides: OmegaConf.create(OmegaConf.to_yaml(cfg)))
    context = SimpleNamespace(config_loader=loader)
    ended = [(1, JobFailed("scheduler: failed")), (0, _job(tmp_path / "0"))]  # the second job ends first
    returns = gather(config, context, [["seed=0"], ["seed=1"]], 0, ended)
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.COMPLETED]
    assert [r.return_value for r in returns] == [0.5, None]  # None: what basic/joblib get from a failed job
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "[2] seed=1: failed | 1 failed, 0 diverged so far",
        "[2] seed=0: finished | 1 failed, 0 diverged so far",
    ]


@submitit
def test_submitit_local_runs_at_most_n_jobs_at_once() -> None:
    from hydra_plugins.rnnbench_launchers import submitit_launchers
    from hydra_plugins.rnnbench_launchers.submitit_launchers import LocalLauncher, cpu_slots

    class Job:
        def __init__(self, log: list[int], pos: int) -> None:
            self.log, self.pos, self.polls = log, pos, 0

        def done(self) -> bool:
            self.polls += 1
            return self.polls > 1

        def exception(self) -> None:
            return None

        def results(self) -> list[int]:
            self.log.remove(self.pos)
            return [self.pos]

    class Executor:
        def __init__(self) -> None:
            self.running: list[int] = []
            self.most = 0

        def submit(self, fn: object, pos: int) -> Job:
            self.running.append(pos)
            self.most = max(self.most, len(self.running))
            return Job(self.running, pos)

    executor = Executor()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(submitit_launchers, "POLL_S", 0.0)
        ended = list(LocalLauncher._run(None, executor, [(pos,) for pos in range(5)], slots=2))
    assert sorted(pos for pos, _ in ended) == [0, 1, 2, 3, 4] and executor.most == 2
    assert cpu_slots(3) == 3 and cpu_slots(-1) == len(os.sched_getaffinity(0)) and cpu_slots(-99) == 1


def test_the_summary_skips_a_launchers_own_folders(tmp_path: Path) -> None:
    write_record(tmp_path / "0" / "run.json", {"status": "finished"})
    write_record(tmp_path / "1" / "run.json", {"status": "failed"})
    (tmp_path / ".submitit" / "1234").mkdir(parents=True)  # submitit's logs and pickles, no run.json
    assert unfinished_runs(tmp_path) == [str(tmp_path / "1")]


@submitit
@pytest.mark.launchers
def test_the_same_smoke_multirun_gives_the_same_records_under_basic_joblib_and_submitit_local(tmp_path: Path) -> None:
    """Each launcher: 2 finished, 1 failed (an injected fault), exit 1 naming the failed job; under submitit the
    failed job also failed for submitit (its result file holds the error), the others succeeded."""
    records = {}
    for name in ("basic", "joblib", "submitit_local"):
        sweep = tmp_path / name
        done = _cli(Path(sys.executable), [*SWEEP, f"hydra/launcher={name}", f"hydra.sweep.dir={sweep}"], tmp_path)
        assert done.returncode == 1, (name, done.stderr[-3000:])
        records[name] = _records(sweep)
        assert records[name] == records["basic"], name
        assert bool(FAILED_FOR_SCHEDULER.search(done.stdout)) is (name == "submitit_local"), name
        failed = next(p.parent for p in sweep.glob("*/run.json") if read_record(p)["status"] == "failed")
        assert done.stderr.strip().endswith(f"rnnbench-train: 1 job(s) failed: {failed}"), (name, done.stderr[-500:])
    outcomes = sorted(
        pickle.loads(p.read_bytes())[0] for p in (tmp_path / "submitit_local").glob(".submitit/*/*_result.pkl")
    )
    assert outcomes == ["error", "success", "success"]  # what submitit (and so SLURM) was told per job


@pytest.mark.ray
def test_the_same_smoke_multirun_under_ray(tmp_path: Path) -> None:
    """In a venv of its own (hydra-ray-launcher pins cloudpickle < 3): RNNBENCH_RAY_PYTHON=<venv>/bin/python."""
    python = os.environ.get("RNNBENCH_RAY_PYTHON")
    if not python:
        pytest.skip(
            "set RNNBENCH_RAY_PYTHON to the python of a venv with the ray extra: python3 -m venv /tmp/venv-ray && "
            "/tmp/venv-ray/bin/pip install torch==2.13.0 && /tmp/venv-ray/bin/pip install -e '.[ray]'"
        )
    sweep = tmp_path / "ray"
    done = _cli(Path(python), [*SWEEP, "hydra/launcher=ray", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert len(_records(sweep)) == 3
    assert FAILED_FOR_SCHEDULER.search(done.stdout)  # the failed job's Ray task raised (Hydra logs to stdout)
    assert done.stderr.strip().splitlines()[-1].startswith("rnnbench-train: 1 job(s) failed:")

"""Run and sweep folders are unique per launch (`${unique_now:...}`), agreed on by every job; a study's stays put."""

from __future__ import annotations

import pickle
import re
from datetime import datetime

import pytest
from omegaconf import OmegaConf

from rnnbench.training import resolvers
from rnnbench.training.config import compose_config

STAMP = r"\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}-\d{6}-[0-9a-f]{4}"


class FrozenClock(datetime):
    """Every launch starts at the same microsecond: only the random part can tell them apart."""

    @classmethod
    def now(cls, tz: object = None) -> datetime:
        return datetime(2026, 12, 1, 23, 45, 32, 123456)


def test_two_launches_in_the_same_second_get_different_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolvers, "datetime", FrozenClock)
    first, second = compose_config([], hydra=True), compose_config([], hydra=True)
    for key in ("hydra.sweep.dir", "hydra.run.dir"):
        one, two = OmegaConf.select(first, key), OmegaConf.select(second, key)
        assert one != two, key
        assert one.startswith("outputs/") and one.rsplit("-", 1)[0] == two.rsplit("-", 1)[0]  # same time, to the µs
        assert re.fullmatch(rf"outputs/(multirun|runs)/{STAMP}", one), one
    assert first.hydra.sweep.dir.split("/")[2:4] == ["2026-12-01", "23-45-32-123456-" + first.hydra.sweep.dir[-4:]]


def test_a_launch_resolves_its_folder_once_and_a_worker_reads_the_same() -> None:
    cfg = compose_config([], hydra=True)
    folder = cfg.hydra.sweep.dir
    assert cfg.hydra.sweep.dir == folder  # cached, as Hydra's ${now:}: every job of the sweep agrees
    job = OmegaConf.create({"hydra": {"sweep": {"dir": "outputs/multirun/${unique_now:%Y-%m-%d/%H-%M-%S}"}}})
    OmegaConf.copy_cache(from_config=cfg, to_config=job)  # what Hydra's load_sweep_config does for each job
    assert job.hydra.sweep.dir == folder
    assert pickle.loads(pickle.dumps(cfg)).hydra.sweep.dir == folder  # joblib / submitit / Ray workers get a pickle


def test_an_explicit_sweep_dir_is_kept_as_given() -> None:
    """rnnbench-study's stable folder (outputs/studies/NAME/tune) is set explicitly and stays that."""
    cfg = compose_config(["hydra.sweep.dir=outputs/studies/cell/tune"], hydra=True)
    assert cfg.hydra.sweep.dir == "outputs/studies/cell/tune"

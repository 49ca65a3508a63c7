"""Config composition and validation: every model x task composes, bad input fails in one line before training."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from rnnbench.training.config import ConfigError, check_config, compose_config, group_options, job_overrides, preflight
from test_sword import needs_bibles

MODELS = ["rnn", "lstm", "gru", "peephole_lstm"]
TASKS = ["adding", "copy_memory"]


def test_groups_list_their_options() -> None:
    assert group_options("model") == sorted([*MODELS, "lstm_chrono", "seq2seq"])  # seq2seq: the seq2seq task only
    assert set(TASKS) <= set(group_options("task"))
    assert group_options("trainer") == ["cpu", "default", "gpu", "smoke"]
    assert group_options("logger") == ["csv", "none", "wandb"]
    assert group_options("optim") == ["adam", "rmsprop", "sgd"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("task", TASKS)
def test_every_model_composes_with_every_long_lag_task(model: str, task: str) -> None:
    cfg = compose_config([f"model={model}", f"task={task}", "task.seq_len=17"])
    check_config(cfg)
    task_obj = instantiate(cfg.task)
    body = instantiate(cfg.model, **task_obj.model_kwargs())
    assert body.cell == model and task_obj.seq_len == 17
    assert task_obj.data_seed == cfg.seed  # data follows the run's seed: same seed, same data for every variant


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=lstmm"], "unknown model 'lstmm'; allowed: gru, lstm, lstm_chrono, peephole_lstm, rnn"),
        (["model.hiden_size=4"], "unknown key model.hiden_size; allowed keys under model: bidirectional, cell,"),
        (["model.hidden_size=-4"], "model.hidden_size must be a positive int, got -4"),
        (["task.seq_len=0"], "task.seq_len must be a positive int, got 0"),
        (["model.dropout=1.5"], "model.dropout must be a float in [0, 1), got 1.5"),
        (["model=peephole_lstm", "model.impl=fused"], "model.impl='fused' has no kernel for cell='peephole_lstm'"),
        (["seed=abc"], "seed must be an int, got 'abc'"),
        (["threads=0"], "threads must be a positive int or null (torch's default), got 0"),
        (["+thread=2"], "unknown top-level key thread; allowed: checkpoint, checkpoint_metric, diagnostics,"),
        (["logger.mode=onlin"], "logger.mode must be one of offline, online, disabled, got 'onlin'"),
        (["+trainer.max_epoch=3"], "unknown key trainer.max_epoch; allowed keys under trainer:"),
        (["optim.optimizer.lr=-1"], "optim.optimizer.lr must be a number >= 0, got -1"),
        (["+optim.optimizer.betas=[1.5,0.9]"], "optim.optimizer: Invalid beta parameter at index 0: 1.5"),
    ],
)
def test_bad_input_is_one_clear_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        preflight(overrides)
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_multirun_checks_every_swept_value_before_running() -> None:
    with pytest.raises(ConfigError, match=r"task\.seq_len must be a positive int, got 0"):
        preflight(["model=rnn,lstm", "task.seq_len=10,0"], multirun=True)
    assert preflight(["model=rnn,lstm", "seed=0,1"], multirun=True) == 4


def test_job_overrides_expand_the_product_and_cut_large_sweeps() -> None:
    jobs = job_overrides(["model=rnn,gru", "seed=0,1", "trainer=smoke"])
    assert sorted(map(tuple, jobs)) == sorted(
        ("trainer=smoke", f"model={m}", f"seed={s}") for m in ("rnn", "gru") for s in ("0", "1")
    )
    big = job_overrides(["seed=range(10)", "task.seq_len=range(1,11)"])  # 100 jobs: each value checked once
    assert len(big) == 1 + 9 + 9
    assert {j[0] for j in big} == {f"seed={i}" for i in range(10)}
    studied = job_overrides(["seed=range(10)", "model=rnn,gru,lstm", "task.seq_len=1,2,3,4"], crossed=["model"])
    assert {(j[0], j[1]) for j in studied} >= {("seed=0", f"model={m}") for m in ("rnn", "gru", "lstm")}
    assert len(studied) == 3 + 9 + 3  # every compared value at the first of the others, then one at a time


def test_user_config_dir_adds_options(tmp_path: pytest.TempPathFactory) -> None:
    (tmp_path / "model").mkdir()
    tiny = "defaults:\n  - _recurrent\n  - _self_\n\ncell: gru\nhidden_size: 8\n"
    (tmp_path / "model" / "tiny_gru.yaml").write_text(tiny)
    cfg = compose_config(["model=tiny_gru"], user_config_dir=str(tmp_path))
    check_config(cfg)
    assert cfg.model.cell == "gru" and cfg.model.hidden_size == 8
    assert "tiny_gru" in group_options("model", str(tmp_path))


def test_command_line_narrows_a_sweep_files_params() -> None:
    sweep_file = {"model": "rnn,lstm,gru,peephole_lstm", "task": "adding,tagging", "seed": "0,1,2"}
    jobs = job_overrides(["model=lstm,gru"], sweep_file)
    assert len(jobs) == 2 * 2 * 3
    assert {o for job in jobs for o in job if o.startswith("model=")} == {"model=lstm", "model=gru"}


def test_unknown_sweep_or_budget_lists_the_options() -> None:
    with pytest.raises(ConfigError, match=r"^unknown budget 'tiny'; allowed: cpu, cpu_long, full, smoke$"):
        preflight(["+sweep=cell", "budget=tiny"], multirun=True)
    with pytest.raises(
        ConfigError, match=r"^budget is already in the defaults list: select it with budget=smoke \(no \+\)$"
    ):
        preflight(["+budget=smoke"])


SEQ2SEQ_TASKS = {"seq2seq", "translate"}


SWORD_TASKS = {"char_lm", "translate"}  # read the Debian packages' Bibles: a valid pair needs them to build


def _valid(model: str, task: str) -> bool:
    return (model == "seq2seq") == (task in SEQ2SEQ_TASKS)


def _pairs(valid_only: bool = False) -> list:
    """Every (model, task) pair; the valid ones of the Bible tasks skip where the texts are not installed (a wrong
    pair of them must fail the pairing check without any data, so those always run)."""
    return [
        pytest.param(m, t, marks=[needs_bibles] if _valid(m, t) and t in SWORD_TASKS else [])
        for m in group_options("model")
        for t in group_options("task")
        if _valid(m, t) or not valid_only
    ]


@pytest.mark.parametrize(("model", "task"), _pairs())
def test_every_model_task_pair_is_either_valid_or_refused_in_one_line(model: str, task: str) -> None:
    overrides = [f"model={model}", f"task={task}"]
    if _valid(model, task):
        check_config(compose_config(overrides))
    else:
        # the task's label, or its class's name (checked before the task is built): timing's and counting's carry a
        # variant
        label = rf"({task}|{task.partition('_')[0]})(_\w+)?"
        with pytest.raises(ConfigError, match=rf"^task {label} needs a (seq2seq|recurrent) model, got a "):
            preflight(overrides)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "task"), _pairs(valid_only=True))
def test_every_valid_pair_trains_at_the_smoke_budget(model: str, task: str, tmp_path: pytest.TempPathFactory) -> None:
    from rnnbench.training.train import train

    cfg = compose_config([f"model={model}", f"task={task}", "logger=none", "budget=smoke"])
    assert train(cfg, tmp_path / "run")["status"] == "finished"

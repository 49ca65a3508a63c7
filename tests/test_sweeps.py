"""The sweeps: each composes at every budget, compares what its claim says, and matches its W&B sweep file."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rnnbench.study.spec import Study, parse_study
from rnnbench.tasks.seq_digits import SOURCES
from rnnbench.training.config import ConfigError, _resource_dir, compose_config, config_dir, group_options, preflight

SWEEPS_DIR = _resource_dir("sweeps")
SWEEPS = sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))
BUDGETS = ("smoke", "cpu", "full")
PARSER = OverridesParser.create()


def sweep_values(params: dict[str, str]) -> dict[str, list]:
    """Hydra sweeper params as parsed values per key (a fixed value is a one-element list)."""
    parsed = {}
    for key, value in params.items():
        o = PARSER.parse_override(f"{key}={value}")
        parsed[key] = list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
    return parsed


def study_of(name: str) -> Study:
    """The study block a sweep file declares."""
    return parse_study(OmegaConf.to_container(compose_config([f"+sweep={name}"]).study, resolve=True))


def test_every_sweep_declares_a_study_with_hypotheses_and_the_group_finds_them_all() -> None:
    studies = (
        "attention bidirectional cell counting depth depth_lm peephole peephole_lm peephole_long seq_len seq_len_copy "
        "seq_len_long"
    )
    assert studies.split() == SWEEPS
    assert (config_dir() / "sweep").resolve() == SWEEPS_DIR.resolve()  # conf/sweep -> ../sweeps
    for name in SWEEPS:
        study = study_of(name)
        assert study.claim and study.reference and study.hypotheses, name
        assert all(h.margin for h in study.hypotheses if h.relation == "similar"), name


def variants(name: str, params: dict[str, list]) -> set[str]:
    """The variant labels the report will see: the study's compared keys in each job's composed config."""
    study = study_of(name)
    keys = [k for k in ("model", *study.compare) if k in params]
    combos = itertools.product(*(params[k] for k in keys))
    configs = (compose_config([f"+sweep={name}", *(f"{k}={v}" for k, v in zip(keys, c, strict=True))]) for c in combos)
    return {study.variant_of(OmegaConf.to_container(cfg, resolve=True)) for cfg in configs}


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_composes_fairly(name: str, budget: str) -> None:
    cfg = compose_config([f"+sweep={name}", f"budget={budget}"], hydra=True)
    assert cfg.experiment == name and f"sweep:{name}" in cfg.tags
    params = sweep_values(dict(cfg.hydra.sweeper.params))
    assert len(params["seed"]) >= (2 if budget == "smoke" else 3)
    assert set(params["task"]) <= set(group_options("task"))  # only tasks that exist
    study = study_of(name)
    if budget == "smoke":  # the variants do not depend on the budget; composing each is the slow part
        labels = variants(name, params)
        assert study.reference in labels and {h.variant for h in study.hypotheses} <= labels
    if study.factor:
        assert study.factor in params


def test_budget_default_is_cpu() -> None:
    default, cpu = compose_config(["+sweep=cell"]).trainer, compose_config(["+sweep=cell", "budget=cpu"]).trainer
    assert default.max_steps == cpu.max_steps > 0 and default.val_check_interval == cpu.val_check_interval


def sizes(cfg: object) -> tuple[int | None, ...]:
    """A composed config's (n_train, n_val, n_test)."""
    return cfg.task.n_train, cfg.task.n_val, cfg.task.n_test


def test_budget_full_reads_all_of_mnist_for_seq_digits_and_every_translate_pair() -> None:
    full = compose_config(["+sweep=bidirectional", "budget=full", "task=seq_digits"])
    assert full.task.source == "mnist_hub" and full.task.hub_name == "ylecun/mnist"
    assert sizes(full) == sizes(compose_config(["+sweep=bidirectional", "budget=full"]))  # the budget's own sizes
    assert sum(sizes(full)) > SOURCES["mnist"].size and sum(sizes(full)) <= 70_000  # all of MNIST holds them
    single = compose_config(["task=seq_digits", "budget=full"])  # a single run takes budget=<name> as well
    assert single.task.source == "mnist_hub" and sizes(single) == sizes(full)
    translate = compose_config(["+sweep=attention", "budget=full", "task=translate"])
    assert sizes(translate) == (None, None, None)  # every pair of its pools, which are smaller than the budget's


@pytest.mark.parametrize("budget", ["smoke", "cpu"])
def test_smaller_budgets_keep_seq_digits_on_the_shipped_mnist(budget: str) -> None:
    cfg = compose_config(["+sweep=bidirectional", f"budget={budget}", "task=seq_digits"])
    assert cfg.task.source == "mnist" and sizes(cfg) == sizes(
        compose_config(["+sweep=bidirectional", f"budget={budget}"])
    )
    assert instantiate(cfg.task).size == SOURCES["mnist"].size  # its sizes fit the shipped 5000 images
    translate = compose_config(["+sweep=attention", f"budget={budget}", "task=translate"])
    assert sizes(translate) == sizes(cfg)


def test_no_budget_leaves_the_task_its_own_sizes() -> None:
    cfg = compose_config(["task=seq_digits"])
    assert cfg.task.source == "mnist" and sizes(cfg) == (None, 250, 500) and cfg.trainer.max_epochs == 10


def test_budget_task_files_name_a_budget_and_a_task() -> None:
    """`optional` ignores a file nobody selects, so a misspelt one would silently never apply."""
    for name in group_options("budget_task"):
        budget, _, task = name.partition("_")
        assert budget in group_options("budget") and task in group_options("task"), name


@pytest.mark.parametrize("name", SWEEPS)
def test_wandb_sweep_file_matches_the_hydra_sweep(name: str) -> None:
    spec = yaml.safe_load((SWEEPS_DIR / "wandb" / f"{name}.yaml").read_text())
    assert spec["method"] == "grid" and spec["program"] == "rnnbench-train"
    assert spec["command"] == ["${env}", "${program}", f"+sweep={name}", "logger.mode=online", "${args_no_hyphens}"]
    wandb_params = dict(spec["parameters"])
    budget = wandb_params.pop("budget")["value"]
    cfg = compose_config([f"+sweep={name}", f"budget={budget}"], hydra=True)
    hydra_params = sweep_values(dict(cfg.hydra.sweeper.params))
    as_hydra = {
        key: [PARSER.parse_override(f"{key}={v}").value() for v in p.get("values", [p.get("value")])]
        for key, p in wandb_params.items()
    }
    assert as_hydra == hydra_params


def test_sweep_files_ship_in_the_package_data() -> None:
    assert Path(SWEEPS_DIR, "wandb").is_dir() and all((SWEEPS_DIR / "wandb" / f"{n}.yaml").is_file() for n in SWEEPS)


@pytest.mark.parametrize("name", SWEEPS)
def test_diagnostics_are_on_where_the_report_plots_them(name: str) -> None:
    """cell and the seq_len studies probe gradients and gates (W&B runs too: their command holds +sweep=<name>)."""
    assert compose_config([f"+sweep={name}"]).diagnostics.enabled == (name == "cell" or name.startswith("seq_len"))


MINE = """# @package _global_
experiment: mine
study:
  compare: model.cell
  reference: lstm
  hypotheses:
    - {HYPOTHESIS}
hydra:
  sweeper:
    params:
      task: adding
      model: lstm,gru
"""


def _my_sweep(tmp_path: Path, hypothesis: str) -> str:
    (tmp_path / "sweep").mkdir(parents=True, exist_ok=True)
    (tmp_path / "sweep" / "mine.yaml").write_text(MINE.replace("{HYPOTHESIS}", hypothesis))
    return str(tmp_path)


@pytest.mark.parametrize(
    ("hypothesis", "error"),
    [
        (
            "{id: h, variant: grue, relation: better}",
            "study.hypotheses[0].variant 'grue' is not a variant of this sweep; allowed: gru, lstm",
        ),
        (
            "{id: h, variant: gru, relation: quicker}",
            "study.hypotheses[0].relation must be one of better, worse, "
            "similar, solves, faster, interaction, got 'quicker'",
        ),
        (
            "{id: h, variant: gru, relation: similar}",
            "study.hypotheses[0].margin is missing: a 'similar' hypothesis declares its margin in advance",
        ),
    ],
)
def test_a_bad_study_fails_at_launch_in_one_line(tmp_path: Path, hypothesis: str, error: str) -> None:
    user = _my_sweep(tmp_path, hypothesis)
    with pytest.raises(ConfigError) as caught:
        preflight(["+sweep=mine", "budget=smoke"], multirun=True, user_config_dir=user)
    assert str(caught.value) == error


def test_a_command_line_that_narrows_the_sweep_may_leave_a_hypothesis_unrun(tmp_path: Path) -> None:
    user = _my_sweep(tmp_path, "{id: h, variant: gru, relation: better}")
    assert preflight(["+sweep=mine", "budget=smoke", "model=lstm", "seed=0"], multirun=True, user_config_dir=user) == 1


def test_rnnbench_train_exits_2_on_an_unknown_variant(tmp_path: Path, monkeypatch, capsys) -> None:
    from rnnbench.training import cli

    user = _my_sweep(tmp_path, "{id: h, variant: peephole, relation: better}")
    monkeypatch.setattr("sys.argv", ["rnnbench-train", "--config-dir", user, "-m", "+sweep=mine", "budget=smoke"])
    with pytest.raises(SystemExit) as caught:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert caught.value.code == 2 and "\n" not in err
    assert (
        err == "rnnbench-train: error: study.hypotheses[0].variant 'peephole' is not a variant of this sweep; "
        "allowed: gru, lstm"
    )


def test_sweeps_readme_names_every_hypothesis_in_its_sweep_row() -> None:
    """sweeps/README.md's hypotheses table is written by hand, a row per sweep of `id[, id]: what it says; ...`:
    a hypothesis added, renamed or dropped in a sweep file must show in that row, so the table cannot drift."""
    cells = {
        line.split("|")[1].strip().strip("`"): line.split("|")[2]
        for line in (SWEEPS_DIR / "README.md").read_text().splitlines()
        if line.startswith("| `") and line.count("|") == 3
    }
    for name in SWEEPS:
        named = {i.strip() for clause in cells[name].split("; ") for i in clause.partition(":")[0].split(",")}
        assert named == {h.id for h in study_of(name).hypotheses}, name

"""The char_lm task on a tiny fake KJV module and on local text files through the hub path (nothing downloads):
determinism, contiguous disjoint splits, windows and their targets by hand, the unigram baseline (analytic ==
empirical), parameter errors, refusing bidirectional bodies, smoke runs; the real KJV text when installed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnbench.tasks.char_lm import BitsPerChar, CharLMTask
from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.train import train
from test_sword import needs_bibles, write_module

VERSES = [f"Verse {i}: and God saw that it was good." for i in range(40)]
SMALL = {
    "seq_len": 16,
    "val_fraction": 0.25,
    "test_fraction": 0.25,
    "n_train": 64,
    "n_val": 32,
    "n_test": 32,
    "batch_size": 16,
}


@pytest.fixture
def fake_kjv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An engKJV2006eb module holding VERSES after header slots, found through RNNBENCH_SWORD_DIR; its text."""
    library = tmp_path / "sword"
    write_module(library / "modules" / "texts" / "ztext" / "engKJV2006eb", ["", "", "<div/>", "<chapter/>", *VERSES])
    monkeypatch.setenv("RNNBENCH_SWORD_DIR", str(library))
    return "\n".join(VERSES)


def text_file(tmp_path: Path, text: str) -> str:
    """A local file for `load_dataset("text", data_files=...)`, the hub path without a download."""
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def decode(task: CharLMTask, ids: torch.Tensor) -> str:
    """Character ids back to text."""
    return "".join(task.vocab[i] for i in ids.tolist())


def test_same_seed_same_data_other_seed_other_data_and_split_sizes(fake_kjv: str) -> None:
    batches = []
    for seed in (3, 3, 4):
        task = CharLMTask(data_seed=seed, **SMALL)
        task.setup()
        batches.append(next(iter(task.val_dataloader())))
    a, b, c = batches
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert not torch.equal(a["y"], c["y"])
    assert a["x"].shape == (16, 16, len(task.vocab)) and torch.all(a["x"].sum(-1) == 1)
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 64, "val": 32, "test": 32}
    assert task.input_size == task.output_size == len(task.vocab) == len(set(fake_kjv))


def test_splits_are_contiguous_disjoint_line_aligned_and_windows_come_from_their_split(fake_kjv: str) -> None:
    task = CharLMTask(**SMALL)
    texts = task.texts
    assert texts["train"] + texts["val"] + texts["test"] == fake_kjv
    assert texts["train"].endswith("\n") and texts["val"].endswith("\n")  # every cut at a line start
    assert len(texts["train"]) == pytest.approx(0.5 * len(fake_kjv), abs=len(VERSES[0]) + 1)
    task.setup()
    for split in ("train", "val", "test"):
        batch = next(iter(task._loader(split)))
        for x, y in zip(batch["x"].argmax(-1), batch["y"], strict=True):
            assert torch.equal(x[1:], y[:-1])  # y is x one step ahead
            assert decode(task, torch.cat([x[:1], y])) in texts[split]


def test_a_hand_checked_window_and_a_local_hub_file(tmp_path: Path) -> None:
    cols = CharLMTask.generate(2, np.random.default_rng(0), text="cab\nba", vocab="\nabc", seq_len=3)
    starts = np.random.default_rng(0).integers(0, 3, size=2)
    ids = {"\n": 0, "a": 1, "b": 2, "c": 3}
    assert cols["chars"].tolist() == [[ids[ch] for ch in "cab\nba"[s : s + 4]] for s in starts]
    path = text_file(tmp_path, "hello world\n" * 30)
    task = CharLMTask(source="hub", hub_name="text", hub_data_files=path, **SMALL)
    assert task.vocab == "\n dehlorw"  # sorted characters of the text (the text builder drops the final newline)
    assert task.texts["train"].startswith("hello world\nhello")


def test_unigram_baseline_is_analytic_and_matches_an_empirical_unigram_model(tmp_path: Path) -> None:
    path = text_file(tmp_path, "aab\n" * 400)  # p(a) = 1/2, p(b) = p(newline) = 1/4: 1.5 bits
    task = CharLMTask(source="hub", hub_name="text", hub_data_files=path, **{**SMALL, "n_train": 512})
    base = task.baseline()
    assert base["bpc"] == pytest.approx(1.5, abs=1e-3)
    assert base["loss"] == pytest.approx(1.5 * math.log(2), abs=1e-3) and base["acc"] == pytest.approx(0.5, abs=1e-3)
    task.setup()
    y = task.splits["train"].columns["chars"][:, 1:].reshape(-1)
    unigram = torch.tensor([0.25, 0.5, 0.25]).log()  # vocab "\nab"
    bpc = BitsPerChar()(unigram.expand(len(y), 3), y).item()
    assert bpc == pytest.approx(base["bpc"], abs=0.02)
    assert (y == 1).float().mean().item() == pytest.approx(base["acc"], abs=0.02)  # always predicting "a"


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"source": "web"}, "source"),
        ({"val_fraction": 0.5}, "val_fraction"),
        ({"test_fraction": 0}, "test_fraction"),
        ({"seq_len": 10_000}, "seq_len"),  # longer than the validation text
        ({"source": "hub"}, "hub_name"),
        ({"source": "hub", "hub_name": "text", "hub_text_column": "body"}, "hub_text_column"),
    ],
)
def test_bad_params_name_the_parameter(fake_kjv: str, tmp_path: Path, bad: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key} must be"):
        CharLMTask(**{**SMALL, "hub_data_files": text_file(tmp_path, "some text\n" * 20), **bad})


def test_a_missing_bible_names_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNBENCH_SWORD_DIR", str(tmp_path))
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    monkeypatch.setattr("rnnbench.tasks.sword.SYSTEM_LIBRARY", tmp_path / "none")
    with pytest.raises(ConfigError, match="apt-get install sword-text-kjv"):
        preflight(["task=char_lm"])


def test_bidirectional_bodies_are_refused(fake_kjv: str) -> None:
    with pytest.raises(ConfigError, match="bidirectional"):
        preflight(["task=char_lm", "task.val_fraction=0.25", "task.test_fraction=0.25", "model.bidirectional=true"])


@pytest.mark.parametrize("source", ["kjv", "hub"])
def test_smoke_run_finishes_with_the_task_metrics(fake_kjv: str, tmp_path: Path, source: str) -> None:
    hub = ["task.source=hub", "task.hub_name=text", f"task.hub_data_files={text_file(tmp_path, fake_kjv)}"]
    overrides = ["task=char_lm", "task.seq_len=16", "task.val_fraction=0.25", "task.test_fraction=0.25"]
    sizes = ["task.n_train=64", "task.n_val=32", "task.n_test=32", "task.batch_size=32"]
    cfg = compose_config(
        ["trainer=smoke", "logger=none", "model=lstm", "model.hidden_size=16", *overrides, *sizes]
        + (hub if source == "hub" else [])
    )
    record = train(cfg, tmp_path / "run")
    assert record["status"] == "finished"
    assert set(record["test"]) == {"test/loss", "test/bpc", "test/acc"}
    assert record["baseline"]["bpc"] == pytest.approx(record["baseline"]["loss"] / math.log(2))


@needs_bibles
def test_the_installed_kjv_text() -> None:
    task = CharLMTask(n_train=8, n_val=8, n_test=8)
    assert task.texts["train"].startswith("In the beginning God created the heaven and the earth.\nAnd the earth")
    assert task.texts["test"].endswith("The grace of our Lord Jesus Christ be with you all. Amen.")
    assert sum(map(len, task.texts.values())) == 4149876 and len(task.vocab) == 69
    assert 4.2 < task.baseline()["bpc"] < 4.5

"""The seq2seq task: deterministic reverse/sort/add data, batching, exact-match scoring, baseline, end-to-end runs
and the refusal of models of the other kind."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnbench.tasks.seq2seq import BOS, DIGIT0, EOS, PAD, PLUS, Seq2SeqScores, Seq2SeqTask
from rnnbench.training.config import ConfigError, preflight
from test_train import smoke

SMALL = {"n_train": 64, "n_val": 32, "n_test": 48, "batch_size": 16}
TINY_MODEL = ["model=seq2seq", "task=seq2seq", "model.embed_dim=8", "model.hidden_size=16", "logger=none"]


def text(tokens: np.ndarray | torch.Tensor) -> str:
    """Digit and '+' tokens as a string."""
    return "".join("+" if t == PLUS else str(int(t) - DIGIT0) for t in tokens)


def examples(variant: str, n: int = 3, min_len: int = 3, max_len: int = 8) -> list[tuple[str, str]]:
    cols = Seq2SeqTask.generate(n, np.random.default_rng(0), variant, min_len, max_len)
    return [(text(s), text(t)) for s, t in zip(cols["src"], cols["tgt"], strict=True)]


def test_same_seed_same_data_other_seed_other_data() -> None:
    def val_src(seed: int) -> torch.Tensor:
        task = Seq2SeqTask(variant="add", min_len=3, seq_len=9, data_seed=seed, **SMALL)
        task.setup()
        return next(iter(task.val_dataloader()))["src"]

    assert torch.equal(val_src(3), val_src(3)) and not torch.equal(val_src(3), val_src(4))


def test_split_sizes() -> None:
    task = Seq2SeqTask(min_len=2, seq_len=6, **SMALL)
    task.setup()
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 64, "val": 32, "test": 48}


def test_hand_checked_examples() -> None:
    assert examples("reverse") == [("23000186", "68100032"), ("956976", "679659"), ("928603", "306829")]
    assert examples("sort") == [("23000186", "00012368"), ("956976", "566799"), ("928603", "023689")]
    assert examples("add") == [("2+200018", "200020"), ("1569+7", "1576"), ("128+50", "178")]


@pytest.mark.parametrize("variant", ["reverse", "sort", "add"])
def test_targets_follow_the_rule_and_lengths_stay_in_range(variant: str) -> None:
    for src, tgt in examples(variant, n=200, min_len=3, max_len=12):
        assert 3 <= len(src) <= 12
        if variant == "reverse":
            assert tgt == src[::-1]
        elif variant == "sort":
            assert tgt == "".join(sorted(src))
        else:
            a, b = src.split("+")
            assert all(len(x) == 1 or x[0] != "0" for x in (a, b)) and tgt == str(int(a) + int(b))


def test_collate_pads_and_shifts_the_target_by_one() -> None:
    task = Seq2SeqTask(min_len=1, seq_len=4, **SMALL)
    digits = [torch.tensor([1, 2, 3]) + DIGIT0, torch.tensor([7]) + DIGIT0]
    batch = task.collate({"src": digits, "tgt": [d.flip(0) for d in digits]})
    d = DIGIT0
    assert torch.equal(batch["src"], torch.tensor([[d + 1, d + 2, d + 3], [d + 7, PAD, PAD]]))
    assert torch.equal(batch["src_lengths"], torch.tensor([3, 1]))
    assert torch.equal(batch["tgt_in"], torch.tensor([[BOS, d + 3, d + 2, d + 1], [BOS, d + 7, PAD, PAD]]))
    assert torch.equal(batch["tgt_out"], torch.tensor([[d + 3, d + 2, d + 1, EOS], [d + 7, EOS, PAD, PAD]]))
    assert batch["y"] is batch["tgt_out"]


def test_scores_need_the_whole_sequence_and_bucket_by_source_length() -> None:
    metric = Seq2SeqScores(min_len=1, max_len=7)  # buckets 1-5, 6-7
    target = torch.tensor([[5, 6, EOS], [5, EOS, PAD], [5, EOS, PAD]])
    tokens = torch.tensor([[5, 6, EOS, PAD], [5, EOS, PAD, PAD], [5, 5, EOS, PAD]])  # the last overruns
    logits = torch.nn.functional.one_hot(torch.tensor([[5, 7, EOS], [5, EOS, PAD], [5, 3, 3]]), 13).float()
    metric.update(logits, tokens, target, torch.tensor([6, 2, 3]))
    scores = {k: float(v) for k, v in metric.compute().items()}
    assert scores == pytest.approx(
        {"token_acc": 3 / 4, "exact_match": 2 / 3, "exact_len_1-5": 1 / 2, "exact_len_6-7": 1}
    )


def test_baseline_is_uniform_digit_guessing() -> None:
    fixed = Seq2SeqTask(min_len=2, seq_len=2, **SMALL).baseline()
    assert fixed == pytest.approx(
        {"loss": math.log(10) * 2 / 3, "token_acc": 0.1, "exact_match": 0.01, "exact_len_2-2": 0.01}
    )
    spread = Seq2SeqTask(variant="add", min_len=3, seq_len=12, **SMALL).baseline()
    assert set(spread) == {"loss", "token_acc", "exact_match", "exact_len_3-7", "exact_len_8-12"}
    assert spread["exact_len_3-7"] > spread["exact_match"] > spread["exact_len_8-12"] > 0


def test_bad_variant_and_min_len_fail_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^task\.variant must be one of reverse, sort, add, got 'copy'$"):
        preflight(["model=seq2seq", "task=seq2seq", "task.variant=copy"])
    with pytest.raises(ConfigError, match=r"^task\.min_len must be an int in 3\.\.seq_len=32 for add, got 2$"):
        preflight(["model=seq2seq", "task=seq2seq", "task.variant=add", "task.min_len=2"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=seq2seq"], "task adding needs a recurrent model, got a seq2seq model (Seq2Seq)"),
        (["task=seq2seq", "model=lstm"], "task seq2seq needs a seq2seq model, got a recurrent model (Recurrent)"),
    ],
)
def test_models_of_the_other_kind_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        preflight(overrides)
    assert str(err.value) == message


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_smoke_run_logs_exact_match_per_length_bucket(attention: str, tmp_path: Path) -> None:
    overrides = [*TINY_MODEL, f"model.attention={attention}", "task.min_len=1", "task.seq_len=10"]
    record = smoke(overrides, tmp_path / "run")
    assert record["status"] == "finished"
    buckets = {"test/exact_len_1-5", "test/exact_len_6-10"}
    assert set(record["test"]) == {"test/loss", "test/token_acc", "test/exact_match", *buckets}
    assert 0.0 <= record["test"]["test/exact_match"] <= 1.0
    assert record["primary_metric"] == "exact_match" and isinstance(record["beats_baseline"], bool)

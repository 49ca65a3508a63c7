"""The translate task on tiny fake KJV/RV modules: determinism, fixed verse partition and filtering, vocabularies
and the cap, BLEU scoring by hand, the source-blind baseline (analytic == empirical), parameter errors, refusing a
recurrent model, a smoke run with model=seq2seq; the real pools when the Debian packages are installed."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from rnnbench.tasks.seq2seq import BOS, EOS, PAD
from rnnbench.tasks.translate import UNK, TranslateTask, TranslationScores, bleu_words, tokenize
from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.train import train
from test_sword import needs_bibles, write_module

HEADERS = ["", "", "<div/>", "<chapter/>"]
EN = [f"¶ The man {i} saw the Light." for i in range(40)] + ["A verse far too long for the task " * 3, "Jesus wept."]
ES = [f"El hombre {i} vió la luz." for i in range(40)] + ["Un versículo demasiado largo " * 4, ""]
USER_SWORD_DIR = os.environ.get("RNNBENCH_SWORD_DIR")  # read before any fixture replaces it
SMALL = {"max_words": 8, "val_fraction": 0.25, "test_fraction": 0.25, "batch_size": 8}


@pytest.fixture(autouse=True)
def fake_bibles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """engKJV2006eb and spaRV1909eb holding EN and ES (the last Spanish verse missing), via RNNBENCH_SWORD_DIR."""
    ztext = tmp_path / "sword" / "modules" / "texts" / "ztext"
    write_module(ztext / "engKJV2006eb", HEADERS + EN)
    write_module(ztext / "spaRV1909eb", HEADERS + ES)
    monkeypatch.setenv("RNNBENCH_SWORD_DIR", str(tmp_path / "sword"))


def test_same_seed_same_data_other_seed_other_data_and_split_sizes() -> None:
    batches = []
    for seed in (3, 3, 4):
        task = TranslateTask(data_seed=seed, **SMALL)
        task.setup()
        batches.append(next(iter(task.val_dataloader())))
    a, b, c = batches
    assert torch.equal(a["src"], b["src"]) and torch.equal(a["ref"], b["ref"])
    assert not torch.equal(a["src"], c["src"])  # the same pool, drawn in another order
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 20, "val": 10, "test": 10}
    assert TranslateTask(n_train=5, n_val=2, n_test=3, **SMALL).sizes == {"train": 5, "val": 2, "test": 3}


def test_pools_are_a_fixed_partition_of_the_kept_normalised_pairs() -> None:
    task = TranslateTask(**SMALL)
    pairs = {split: list(zip(*pool, strict=True)) for split, pool in task.pools.items()}
    kept = sorted(p for pool in pairs.values() for p in pool)
    assert kept == sorted((f"the man {i} saw the light.", f"el hombre {i} vió la luz.") for i in range(40))
    assert len(set(kept)) == 40  # disjoint: too long and half-missing verses dropped, ¶ and case gone
    wider = TranslateTask(**{**SMALL, "max_words": 30})  # keeps the long verse, moves no other verse
    for split, pool in pairs.items():
        assert set(pool) <= set(zip(*wider.pools[split], strict=True))


def test_tokens_vocabularies_and_the_cap_by_hand() -> None:
    assert tokenize("y vió dios: sea.", "word") == ["y", "vió", "dios", ":", "sea", "."]
    assert tokenize("y vió", "char") == ["y", " ", "v", "i", "ó"]
    assert bleu_words(list("dios, luz."), "char") == bleu_words(["dios", ",", "luz", "."], "word") == "dios , luz ."
    task = TranslateTask(**SMALL, vocab_size=6)  # specials, then the two most frequent target tokens
    assert task.tgt_vocab[:6] == ("<pad>", "<bos>", "<eos>", "<unk>", ".", "el")  # ties sorted alphabetically
    assert task.model_kwargs() == {"src_vocab": 6, "tgt_vocab": 6, "pad_id": PAD, "bos_id": BOS, "eos_id": EOS}
    task.setup()
    batch = next(iter(task.val_dataloader()))
    ref = batch["ref"][0][batch["ref"][0] != PAD]  # "el hombre <i> vió la luz ." in full-vocabulary ids
    assert bleu_words([task.tgt_vocab[i] for i in ref], "word") in {
        bleu_words([t], "word") for t in task.pools["val"][1]
    }
    capped = torch.where(ref < 6, ref, UNK)
    assert batch["tgt_in"][0, : len(ref) + 1].tolist() == [BOS, *capped.tolist()]
    assert batch["tgt_out"][0, : len(ref) + 1].tolist() == [*capped.tolist(), EOS]
    assert batch["src"].max() < 6 and batch["words"][0] == 6


def test_bleu_per_bucket_and_unk_never_matches() -> None:
    vocab = ("<pad>", "<bos>", "<eos>", "<unk>", "el", "hombre", "vió", "la", "luz", ".")
    scores = TranslationScores(vocab, "word", max_words=10)
    ref = torch.tensor([[4, 5, 6, 7, 8, 9, EOS], [4, 5, 6, 7, 8, 9, EOS]])
    tokens = torch.tensor([[4, 5, 6, 7, 8, 9, EOS], [4, 5, 6, 7, 8, UNK, EOS]])  # "." beyond the cap: unk
    logits = torch.nn.functional.one_hot(ref, len(vocab)).float()
    scores.update(logits, tokens, ref, ref, torch.tensor([3, 7]))
    values = scores.compute()
    assert values["token_acc"] == 1.0 and values["bleu_len_1-5"] == 1.0
    assert 0 < values["bleu_len_6-10"] < 1 and 0 < values["bleu"] < 1
    scores.reset()
    scores.update(logits, tokens[:1], ref[:1], ref[:1], torch.tensor([3]))
    assert math.isnan(scores.compute()["bleu_len_6-10"])  # no examples after the reset


def test_baseline_is_the_unigram_entropy_of_the_training_targets() -> None:
    task = TranslateTask(**SMALL, vocab_size=8)
    task.setup()
    targets = task.splits["train"].collate(task.splits["train"].columns)["tgt_out"].flatten()
    freq = torch.bincount(targets[targets != PAD]).double()
    freq = freq[freq > 0] / freq.sum()
    base = task.baseline()
    assert base["loss"] == pytest.approx(-(freq * freq.log()).sum().item())
    assert base["token_acc"] == pytest.approx(freq.max().item()) and base["bleu"] == 0.0
    assert set(base) == {"loss", "token_acc", "bleu", "bleu_len_1-5", "bleu_len_6-8"}


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"direction": "en-fr"}, "direction"),
        ({"level": "byte"}, "level"),
        ({"vocab_size": 4}, "vocab_size"),
        ({"max_words": 0}, "max_words"),
        ({"max_words": 1}, "max_words"),  # no pair that short
        ({"val_fraction": 0.6}, "val_fraction"),
        ({"n_train": 21}, "n_train"),
    ],
)
def test_bad_params_name_the_parameter(bad: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key} must be"):
        TranslateTask(**{**SMALL, **bad})


def test_a_recurrent_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs a seq2seq model"):
        preflight(["task=translate", "task.max_words=8", "task.val_fraction=0.25", "task.test_fraction=0.25"])


def test_smoke_run_finishes_with_the_task_metrics(tmp_path: Path) -> None:
    task = ["task=translate", "task.max_words=8", "task.val_fraction=0.25", "task.test_fraction=0.25"]
    model = ["model=seq2seq", "model.hidden_size=16", "model.embed_dim=8", "model.attention=additive"]
    record = train(compose_config(["trainer=smoke", "logger=none", "task.level=char", *task, *model]), tmp_path / "r")
    assert record["status"] == "finished"
    assert set(record["test"]) == {"test/loss", "test/token_acc", "test/bleu", "test/bleu_len_1-5", "test/bleu_len_6-8"}


@needs_bibles
def test_the_installed_bibles(monkeypatch: pytest.MonkeyPatch) -> None:
    if USER_SWORD_DIR:  # the fake_bibles fixture replaced the user's own library: put it back
        monkeypatch.setenv("RNNBENCH_SWORD_DIR", USER_SWORD_DIR)
    else:
        monkeypatch.delenv("RNNBENCH_SWORD_DIR")
    task = TranslateTask()
    assert task.sizes == {"train": 10481, "val": 607, "test": 627}
    assert task.pools["train"][0][0] == "in the beginning god created the heaven and the earth."
    assert task.pools["train"][1][0] == "en el principio crió dios los cielos y la tierra."

"""Bible verse translation (English <-> Spanish): the seq2seq bottleneck question on natural language.

The `seq2seq` task shows the fixed-context bottleneck (Sutskever et al. 2014 vs Bahdanau et al. 2015) on digit
strings; this task asks the same of real translation, the setting of both papers: BLEU of greedy decoding per
source-length bucket (`bleu_len_<lo>-<hi>`, in source words, width 5), for `model.attention=none` against the
attentional variants. Needs `model=seq2seq`; it reuses the seq2seq task's batching, loss and decoder interface.

Data: the King James Version (module engKJV2006eb) and the Reina-Valera 1909 (spaRV1909eb), both public domain and
in the same (KJV) versification, so verse i of one translates verse i of the other (31,084 verses present in both).
Install them with `apt-get install sword-text-kjv sword-text-sparv`, or point `RNNBENCH_SWORD_DIR` at a SWORD library
holding them (see `rnnbench.tasks.sword`). Texts are lowercased and the KJV paragraph sign dropped; pairs whose
sides both have at most `max_words` words are kept. Each verse belongs to one split for good, by a fixed-seed
permutation of all verses (val_fraction and test_fraction of them), so changing max_words or the seed never moves a
verse between splits; `n_train`/`n_val`/`n_test` (null: all) pairs are drawn from each split's pool by the seed.

Tokens (`level`): words and punctuation marks (`word`) or characters (`char`). Ids: pad 0, bos 1, eos 2, unk 3, then
tokens by descending training frequency (ties alphabetically), then tokens never seen in training; the data holds
these full-vocabulary ids and batching maps ids >= vocab_size to unk, so the cap changes no cached data.

Metrics on val/test: `token_acc`, teacher-forced accuracy over the target tokens and eos; `bleu`, corpus BLEU-4
(torchmetrics `BLEUScore`, 0..1) of greedy decodings against the full (uncapped) references, both tokenized into
words and punctuation whatever the level (an unk in the output never matches); `bleu_len_<lo>-<hi>` per bucket
(nan for a bucket with no examples).
Baseline: a source-blind unigram decoder: loss the entropy (nats) of the training targets' capped tokens and eos,
token_acc the frequency of the most frequent of them, BLEU 0 (it emits no useful n-grams).
"""

from __future__ import annotations

import collections
import re
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.text import BLEUScore

from rnnbench.tasks.base import SPLITS, Batch, SequenceTask, check_positive_int, pad_sequences
from rnnbench.tasks.char_lm import check_fraction
from rnnbench.tasks.seq2seq import BOS, BUCKET_WIDTH, EOS, PAD, Seq2SeqTask, length_buckets
from rnnbench.tasks.sword import load_module

UNK = 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")  # ids PAD, BOS, EOS, UNK
MODULES = {"en": "engKJV2006eb", "es": "spaRV1909eb"}
DIRECTIONS = ("en-es", "es-en")
LEVELS = ("word", "char")
UNK_OUTPUT = "⁇"  # how an unk in a decoding is scored: one punctuation token that no reference contains
PARTITION_SEED = 0  # the fixed permutation assigning verses to splits
_WORD = re.compile(r"\w+|[^\w\s]")


def normalise(verse: str) -> str:
    """Lowercase, without the KJV paragraph sign, single spaces."""
    return " ".join(verse.replace("¶", " ").lower().split())


def tokenize(text: str, level: str) -> list[str]:
    """Words and punctuation marks (`word`) or characters (`char`)."""
    return _WORD.findall(text) if level == "word" else list(text)


def bleu_words(tokens: list[str], level: str) -> str:
    """Decoded tokens as the space-separated words and punctuation marks BLEU is computed on."""
    return " ".join(_WORD.findall((" " if level == "word" else "").join(tokens)))


def build_vocab(pools: dict[str, list[str]], level: str) -> tuple[str, ...]:
    """Specials, then tokens by descending training frequency (ties alphabetical), then the rest alphabetically."""
    counts = collections.Counter(tok for text in pools["train"] for tok in tokenize(text, level))
    unseen = {tok for split in ("val", "test") for text in pools[split] for tok in tokenize(text, level)}
    ranked = sorted(counts, key=lambda tok: (-counts[tok], tok))
    return (*SPECIALS, *ranked, *sorted(unseen - counts.keys()))


class TranslationScores(Metric):
    """Teacher-forced token accuracy plus corpus BLEU of greedy decodings, overall and per source-length bucket."""

    def __init__(self, tgt_vocab: tuple[str, ...], level: str, max_words: int) -> None:
        super().__init__()
        self.tgt_vocab, self.level = tgt_vocab, level
        self.buckets = length_buckets(1, max_words)
        self.bleu = BLEUScore()
        self.bucket_bleu = nn.ModuleList(BLEUScore() for _ in self.buckets)
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def _text(self, ids: Tensor, unk: str) -> str:
        """Ids up to the first eos (or pad) as BLEU's words; unk ids become `unk`."""
        tokens = []
        for i in ids.tolist():
            if i in (EOS, PAD):
                break
            tokens.append(unk if i == UNK else self.tgt_vocab[i])
        return bleu_words(tokens, self.level)

    def update(self, logits: Tensor, tokens: Tensor, target: Tensor, ref: Tensor, words: Tensor) -> None:
        """logits (B, T, V) teacher-forced, tokens (B, G) greedy, target = tgt_out (B, T), ref: uncapped target
        ids (B, T'), words (B,): source length in words."""
        scored = target != PAD
        self.correct += ((logits.argmax(-1) == target) & scored).sum()
        self.total += scored.sum()
        hyps = [self._text(row, UNK_OUTPUT) for row in tokens]
        refs = [[self._text(row, SPECIALS[UNK])] for row in ref]
        self.bleu.update(hyps, refs)
        for b, bleu in enumerate(self.bucket_bleu):
            rows = [i for i, n in enumerate(words.tolist()) if (n - 1) // BUCKET_WIDTH == b]
            if rows:
                bleu.update([hyps[i] for i in rows], [refs[i] for i in rows])

    def compute(self) -> dict[str, Tensor]:
        """token_acc, bleu and one bleu_len_<lo>-<hi> per bucket (nan for a bucket with no examples)."""
        return {
            "token_acc": self.correct / self.total,
            "bleu": self.bleu.compute(),
            **{
                f"bleu_len_{lo}-{hi}": bleu.compute() if bleu.update_called else torch.tensor(float("nan"))
                for (lo, hi), bleu in zip(self.buckets, self.bucket_bleu, strict=True)
            },
        }

    def reset(self) -> None:
        super().reset()
        for bleu in (self.bleu, *self.bucket_bleu):
            bleu.reset()


class TranslateTask(Seq2SeqTask):
    """Translate Bible verses between English (KJV) and Spanish (RV 1909) with a recurrent encoder-decoder."""

    name = "translate"
    primary_metric = "bleu"

    def __init__(
        self,
        direction: str = "en-es",
        level: str = "word",
        vocab_size: int = 8000,
        max_words: int = 20,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        n_train: int | None = None,
        n_val: int | None = None,
        n_test: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Verse pairs of at most max_words words, tokenized at `level`, vocabularies capped at vocab_size."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= len(SPECIALS):
            raise ValueError(f"vocab_size must be an int > {len(SPECIALS)} (the special tokens), got {vocab_size!r}")
        check_positive_int("max_words", max_words)
        fractions = (check_fraction("val_fraction", val_fraction), check_fraction("test_fraction", test_fraction))
        self.direction, self.level, self.max_words = direction, level, max_words
        self.pools = verse_pools(direction, max_words, *fractions)
        sizes = {}
        for split, n in zip(SPLITS, (n_train, n_val, n_test), strict=True):
            pool = len(self.pools[split][0])
            if pool == 0:
                raise ValueError(f"max_words must be large enough to leave some {split} pairs, got {max_words}")
            sizes[f"n_{split}"] = pool if n is None else check_positive_int(f"n_{split}", n)
            if sizes[f"n_{split}"] > pool:
                raise ValueError(f"n_{split} must be <= {pool}, the {split} pairs of <= {max_words} words, got {n}")
        SequenceTask.__init__(self, seq_len=max_words, **sizes, **kwargs)
        self.src_vocab = build_vocab({s: src for s, (src, _) in self.pools.items()}, level)
        self.tgt_vocab = build_vocab({s: tgt for s, (_, tgt) in self.pools.items()}, level)
        self.vocab_size = vocab_size
        self.max_target = max(len(tokenize(t, level)) for _, tgt in self.pools.values() for t in tgt)

    @staticmethod
    def generate(
        n: int,
        rng: np.random.Generator,
        src: tuple[str, ...],
        tgt: tuple[str, ...],
        src_vocab: tuple[str, ...],
        tgt_vocab: tuple[str, ...],
        level: str,
    ) -> dict[str, Any]:
        """n pairs drawn without replacement: ragged full-vocabulary ids src and tgt, and words (source words)."""
        ids = [{tok: i for i, tok in enumerate(vocab)} for vocab in (src_vocab, tgt_vocab)]
        picked = rng.permutation(len(src))[:n]
        return {
            "src": [np.array([ids[0][t] for t in tokenize(src[i], level)], dtype=np.int64) for i in picked],
            "tgt": [np.array([ids[1][t] for t in tokenize(tgt[i], level)], dtype=np.int64) for i in picked],
            "words": np.array([len(src[i].split()) for i in picked], dtype=np.int64),
        }

    def generation_params(self) -> dict[str, Any]:
        """Nothing split-independent: each split is generated from its own part of the corpus (split_params)."""
        return {}

    def split_params(self, split: str) -> dict[str, Any]:
        """The split's pairs, both full vocabularies and the tokenization level."""
        src, tgt = self.pools[split]
        return {"src": src, "tgt": tgt, "src_vocab": self.src_vocab, "tgt_vocab": self.tgt_vocab, "level": self.level}

    def sizes_used(self) -> tuple[int, int]:
        """(source, target) vocabulary sizes after the cap."""
        return min(self.vocab_size, len(self.src_vocab)), min(self.vocab_size, len(self.tgt_vocab))

    def model_kwargs(self) -> dict[str, Any]:
        src_size, tgt_size = self.sizes_used()
        return {"src_vocab": src_size, "tgt_vocab": tgt_size, "pad_id": PAD, "bos_id": BOS, "eos_id": EOS}

    def collate(self, columns: dict[str, Any]) -> Batch:
        """The seq2seq batch of capped ids (ids beyond the cap -> unk), plus ref (uncapped targets) and words."""
        src_size, tgt_size = self.sizes_used()
        capped = {
            "src": [torch.where(s < src_size, s, UNK) for s in columns["src"]],
            "tgt": [torch.where(t < tgt_size, t, UNK) for t in columns["tgt"]],
        }
        return {**super().collate(capped), "ref": pad_sequences(list(columns["tgt"]), PAD), "words": columns["words"]}

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"scores": TranslationScores(self.tgt_vocab, self.level, self.max_words)})

    def evaluate(self, body: nn.Module, head: nn.Module, batch: Batch, pred: Tensor) -> tuple[Tensor, ...]:
        """Greedy decodings (up to the longest target + eos) next to the teacher-forced logits."""
        tokens, _, _ = body.generate(batch["src"], batch["src_lengths"], max_len=self.max_target + 1)
        return pred, tokens, batch["tgt_out"], batch["ref"], batch["words"]

    def baseline(self) -> dict[str, float]:
        """Source-blind unigram decoder over the training targets (module docstring)."""
        _, tgt_size = self.sizes_used()
        ids = {tok: i for i, tok in enumerate(self.tgt_vocab)}
        counts = collections.Counter(
            ids[tok] if ids[tok] < tgt_size else UNK
            for text in self.pools["train"][1]
            for tok in tokenize(text, self.level)
        )
        counts[EOS] = len(self.pools["train"][1])
        p = np.array(list(counts.values()), dtype=np.float64) / sum(counts.values())
        values = {"loss": float(-(p * np.log(p)).sum()), "token_acc": float(p.max()), "bleu": 0.0}
        return values | {f"bleu_len_{lo}-{hi}": 0.0 for lo, hi in length_buckets(1, self.max_words)}


def verse_pools(
    direction: str, max_words: int, val_fraction: float, test_fraction: float
) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Per split, the (sources, targets) of the normalised verse pairs with both sides <= max_words words."""
    src_lang, tgt_lang = direction.split("-")
    verses = [
        (normalise(a), normalise(b))
        for a, b in zip(*(load_module(MODULES[lang]) for lang in (src_lang, tgt_lang)), strict=True)
    ]
    verses = [(a, b) for a, b in verses if a and b]
    order = np.random.default_rng(PARTITION_SEED).permutation(len(verses))
    n_val, n_test = round(val_fraction * len(verses)), round(test_fraction * len(verses))
    members = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    pools = {}
    for split in SPLITS:
        kept = [verses[i] for i in sorted(members[split]) if max(len(s.split()) for s in verses[i]) <= max_words]
        pools[split] = (tuple(a for a, _ in kept), tuple(b for _, b in kept))
    return pools

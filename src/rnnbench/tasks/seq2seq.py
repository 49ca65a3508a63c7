"""Synthetic sequence-to-sequence problems: does a fixed-size context vector bottleneck long sources?

Sutskever, Vinyals & Le (2014) pass the whole source to the decoder through the encoder's final state; Bahdanau,
Cho & Bengio (2015) argue that this fixed-size vector is a bottleneck that degrades with source length, and that
attention over all encoder states removes it. This task measures that claim as exact-match accuracy of greedy
decoding per source-length bucket (`exact_len_<lo>-<hi>`, width 5), so a report can plot accuracy against length
for `model.attention=none` and the attentional variants.

Variants (source length L drawn uniformly from min_len..seq_len, digits uniform):

- `reverse`: the source digits backwards (the whole source must be held: the pure bottleneck test);
- `sort`: the source digits in ascending order (a digit histogram suffices, so a fixed vector copes better);
- `add`: source "a+b" (L tokens in all, each operand at least one digit, no leading zeros), target the digits of
  a + b; operand lengths are split uniformly.

Tokens: pad 0, bos 1, eos 2, digit d is 3 + d, '+' is 13 (source only). The decoder reads tgt_in = bos + target
and predicts tgt_out = target + eos; the loss is cross-entropy over tgt_out, padding ignored.

Metrics on val/test: `token_acc`, teacher-forced accuracy on the target's digits (where eos goes is scored by exact
match); `exact_match`, the share of greedy decodings (up to seq_len + 1 steps) equal to target + eos; and
`exact_len_<lo>-<hi>`, exact match among sources of length lo..hi (nan for a bucket with no examples).

Baseline: a model that ignores the source, knows the target length T and guesses each digit uniformly scores
token_acc = 1/10, exact match E[10^-T] (per bucket: E[10^-T | L in bucket]) and cross-entropy
ln(10) E[T] / (E[T] + 1) per token (eos is free); the expectations are taken over 10^4 fixed-seed examples.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection

from rnnbench.tasks.base import Batch, SequenceTask, pad_sequences

VARIANTS = ("reverse", "sort", "add")
PAD, BOS, EOS = 0, 1, 2
DIGIT0 = 3  # token of digit 0; digit d is DIGIT0 + d
PLUS = DIGIT0 + 10
TGT_VOCAB = PLUS  # pad, bos, eos and the ten digits
SRC_VOCAB = PLUS + 1  # ... and '+'
BUCKET_WIDTH = 5  # source lengths per exact_len_<lo>-<hi> bucket
BASELINE_SAMPLE = 10_000


def length_buckets(min_len: int, max_len: int) -> list[tuple[int, int]]:
    """Source-length buckets (lo, hi), inclusive, of width BUCKET_WIDTH from min_len; the last may be shorter."""
    return [(lo, min(lo + BUCKET_WIDTH - 1, max_len)) for lo in range(min_len, max_len + 1, BUCKET_WIDTH)]


def bucket_key(lo: int, hi: int) -> str:
    """Metric name of the exact match among sources of length lo..hi."""
    return f"exact_len_{lo}-{hi}"


def _addition(digits: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Columns of the add variant from digits (n, max_len) and source lengths (n,), each >= 3."""
    split = rng.integers(1, lengths - 1)  # digits of a: 1..L-2, leaving b at least one
    leads = rng.integers(1, 10, size=(len(lengths), 2))  # leading digits of multi-digit operands
    src, tgt = [], []
    for row, length, cut, lead in zip(digits, lengths, split, leads, strict=True):
        operands = [row[:cut].copy(), row[cut : length - 1].copy()]
        for operand, first in zip(operands, lead, strict=True):
            if len(operand) > 1:
                operand[0] = first
        total = sum(int("".join(map(str, operand))) for operand in operands)
        src.append(np.concatenate([DIGIT0 + operands[0], [PLUS], DIGIT0 + operands[1]]))
        tgt.append(DIGIT0 + np.array([int(c) for c in str(total)], dtype=np.int64))
    return {"src": src, "tgt": tgt}


@functools.lru_cache(maxsize=16)
def _chance_sample(variant: str, min_len: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(source lengths, target lengths) of BASELINE_SAMPLE fixed-seed examples, for the baseline's expectations."""
    columns = Seq2SeqTask.generate(BASELINE_SAMPLE, np.random.default_rng(0), variant, min_len, max_len)
    return tuple(np.array([len(seq) for seq in columns[key]]) for key in ("src", "tgt"))


class Seq2SeqScores(Metric):
    """Teacher-forced digit accuracy plus greedy exact match, overall and per source-length bucket."""

    def __init__(self, min_len: int, max_len: int) -> None:
        super().__init__()
        self.min_len = min_len
        self.buckets = length_buckets(min_len, max_len)
        self.add_state("digit_correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("digit_total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("bucket_exact", torch.zeros(len(self.buckets)), dist_reduce_fx="sum")
        self.add_state("bucket_total", torch.zeros(len(self.buckets)), dist_reduce_fx="sum")

    def update(self, logits: Tensor, tokens: Tensor, target: Tensor, src_lengths: Tensor) -> None:
        """logits (B, T, V) teacher-forced, tokens (B, G) greedy, target = tgt_out (B, T), src_lengths (B,)."""
        digits = target >= DIGIT0  # (B, T): not pad, not eos
        self.digit_correct += ((logits.argmax(-1) == target) & digits).sum()
        self.digit_total += digits.sum()
        width = max(tokens.shape[1], target.shape[1])  # both are pad after their eos, so padded rows compare whole
        padded = [F.pad(seq, (0, width - seq.shape[1]), value=PAD) for seq in (tokens, target)]
        exact = (padded[0] == padded[1]).all(1)  # (B,)
        bucket = (src_lengths.to(target.device) - self.min_len) // BUCKET_WIDTH  # (B,)
        self.bucket_exact += torch.bincount(bucket, weights=exact.float(), minlength=len(self.buckets))
        self.bucket_total += torch.bincount(bucket, minlength=len(self.buckets))

    def compute(self) -> dict[str, Tensor]:
        """token_acc, exact_match and one exact_len_<lo>-<hi> per bucket (0/0 = nan for an empty bucket)."""
        per_bucket = self.bucket_exact / self.bucket_total
        return {
            "token_acc": self.digit_correct / self.digit_total,
            "exact_match": self.bucket_exact.sum() / self.bucket_total.sum(),
            **{bucket_key(lo, hi): value for (lo, hi), value in zip(self.buckets, per_bucket, strict=True)},
        }


class Seq2SeqTask(SequenceTask):
    """Map a digit string to its reverse, its sorted digits, or (for "a+b") the digits of the sum."""

    name = "seq2seq"
    model_kind = "seq2seq"
    primary_metric = "exact_match"
    higher_is_better = True
    perfect = 1.0

    def __init__(self, variant: str = "reverse", min_len: int = 3, seq_len: int = 32, **kwargs: Any) -> None:
        super().__init__(seq_len, **kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        shortest = 3 if variant == "add" else 1  # "a+b" needs a digit on each side
        if isinstance(min_len, bool) or not isinstance(min_len, int) or not shortest <= min_len <= seq_len:
            raise ValueError(f"min_len must be an int in {shortest}..seq_len={seq_len} for {variant}, got {min_len!r}")
        self.variant = variant
        self.min_len = min_len

    @staticmethod
    def generate(
        n: int, rng: np.random.Generator, variant: str, min_len: int, max_len: int
    ) -> dict[str, list[np.ndarray]]:
        """Ragged int64 columns src (L tokens each) and tgt (the target's digit tokens, without bos/eos)."""
        lengths = rng.integers(min_len, max_len + 1, size=n)
        digits = rng.integers(0, 10, size=(n, max_len))
        if variant == "add":
            return _addition(digits, lengths, rng)
        src = [DIGIT0 + row[:length] for row, length in zip(digits, lengths, strict=True)]
        tgt = [seq[::-1].copy() if variant == "reverse" else np.sort(seq) for seq in src]
        return {"src": src, "tgt": tgt}

    def generation_params(self) -> dict[str, Any]:
        return {"variant": self.variant, "min_len": self.min_len, "max_len": self.seq_len}

    def model_kwargs(self) -> dict[str, Any]:
        return {"src_vocab": SRC_VOCAB, "tgt_vocab": TGT_VOCAB, "pad_id": PAD, "bos_id": BOS, "eos_id": EOS}

    def collate(self, columns: dict[str, Any]) -> Batch:
        """Pad: src (B, S), src_lengths (B,), tgt_in = bos + target and tgt_out = y = target + eos (B, T+1)."""
        bos, eos = torch.tensor([BOS]), torch.tensor([EOS])
        targets = list(columns["tgt"])
        tgt_out = pad_sequences([torch.cat([t, eos]) for t in targets], PAD)
        return {
            "src": pad_sequences(list(columns["src"]), PAD),
            "src_lengths": torch.tensor([len(s) for s in columns["src"]]),
            "tgt_in": pad_sequences([torch.cat([bos, t]) for t in targets], PAD),
            "tgt_out": tgt_out,
            "y": tgt_out,
        }

    def make_head(self, in_features: int) -> nn.Module:
        """The decoder ends in its own output layer, so its logits pass through unchanged."""
        return nn.Identity()

    def predict(self, body: nn.Module, head: nn.Module, batch: Batch) -> Tensor:
        """Teacher-forced logits (B, T+1, V) over tgt_out."""
        logits, _ = body(batch["src"], batch["src_lengths"], batch["tgt_in"])
        return head(logits)

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(pred.flatten(0, 1), batch["tgt_out"].flatten(), ignore_index=PAD)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"scores": Seq2SeqScores(self.min_len, self.seq_len)})

    def evaluate(self, body: nn.Module, head: nn.Module, batch: Batch, pred: Tensor) -> tuple[Tensor, ...]:
        """Decode greedily (longest target + eos fits in seq_len + 1 steps) next to the teacher-forced logits."""
        tokens, _, _ = body.generate(batch["src"], batch["src_lengths"], max_len=self.seq_len + 1)  # (B, G)
        return pred, tokens, batch["tgt_out"], batch["src_lengths"]

    def baseline(self) -> dict[str, float]:
        """Source-blind uniform digit guesses with the target length known (module docstring)."""
        src_len, tgt_len = _chance_sample(self.variant, self.min_len, self.seq_len)
        chance = 10.0**-tgt_len  # probability of guessing a whole target
        mean_len = float(tgt_len.mean())
        values = {
            "loss": math.log(10) * mean_len / (mean_len + 1),
            "token_acc": 0.1,
            "exact_match": float(chance.mean()),
        }
        for lo, hi in length_buckets(self.min_len, self.seq_len):
            values[bucket_key(lo, hi)] = float(chance[(src_len >= lo) & (src_len <= hi)].mean())
        return values

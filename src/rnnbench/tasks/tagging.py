"""Synthetic sequence labelling whose tags need both past and future context.

Tokens are uniform on {0, ..., V-1}. The tag at position t combines the parity of the token `lookbehind` steps
back with the parity of the token `lookahead` steps ahead: tag(t) = 2*odd(x[t - lookbehind]) + odd(x[t + lookahead]),
where positions outside the sequence hold the padding symbol, which counts as even. A forward-only model must guess
the future parity, so with an even V it gets at most (1 + lookahead/seq_len)/2 of the tags right (the last
`lookahead` tags have padding ahead); a bidirectional one can get all of them (a 1-layer LSTM, H=32, T=20: 0.57 vs
1.0 after 4 epochs of 2048 sequences). This tests the seed's claim that bidirectional context helps tagging
(compare at equal parameters: a bidirectional body has twice as many). No paper: the rule is chosen so the gap
between the two is known exactly.

Baselines are input-blind: accuracy of always predicting the most frequent tag, cross-entropy of predicting the tag
distribution (its entropy), and the expected macro F1 of guessing tags at their frequencies, which is exactly
1/4 (each tag's precision and recall equal its frequency). The tag distribution is computed from the rule
(`tag_distribution`): interior tags are (nearly) uniform, the borders favour the even parities.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from rnnbench.tasks.base import Batch, SequenceTask, check_positive_int

N_TAGS = 4  # (past parity, future parity)


def check_params(seq_len: int, vocab_size: int, lookahead: int, lookbehind: int) -> None:
    """Raise ValueError, naming the parameter, for settings the task cannot generate."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an int >= 2 so both parities occur, got {vocab_size!r}")
    check_positive_int("lookahead", lookahead)
    if isinstance(lookbehind, bool) or not isinstance(lookbehind, int) or lookbehind < 0:
        raise ValueError(f"lookbehind must be an int >= 0, got {lookbehind!r}")
    if seq_len <= lookahead + lookbehind:
        raise ValueError(
            f"seq_len must be > lookahead + lookbehind (= {lookahead + lookbehind}) so some tags see two tokens "
            f"inside the sequence, got {seq_len}"
        )


def tag_distribution(seq_len: int, vocab_size: int, lookahead: int, lookbehind: int) -> np.ndarray:
    """Expected frequency of each tag over all positions, from the rule and the token distribution."""
    odd = (vocab_size // 2) / vocab_size
    t = np.arange(seq_len)
    past = np.where(t >= lookbehind, odd, 0.0)  # P(odd past token) per position
    future = np.where(t + lookahead < seq_len, odd, 0.0)
    joint = [(1 - past) * (1 - future), (1 - past) * future, past * (1 - future), past * future]
    return np.array([p.mean() for p in joint])


class TaggingTask(SequenceTask):
    """Tag every token from the parities of a token behind and a token ahead; 4 tags, one-hot inputs."""

    name = "tagging"
    readout = "all"
    primary_metric = "acc"
    higher_is_better = True
    perfect = 1.0
    output_size = N_TAGS

    def __init__(
        self, seq_len: int = 50, vocab_size: int = 10, lookahead: int = 3, lookbehind: int = 3, **kwargs: Any
    ) -> None:
        """The tag at t depends on x[t - lookbehind] and x[t + lookahead]; tokens are drawn from vocab_size."""
        super().__init__(seq_len=seq_len, **kwargs)
        check_params(self.seq_len, vocab_size, lookahead, lookbehind)
        self.vocab_size = vocab_size
        self.lookahead = lookahead
        self.lookbehind = lookbehind
        self.input_size = vocab_size

    @staticmethod
    def generate(
        n: int, rng: np.random.Generator, seq_len: int, vocab_size: int, lookahead: int, lookbehind: int
    ) -> dict[str, np.ndarray]:
        """Columns x (n, T) int64 tokens and y (n, T) int64 tags."""
        check_params(seq_len, vocab_size, lookahead, lookbehind)
        x = rng.integers(0, vocab_size, size=(n, seq_len))
        odd = np.pad(x % 2, ((0, 0), (lookbehind, lookahead)))  # padding counts as even
        past = odd[:, :seq_len]  # x[t - lookbehind]
        future = odd[:, lookbehind + lookahead :]  # x[t + lookahead]
        return {"x": x, "y": (2 * past + future).astype(np.int64)}

    def generation_params(self) -> dict[str, Any]:
        return {
            "seq_len": self.seq_len,
            "vocab_size": self.vocab_size,
            "lookahead": self.lookahead,
            "lookbehind": self.lookbehind,
        }

    def collate(self, columns: dict[str, Any]) -> Batch:
        """One-hot tokens as the float inputs the recurrent body takes."""
        return {"x": F.one_hot(columns["x"], self.vocab_size).float(), "y": columns["y"], "tokens": columns["x"]}

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(pred.reshape(-1, N_TAGS), batch["y"].reshape(-1))

    def make_metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(N_TAGS, average="micro"),
                "macro_f1": MulticlassF1Score(N_TAGS, average="macro"),
            }
        )

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        return pred.reshape(-1, N_TAGS), batch["y"].reshape(-1)

    def baseline(self) -> dict[str, float]:
        """Input-blind: majority tag (acc), tag entropy (loss), guessing at tag frequencies (macro F1 = 1/4)."""
        p = tag_distribution(self.seq_len, self.vocab_size, self.lookahead, self.lookbehind).tolist()
        return {"loss": -sum(q * math.log(q) for q in p if q > 0), "acc": max(p), "macro_f1": 1 / N_TAGS}

"""The temporal order problem (Hochreiter & Schmidhuber 1997, experiments 6a and 6b).

A sequence of ~100-110 symbols starts with a start marker B, ends with an end (trigger) marker E, and is otherwise
random distractors a, b, c, d, except for 2 (6a) or 3 (6b) relevant symbols, each X or Y, placed in fixed windows:
t1 in [10, 20] and t2 in [50, 60] for 6a; t1 in [10, 20], t2 in [33, 43], t3 in [66, 76] for 6b (percent of
`seq_len`, so the windows scale with it). At E the model names the order of the relevant symbols: 4 classes
(XX, XY, YX, YY) or 8. The first relevant symbol lies ~90 steps before the readout and distractors fill the lag,
so this tests the seed's claim that LSTM bridges long lags where vanilla RNNs fail, on a classification target
with variable lengths. Classes are uniform: chance is accuracy 1/4 (1/8) and cross-entropy ln 4 (ln 8).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from rnnbench.tasks.base import Batch, SequenceTask, pad_sequences

N_DISTRACTORS = 4  # symbols a, b, c, d: 0..3
X, Y, START, END = 4, 5, 6, 7
VOCAB = 8
WINDOWS = {  # per number of relevant symbols: (first, last) position of each, in percent of seq_len
    2: ((10, 20), (50, 60)),
    3: ((10, 20), (33, 43), (66, 76)),
}
MIN_SEQ_LEN = 10  # the shortest base length whose windows are disjoint and lie strictly between B and E


def relevant_windows(seq_len: int, n_relevant: int) -> list[tuple[int, int]]:
    """Inclusive (first, last) positions of each relevant symbol for a base length of seq_len."""
    return [(lo * seq_len // 100, hi * seq_len // 100) for lo, hi in WINDOWS[n_relevant]]


def check_params(seq_len: int, n_relevant: int, length_jitter: float) -> None:
    """Raise ValueError, naming the parameter, for settings the task cannot generate."""
    if isinstance(n_relevant, bool) or n_relevant not in WINDOWS:
        raise ValueError(f"n_relevant must be 2 or 3, got {n_relevant!r}")
    if seq_len < MIN_SEQ_LEN:
        raise ValueError(f"seq_len must be >= {MIN_SEQ_LEN} for temporal_order, got {seq_len}")
    if isinstance(length_jitter, bool) or not isinstance(length_jitter, int | float) or not 0 <= length_jitter < 1:
        raise ValueError(f"length_jitter must be a number in [0, 1), got {length_jitter!r}")


class TemporalOrderTask(SequenceTask):
    """Classify the order of the X/Y symbols at the end marker; one-hot inputs, variable lengths."""

    name = "temporal_order"
    readout = "last"
    primary_metric = "acc"
    higher_is_better = True
    perfect = 1.0
    input_size = VOCAB

    def __init__(self, seq_len: int = 100, n_relevant: int = 2, length_jitter: float = 0.1, **kwargs: Any) -> None:
        """`length_jitter`: each sequence is seq_len plus up to this fraction of seq_len longer (0: fixed length)."""
        super().__init__(seq_len=seq_len, **kwargs)
        check_params(self.seq_len, n_relevant, length_jitter)
        self.n_relevant = n_relevant
        self.length_jitter = length_jitter
        self.output_size = 2**n_relevant

    @staticmethod
    def generate(
        n: int, rng: np.random.Generator, seq_len: int, n_relevant: int, length_jitter: float
    ) -> dict[str, Any]:
        """Columns x (ragged list of int64 symbol sequences) and y (n,) int64 class: the X/Y order read as binary."""
        check_params(seq_len, n_relevant, length_jitter)
        lengths = seq_len + rng.integers(0, int(length_jitter * seq_len) + 1, size=n)
        symbols = rng.integers(0, N_DISTRACTORS, size=(n, lengths.max()))
        rows = np.arange(n)
        is_y = rng.integers(0, 2, size=(n, n_relevant))
        for k, (lo, hi) in enumerate(relevant_windows(seq_len, n_relevant)):
            symbols[rows, rng.integers(lo, hi + 1, size=n)] = X + is_y[:, k]
        symbols[:, 0] = START
        symbols[rows, lengths - 1] = END
        y = is_y @ (2 ** np.arange(n_relevant - 1, -1, -1))  # XX=0, XY=1, YX=2, YY=3 (and likewise for 3)
        return {"x": [row[:length] for row, length in zip(symbols, lengths, strict=True)], "y": y.astype(np.int64)}

    def generation_params(self) -> dict[str, Any]:
        return {"seq_len": self.seq_len, "n_relevant": self.n_relevant, "length_jitter": self.length_jitter}

    def collate(self, columns: dict[str, Any]) -> Batch:
        """Zero-padded one-hot inputs plus each sequence's length, so the readout is taken at its own E."""
        seqs = list(columns["x"])  # a list of ragged tensors, or the rows of one tensor when all lengths agree
        return {
            "x": pad_sequences([F.one_hot(s, VOCAB).float() for s in seqs]),
            "lengths": torch.tensor([len(s) for s in seqs]),
            "y": columns["y"],
        }

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(pred, batch["y"])

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"acc": MulticlassAccuracy(self.output_size, average="micro")})

    def baseline(self) -> dict[str, float]:
        """Uniform classes: any input-blind guess scores 1/C, the uniform distribution CE ln C."""
        return {"loss": math.log(self.output_size), "acc": 1 / self.output_size}

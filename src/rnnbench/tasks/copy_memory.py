"""The copy-memory problem (Hochreiter & Schmidhuber 1997; the form of Arjovsky et al. 2016).

Input: 10 symbols drawn from 8, then T-1 blanks, a delimiter, and 10 more blanks (length T+20). Target: blanks for
T+10 steps, then the 10 symbols. The model must hold 10 symbols for T steps, a direct test of long-lag memory.
A memoryless model outputs blanks and then guesses uniformly, reaching cross-entropy 10*ln(8)/(T+20) per step and
1/8 accuracy on the copied symbols.
"""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from rnnbench.tasks.base import Batch, SequenceTask

N_COPY = 10  # symbols to remember
N_SYMBOLS = 8  # alphabet of the remembered symbols: 1..8
BLANK, DELIMITER = 0, 9
VOCAB = 10


class CopyMemoryTask(SequenceTask):
    """Reproduce the first 10 symbols after a lag of T blanks; per-step classification over 10 classes."""

    name = "copy_memory"
    readout = "all"
    primary_metric = "copy_acc"
    higher_is_better = True
    perfect = 1.0
    input_size = VOCAB
    output_size = VOCAB

    @staticmethod
    def generate(n: int, rng: np.random.Generator, seq_len: int) -> dict[str, np.ndarray]:
        """Columns x (n, T+20) int64 symbols and y (n, T+20) int64 targets."""
        total = seq_len + 2 * N_COPY
        symbols = rng.integers(1, N_SYMBOLS + 1, size=(n, N_COPY))
        x = np.full((n, total), BLANK, dtype=np.int64)
        x[:, :N_COPY] = symbols
        x[:, N_COPY + seq_len - 1] = DELIMITER
        y = np.full((n, total), BLANK, dtype=np.int64)
        y[:, -N_COPY:] = symbols
        return {"x": x, "y": y}

    def collate(self, columns: dict) -> Batch:
        """One-hot symbols as the float inputs the recurrent body takes."""
        return {"x": F.one_hot(columns["x"], VOCAB).float(), "y": columns["y"], "symbols": columns["x"]}

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(pred.reshape(-1, VOCAB), batch["y"].reshape(-1))

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"copy_acc": MulticlassAccuracy(VOCAB, average="micro")})

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """Accuracy over the 10 copied positions only; the blanks before them are trivially predictable."""
        return pred[:, -N_COPY:].reshape(-1, VOCAB), batch["y"][:, -N_COPY:].reshape(-1)

    def baseline(self) -> dict[str, float]:
        return {"loss": N_COPY * math.log(N_SYMBOLS) / (self.seq_len + 2 * N_COPY), "copy_acc": 1 / N_SYMBOLS}

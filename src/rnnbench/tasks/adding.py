"""The adding problem (Hochreiter & Schmidhuber 1997, in the form of Arjovsky et al. 2016).

Each step carries two channels: a value drawn from U[0, 1] and a marker. Exactly one marker sits in each half of
the sequence; the target is the sum of the two marked values. The first marker can be ~T steps from the readout, so
this tests the seed's claim that vanilla RNNs fail at long lags while the LSTM's additive cell path does not.
Predicting the mean (1.0) scores MSE = Var(U1 + U2) = 2/12 = 1/6: anything near 0.167 has learned nothing.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection

from rnnbench.tasks.base import Batch, SequenceTask


class AddingTask(SequenceTask):
    """Regress the sum of the two marked values from the final step."""

    name = "adding"
    readout = "last"
    primary_metric = "mse"
    input_size = 2
    output_size = 1

    @staticmethod
    def generate(n: int, rng: np.random.Generator, seq_len: int) -> dict[str, np.ndarray]:
        """Columns x (n, T, 2) float32 and y (n,) float32."""
        if seq_len < 2:
            raise ValueError(f"seq_len must be >= 2 for the adding task (one marker per half), got {seq_len}")
        values = rng.uniform(0.0, 1.0, size=(n, seq_len)).astype(np.float32)
        half = seq_len // 2
        first = rng.integers(0, half, size=n)
        second = rng.integers(half, seq_len, size=n)
        markers = np.zeros((n, seq_len), dtype=np.float32)
        rows = np.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        x = np.stack([values, markers], axis=-1)
        y = values[rows, first] + values[rows, second]
        return {"x": x, "y": y.astype(np.float32)}

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return F.mse_loss(pred.squeeze(-1), batch["y"])

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        return pred.squeeze(-1), batch["y"]

    def baseline(self) -> dict[str, float]:
        """Always predicting 1.0: MSE 1/6, MAE E|U1+U2-1| = 1/3 (triangular distribution)."""
        return {"loss": 1 / 6, "mse": 1 / 6, "mae": 1 / 3}

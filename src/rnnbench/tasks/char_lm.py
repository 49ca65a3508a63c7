"""Character-level language modelling on natural text: do gated cells model real sequences better?

The synthetic tasks isolate one mechanism each; this one asks whether their conclusions survive on natural text,
where dependencies of every lag mix: the seed's claim that gated cells (LSTM, GRU) beat a vanilla RNN at equal
parameters, measured as bits per character as in Graves (2013) and Karpathy, Johnson & Fei-Fei (2015).

Data (`source`):

- `kjv` (default): the King James Bible, public domain, one verse per line (31,102 verses, 4.15M characters,
  69 distinct). It is read from the SWORD module engKJV2006eb: `apt-get install sword-text-kjv`, or set
  `RNNBENCH_SWORD_DIR` to a SWORD library holding it (see `rnnbench.tasks.sword`);
- `hub`: the `hub_text_column` of split `hub_split` of `datasets.load_dataset(hub_name, data_files=hub_data_files)`,
  rows joined by newlines (e.g. `hub_name=text hub_data_files=corpus.txt` for a local file).

Splits are contiguous, as for text8/enwik8: the first 1 - val_fraction - test_fraction of the characters train,
the next val_fraction validate, the rest test, each cut moved forward to the next line start, so no text is shared.
An example is a window of seq_len + 1 characters at a uniformly random start inside its split's text: the model
reads the first seq_len (one-hot) and predicts the next character at every step (readout "all"; causal, so a
bidirectional body is refused). The vocabulary is the sorted set of characters of the whole text, fixed by the
text alone, so ids never depend on the split or the seed.

Metrics: `bpc` (cross-entropy in bits per character, = loss / ln 2) and next-character accuracy. Baseline: the
unigram model of the training text, whose bpc is its character entropy in bits (loss: the same in nats) and whose
accuracy is the frequency of its most frequent character.
"""

from __future__ import annotations

import math
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from rnnbench.tasks.base import SPLITS, Batch, SequenceTask
from rnnbench.tasks.sword import load_module

SOURCES = ("kjv", "hub")
KJV_MODULE = "engKJV2006eb"


def check_fraction(name: str, value: Any) -> float:
    """A validation or test share of the text: a number in (0, 0.5)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 0.5:
        raise ValueError(f"{name} must be a number in (0, 0.5), got {value!r}")
    return float(value)


def split_text(text: str, val_fraction: float, test_fraction: float) -> dict[str, str]:
    """Contiguous train/val/test texts; each cut moves forward to the next line start (if there is one)."""

    def cut(share: float) -> int:
        at = round(share * len(text))
        newline = text.find("\n", at)
        return at if newline < 0 else newline + 1

    first, second = cut(1 - val_fraction - test_fraction), cut(1 - test_fraction)
    return {"train": text[:first], "val": text[first:second], "test": text[second:]}


def codepoints(text: str) -> np.ndarray:
    """The text's Unicode code points as an int64 array (fast, without a Python loop)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


def hub_text(name: str, data_files: Any, split: str, column: str, cache_dir: str) -> str:
    """The rows of one column of a `datasets.load_dataset` split, joined by newlines."""
    data = datasets.load_dataset(name, data_files=data_files, split=split, cache_dir=cache_dir)
    if column not in data.column_names:
        raise ValueError(f"hub_text_column must be a column of {name} ({', '.join(data.column_names)}), got {column!r}")
    return "\n".join(data[column])


class BitsPerChar(Metric):
    """Mean cross-entropy of next-character logits, in bits."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("nats", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """logits (N, V), target (N,)."""
        self.nats += F.cross_entropy(logits.double(), target, reduction="sum")
        self.count += target.numel()

    def compute(self) -> Tensor:
        return self.nats / self.count / math.log(2)


class CharLMTask(SequenceTask):
    """Predict the next character of windows of natural text; one-hot inputs, one prediction per step."""

    name = "char_lm"
    readout = "all"
    causal = True
    primary_metric = "bpc"

    def __init__(
        self,
        seq_len: int = 128,
        source: str = "kjv",
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        hub_name: str | None = None,
        hub_data_files: Any = None,
        hub_split: str = "train",
        hub_text_column: str = "text",
        **kwargs: Any,
    ) -> None:
        """Windows of seq_len + 1 characters of the `source` text (module docstring), split contiguously."""
        super().__init__(seq_len=seq_len, **kwargs)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        if source == "kjv":
            text = "\n".join(verse for verse in load_module(KJV_MODULE) if verse)
        elif not isinstance(hub_name, str) or not hub_name:
            raise ValueError(f"hub_name must be a dataset name when source=hub, got {hub_name!r}")
        else:
            text = hub_text(hub_name, hub_data_files, hub_split, hub_text_column, str(self.cache_dir))
        self.vocab = "".join(sorted(set(text)))
        self.texts = split_text(text, self.val_fraction, self.test_fraction)
        shortest = min(SPLITS, key=lambda split: len(self.texts[split]))
        if len(self.texts[shortest]) <= self.seq_len:
            raise ValueError(
                f"seq_len must be < {len(self.texts[shortest])}, the length of the shortest split ({shortest}), "
                f"got {self.seq_len}"
            )
        self.input_size = self.output_size = len(self.vocab)

    @staticmethod
    def generate(n: int, rng: np.random.Generator, text: str, vocab: str, seq_len: int) -> dict[str, np.ndarray]:
        """Column chars (n, seq_len + 1) int64: character ids of windows at uniform random starts in `text`."""
        starts = rng.integers(0, len(text) - seq_len, size=n)
        windows = codepoints(text)[starts[:, None] + np.arange(seq_len + 1)]
        return {"chars": np.searchsorted(codepoints(vocab), windows)}

    def generation_params(self) -> dict[str, Any]:
        """Nothing split-independent: each split is generated from its own part of the corpus (split_params)."""
        return {}

    def split_params(self, split: str) -> dict[str, Any]:
        """The split's text, the vocabulary and the window length."""
        return {"text": self.texts[split], "vocab": self.vocab, "seq_len": self.seq_len}

    def collate(self, columns: dict[str, Any]) -> Batch:
        """x: one-hot characters 0..T-1 (B, T, V); y: the ids of characters 1..T (B, T)."""
        chars = columns["chars"]
        return {"x": F.one_hot(chars[:, :-1], len(self.vocab)).float(), "y": chars[:, 1:]}

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(pred.reshape(-1, len(self.vocab)), batch["y"].reshape(-1))

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"bpc": BitsPerChar(), "acc": MulticlassAccuracy(len(self.vocab), average="micro")})

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        return pred.reshape(-1, len(self.vocab)), batch["y"].reshape(-1)

    def baseline(self) -> dict[str, float]:
        """The training text's unigram model: its entropy (bits for bpc, nats for loss), its top frequency (acc)."""
        _, counts = np.unique(codepoints(self.texts["train"]), return_counts=True)
        p = counts / counts.sum()
        entropy = float(-(p * np.log(p)).sum())
        return {"loss": entropy, "bpc": entropy / math.log(2), "acc": float(p.max())}

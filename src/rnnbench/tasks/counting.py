"""Counting languages with length generalisation: can the cell count past the lengths it was trained on?

Weiss, Goldberg & Yahav 2018 ("On the Practical Computational Power of Finite Precision RNNs for Language
Recognition", ACL) show that an LSTM can keep an unbounded count in its additive cell state while a GRU, whose
state is a convex mix of its past and a squashed candidate, cannot; trained on a^n b^n with small networks
(10 units), their LSTM accepted far longer strings than it had seen and their GRU did not. This tests the seed's
claim that GRU matches LSTM, on the one kind of problem where theory says they differ.

Strings are S a^n b^n (`variant=anbn`) or S a^n b^n c^n (`anbncn`), n >= 1, S a start symbol, read one one-hot
symbol per step. The model predicts, at every step, the set of symbols that may legally come next (one sigmoid
each, letters and the end symbol E): {a} after S, {a, b} after every a (n is not known yet), then the one forced
symbol at each step of the later blocks, E after the last. This is the next-symbol prediction setting of Gers &
Schmidhuber (2001) and Suzgun et al. (2019), trained on positive strings only. A string is *accepted* when every
prediction along it is right: the units with logit > 0 are exactly the legal set, at every step. Only the
steps that end a block depend on n, so acceptance is the ability to count.

Splits hold different lengths: train draws n uniformly from 1..`train_max_n`; val holds every n in
1..`val_max_n` once and test every n in 1..`test_max_n` once (the shortest first when `n_val` / `n_test` cap
them), so the metrics are exact, not estimates. Metrics: `max_n`, the largest n such that every n' <= n is
accepted (0 when n = 1 is not), and `accept_rate`, the fraction of the split's strings accepted. Loss: binary
cross-entropy summed over the output units, averaged over the (unpadded) steps.

Baselines. `max_n` and `accept_rate` are scored against a model that fits the training range and nothing beyond:
max_n = train_max_n, accept_rate = train_max_n / test_max_n. That is what a finite-state model that memorised the
training lengths reaches, so `beats_baseline` means "generalised beyond the training lengths", not "learned the
training set" (a memoryless predictor, which sees only the current symbol, is lower still: max_n 1). The loss
baseline is the memoryless one on the test split: the conditional entropy of the targets given the current
symbol, exact from the lengths (`memoryless_loss`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, MetricCollection

from rnnbench.tasks.base import Batch, SequenceTask, binary_entropy, check_positive_int

LETTERS = {"anbn": "ab", "anbncn": "abc"}  # the blocks of each language, in order
START = 0  # input symbol ids: S, then the letters; output units: the letters, then E


def check_params(variant: str, train_max_n: int, val_max_n: int, test_max_n: int) -> None:
    """Raise ValueError, naming the parameter, for ranges the task cannot build or score."""
    if variant not in LETTERS:
        raise ValueError(f"variant must be one of {', '.join(LETTERS)}, got {variant!r}")
    check_positive_int("train_max_n", train_max_n)
    for name, value, floor in (("val_max_n", val_max_n, "train_max_n"), ("test_max_n", test_max_n, "val_max_n")):
        check_positive_int(name, value)
        bound = train_max_n if floor == "train_max_n" else val_max_n
        if value < bound:
            raise ValueError(f"{name} must be >= {floor} (= {bound}), got {value}")


def string_length(n: Tensor | int, variant: str) -> Tensor | int:
    """Steps of S a^n b^n (c^n): one per input symbol."""
    return len(LETTERS[variant]) * n + 1


def encode(ns: Tensor, variant: str) -> tuple[Tensor, Tensor, Tensor]:
    """Input symbol ids (B, T), legal-next-symbol targets (B, T, letters + 1) and the valid-step mask (B, T),
    T the longest string of the batch; steps past a string's end hold symbol 0 and an all-zero target."""
    k = len(LETTERS[variant])
    steps = int(string_length(int(ns.max()), variant))
    t = torch.arange(steps).expand(len(ns), steps)  # (B, T)
    n = ns[:, None]
    block = torch.div(t - 1, n, rounding_mode="floor").clamp(min=0)  # 0 for S and the a's, then 1, 2, ...
    symbols = torch.where(t == 0, START, block + 1)  # S = 0, a = 1, b = 2, c = 3
    mask = t < k * n + 1
    last = (t % n == 0) & (t > 0)  # the last symbol of its block (t = j * n)
    target = torch.zeros(len(ns), steps, k + 1)
    rows = mask & (t > 0)
    # After S: a. After an a: a or b. Inside a later block: that block's letter. At its end: the next one, or E.
    target[..., 0] += (t == 0).float()
    target[..., 0] += (rows & (block == 0)).float()
    target[..., 1] += (rows & (block == 0)).float()
    forced = torch.where(last, block + 1, block).clamp(max=k)  # the unit that must fire inside blocks >= 1
    later = rows & (block >= 1)
    target.scatter_add_(-1, forced.unsqueeze(-1), later.float().unsqueeze(-1))
    # The last a: b is already allowed by the {a, b} above; a later block's last symbol moved on to the next unit.
    return torch.where(mask, symbols, 0), target, mask


def memoryless_loss(variant: str, max_n: int) -> float:
    """Per-step conditional entropy (nats, summed over output units) of the targets given the current symbol,
    over the strings n = 1..max_n once each: only the later blocks' symbols leave a choice (stay or move on)."""
    k = len(LETTERS[variant])
    total_n = max_n * (max_n + 1) // 2  # symbols per block over the split
    steps = max_n + k * total_n
    p_last = max_n / total_n  # the fraction of a later block's symbols that end it
    # Two units flip together at each later-block symbol: the block's letter (stay) and the next one (or E).
    return float((k - 1) * total_n * 2 * binary_entropy(p_last) / steps)


class Acceptance(Metric):
    """Per-length acceptance over a split: `max_n` (the longest unbroken run of accepted n from 1) or the
    fraction of strings accepted (`accept_rate`)."""

    full_state_update = False

    def __init__(self, max_n: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.add_state("seen", torch.zeros(max_n + 2), dist_reduce_fx="sum")  # strings per n (index 0 unused)
        self.add_state("accepted", torch.zeros(max_n + 2), dist_reduce_fx="sum")

    def update(self, accepted: Tensor, n: Tensor) -> None:
        """accepted (B,) bool, n (B,) the strings' lengths parameter."""
        n = n.to(self.seen.device).long().clamp(max=len(self.seen) - 1)
        self.seen.index_add_(0, n, torch.ones_like(n, dtype=self.seen.dtype))
        self.accepted.index_add_(0, n, accepted.to(self.seen.dtype))

    def compute(self) -> Tensor:
        if self.kind == "accept_rate":
            return self.accepted.sum() / self.seen.sum().clamp(min=1)
        good = (self.seen[1:] > 0) & (self.accepted[1:] == self.seen[1:])  # n = 1, 2, ...
        broken = torch.nonzero(~good)
        return (broken[0, 0] if len(broken) else torch.tensor(len(good))).float()


class CountingTask(SequenceTask):
    """Next-symbol prediction on a^n b^n (c^n): train on short strings, test on every length up to test_max_n."""

    name = "counting"
    readout = "all"
    causal = True  # the inputs are the targets one step later
    primary_metric = "max_n"
    higher_is_better = True

    def __init__(
        self,
        variant: str = "anbn",
        train_max_n: int = 50,
        val_max_n: int = 100,
        test_max_n: int = 200,
        n_train: int = 6400,
        n_val: int | None = None,
        n_test: int | None = None,
        batch_size: int = 32,
        data_seed: int = 0,
        cache_dir: str | None = None,
        solve: Mapping[str, Any] | None = None,
    ) -> None:
        """n_val / n_test cap the val and test strings (the shortest are kept); None: every n of the range."""
        check_params(variant, train_max_n, val_max_n, test_max_n)
        caps = {"n_val": (n_val, val_max_n), "n_test": (n_test, test_max_n)}
        sizes = {k: top if cap is None else min(check_positive_int(k, cap), top) for k, (cap, top) in caps.items()}
        super().__init__(
            seq_len=int(string_length(test_max_n, variant)),  # the longest string any split holds
            n_train=n_train,
            batch_size=batch_size,
            data_seed=data_seed,
            cache_dir=cache_dir,
            solve=solve,
            **sizes,
        )
        self.variant = variant
        self.max_ns = {"train": train_max_n, "val": sizes["n_val"], "test": sizes["n_test"]}
        self.input_size = len(LETTERS[variant]) + 1  # S and the letters
        self.output_size = len(LETTERS[variant]) + 1  # the letters and E
        self.perfect = float(self.max_ns["test"])  # every tested length accepted

    @property
    def label(self) -> str:
        """counting_anbn or counting_anbncn: one counter or two, different problems, reported apart."""
        return f"{self.name}_{self.variant}"

    @staticmethod
    def generate(n: int, rng: np.random.Generator, max_n: int, every_n: bool) -> dict[str, np.ndarray]:
        """Column n (n,) int64: uniform on 1..max_n (train), or 1, 2, ..., n (every_n, n <= max_n; rng unused).
        The strings themselves are a function of n alone, built per batch by `encode`."""
        if every_n:
            if n > max_n:
                raise ValueError(f"a split holding every n in 1..{max_n} has at most {max_n} strings, asked for {n}")
            return {"n": np.arange(1, n + 1, dtype=np.int64)}
        return {"n": rng.integers(1, max_n + 1, size=n).astype(np.int64)}

    def generation_params(self) -> dict[str, Any]:
        """Nothing shared: each split has its own range (split_params); the variant only changes `encode`."""
        return {}

    def split_params(self, split: str) -> dict[str, Any]:
        return {"max_n": self.max_ns[split], "every_n": split != "train"}

    def collate(self, columns: dict[str, Any]) -> Batch:
        """x: one-hot symbols (B, T, 1 + letters), y: legal next symbols (B, T, letters + 1), mask (B, T), lengths
        and n (B,)."""
        ns = columns["n"]
        symbols, target, mask = encode(ns, self.variant)
        return {
            "x": F.one_hot(symbols, self.input_size).float() * mask.unsqueeze(-1),
            "y": target,
            "mask": mask,
            "lengths": mask.sum(1),
            "n": ns,
        }

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        nats = F.binary_cross_entropy_with_logits(pred, batch["y"], reduction="none").sum(-1)
        return nats[batch["mask"]].mean()

    def make_metrics(self) -> MetricCollection:
        top = max(self.max_ns.values())
        return MetricCollection(
            {"max_n": Acceptance(top, "max_n"), "accept_rate": Acceptance(top, "accept_rate")}, compute_groups=False
        )

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """(accepted (B,), n (B,)): a string is accepted when every step's thresholded prediction is its target."""
        right = ((pred > 0) == (batch["y"] > 0.5)).all(-1) | ~batch["mask"]
        return right.all(1), batch["n"]

    def baseline(self) -> dict[str, float]:
        """Fit the training lengths, nothing beyond (max_n, accept_rate); memoryless on the test split (loss)."""
        fitted = min(self.max_ns["train"], self.max_ns["test"])
        return {
            "loss": memoryless_loss(self.variant, self.max_ns["test"]),
            "max_n": float(fitted),
            "accept_rate": fitted / self.max_ns["test"],
        }

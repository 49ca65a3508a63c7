"""What every task provides: deterministic data as HF `datasets`, batching, the output head, loss, metrics and
the trivial baseline that says whether a run beat chance.

A task is a `LightningDataModule`. Its data is a pure function of (generation parameters, seed, split, code): each
split is built once with `datasets.Dataset.from_generator`, whose fingerprint of the generator's arguments (among
them `code_fingerprint`, a hash of every rnnbench module the task's code can reach) names an on-disk cache, so
the second run of a task (and every other variant compared on the same seed) reads identical data back instead of
regenerating it, and an edit to any code that makes the data builds it afresh. Adding a task means one subclass
in its own module plus one config file.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import math
import os
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler
from torchmetrics import MetricCollection

from rnnbench.tasks.solve import SolveCriterion

SPLITS = ("train", "val", "test")
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
Batch = dict[str, Tensor]


def default_cache_dir() -> Path:
    """Where built datasets are cached: $RNNBENCH_CACHE, else ~/.cache/rnnbench/datasets."""
    return Path(os.environ.get("RNNBENCH_CACHE", Path.home() / ".cache" / "rnnbench")) / "datasets"


def check_positive_int(name: str, value: Any) -> int:
    """Validate a user-facing size; the message names the argument and what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def binary_entropy(p: float) -> float:
    """Entropy in nats of a Bernoulli(p): the cross-entropy of an input-blind binary predictor at rate p."""
    return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)


def split_seed(seed: int, split: str) -> int:
    """Independent, reproducible seed per split, so changing n_train never changes the test set."""
    return int(np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1)[0])


def _rows(generate: Any, n: int, seed: int, params: dict[str, Any], code: str = "") -> Iterator[dict[str, Any]]:
    """Yield the rows of `generate(n, rng, **params)`'s columns; module-level so `datasets` can fingerprint it.
    `code` is unused here: it is the `code_fingerprint` of the task, passed so the cache key depends on it."""
    columns = generate(n, np.random.default_rng(seed), **params)
    for i in range(n):
        yield {key: col[i] for key, col in columns.items()}


def _module_source(module: types.ModuleType) -> str:
    """A module's source as it is on disk now (not linecache's copy, which an edit leaves stale)."""
    path = getattr(module, "__file__", None)
    return Path(path).read_text(encoding="utf-8") if path and path.endswith(".py") else ""


def _normalised(source: str) -> str:
    """The code of a module without comments, docstrings or layout: edits to those leave the data alone."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                body[0] = ast.Pass()
    return ast.dump(tree)


def code_modules(task_cls: type) -> list[types.ModuleType]:
    """The modules whose code can make a task's data: the modules of the task class and its bases, and, transitively,
    every module of rnnbench (or of the task's own top-level package, for a user's task) they import or import
    names from."""
    packages = {"rnnbench", task_cls.__module__.partition(".")[0]}
    pending = [sys.modules[c.__module__] for c in task_cls.__mro__ if c.__module__.partition(".")[0] in packages]
    seen: dict[str, types.ModuleType] = {}
    while pending:
        module = pending.pop()
        if module.__name__ in seen:
            continue
        seen[module.__name__] = module
        for value in vars(module).values():
            name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if isinstance(name, str) and name.partition(".")[0] in packages and name in sys.modules:
                pending.append(sys.modules[name])
    return [seen[name] for name in sorted(seen)]


@functools.cache
def code_fingerprint(task_cls: type) -> str:
    """A hash of the code of every module in `code_modules(task_cls)`, part of each split's cache key.

    Why: `datasets` fingerprints the generator function it is handed, not the module-level helpers that function
    calls, so an edited helper (temporal_order.relevant_windows, seq2seq._addition) used to leave stale data in
    the cache. Hashing whole modules over-invalidates a little (an edit anywhere in them rebuilds the data, which
    takes seconds) and never under-invalidates for code inside the package. Cached per class and process."""
    digest = hashlib.sha256()
    for module in code_modules(task_cls):
        digest.update(module.__name__.encode())
        digest.update(_normalised(_module_source(module)).encode())
    return digest.hexdigest()[:16]


def infer_features(columns: dict[str, Any]) -> datasets.Features:
    """Arrow types for a task's columns; fixed-shape arrays get fixed-size types so loading them back is a copy,
    not a per-element Python conversion (35x faster for the adding task's (n, T, 2) inputs)."""
    fixed = {2: datasets.Array2D, 3: datasets.Array3D, 4: datasets.Array4D}
    features = {}
    for key, col in columns.items():
        if isinstance(col, list):  # ragged: one variable-length array per example
            features[key] = datasets.List(datasets.Value(str(col[0].dtype)))
            continue
        dtype, shape = str(col.dtype), col.shape[1:]
        if len(shape) == 0:
            features[key] = datasets.Value(dtype)
        elif len(shape) == 1:
            features[key] = datasets.List(datasets.Value(dtype), length=shape[0])
        else:
            features[key] = fixed[len(shape)](shape=shape, dtype=dtype)
    return datasets.Features(features)


def to_tensors(columns: dict[str, Any], features: datasets.Features) -> dict[str, Any]:
    """numpy columns -> tensors; variable-length columns -> lists of tensors, even when a split happens to hold
    equal lengths (copied: arrow hands out read-only arrays, which torch.as_tensor would wrap with a warning)."""
    ragged = {k for k, f in features.items() if isinstance(f, datasets.List) and f.length == -1}
    return {k: [torch.tensor(a) for a in v] if k in ragged else torch.as_tensor(v) for k, v in columns.items()}


def pad_sequences(seqs: list[Tensor], value: float = 0.0) -> Tensor:
    """Right-pad a list of (T_i, ...) tensors to (B, max T, ...)."""
    return nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)


class ColumnDataset(torch.utils.data.Dataset):
    """A split held in memory as tensors (or lists of ragged tensors); indexed by a whole batch of indices."""

    def __init__(self, columns: dict[str, Any], collate: Any) -> None:
        self.columns = columns
        self.collate = collate
        self.size = len(next(iter(columns.values())))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: list[int]) -> Batch:
        return self.collate(
            {k: [v[i] for i in index] if isinstance(v, list) else v[index] for k, v in self.columns.items()}
        )


class SequenceTask(pl.LightningDataModule):
    """Base of all tasks: data, readout, head, loss, metrics and baseline for one problem."""

    name: ClassVar[str]
    readout: ClassVar[str] = "last"  # "last": one prediction per sequence; "all": one per time step
    causal: ClassVar[bool] = False  # True when inputs hold future targets, so a bidirectional body would cheat
    model_kind: ClassVar[str] = "recurrent"  # "recurrent" (a Recurrent body) or "seq2seq"
    primary_metric: ClassVar[str] = "loss"  # compared against the baseline to say "beats chance"
    higher_is_better: ClassVar[bool] = False
    perfect: ClassVar[float] = 0.0  # the primary metric's best possible value

    input_size: int
    output_size: int

    def __init__(
        self,
        seq_len: int,
        n_train: int = 4096,
        n_val: int = 512,
        n_test: int = 1024,
        batch_size: int = 64,
        data_seed: int = 0,
        cache_dir: str | None = None,
        solve: Mapping[str, Any] | None = None,
    ) -> None:
        """`solve`: the criterion a validation check must meet for the run to count as solved (rnnbench.training.solve),
        or None for a task without one."""
        super().__init__()
        self.seq_len = check_positive_int("seq_len", seq_len)
        self.sizes = {
            "train": check_positive_int("n_train", n_train),
            "val": check_positive_int("n_val", n_val),
            "test": check_positive_int("n_test", n_test),
        }
        self.batch_size = check_positive_int("batch_size", batch_size)
        if isinstance(data_seed, bool) or not isinstance(data_seed, int):
            raise ValueError(f"data_seed must be an int, got {data_seed!r}")
        self.data_seed = data_seed
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.solve = None if solve is None else SolveCriterion.parse(solve)
        self.splits: dict[str, ColumnDataset] = {}
        # The split a data-dependent baseline is scored on: test, or val in a study's tuning stage, which never reads
        # the test split (train.py sets it). Tasks whose baseline is a formula ignore it.
        self.baseline_split = "test"

    @property
    def label(self) -> str:
        """What run records and reports call this task. It is `name`, except where one task class holds several
        problems that must never be averaged together (timing's msd and gts): those extend it."""
        return self.name

    # -- what a task defines ------------------------------------------------------------------------------
    @staticmethod
    def generate(n: int, rng: np.random.Generator, **params: Any) -> dict[str, np.ndarray]:
        """Draw n examples as columns; must depend only on rng and params."""
        raise NotImplementedError

    def generation_params(self) -> dict[str, Any]:
        """The keyword arguments of `generate` that define this task's data."""
        return {"seq_len": self.seq_len}

    def split_params(self, split: str) -> dict[str, Any]:
        """Extra `generate` arguments for one split: data sliced from a fixed dataset needs to know which slice."""
        return {}

    def collate(self, columns: dict[str, Any]) -> Batch:
        """Turn a batch of columns into model inputs; fixed-length tasks need nothing more than float inputs."""
        return {k: torch.as_tensor(v) for k, v in columns.items()}

    def make_head(self, in_features: int) -> nn.Module:
        """The output layer on top of the recurrent body."""
        return nn.Linear(in_features, self.output_size)

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        """Training objective for a batch."""
        raise NotImplementedError

    def make_metrics(self) -> MetricCollection:
        """Fresh torchmetrics for one split; their names are logged as `<split>/<name>`."""
        raise NotImplementedError

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """(preds, target) as the metrics expect them."""
        return pred, batch["y"]

    def evaluate(self, body: nn.Module, head: nn.Module, batch: Batch, pred: Tensor) -> tuple[Tensor, ...]:
        """Held-out metric inputs; tasks that score free-running output (greedy decoding) override this."""
        return self.metric_inputs(pred, batch)

    def baseline(self) -> dict[str, float]:
        """The trivial (chance / memoryless) value of each logged metric, `loss` included."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------------------
    @property
    def lag(self) -> int:
        """The longest input-to-target dependency, in steps: the chrono forget-gate init's default T_max. The
        sequence length bounds every dependency; a task whose inputs run longer than seq_len may override it."""
        return self.seq_len

    def metric_names(self) -> list[str]:
        """What this task logs per split as `<split>/<name>`: `loss`, the primary metric, then its metrics' names (a
        metric computing several values, as seq2seq's `scores`, is known here by the primary one only)."""
        return list(dict.fromkeys(["loss", self.primary_metric, *self.make_metrics().keys()]))

    def check_solve(self) -> None:
        """Refuse a solve criterion on a metric this task does not log. Not in __init__: a subclass's metrics can
        depend on attributes it sets after calling it (temporal_order's class count)."""
        names = self.metric_names()
        if self.solve is not None and self.solve.metric not in names:
            raise ValueError(f"solve.metric must be one of {', '.join(names)}, got {self.solve.metric!r}")

    def model_kwargs(self) -> dict[str, Any]:
        """What the model config cannot know: sizes fixed by the data (input features, vocabularies), the lag."""
        return {"input_size": self.input_size, "lag": self.lag}

    @classmethod
    def check_model_class(cls, model_cls: type, label: str | None = None) -> None:
        """Refuse a model of another kind before it is built: its constructor could not take `model_kwargs()`.

        A class method, so the pairing is checked before the task is constructed (and its data read): a wrong
        pair fails the same way whether or not a task's data is present on this machine."""
        kind = getattr(model_cls, "model_kind", "recurrent")
        if kind != cls.model_kind:
            raise ValueError(
                f"task {label or cls.name} needs a {cls.model_kind} model, got a {kind} model ({model_cls.__name__})"
            )

    def check_model(self, body: nn.Module) -> None:
        """Refuse models this task cannot use, before any data is built."""
        self.check_model_class(type(body), self.label)
        if self.causal and getattr(body, "bidirectional", False):
            raise ValueError(
                f"model.bidirectional=true would let task {self.label} see its future targets; allowed: false"
            )

    def predict(self, body: nn.Module, head: nn.Module, batch: Batch) -> Tensor:
        """Run body and head on a batch: the final step's output ('last') or every step's ('all')."""
        out, _ = body(batch["x"], lengths=batch.get("lengths"))  # (B, T, dirs*H)
        if self.readout == "all":
            return head(out)
        return head(last_step(out, batch.get("lengths"), getattr(body, "num_directions", 1)))

    def beats_baseline(self, value: float, margin: float = 0.1) -> bool:
        """True when `value` closes more than `margin` of the gap between the baseline and a perfect score."""
        base = self.baseline()[self.primary_metric]
        gain = (value - base) if self.higher_is_better else (base - value)
        return bool(gain > margin * abs(self.perfect - base))

    def build_split(self, split: str) -> datasets.Dataset:
        """Generate (or load from the fingerprinted cache) one split as a HF dataset."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        params = {**self.generation_params(), **self.split_params(split)}
        sample = type(self).generate(1, np.random.default_rng(0), **params)
        with _quiet_datasets():
            return datasets.Dataset.from_generator(
                _rows,
                gen_kwargs={
                    "generate": type(self).generate,
                    "n": self.sizes[split],
                    "seed": split_seed(self.data_seed, split),
                    "params": params,
                    "code": code_fingerprint(type(self)),
                },
                features=infer_features(sample),
                cache_dir=str(self.cache_dir),
                split=datasets.Split(split) if split != "val" else datasets.Split.VALIDATION,
            )

    def setup(self, stage: str | None = None) -> None:
        """Build (or load) only the splits Lightning's `stage` reads: fitting never touches the test split, so a
        tuning run (stage=tune: fit, no test) never generates or reads it. None builds all three."""
        for split in STAGE_SPLITS.get(stage, SPLITS):
            if split not in self.splits:
                data = self.build_split(split)
                columns = to_tensors(data.with_format("numpy")[:], data.features)
                self.splits[split] = ColumnDataset(columns, self.collate)

    def _loader(self, split: str) -> DataLoader:
        data = self.splits[split]
        sampler = RandomSampler(data) if split == "train" else SequentialSampler(data)
        return DataLoader(data, sampler=BatchSampler(sampler, self.batch_size, drop_last=False), batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def last_step(out: Tensor, lengths: Tensor | None, num_directions: int) -> Tensor:
    """(B, dirs*H) readout: the forward direction at each sequence's last valid step, the backward one at t=0."""
    batch = out.shape[0]
    last = torch.full((batch,), out.shape[1] - 1, device=out.device) if lengths is None else lengths.to(out.device) - 1
    fwd = out[torch.arange(batch, device=out.device), last]
    if num_directions == 1:
        return fwd
    hidden = out.shape[-1] // 2
    return torch.cat([fwd[:, :hidden], out[:, 0, hidden:]], dim=-1)


class _quiet_datasets:
    """Silence `datasets`' per-split progress bars; they drown out the training progress bar."""

    def __enter__(self) -> None:
        self.was_enabled = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            datasets.enable_progress_bars()

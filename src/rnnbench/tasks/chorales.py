"""Polyphonic music: predict the next frame of a Bach chorale's piano roll (Chung et al. 2014; Greff et al. 2017).

Both gated-cell comparisons include polyphonic music modelling on the JSB chorales of Boulanger-Lewandowski,
Bengio & Vincent (2012): at every frame, predict which notes sound in the next one, each through its own sigmoid,
scored by the frame negative log-likelihood. Here the chorales are the ones bundled with music21 (nothing
downloaded; music21 is BSD-3, the encodings in its corpus are public domain or used by permission): the
Riemenschneider collection in `music21.corpus.chorales.Iterator` order, 371 numbers naming 350 distinct files
(some harmonisations are numbered twice; each is kept once, so no chorale can sit in two splits).

Piano rolls. Only the vocal parts are kept (parts whose name starts with Soprano, Alto, Tenor or Bass: four voices,
five in BWV 27.6); the trumpets, horns, timpani and continuo of the 17 cantata settings that have them are
dropped, as in the four-part JSB set. A frame lasts 1 / `frames_per_quarter` quarter notes and holds the pitches
sounding at its start (a sampled piano roll). The default of 1 gives the JSB set's quarter-note frames, so the NLL
is on the papers' scale; it misses the short passing notes between beats (17,084 of the 81,759 vocal notes start
off the beat, most of them eighths). 2 (eighths) puts all but 1,102 onsets on a frame, 4 (sixteenths) all but 3,
at 2x and 4x the frames. A re-struck note looks like a held one. Pitches span MIDI 36 (C2) to 81 (A5): the 46 the
corpus uses, so input and output have 46 units. Nothing is transposed: keys are as Bach wrote them.

Splits are disjoint sets of chorales, cut from one permutation seeded by `data_seed`: test first (`test_fraction`
of them), then val, then train, as in the JSB split's 60/20/20. The model reads frames 0..L-2 of an example and
predicts frames 1..L-1 (readout "all"; causal, so a bidirectional body is refused). Val and test examples are whole
chorales, so their NLL is the papers' whole-sequence NLL (the first frame of a chorale is never a target). Train
examples are chunks of at most seq_len + 1 consecutive frames (truncated backpropagation); consecutive chunks share
one frame, so every transition is trained on exactly once. Short chunks give more updates per epoch: an LSTM
(H=64, batch 8, Adam 1e-2, seed 0) trained on 32-frame chunks reached test NLL 9.70 after 3 epochs and 8.99 after
10, against 10.67 and 9.23 trained on whole chorales; and it scored 8.99 on whole test chorales, 9.02 on 32-frame
test chunks, so the longer evaluation costs it nothing. Lengths vary: batches are padded and masked. `n_train` caps
the train chunks and `n_val`, `n_test` the chorales (None: all), keeping the first ones of the permutation, so a
budget's sizes still apply.

Parsing all 350 files with music21 takes about a minute, so it is done once: the notes (pitch, onset, end in
quarter notes) are cached in a compressed .npz under the task cache dir, keyed by the music21 version; piano rolls
at any frame length are rebuilt from it in milliseconds. `n_chorales` parses only the first n (tests), and is cut
from the full cache when one exists.

Metrics: `nll`, per-note binary cross-entropy summed over the 46 notes and averaged over frames (the loss), and
`acc`, the frame accuracy of Bay, Ehmann & Downie (2009) used by Boulanger-Lewandowski et al.: TP / (TP + FP + FN)
summed over all frames, a note predicted on when its probability exceeds 0.5. Baseline: the input-blind predictor,
an independent Bernoulli per pitch at its frequency in the train split's target frames (add-one smoothed, so a
pitch unseen in training costs a finite NLL), scored analytically on the test split from its pitch frequencies; as
no pitch sounds in more than half of the frames it predicts silence, accuracy 0. Two references that use the
previous frame are reported beside it: `acc_repeat`, the accuracy of repeating the previous frame, and
`nll_markov`, the NLL of a two-state Markov chain per pitch (fitted on train, add-one smoothed): what a model that
sees only each note's own previous state can reach.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, MetricCollection

from rnnbench.tasks.base import SPLITS, Batch, SequenceTask, check_positive_int

log = logging.getLogger(__name__)

LOWEST, HIGHEST = 36, 81  # MIDI pitches C2 and A5: the vocal range of the whole corpus
N_PITCHES = HIGHEST - LOWEST + 1
N_CHORALES = 350  # distinct files among music21's 371 Riemenschneider chorales (music21 10.5)
VOICES = ("Soprano", "Alto", "Tenor", "Bass")
CACHE_FORMAT = 1  # bump when the parsing rules change, so old caches are not read back
EXTENSIONS = (".mxl", ".xml", ".krn")  # preferred order when a chorale exists in several encodings


class Notes(NamedTuple):
    """The notes of the first n chorales: names (n,), and per chorale a (k, 3) float64 array of MIDI pitch,
    onset and end in quarter notes."""

    names: tuple[str, ...]
    notes: tuple[np.ndarray, ...]


def check_fraction(name: str, value: Any) -> float:
    """A validation or test share of the chorales: a number in (0, 0.5)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 0.5:
        raise ValueError(f"{name} must be a number in (0, 0.5), got {value!r}")
    return float(value)


def chorale_counts(n_chorales: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Chorales per split: round(fraction * n) for val and test (at least one each), the rest train."""
    n_test = max(1, round(test_fraction * n_chorales))
    n_val = max(1, round(val_fraction * n_chorales))
    return {"train": n_chorales - n_val - n_test, "val": n_val, "test": n_test}


def split_chorales(n_chorales: int, val_fraction: float, test_fraction: float, data_seed: int) -> dict[str, np.ndarray]:
    """Indices of each split's chorales: slices of one permutation seeded by data_seed (test, val, train), so
    the splits are disjoint and cover the corpus."""
    counts = chorale_counts(n_chorales, val_fraction, test_fraction)
    order = np.random.default_rng(data_seed).permutation(n_chorales)
    test_end = counts["test"]
    val_end = test_end + counts["val"]
    return {"test": order[:test_end], "val": order[test_end:val_end], "train": order[val_end:]}


def corpus_names() -> list[str]:
    """music21's Riemenschneider chorales as corpus names ('bach/bwv269'), in order, each file once."""
    from music21 import corpus

    return list(dict.fromkeys(corpus.chorales.Iterator(returnType="filename")))


def chorale_path(name: str) -> Path:
    """The corpus file of a chorale name: its exact stem in the preferred encoding, else the one file whose stem
    it begins (music21 lists 'bach/bwv18.5-l' for bwv18.5-lz.mxl)."""
    from music21 import common

    folder = common.getCorpusFilePath() / Path(name).parent
    stem = Path(name).name
    for ext in EXTENSIONS:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    matches = sorted(p for p in folder.iterdir() if p.stem.startswith(stem) and p.suffix in EXTENSIONS)
    if len(matches) != 1:
        raise FileNotFoundError(f"chorale {name} matches {len(matches)} files in music21's corpus, expected one")
    return matches[0]


def parse_chorale(path: Path) -> np.ndarray:
    """The notes of a chorale's vocal parts as a (k, 3) float64 array: MIDI pitch, onset, end (quarter notes).

    Parsed from the source file without music21's pickle cache (nothing written outside the task cache)."""
    from music21 import converter

    score = converter.parseFile(path, forceSource=True, storePickle=False)
    rows = []
    for part in score.parts:
        if (part.partName or "").split(" ")[0] not in VOICES:
            continue
        for element in part.flatten().notes:
            start, length = float(element.offset), float(element.quarterLength)
            if length > 0:  # grace notes take no time and sound in no frame
                rows += [(p.midi, start, start + length) for p in element.pitches]
    notes = np.array(rows, dtype=np.float64).reshape(-1, 3)
    outside = notes[(notes[:, 0] < LOWEST) | (notes[:, 0] > HIGHEST), 0]
    if len(notes) == 0 or len(outside):
        raise RuntimeError(
            f"chorale {path.name} has no notes or pitches outside {LOWEST}..{HIGHEST} ({outside.tolist()}): "
            f"music21 {version('music21')}'s corpus differs from the one this task was built on"
        )
    return notes


def cache_file(cache_dir: str, n_chorales: int | None) -> Path:
    """Where the parsed notes of the first n_chorales (None: all) are cached for this music21 version."""
    tag = "all" if n_chorales is None else str(n_chorales)
    return Path(cache_dir) / "chorales" / f"music21-{version('music21')}-v{CACHE_FORMAT}-{tag}.npz"


def save_notes(path: Path, notes: Notes) -> None:
    """Write the notes as one compressed .npz, atomically (a killed parse leaves no half-written cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    counts = np.array([len(n) for n in notes.notes], dtype=np.int64)
    np.savez_compressed(tmp, names=np.array(notes.names), counts=counts, notes=np.concatenate(notes.notes))
    os.replace(tmp, path)


def read_notes(path: Path, n_chorales: int | None = None) -> Notes:
    """The (first n_chorales of the) notes saved by `save_notes`."""
    with np.load(path) as data:
        names, counts, flat = data["names"].tolist(), data["counts"], data["notes"]
    notes = np.split(flat, np.cumsum(counts)[:-1])
    n = len(names) if n_chorales is None else n_chorales
    return Notes(tuple(names[:n]), tuple(notes[:n]))


@cache
def load_notes(cache_dir: str, n_chorales: int | None) -> Notes:
    """The notes of the first n_chorales chorales (None: all), parsed once and cached on disk; memoised in-process,
    so callers must not modify the arrays."""
    path, full = cache_file(cache_dir, n_chorales), cache_file(cache_dir, None)
    if path.is_file():
        return read_notes(path)
    if full.is_file():
        return read_notes(full, n_chorales)
    names = corpus_names()
    if n_chorales is not None and n_chorales > len(names):
        raise ValueError(f"n_chorales must be <= {len(names)}, the chorales in music21's corpus, got {n_chorales}")
    names = names[:n_chorales]
    log.info("parsing %d Bach chorales with music21 (a minute for all 350, once) into %s", len(names), path)
    notes = Notes(tuple(names), tuple(parse_chorale(chorale_path(name)) for name in names))
    save_notes(path, notes)
    return notes


def piano_roll(notes: np.ndarray, frames_per_quarter: int) -> np.ndarray:
    """(T, N_PITCHES) bool: pitch p is on in frame f when a note of pitch p sounds at time f / frames_per_quarter
    (onset <= t < end); T covers the chorale up to its last note's end."""
    first = np.ceil(notes[:, 1] * frames_per_quarter - 1e-9).astype(np.int64)
    stop = np.ceil(notes[:, 2] * frames_per_quarter - 1e-9).astype(np.int64)
    pitch = notes[:, 0].astype(np.int64) - LOWEST
    counts = np.zeros((stop.max() + 1, N_PITCHES), dtype=np.int64)
    np.add.at(counts, (first, pitch), 1)
    np.add.at(counts, (stop, pitch), -1)
    return np.cumsum(counts, axis=0)[:-1] > 0


@cache
def corpus_rolls(cache_dir: str, n_chorales: int | None, frames_per_quarter: int) -> tuple[np.ndarray, ...]:
    """Piano rolls of the first n_chorales chorales, in corpus order; memoised, so callers must not modify them."""
    return tuple(piano_roll(n, frames_per_quarter) for n in load_notes(cache_dir, n_chorales).notes)


class Chunk(NamedTuple):
    """Consecutive frames of one chorale (all of them, or a train chunk): its index in corpus order, first frame."""

    chorale: int
    start: int
    frames: np.ndarray


def cut_chunks(chorale: int, roll: np.ndarray, seq_len: int) -> list[Chunk]:
    """A chorale's chunks: one every seq_len frames while a transition is left to predict; consecutive chunks share
    a frame, so each transition is in exactly one chunk."""
    return [Chunk(chorale, start, roll[start : start + seq_len + 1]) for start in range(0, len(roll) - 1, seq_len)]


def split_chunks(
    split: str,
    n_chorales: int | None,
    frames_per_quarter: int,
    seq_len: int,
    val_fraction: float,
    test_fraction: float,
    data_seed: int,
    cache_dir: str,
) -> list[Chunk]:
    """A split's examples in the permutation's order: chunks of the train chorales, whole val and test chorales
    (loads the corpus on first use)."""
    rolls = corpus_rolls(cache_dir, n_chorales, frames_per_quarter)
    chorales = split_chorales(len(rolls), val_fraction, test_fraction, data_seed)[split].tolist()
    if split != "train":
        return [Chunk(c, 0, rolls[c]) for c in chorales]
    return [chunk for c in chorales for chunk in cut_chunks(c, rolls[c], seq_len)]


def target_counts(chunks: list[Chunk]) -> tuple[np.ndarray, int]:
    """How often each pitch sounds in the chunks' target frames (all but each chunk's first), and their number."""
    on = sum(frames[1:].sum(axis=0, dtype=np.int64) for _, _, frames in chunks)
    return on, sum(len(frames) - 1 for _, _, frames in chunks)


def bernoulli_nll(p: np.ndarray, on: np.ndarray, frames: int) -> float:
    """Mean frame NLL of independent Bernoulli(p) notes over `frames` frames in which pitch i sounds on[i] times."""
    return float(-(on * np.log(p) + (frames - on) * np.log1p(-p)).sum() / frames)


def frame_accuracy(tp: float, fp: float, fn: float) -> float:
    """Bay et al.'s accuracy TP / (TP + FP + FN); 0 when there is nothing to predict nor predicted."""
    total = tp + fp + fn
    return float(tp / total) if total else 0.0


def transitions(chunks: list[Chunk]) -> np.ndarray:
    """(2, 2, N_PITCHES) counts of each pitch's (previous, next) state over the chunks' consecutive frames."""
    counts = np.zeros((2, 2, N_PITCHES), dtype=np.int64)
    for _, _, frames in chunks:
        prev, nxt = frames[:-1], frames[1:]
        for a in (0, 1):
            for b in (0, 1):
                counts[a, b] += ((prev == a) & (nxt == b)).sum(axis=0)
    return counts


def previous_frame_references(train: list[Chunk], test: list[Chunk]) -> dict[str, float]:
    """Test scores of predictors that see the previous frame: repeat it (`acc_repeat`), and per pitch a two-state
    Markov chain fitted on train with add-one smoothing (`nll_markov`)."""
    fit, seen = transitions(train), transitions(test)
    p_on = (fit[:, 1] + 1) / (fit.sum(axis=1) + 2)  # (previous state, pitch): P(on next)
    frames = sum(len(f) - 1 for _, _, f in test)
    nll = -(seen[:, 1] * np.log(p_on) + seen[:, 0] * np.log1p(-p_on)).sum() / frames
    tp, fp, fn = seen[1, 1].sum(), seen[1, 0].sum(), seen[0, 1].sum()
    return {"nll_markov": float(nll), "acc_repeat": frame_accuracy(tp, fp, fn)}


class FrameNLL(Metric):
    """Mean over frames of the per-note binary cross-entropy summed over notes (nats per frame)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("nats", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("frames", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """logits, target (N frames, notes)."""
        self.nats += F.binary_cross_entropy_with_logits(logits.double(), target.double(), reduction="sum")
        self.frames += target.shape[0]

    def compute(self) -> Tensor:
        return self.nats / self.frames


class FrameAccuracy(Metric):
    """Bay et al. (2009) frame accuracy TP / (TP + FP + FN), counted over all frames; on when the logit > 0."""

    def __init__(self) -> None:
        super().__init__()
        for name in ("tp", "fp", "fn"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """logits, target (N frames, notes)."""
        pred, truth = logits > 0, target > 0.5
        self.tp += (pred & truth).sum()
        self.fp += (pred & ~truth).sum()
        self.fn += (~pred & truth).sum()

    def compute(self) -> Tensor:
        return torch.tensor(frame_accuracy(self.tp.item(), self.fp.item(), self.fn.item()), dtype=torch.float64)


class ChoralesTask(SequenceTask):
    """Predict the next piano-roll frame of Bach chorales; one sigmoid per pitch, one prediction per frame."""

    name = "chorales"
    readout = "all"
    causal = True
    primary_metric = "nll"
    input_size = N_PITCHES
    output_size = N_PITCHES

    def __init__(
        self,
        seq_len: int = 32,
        frames_per_quarter: int = 1,
        n_chorales: int | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        n_train: int | None = None,
        n_val: int | None = None,
        n_test: int | None = None,
        batch_size: int = 8,
        data_seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        """Train chunks of at most seq_len + 1 frames; n_chorales=None parses all 350; n_train caps train chunks,
        n_val and n_test val and test chorales.

        Nothing is parsed here (configs are checked by building tasks): the corpus is loaded on first use."""
        super().__init__(seq_len=seq_len, batch_size=batch_size, data_seed=data_seed, cache_dir=cache_dir)
        self.frames_per_quarter = check_positive_int("frames_per_quarter", frames_per_quarter)
        if n_chorales is not None:
            check_positive_int("n_chorales", n_chorales)
            if n_chorales > N_CHORALES:
                raise ValueError(f"n_chorales must be <= {N_CHORALES} (or null: all), got {n_chorales}")
        self.n_chorales = n_chorales
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        counts = chorale_counts(n_chorales or N_CHORALES, self.val_fraction, self.test_fraction)
        if counts["train"] < 1:
            raise ValueError(
                f"n_chorales must leave a train chorale after {counts['val']} val and {counts['test']} test ones, "
                f"got {n_chorales}"
            )
        caps = dict(zip(SPLITS, (n_train, n_val, n_test), strict=True))
        self.caps = {s: None if n is None else check_positive_int(f"n_{s}", n) for s, n in caps.items()}
        self.sizes = {}  # examples per split: train chunks depend on the chorales' lengths, known once loaded

    # -- the data -------------------------------------------------------------------------------------------
    def chunk_params(self) -> dict[str, Any]:
        """The arguments of `split_chunks` besides the split."""
        return {k: v for k, v in self.generation_params().items() if k != "data_version"}

    def split_size(self, split: str) -> int:
        """Examples in a split: all of them, or its cap when smaller (loads the corpus on first use)."""
        if split not in self.sizes:
            available = len(split_chunks(split, **self.chunk_params()))
            cap = self.caps[split]
            self.sizes[split] = available if cap is None else min(cap, available)
        return self.sizes[split]

    def chunks(self, split: str) -> list[Chunk]:
        """This task's examples of a split, cut to its size."""
        return split_chunks(split, **self.chunk_params())[: self.split_size(split)]

    @staticmethod
    def generate(
        n: int,
        rng: np.random.Generator,
        split: str,
        n_chorales: int | None,
        frames_per_quarter: int,
        seq_len: int,
        val_fraction: float,
        test_fraction: float,
        data_seed: int,
        cache_dir: str,
        data_version: str,
    ) -> dict[str, np.ndarray]:
        """Columns roll (n, W, N_PITCHES) bool, zero-padded after `length` (n,) int64 frames; chorale (n,) int64
        index in corpus order and start (n,) int64 first frame of the chunk in its chorale. W is seq_len + 1 for
        train and the longest chorale's frames for val and test, so every row of a split has one shape.

        `rng` is unused (a split is a fixed slice of the corpus); `data_version` only keys the cache to the music21
        version that ships the chorales."""
        chunks = split_chunks(
            split, n_chorales, frames_per_quarter, seq_len, val_fraction, test_fraction, data_seed, cache_dir
        )[:n]
        rolls = corpus_rolls(cache_dir, n_chorales, frames_per_quarter)
        width = seq_len + 1 if split == "train" else max(len(r) for r in rolls)
        roll = np.zeros((len(chunks), width, N_PITCHES), dtype=bool)
        for row, chunk in zip(roll, chunks, strict=True):
            row[: len(chunk.frames)] = chunk.frames
        return {
            "roll": roll,
            "length": np.array([len(chunk.frames) for chunk in chunks], dtype=np.int64),
            "chorale": np.array([chunk.chorale for chunk in chunks], dtype=np.int64),
            "start": np.array([chunk.start for chunk in chunks], dtype=np.int64),
        }

    def generation_params(self) -> dict[str, Any]:
        """Everything that picks the chorales and cuts them, the notes cache and the music21 version."""
        return {
            "n_chorales": self.n_chorales,
            "frames_per_quarter": self.frames_per_quarter,
            "seq_len": self.seq_len,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "data_seed": self.data_seed,
            "cache_dir": str(self.cache_dir),
            "data_version": version("music21"),
        }

    def split_params(self, split: str) -> dict[str, Any]:
        """Fixed data is cut into disjoint slices, so generating a split needs to know which one."""
        return {"split": split}

    def build_split(self, split: str) -> Any:
        """Size the split from the corpus first: the base class generates exactly `sizes[split]` rows."""
        self.split_size(split)
        return super().build_split(split)

    def collate(self, columns: dict[str, Any]) -> Batch:
        """x: frames 0..L-2, y: frames 1..L-1 (B, T, N_PITCHES) float, cut to the batch's longest example; lengths
        (B,) = L - 1 and mask (B, T) bool, the target frames that count."""
        lengths = columns["length"] - 1
        steps = int(lengths.max())
        roll = columns["roll"][:, : steps + 1].float()
        mask = torch.arange(steps) < lengths[:, None]
        return {
            "x": roll[:, :-1],
            "y": roll[:, 1:],
            "lengths": lengths,
            "mask": mask,
            "chorale": columns["chorale"],
            "start": columns["start"],
        }

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        """Frame NLL: binary cross-entropy summed over notes, averaged over the unpadded frames."""
        nats = F.binary_cross_entropy_with_logits(pred, batch["y"], reduction="none").sum(-1)
        return nats[batch["mask"]].mean()

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"nll": FrameNLL(), "acc": FrameAccuracy()})

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """Logits and targets of the unpadded frames, (N frames, N_PITCHES)."""
        return pred[batch["mask"]], batch["y"][batch["mask"]]

    def baseline(self) -> dict[str, float]:
        """Input-blind Bernoulli per pitch at its add-one smoothed train frequency, scored on the test split
        (`loss`, `nll`, `acc`); `acc_repeat` repeats the previous frame; `nll_markov` is a two-state Markov chain
        per pitch fitted on train. See the module docstring."""
        train, test = self.chunks("train"), self.chunks(self.baseline_split)  # test (val when tuning)
        on, frames = target_counts(train)
        p = (on + 1) / (frames + 2)
        test_on, test_frames = target_counts(test)
        nll = bernoulli_nll(p, test_on, test_frames)
        predicted = p > 0.5
        acc = frame_accuracy(
            test_on[predicted].sum(), (test_frames - test_on)[predicted].sum(), test_on[~predicted].sum()
        )
        return {"loss": nll, "nll": nll, "acc": acc, **previous_frame_references(train, test)}

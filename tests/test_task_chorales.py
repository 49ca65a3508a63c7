"""The chorales task on the first 8 of music21's Bach chorales (parsed once per session, a few seconds): determinism,
disjoint chorale splits and their sizes, piano rolls by hand and against music21, the frame metrics, the baselines
(analytic == empirical), the notes cache (nothing re-parsed), parameter errors and a smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnbench.tasks import chorales
from rnnbench.tasks.chorales import (
    LOWEST,
    N_PITCHES,
    ChoralesTask,
    FrameAccuracy,
    FrameNLL,
    cache_file,
    chorale_path,
    corpus_rolls,
    cut_chunks,
    load_notes,
    piano_roll,
    read_notes,
    save_notes,
)
from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.train import train

SMALL = {"n_chorales": 8, "seq_len": 16, "batch_size": 4}
BWV269_FIRST_CHORDS = [[43, 59, 62, 67], [55, 59, 62, 67], [52, 60, 64, 67]]  # G2 B3 D4 G4, then G3 ..., E3 C4 E4 G4


def whole_split(task: ChoralesTask, split: str) -> dict[str, torch.Tensor]:
    """Every example of a split as one collated batch."""
    data = task.splits[split]
    return data[list(range(len(data)))]


def pitches(frame: torch.Tensor | np.ndarray) -> list[int]:
    """The MIDI pitches on in a piano-roll frame."""
    return [LOWEST + int(i) for i in np.flatnonzero(np.asarray(frame))]


def logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def test_same_seed_same_data_other_seed_other_data_and_split_sizes() -> None:
    batches = []
    for seed in (3, 3, 4):
        task = ChoralesTask(data_seed=seed, **SMALL)
        task.setup()
        batches.append(next(iter(task.val_dataloader())))
    a, b, c = batches
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"]) and torch.equal(a["chorale"], b["chorale"])
    assert not torch.equal(a["chorale"], c["chorale"])
    rolls = corpus_rolls(str(task.cache_dir), 8, 1)
    index = {split: set(data.columns["chorale"].tolist()) for split, data in task.splits.items()}
    assert [len(index[s]) for s in ("train", "val", "test")] == [4, 2, 2]  # round(0.2 * 8) val and test chorales
    assert set.union(*index.values()) == set(range(8)) and sum(map(len, index.values())) == 8  # disjoint
    chunks = sum(math.ceil((len(rolls[c]) - 1) / 16) for c in index["train"])
    assert task.sizes == {"train": chunks, "val": 2, "test": 2}
    assert {k: len(v) for k, v in task.splits.items()} == task.sizes
    assert a["x"].shape[-1] == task.input_size == task.output_size == N_PITCHES == 46


def test_batches_shift_by_one_frame_and_mask_the_padding() -> None:
    task = ChoralesTask(**SMALL)
    task.setup()
    rolls = corpus_rolls(str(task.cache_dir), 8, 1)
    train = whole_split(task, "train")
    assert train["x"].shape[1] == 16 and int(train["lengths"].max()) == 16
    for split in ("train", "test"):
        batch = whole_split(task, split)
        columns = (batch["chorale"].tolist(), batch["start"].tolist(), batch["lengths"].tolist())
        for i, (chorale, start, length) in enumerate(zip(*columns, strict=True)):
            frames = torch.as_tensor(rolls[chorale][start : start + length + 1]).float()
            assert torch.equal(batch["x"][i, :length], frames[:-1]) and torch.equal(batch["y"][i, :length], frames[1:])
            assert batch["mask"][i].tolist() == [t < length for t in range(batch["mask"].shape[1])]
            assert not batch["y"][i, length:].any()  # padding
        if split == "test":  # whole chorales, from their first frame
            assert batch["start"].tolist() == [0, 0]
            assert (batch["lengths"] + 1).tolist() == [len(rolls[c]) for c in batch["chorale"].tolist()]


def test_piano_roll_samples_frame_starts_and_chunks_share_a_frame() -> None:
    notes = np.array([[60, 0, 1.5], [64, 0.5, 1], [67, 1, 2], [48, 1.25, 1.5]])  # the 48 falls between eighths
    roll = piano_roll(notes, frames_per_quarter=2)
    assert [pitches(frame) for frame in roll] == [[60], [60, 64], [60, 67], [67]]
    assert [pitches(frame) for frame in piano_roll(notes, frames_per_quarter=4)][5] == [48, 60, 67]
    five, four = np.arange(5)[:, None], np.arange(4)[:, None]
    assert [(c.start, c.frames[:, 0].tolist()) for c in cut_chunks(7, five, 2)] == [(0, [0, 1, 2]), (2, [2, 3, 4])]
    assert [(c.start, c.frames[:, 0].tolist()) for c in cut_chunks(7, four, 2)] == [(0, [0, 1, 2]), (2, [2, 3])]


def test_riemenschneider_1_opens_on_the_chords_music21_reads() -> None:
    from music21 import converter

    notes = load_notes(str(ChoralesTask(**SMALL).cache_dir), 8)
    assert notes.names[:2] == ("bach/bwv269", "bach/bwv347")  # Aus meines Herzens Grunde; Ach Gott, vom Himmelreiche
    score = converter.parseFile(chorale_path("bach/bwv269"), forceSource=True, storePickle=False)
    assert [p.partName for p in score.parts] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert sorted(part.flatten().notes[0].pitch.midi for part in score.parts) == BWV269_FIRST_CHORDS[0]
    task = ChoralesTask(**SMALL)
    task.setup()
    found = [
        (split, whole_split(task, split)["x"][i])
        for split, data in task.splits.items()
        for i in ((data.columns["chorale"] == 0) & (data.columns["start"] == 0)).nonzero().flatten().tolist()
    ]
    assert len(found) == 1  # chorale 0 starts in exactly one split
    assert [pitches(frame) for frame in found[0][1][:3]] == BWV269_FIRST_CHORDS


def test_frame_metrics_by_hand_and_the_loss_is_the_frame_nll() -> None:
    logits = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert FrameAccuracy()(logits, target).item() == pytest.approx(2 / 3)  # TP 2, FP 1, FN 0
    right, wrong = -math.log(1 / (1 + math.exp(-1))), -math.log(1 / (1 + math.exp(1)))  # BCE of a logit of +-1
    assert FrameNLL()(logits, target).item() == pytest.approx((3 * right + wrong) / 2)  # summed over notes, per frame
    task = ChoralesTask(**SMALL)
    task.setup()
    batch = whole_split(task, "test")
    pred = torch.randn(*batch["y"].shape, generator=torch.Generator().manual_seed(0))
    assert task.loss(pred, batch).item() == pytest.approx(FrameNLL()(*task.metric_inputs(pred, batch)).item())


def test_baselines_are_analytic_and_match_their_predictors_on_the_test_frames() -> None:
    task = ChoralesTask(**SMALL)
    base = task.baseline()  # before setup, as train() calls it
    task.setup()
    train, test = whole_split(task, "train"), whole_split(task, "test")
    y_train, x_test, y_test = train["y"][train["mask"]], test["x"][test["mask"]], test["y"][test["mask"]]
    p = (y_train.sum(0) + 1) / (len(y_train) + 2)  # add-one smoothed pitch frequencies of the train targets
    blind = logit(p.double()).expand(len(y_test), -1)
    assert base["nll"] == base["loss"] == pytest.approx(FrameNLL()(blind, y_test).item())
    assert base["acc"] == FrameAccuracy()(blind, y_test).item() == 0.0  # every pitch below 1/2: silence predicted
    assert base["acc_repeat"] == pytest.approx(FrameAccuracy()(x_test * 2 - 1, y_test).item())
    x_train = train["x"][train["mask"]]
    p_on = torch.stack(
        [((y_train * (x_train == s)).sum(0) + 1) / ((x_train == s).sum(0) + 2) for s in (0, 1)]
    ).double()  # P(on | previous state s), per pitch
    markov = logit(torch.where(x_test.bool(), p_on[1], p_on[0]))
    assert base["nll_markov"] == pytest.approx(FrameNLL()(markov, y_test).item())
    assert 0 < base["nll_markov"] < base["nll"] < N_PITCHES * math.log(2)


def test_the_notes_are_cached_and_never_parsed_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = ChoralesTask(**SMALL)
    task.setup()
    path = cache_file(str(task.cache_dir), 8)
    assert path.is_file() and path.name.startswith("music21-")
    load_notes.cache_clear()
    corpus_rolls.cache_clear()

    def refuse(*args: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(chorales, "parse_chorale", refuse)
    again = ChoralesTask(**SMALL)
    again.setup()
    assert torch.equal(whole_split(again, "test")["y"], whole_split(task, "test")["y"])
    assert again.baseline() == task.baseline()
    # A subset is cut from the full corpus's cache when there is one.
    save_notes(cache_file(str(tmp_path), None), read_notes(path))
    subset = load_notes(str(tmp_path), 5)
    assert subset.names == read_notes(path).names[:5] and len(subset.notes) == 5
    assert ChoralesTask(cache_dir=str(tmp_path)).model_kwargs() == {
        "input_size": N_PITCHES,
        "lag": 32,
    }  # parses nothing


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"frames_per_quarter": 0}, "frames_per_quarter must be a positive int"),
        ({"n_chorales": 0}, "n_chorales must be a positive int"),
        ({"n_chorales": 351}, "n_chorales must be <= 350"),
        ({"n_chorales": 2}, "n_chorales must leave a train chorale after 1 val and 1 test ones"),
        ({"val_fraction": 0.5}, "val_fraction must be a number in \\(0, 0.5\\)"),
        ({"test_fraction": 0}, "test_fraction must be a number in \\(0, 0.5\\)"),
        ({"n_train": 0}, "n_train must be a positive int"),
        ({"seq_len": 0}, "seq_len must be a positive int"),
    ],
)
def test_bad_params_name_the_parameter(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        ChoralesTask(**{**SMALL, **bad})


def test_bidirectional_bodies_are_refused() -> None:
    with pytest.raises(ConfigError, match="bidirectional"):
        preflight(["task=chorales", "model.bidirectional=true"])


def test_smoke_run_finishes_with_the_task_metrics(tmp_path: Path) -> None:
    overrides = ["task=chorales", "task.n_chorales=8", "model=gru", "model.hidden_size=16"]
    cfg = compose_config(["trainer=smoke", "logger=none", *overrides])
    record = train(cfg, tmp_path / "run")
    assert record["status"] == "finished"
    assert set(record["test"]) == {"test/loss", "test/nll", "test/acc"}
    assert set(record["baseline"]) == {"loss", "nll", "acc", "nll_markov", "acc_repeat"}

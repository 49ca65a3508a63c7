"""The ECG anomaly task: determinism, split sizes, hand-checked labels and waveforms of a known schedule, the built
data replayed from its seed, input-blind baselines against the metrics themselves, bad params and a smoke run."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from rnnbench.tasks.base import split_seed
from rnnbench.tasks.ecg_anomaly import (
    FS,
    KINDS,
    Beat,
    EcgAnomalyTask,
    Morphology,
    constant_baseline,
    labels,
    recording,
    render,
    starts,
)
from rnnbench.training.config import compose_config, preflight
from rnnbench.training.train import train

SMALL = {"seq_len": 4 * FS, "n_train": 64, "n_val": 32, "n_test": 48, "batch_size": 16}
MORPH = Morphology(pr=0.16, p=0.12, q=0.1, s=0.2, t=0.25, width=1.0)
# 4 s by hand: normal beats at 0.8 s intervals, a PVC 0.5 s after the third, the next beat two intervals after it.
PVC_SCHEDULE = [
    Beat(0.2, "normal"),
    Beat(1.0, "normal"),
    Beat(1.8, "normal"),
    Beat(2.3, "pvc", -1.0),
    Beat(3.4, "normal"),
    Beat(4.2, "normal"),
    Beat(5.0, "normal"),
]


def sample(seconds: float) -> int:
    """The sample index of a time in seconds."""
    return round(seconds * FS)


def test_same_seed_same_data_other_seed_other_data_and_split_sizes() -> None:
    batches = []
    for seed in (3, 3, 4):
        task = EcgAnomalyTask(data_seed=seed, **SMALL)
        task.setup()
        batches.append(next(iter(task.val_dataloader())))
    a, b, c = batches
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert not torch.equal(a["x"], c["x"])
    assert a["x"].shape == (16, 4 * FS, 1) and a["x"].dtype == torch.float32 and a["y"].shape == (16, 4 * FS)
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 64, "val": 32, "test": 48}
    for split in task.splits.values():  # every split holds both classes, each window standardised
        y, x = split.columns["y"], split.columns["x"][..., 0].double()
        assert 0 < y.float().mean() < 0.5 and set(y.unique().tolist()) == {0, 1}
        assert torch.allclose(x.mean(1), torch.zeros(1, dtype=x.dtype), atol=1e-5)
        assert torch.allclose(x.std(1, unbiased=False), torch.ones(1, dtype=x.dtype), atol=1e-4)


def test_a_hand_made_pvc_is_labelled_from_its_qrs_to_the_next_beats_start() -> None:
    begin = starts(PVC_SCHEDULE)
    np.testing.assert_allclose(begin[:5], [0.2 - 0.22, 1.0 - 0.22, 1.8 - 0.22, 2.3 - 0.1, 3.4 - 0.22])
    y = labels(PVC_SCHEDULE, 4 * FS)
    assert np.flatnonzero(y).tolist() == list(range(sample(2.2), sample(3.18)))  # the PVC and its pause
    assert y[sample(1.0)] == 0 and y[sample(1.8)] == 0 and y[sample(3.4)] == 0  # normal neighbours, R peaks
    ecg = render(PVC_SCHEDULE, MORPH, 4 * FS)
    # the PVC: wide, of its polarity (-1), and no P wave before it; its normal neighbours have R = 1 and a P wave
    assert ecg[sample(2.3)] < -1.0 and ecg[sample(1.8)] == pytest.approx(1.0, abs=0.05)
    assert ecg[sample(2.3) - 1] < -0.8 and ecg[sample(1.8) - 1] < 0.5  # 20 ms before the peak: a wide QRS
    assert ecg[sample(1.8 - 0.16)] == pytest.approx(0.12, abs=0.02)
    assert abs(ecg[sample(2.3 - 0.16)]) < 0.05  # only the tail of the T wave before it


def test_a_blocked_beat_has_its_p_wave_but_no_qrs_and_a_run_labels_every_beat() -> None:
    beats = [Beat(0.3, "normal"), Beat(1.1, "normal"), Beat(1.9, "blocked"), Beat(2.7, "normal"), Beat(3.5, "normal")]
    beats += [Beat(4.3, "normal")]
    y = labels(beats, 4 * FS)
    assert np.flatnonzero(y).tolist() == list(range(sample(1.9 - 0.22), sample(2.7 - 0.22)))
    ecg = render(beats, MORPH, 4 * FS)
    assert ecg[sample(1.9 - 0.16)] == pytest.approx(0.12, abs=0.02)  # the P wave comes
    assert ecg[sample(1.9)] < 0.05 and ecg[sample(2.7)] == pytest.approx(1.0, abs=0.05)  # the QRS does not
    tachy = [Beat(0.3, "normal"), Beat(1.1, "normal"), Beat(1.5, "tachy"), Beat(1.9, "tachy"), Beat(2.3, "tachy")]
    tachy += [Beat(3.1, "normal"), Beat(3.9, "normal")]
    y = labels(tachy, 4 * FS)  # a 0.4 s interval: the beat starts half of it (0.2 s) before its R peak
    assert np.flatnonzero(y).tolist() == list(range(sample(1.5 - 0.2), sample(3.1 - 0.22)))


def test_built_windows_replay_from_the_split_seed_with_anomalies_labelled() -> None:
    task = EcgAnomalyTask(data_seed=7, **SMALL)
    task.setup()
    built = task.splits["test"].columns
    rng = np.random.default_rng(split_seed(7, "test"))
    seen: Counter[str] = Counter()
    for i in range(SMALL["n_test"]):
        x, y, beats = recording(rng, 4 * FS, 0.1, 0.05)
        np.testing.assert_allclose(built["x"][i, :, 0].numpy(), x, atol=1e-5)
        assert built["y"][i].tolist() == y.tolist()
        for beat in beats:  # each R peak (a blocked beat: when it was due) lies in its own beat's labelled span
            if 0 <= sample(beat.r) < 4 * FS:
                assert y[sample(beat.r)] == (beat.kind != "normal")
                seen[beat.kind] += 1
    assert set(seen) == {"normal", *KINDS}


def test_baseline_is_what_the_metrics_give_a_constant_predictor() -> None:
    task = EcgAnomalyTask(data_seed=1, **SMALL)
    task.setup()
    y = task.splits["test"].columns["y"]
    p = y.double().mean().item()
    base = task.baseline()
    assert base == pytest.approx(constant_baseline(p)) and 0.05 < p < 0.4
    flat = y.flatten()
    assert base["f1"] == pytest.approx(BinaryF1Score()(torch.ones_like(flat).float(), flat).item(), abs=1e-6)
    assert base["auroc"] == BinaryAUROC()(torch.full(flat.shape, 0.3), flat).item()
    assert base["acc"] == pytest.approx(BinaryAccuracy()(torch.zeros_like(flat).float(), flat).item(), abs=1e-6)
    logit = torch.full((*y.shape, 1), math.log(p / (1 - p)), dtype=torch.float64)
    assert base["loss"] == pytest.approx(task.loss(logit, {"y": y}).item(), abs=1e-6)  # float32 targets
    # the task's own metric path agrees: a huge constant logit calls every sample anomalous
    metrics = task.make_metrics()(*task.metric_inputs(torch.full((*y.shape, 1), 20.0), {"y": y}))
    assert float(metrics["f1"]) == pytest.approx(base["f1"], abs=1e-6) and float(metrics["auroc"]) == 0.5


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"seq_len": 2 * FS - 1}, f"seq_len must be >= {2 * FS}"),
        ({"anomaly_rate": 0}, "anomaly_rate must be a number in \\(0, 1\\]"),
        ({"anomaly_rate": 1.5}, "anomaly_rate must be a number in \\(0, 1\\]"),
        ({"noise": -0.1}, "noise must be a number in \\[0, 1\\]"),
        ({"noise": True}, "noise must be a number in \\[0, 1\\]"),
        ({"n_train": 0}, "n_train must be a positive int"),
    ],
)
def test_bad_params_name_the_parameter(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        EcgAnomalyTask(**bad)


def test_bidirectional_bodies_are_allowed() -> None:
    assert preflight(["task=ecg_anomaly", "model.bidirectional=true"]) == 1


def test_smoke_run_finishes_with_the_task_metrics(tmp_path: Path) -> None:
    overrides = ["task=ecg_anomaly", f"task.seq_len={2 * FS}", "model=lstm", "model.hidden_size=16"]
    sizes = ["task.n_train=64", "task.n_val=32", "task.n_test=32", "task.batch_size=32", "model.bidirectional=true"]
    record = train(compose_config(["trainer=smoke", "logger=none", *sizes, *overrides]), tmp_path / "run")
    assert record["status"] == "finished"
    assert set(record["test"]) == {"test/loss", "test/f1", "test/auroc", "test/acc"}
    assert record["baseline"]["auroc"] == 0.5 and 0 < record["baseline"]["f1"] < 1

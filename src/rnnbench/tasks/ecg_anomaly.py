"""Per-step anomaly labelling of ECG: mark every sample that belongs to an abnormal beat (1) or a normal one (0).

The data is synthetic, generated here; no package ships a real labelled ECG fit for it. Checked on PyPI wheels
(2026-11): sktime's `mitdb.csv` (an MIT-BIH excerpt) holds 7,500 samples with ONE labelled anomaly, too few to
give train, val and test a positive each; aeon's only ECG with labels is GutenTAG's synthetic `ecg-diff-count-3`
(3 x 10,000 samples, 6 anomalies in all), and installing aeon pulls numba and downgrades numpy; wfdb, neurokit2,
heartpy, pyhrv, biosppy, py-ecg-detectors and vitalDSP ship no labelled beats, and scipy's MIT-BIH record 208 is
downloaded at run time. So each window is its own short recording, drawn from `data_seed`, in the manner of
GutenTAG (an ECG base plus labelled anomalies) with physiological anomalies instead of generic ones. No licence
applies: the generator is this file.

A recording at `FS` = 50 Hz (clinical ECG is sampled at 250-500 Hz; 50 Hz keeps a beat's interval at 30-60 steps
and still resolves the QRS): a heart rate of 50-100 bpm with respiratory sinus arrhythmia; every beat a sum of
Gaussian P, Q, R, S, T waves (McSharry et al. 2003's ECGSYN morphology, rendered in time, QT following Bazett),
with its shape drawn per recording; baseline wander and white noise (`noise`, relative to an R peak of 1); each
window standardised to zero mean and unit variance (a recording's gain is unknown). Before each beat, an anomaly
starts with probability `anomaly_rate`, at least 2 normal beats after the previous one; its kind is uniform over:

- `pvc`: a premature ventricular contraction 55-75% of an interval after the last beat: wide, without P wave, with
  a discordant T wave and a compensatory pause (the next beat comes two intervals after the last normal one);
- `blocked`: a non-conducted P wave (second-degree AV block): the P wave comes, no QRS or T, the beat is missed;
- `st`: a run of 2-4 beats with the ST segment raised or lowered (lowered: the T wave inverted too);
- `tachy`: a run of 3-6 beats at 1.5-2x the heart rate (a paroxysmal burst).

A beat owns the samples from its start (`PRE` = 0.22 s before its R peak, which covers its P wave; half the
preceding interval when that is shorter; 0.1 s for a PVC, which has no P wave) to the next beat's start; every
sample of an abnormal beat is labelled 1. Recordings begin 2.5-3.5 s before the window, so a window can open in an
anomaly and no position is favoured. Labels start where the beat starts, before what gives it away (the early
or wide QRS, the missing one, the raised ST segment), so a forward-only body has to guess at an anomaly's first
samples and a bidirectional one need not: this tests the seed's claim that bidirectional context helps per-step
labelling, on ECG rather than on tagging's designed rule. `causal` is False.

Splits are independent draws (one seed per split from `data_seed`), so no recording is in two of them. Metrics
(torchmetrics, at probability 0.5): F1 of the anomalous class (primary), AUROC and accuracy per sample; the loss
is per-sample binary cross-entropy with logits. Baselines are input-blind, on the test split with its positive
rate p: one constant score for every sample gives AUROC 1/2; its best F1 is that of calling every sample
anomalous, 2p / (1 + p); its best accuracy 1 - p (p < 1/2) and its best loss the entropy of p.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from rnnbench.tasks.base import Batch, SequenceTask, binary_entropy

FS = 50  # samples per second
PRE = 0.22  # seconds a beat starts before its R peak: its P wave
PVC_PRE = 0.1  # a PVC has no P wave: it starts with its wide QRS
KINDS = ("pvc", "blocked", "st", "tachy")
MIN_SEQ_LEN = 2 * FS  # two seconds: at least one whole beat at the slowest rate (1.2 s) besides a partial one
GENERATOR_VERSION = 1  # bump when the generator changes: it keys the on-disk cache


class Beat(NamedTuple):
    """One beat of a schedule: its kind and when its R peak comes (a blocked beat: when it was due)."""

    r: float  # seconds from the window's first sample
    kind: str  # "normal" or one of KINDS
    level: float = 0.0  # st: the ST shift (its sign: raised or lowered); pvc: the QRS polarity (+1 or -1)


class Morphology(NamedTuple):
    """One recording's normal beat: PR interval (s), wave amplitudes relative to R = 1, QRS width factor."""

    pr: float
    p: float
    q: float
    s: float
    t: float
    width: float


def check_params(seq_len: int, anomaly_rate: float, noise: float) -> None:
    """Raise ValueError, naming the parameter, for settings the task cannot generate."""
    if seq_len < MIN_SEQ_LEN:
        raise ValueError(
            f"seq_len must be >= {MIN_SEQ_LEN} ({MIN_SEQ_LEN // FS} s at {FS} Hz) so a window holds a whole "
            f"beat, got {seq_len}"
        )
    if isinstance(anomaly_rate, bool) or not isinstance(anomaly_rate, int | float) or not 0 < anomaly_rate <= 1:
        raise ValueError(f"anomaly_rate must be a number in (0, 1], got {anomaly_rate!r}")
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise <= 1:
        raise ValueError(f"noise must be a number in [0, 1], got {noise!r}")


def draw_morphology(rng: np.random.Generator) -> Morphology:
    """A recording's normal beat shape, around ECGSYN's proportions."""
    return Morphology(
        pr=rng.uniform(0.14, 0.18),
        p=rng.uniform(0.08, 0.18),
        q=rng.uniform(0.05, 0.15),
        s=rng.uniform(0.1, 0.3),
        t=rng.uniform(0.15, 0.35),
        width=rng.uniform(0.9, 1.2),
    )


def schedule(rng: np.random.Generator, duration: float, anomaly_rate: float) -> list[Beat]:
    """Beats from 2.5-3.5 s before the window to 1 s after it, with anomalies as the module docstring says."""
    rr0 = 60 / rng.uniform(50, 100)
    breath, phase = rng.uniform(3, 5), rng.uniform(0, 2 * math.pi)  # beats per breath, sinus arrhythmia's phase

    def interval(k: int) -> float:
        return rr0 * (1 + 0.04 * math.sin(2 * math.pi * k / breath + phase) + 0.015 * rng.standard_normal())

    beats: list[Beat] = []
    last = -rng.uniform(2.5, 3.5) - rr0  # the R peak before the first beat (not itself a beat)
    calm = 2  # normal beats still due before an anomaly may start
    k = 0
    while last < duration + 1:
        rr = interval(k)
        k += 1
        if calm > 0 or rng.random() >= anomaly_rate:
            last += rr
            beats.append(Beat(last, "normal"))
            calm -= 1
            continue
        kind = KINDS[rng.integers(len(KINDS))]
        if kind == "pvc":
            beats.append(Beat(last + rng.uniform(0.55, 0.75) * rr, "pvc", float(rng.choice([-1.0, 1.0]))))
            last += rr  # compensatory pause: the next normal beat comes two intervals after the last one
        elif kind == "blocked":
            last += rr
            beats.append(Beat(last, "blocked"))
        elif kind == "st":
            shift = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.3))
            for _ in range(rng.integers(2, 5)):
                last += interval(k)
                k += 1
                beats.append(Beat(last, "st", shift))
        else:
            fast = rng.uniform(0.5, 0.65)
            for _ in range(rng.integers(3, 7)):
                last += fast * interval(k)
                k += 1
                beats.append(Beat(last, "tachy"))
        calm = 2
    return beats


def starts(beats: list[Beat]) -> np.ndarray:
    """When each beat starts (s): PRE before its R peak, or half the preceding interval if shorter; a PVC 0.1 s."""
    r = np.array([b.r for b in beats])
    before = np.diff(r, prepend=r[0] - 1.0)
    pre = np.where([b.kind == "pvc" for b in beats], PVC_PRE, np.minimum(PRE, before / 2))
    return r - pre


def labels(beats: list[Beat], seq_len: int) -> np.ndarray:
    """(seq_len,) int64: 1 on the samples owned by an abnormal beat (from its start to the next beat's start)."""
    edges = np.ceil(np.round(starts(beats) * FS, 6)).astype(np.int64)  # first sample of each beat (2.2 s: 110)
    y = np.zeros(seq_len, dtype=np.int64)
    for i, beat in enumerate(beats[:-1]):
        if beat.kind != "normal":
            y[max(edges[i], 0) : max(min(edges[i + 1], seq_len), 0)] = 1
    return y


def waves(beats: list[Beat], morph: Morphology) -> np.ndarray:
    """(k, 3) Gaussian waves (centre s, amplitude, width s) of a schedule: the ECG is their sum."""
    out = []
    for i, beat in enumerate(beats):
        before = beat.r - beats[i - 1].r if i > 0 else 0.8
        w, r = morph.width, beat.r
        t_peak = r + 0.27 * math.sqrt(max(before, 0.3))  # Bazett: QT grows with the square root of the interval
        if beat.kind == "pvc":
            sign = beat.level
            out += [(r, sign * 1.3, 0.035), (r + 0.06, -sign * 0.3, 0.03), (r + 0.3, -sign * 0.35, 0.07)]
            continue
        out.append((r - min(morph.pr, 0.45 * before), morph.p, 0.022))
        if beat.kind == "blocked":
            continue
        t_amp = -morph.t if beat.kind == "st" and beat.level < 0 else morph.t
        out += [
            (r - 0.03 * w, -morph.q, 0.012 * w),
            (r, 1.0, 0.015 * w),
            (r + 0.032 * w, -morph.s, 0.012 * w),
            (t_peak, t_amp, 0.05),
        ]
        if beat.kind == "st":
            out.append((r + 0.12, beat.level, 0.05))
    return np.array(out)


def render(beats: list[Beat], morph: Morphology, seq_len: int) -> np.ndarray:
    """(seq_len,) the noiseless ECG of a schedule, sampled at FS."""
    t = np.arange(seq_len) / FS
    centre, amp, width = waves(beats, morph).T
    return (amp[:, None] * np.exp(-0.5 * ((t[None, :] - centre[:, None]) / width[:, None]) ** 2)).sum(0)


def recording(
    rng: np.random.Generator, seq_len: int, anomaly_rate: float, noise: float
) -> tuple[np.ndarray, np.ndarray, list[Beat]]:
    """One window: standardised signal (seq_len,), labels (seq_len,) and the beat schedule behind them."""
    beats = schedule(rng, seq_len / FS, anomaly_rate)
    ecg = render(beats, draw_morphology(rng), seq_len)
    t = np.arange(seq_len) / FS
    wander = rng.uniform(0, 0.15) * np.sin(2 * math.pi * rng.uniform(0.15, 0.4) * t + rng.uniform(0, 2 * math.pi))
    x = ecg + wander + noise * rng.standard_normal(seq_len)
    return (x - x.mean()) / x.std(), labels(beats, seq_len), beats


def constant_baseline(p: float) -> dict[str, float]:
    """Best input-blind scores at positive rate p: AUROC 1/2, F1 of all-anomalous, accuracy of the majority,
    cross-entropy of predicting p."""
    return {"loss": binary_entropy(p), "f1": 2 * p / (1 + p), "auroc": 0.5, "acc": max(p, 1 - p)}


class EcgAnomalyTask(SequenceTask):
    """Label each ECG sample as part of a normal (0) or abnormal (1) beat; one input feature, 50 Hz."""

    name = "ecg_anomaly"
    readout = "all"
    causal = False  # the labels are not in the input: a bidirectional body may look ahead, that is the question
    primary_metric = "f1"
    higher_is_better = True
    perfect = 1.0
    input_size = 1
    output_size = 1

    def __init__(self, seq_len: int = 200, anomaly_rate: float = 0.1, noise: float = 0.05, **kwargs: Any) -> None:
        """seq_len samples at 50 Hz per window; anomaly_rate: chance an anomaly starts at a beat; noise: white
        noise std relative to an R peak of 1."""
        super().__init__(seq_len=seq_len, **kwargs)
        check_params(self.seq_len, anomaly_rate, noise)
        self.anomaly_rate = anomaly_rate
        self.noise = noise

    @staticmethod
    def generate(
        n: int, rng: np.random.Generator, seq_len: int, anomaly_rate: float, noise: float, generator_version: int
    ) -> dict[str, np.ndarray]:
        """Columns x (n, seq_len, 1) float32 standardised ECG and y (n, seq_len) int64 labels, one recording each.

        `generator_version` only keys the cache to this generator's code."""
        check_params(seq_len, anomaly_rate, noise)
        x = np.empty((n, seq_len), dtype=np.float32)
        y = np.empty((n, seq_len), dtype=np.int64)
        for i in range(n):
            x[i], y[i], _ = recording(rng, seq_len, anomaly_rate, noise)
        return {"x": x[..., None], "y": y}

    def generation_params(self) -> dict[str, Any]:
        return {
            "seq_len": self.seq_len,
            "anomaly_rate": self.anomaly_rate,
            "noise": self.noise,
            "generator_version": GENERATOR_VERSION,
        }

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return F.binary_cross_entropy_with_logits(pred.squeeze(-1), batch["y"].float())

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"f1": BinaryF1Score(), "auroc": BinaryAUROC(), "acc": BinaryAccuracy()})

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """Probabilities, not logits: torchmetrics would read logits that all lie in [0, 1] as probabilities."""
        return torch.sigmoid(pred.squeeze(-1)).flatten(), batch["y"].flatten()

    def positive_rate(self, split: str) -> float:
        """The fraction of a split's samples labelled anomalous."""
        y = self.build_split(split).with_format("numpy")["y"]
        return float(np.asarray(y).mean())

    def baseline(self) -> dict[str, float]:
        """Input-blind, at the scored split's positive rate (test; val when tuning); see the module docstring."""
        return constant_baseline(self.positive_rate(self.baseline_split))

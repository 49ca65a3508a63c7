"""The seed document's claims, one per sweep, in the form a report can test them.

A sweep (`sweeps/<name>.yaml`) sets `experiment: <name>`; this module says, for that experiment, which config key
tells the compared variants apart, which variant is the reference, which key is the swept factor on the x axis, and
what the seed claims about each variant relative to the reference. Runs of an experiment without a claim here still
get tables and plots (variants told apart by `model.cell`), just no verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RELATIONS = ("better", "worse", "similar")


@dataclass(frozen=True)
class Expectation:
    """`variant` is `relation` than the reference, on `tasks` (all if empty) where the factor is >= `min_x`."""

    variant: str
    relation: str
    tasks: tuple[str, ...] = ()
    min_x: float | None = None

    def applies(self, task: str, x: float | None) -> bool:
        """Whether a (task, factor value) group is one this expectation speaks about."""
        in_task = not self.tasks or task in self.tasks
        return in_task and (self.min_x is None or (x is not None and x >= self.min_x))

    def describe(self, reference: str, x_name: str | None) -> str:
        """The expectation in words, e.g. 'rnn worse than lstm on adding, copy_memory at task.seq_len >= 100'."""
        where = f" on {', '.join(self.tasks)}" if self.tasks else ""
        at = f" at {x_name} >= {self.min_x:g}" if self.min_x is not None else ""
        relation = "similar to" if self.relation == "similar" else f"{self.relation} than"
        return f"{self.variant} {relation} {reference}{where}{at}"


@dataclass(frozen=True)
class Claim:
    """How one sweep's runs are compared, and what the seed says the comparison shows."""

    text: str
    compare: str = "model.cell"
    reference: str | None = None
    x: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    expectations: tuple[Expectation, ...] = ()

    def label(self, value: object) -> str:
        """A variant's display name from its config value."""
        return self.labels.get(str(value), str(value))


LONG_LAG = ("adding", "copy_memory", "temporal_order")

CLAIMS: dict[str, Claim] = {
    "cell": Claim(
        text="GRU matches LSTM accuracy with fewer parameters and less time; the vanilla RNN fails at long lags.",
        reference="lstm",
        expectations=(Expectation("gru", "similar"), Expectation("rnn", "worse", LONG_LAG)),
    ),
    "seq_len": Claim(
        text="Vanilla RNNs fail at long lags; the LSTM's additive cell path learns lags of 100-200+ steps.",
        reference="lstm",
        x="task.seq_len",
        expectations=(Expectation("rnn", "worse", min_x=100),),
    ),
    "depth": Claim(
        text="2-3 layers are standard; deeper stacks need residual connections or layer normalisation.",
        compare="model.residual",
        reference="plain",
        x="model.num_layers",
        labels={"False": "plain", "True": "residual+layer_norm"},
        expectations=(Expectation("residual+layer_norm", "better", min_x=4),),
    ),
    "bidirectional": Claim(
        text="Context from both directions helps tagging, at twice the parameters and compute.",
        compare="model.bidirectional",
        reference="uni",
        labels={"False": "uni", "True": "bi"},
        # per-step labelling; seq_digits (classification) is there for the cost side only
        expectations=(Expectation("bi", "better", ("tagging", "ecg_anomaly")),),
    ),
    "peephole": Claim(
        text="Peepholes help precise timing and matter little for NLP-like tasks.",
        reference="lstm",
        expectations=(
            Expectation("peephole_lstm", "better", ("timing_msd", "timing_gts")),
            Expectation("peephole_lstm", "similar", ("tagging",)),
        ),
    ),
    "attention": Claim(
        text="The fixed-size context vector is a bottleneck that attention removes, more so for long sources.",
        compare="model.attention",
        reference="none",
        x="task.seq_len",
        expectations=(Expectation("additive", "better", min_x=16), Expectation("dot", "better", min_x=16)),
    ),
}

GENERIC = Claim(text="(no claim recorded for this experiment: tables and plots only)")


def claim_for(experiment: str) -> Claim:
    """The claim a sweep tests, or a generic one (compare by cell, no verdict) for ad-hoc experiments."""
    return CLAIMS.get(experiment, GENERIC)

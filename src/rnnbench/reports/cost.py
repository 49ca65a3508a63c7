"""What a study's variants cost, compared on one implementation: parameters from the runs, time and memory from an
`rnnbench-bench` JSON document.

Why: `impl: auto` runs each cell on its fastest implementation (on CPU the LSTM and the vanilla RNN on torch's
fused kernels, the GRU and the peephole LSTM on the custom path), so two cells' epoch times differ by their
implementations more than by their cells: the peephole sweep once read 11.3 vs 4.1 s per epoch, custom vs fused.
A report therefore sets epoch times side by side only where every variant ran the same implementation, and
otherwise quotes the bench, which measures every cell on every implementation it has in the same rounds of one
process; of its figures a report compares only same-implementation ratios (`rnnbench.benchmark.cost_ratios`:
cell / LSTM, bidirectional / unidirectional).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnbench.benchmark import REFERENCE_CELL, cost_ratios
from rnnbench.models.cells import CELLS, get_cell
from rnnbench.models.layer_norm import get_layer_norm_cell
from rnnbench.models.recurrent import resolved_impl
from rnnbench.study.spec import Study

RECURRENT = "rnnbench.models.recurrent.Recurrent"  # the `_target_` of every model the bench measures


class BenchError(ValueError):
    """A `--bench` file that is missing or not an rnnbench-bench document."""


@dataclass(frozen=True)
class Architecture:
    """What a run's recurrent body is, for cost: its cell, its direction and the implementation it ran on."""

    cell: str
    direction: str  # "uni" | "bi"
    impl: str  # "fused" | "custom", `impl: auto` resolved as `Recurrent` resolves it


@dataclass(frozen=True)
class Cost:
    """The bench figures that compare a study's variants."""

    source: str  # the bench file as given on the command line (the report's Regenerate block repeats it)
    environment: str  # one line: what the figures were measured on
    rows: tuple[dict[str, Any], ...]  # `cost_ratios` rows comparing this study's variants with its reference


def architecture(record: Mapping[str, Any]) -> Architecture | None:
    """The architecture of a run from its config and device; None where its model is not a `Recurrent` body.

    Why None for an encoder-decoder: its decoder steps in Python whatever `impl` says and its encoder may be
    bidirectional, so no bench row (one `Recurrent` layer stack) measures it. A ReLU RNN keeps its own name
    (`rnn_relu`): the bench times the tanh RNN only, and a tanh ratio must not stand in for it.
    """
    model = record.get("config", {}).get("model") or {}
    cell = model.get("cell")
    if cell not in CELLS or model.get("_target_", RECURRENT) != RECURRENT:
        return None
    name = "rnn_relu" if cell == "rnn" and model.get("nonlinearity") == "relu" else cell
    spec = get_layer_norm_cell(name) if model.get("layer_norm") == "cell" else get_cell(name)
    device = (record.get("device") or {}).get("accelerator") or "cpu"
    direction = "bi" if model.get("bidirectional") else "uni"
    return Architecture(name, direction, resolved_impl(spec, model.get("impl", "auto"), str(device)))


def architectures(records: Iterable[Mapping[str, Any]], study: Study) -> dict[str, frozenset[Architecture]]:
    """Each variant's architectures over its evaluation runs (plain runs where there is no evaluation stage)."""
    runs = [r for r in records if r.get("stage") in ("eval", None)]
    found: dict[str, set[Architecture]] = {}
    for record in runs:
        arch = architecture(record)
        if arch is not None:
            found.setdefault(study.variant_of(record.get("config", {})), set()).add(arch)
    return {variant: frozenset(archs) for variant, archs in sorted(found.items())}


def one_implementation(archs: Mapping[str, frozenset[Architecture]]) -> bool:
    """Whether every variant ran on the same implementation, so that their epoch times compare cells."""
    return len({a.impl for found in archs.values() for a in found}) <= 1


def _wanted(archs: Mapping[str, frozenset[Architecture]], reference: str | None) -> set[tuple[str, str, str | None]]:
    """The bench ratios that compare a variant with the reference: ("cell", cell, direction) for a variant of
    another cell in the reference's direction (the bench divides by the LSTM only), ("direction", cell, None) for
    the reference's cell in the other direction."""
    refs = archs.get(reference or "", frozenset())
    wanted: set[tuple[str, str, str | None]] = set()
    for ref in refs:
        for variant, found in archs.items():
            for arch in found if variant != reference else ():
                if arch.cell != ref.cell and arch.direction == ref.direction and ref.cell == REFERENCE_CELL:
                    wanted.add(("cell", arch.cell, arch.direction))
                if arch.cell == ref.cell and arch.direction != ref.direction:
                    wanted.add(("direction", arch.cell, None))
    return wanted


def _key(row: Mapping[str, Any]) -> tuple[str, str, str | None]:
    return ("cell", row["numerator"], row["direction"]) if row["kind"] == "cell" else ("direction", row["cell"], None)


def load_bench(path: Path, what: str = "--bench") -> dict[str, Any]:
    """Read a bench JSON document, checking its schema (one-line errors naming `what` and the file)."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"{what} {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BenchError(f"{what} {path}: not JSON ({err})") from None
    except OSError as err:
        raise BenchError(f"{what} {path}: cannot read it ({err.strerror or err})") from None
    if not isinstance(doc, dict):
        raise BenchError(f"{what} {path}: not an rnnbench-bench document (a JSON {type(doc).__name__}, not an object)")
    try:
        cost_ratios(doc)
    except (ValueError, KeyError, TypeError) as err:
        raise BenchError(f"{what} {path}: {err}") from None
    return doc


def environment_line(doc: Mapping[str, Any]) -> str:
    """What the bench figures were measured on, in one line."""
    env = doc["environment"]
    malloc = " ".join(f"{k}={v}" for k, v in sorted((env.get("malloc_env") or {}).items()))
    tuned = " ".join(f"{k} {v >> 20} MiB" for k, v in sorted((env.get("malloc") or {}).items()))
    malloc = malloc or (f"tuned by rnnbench ({tuned})" if tuned else "default")
    load = env.get("loadavg_before") or [float("nan")]
    loops = "off" if not env.get("compiled_loops") else "on, packed AVX2 matmuls" if env.get("packed_loops") else "on"
    return (
        f"torch {env['torch']}, {env['cpu']} ({env['cpu_count']} cores), device {env['device']}, "
        f"{env['threads']} threads, compiled loops {loops}, glibc malloc "
        f"{malloc}, load average {load[0]:.2f} before; {doc['settings']['repeats']} rounds"
    )


def study_cost(records: Sequence[Mapping[str, Any]], study: Study, source: str, doc: Mapping[str, Any]) -> Cost:
    """The bench's figures for this study's comparisons; no rows where it compares no cells or directions the
    bench measures (a depth study, or a ReLU RNN), which the report then says rather than suggest `--bench`."""
    wanted = _wanted(architectures(records, study), study.reference)
    return Cost(source, environment_line(doc), tuple(r for r in cost_ratios(dict(doc)) if _key(r) in wanted))

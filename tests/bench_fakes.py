"""A fixed rnnbench-bench document for tests of what reads one (cost ratios, the reports' cost section)."""

from __future__ import annotations

from typing import Any

from rnnbench.benchmark import SCHEMA, SCHEMA_VERSION


def entry(
    cell: str, impl: str, direction: str, ms: float, peak: int, params: int, sizing: str = "equal_hidden"
) -> dict[str, Any]:
    return {
        "shape": {"batch": 2, "steps": 3, "input_size": 4, "hidden_size": 5},
        "cell": cell,
        "impl": impl,
        "direction": direction,
        "sizing": sizing,
        "mode": "train",
        "hidden_size": 5,
        "params": params,
        "time_ms": {"median": ms, "iqr": 0.0, "min": ms, "max": ms, "samples": 1},
        "first_ms": ms,
        "peak_bytes": peak,
        "ratio_to_reference": 1.0,
    }


FIXED = {
    "schema": SCHEMA,
    "version": SCHEMA_VERSION,
    "environment": {
        "torch": "2.13.0",
        "python": "3.11.7",
        "platform": "Linux",
        "cpu": "AMD EPYC",
        "cpu_count": 2,
        "device": "cpu",
        "threads": 2,
        "malloc_env": {},
        "compiled_loops": True,
        "packed_loops": True,
        "loadavg_before": [0.5, 0.4, 0.3],
        "loadavg_after": [0.9, 0.5, 0.3],
        "device_settings": {},
    },
    "settings": {"repeats": 1, "warmup": 0, "modes": ["train"], "reference": {"cell": "lstm", "impl": "torch.nn"}},
    "entries": [
        entry("lstm", "torch.nn", "uni", 10.0, 1000, 400),
        entry("lstm", "fused", "uni", 11.0, 1000, 400),
        entry("gru", "fused", "uni", 22.0, 800, 300),  # torch's CPU GRU: slower than its LSTM
        entry("lstm", "custom", "uni", 12.0, 1200, 400),
        entry("lstm", "custom", "bi", 24.0, 2400, 800),
        entry("gru", "custom", "uni", 9.0, 900, 300),
        entry("gru", "custom", "bi", 19.8, 1800, 600),
        entry("peephole_lstm", "custom", "uni", 13.2, 1260, 412),
    ],
}

"""rnnbench-bench: its JSON schema (one entry per case), equal-parameter sizing, CPU peak memory, same-implementation
ratios from a fixed document. No timing thresholds: the machine's load makes any wall-clock bound flaky."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from bench_fakes import FIXED
from rnnbench import benchmark
from rnnbench.benchmark import (
    CELLS,
    SCHEMA,
    SCHEMA_VERSION,
    Shape,
    cost_ratios,
    equal_param_hidden,
    impls_of,
    main,
    peak_bytes,
    run,
)
from rnnbench.models.cells import get_cell
from rnnbench.models.params import recurrent_parameter_count

ENTRY_TYPES = {
    "shape": dict,
    "cell": str,
    "impl": str,
    "direction": str,
    "sizing": str,
    "mode": str,
    "hidden_size": int,
    "params": int,
    "time_ms": dict,
    "first_ms": float,
    "peak_bytes": int,
    "ratio_to_reference": float,
}


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny full run (every cell, impl, direction, sizing and mode), written as JSON and markdown."""
    out = tmp_path_factory.mktemp("bench")
    argv = ["--shapes", "4x5x3x8", "--repeats", "2", "--warmup", "0", "--threads", "1"]
    run([*argv, "--json", str(out / "bench.json"), "--out", str(out / "bench.md")])
    return {"json": json.loads((out / "bench.json").read_text()), "md": (out / "bench.md").read_text()}


def test_json_schema(doc: dict) -> None:
    data = doc["json"]
    assert (data["schema"], data["version"]) == (SCHEMA, SCHEMA_VERSION)
    env = data["environment"]
    keys = ("torch", "cpu", "device", "threads", "malloc_env", "compiled_loops", "packed_loops", "loadavg_before")
    for key in (*keys, "loadavg_after"):
        assert key in env
    assert env["threads"] == 1 and isinstance(env["compiled_loops"], bool) and isinstance(env["malloc_env"], dict)
    assert isinstance(env["packed_loops"], bool) and (env["compiled_loops"] or not env["packed_loops"])
    assert isinstance(env["malloc"], dict) and set(env["malloc"]) <= {"mmap_threshold", "trim_threshold"}
    assert env["device_settings"]["accelerator"] == "cpu" and env["device_settings"]["precision"] == "32-true"
    assert data["settings"]["reference"] == {"cell": "lstm", "impl": "torch.nn"}
    for entry in data["entries"]:
        assert set(entry) == set(ENTRY_TYPES)
        for key, kind in ENTRY_TYPES.items():
            assert isinstance(entry[key], kind), (key, entry[key])
        assert entry["shape"] == {"batch": 4, "steps": 5, "input_size": 3, "hidden_size": 8}
        assert set(entry["time_ms"]) == {"median", "iqr", "min", "max", "samples"}
        assert entry["time_ms"]["samples"] == 2
        assert entry["time_ms"]["min"] <= entry["time_ms"]["median"] <= entry["time_ms"]["max"]
        assert entry["peak_bytes"] > 0 and entry["time_ms"]["median"] > 0


def test_one_entry_per_case(doc: dict) -> None:
    keys = [(e["cell"], e["impl"], e["direction"], e["sizing"], e["mode"]) for e in doc["json"]["entries"]]
    expected = {
        (cell, impl, direction, sizing, mode)
        for cell in CELLS
        for impl in impls_of(cell)
        for direction in ("uni", "bi")
        for sizing in ("equal_hidden", "equal_params")
        for mode in ("train", "forward")
    }
    expected |= {("lstm", "torch.nn", d, "equal_hidden", m) for d in ("uni", "bi") for m in ("train", "forward")}
    assert len(keys) == len(set(keys)) and set(keys) == expected
    assert ("peephole_lstm", "fused", "uni", "equal_hidden", "train") not in expected  # no fused peephole kernel


def test_entries_sizes_and_reference(doc: dict) -> None:
    for e in doc["json"]["entries"]:
        bi = e["direction"] == "bi"
        if e["impl"] != "torch.nn":
            assert e["params"] == recurrent_parameter_count(e["cell"], 3, e["hidden_size"], bidirectional=bi)
        if e["sizing"] == "equal_hidden":
            assert e["hidden_size"] == 8
        else:
            assert e["hidden_size"] == equal_param_hidden(e["cell"], 3, 8, bi)
        if e["impl"] == "torch.nn":
            assert e["ratio_to_reference"] == 1.0
            assert e["params"] == recurrent_parameter_count("lstm", 3, 8, bidirectional=bi)
    # the LSTM under both sizings is one model, measured once: identical figures
    lstm = [e for e in doc["json"]["entries"] if (e["cell"], e["impl"], e["mode"]) == ("lstm", "custom", "train")]
    by_dir = {}
    for e in lstm:
        by_dir.setdefault(e["direction"], []).append(e["time_ms"])
    assert all(a == b for a, b in by_dir.values())


def test_markdown_table(doc: dict) -> None:
    lines = doc["md"].splitlines()
    rows = [line for line in lines if line.startswith("| 4x5x3x8 | ") and " bi/uni" not in line and "/lstm" not in line]
    cases = {(e["cell"], e["impl"], e["direction"], e["sizing"]) for e in doc["json"]["entries"]}
    assert len(rows) == len(cases)
    assert any(r.startswith("| 4x5x3x8 | peephole_lstm | custom | bi | equal_params |") for r in rows)
    assert "Same-implementation ratios" in doc["md"]


def test_print_json_and_subset(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--shapes", "3x4x2x5", "--repeats", "1", "--warmup", "0", "--threads", "1", "--cells", "gru"]
    main([*argv, "--impls", "custom", "--directions", "uni", "--sizings", "equal_hidden", "--modes", "train"])
    assert "| 3x4x2x5 | gru | custom | uni | equal_hidden | 5 |" in capsys.readouterr().out
    main([*argv, "--modes", "forward", "--directions", "bi", "--print-json"])
    data = json.loads(capsys.readouterr().out)
    keys = {(e["cell"], e["impl"], e["direction"], e["sizing"], e["mode"]) for e in data["entries"]}
    sizings = ("equal_hidden", "equal_params")
    gru = {("gru", impl, "bi", sizing, "forward") for impl in ("custom", "fused") for sizing in sizings}
    assert keys == {("lstm", "torch.nn", "bi", "equal_hidden", "forward")} | gru


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(SystemExit):
        main(["--shapes", "4x5x3"])
    with pytest.raises(SystemExit):
        main(["--cells", "lstm", "--repeats", "0"])


def test_a_device_it_cannot_measure_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "gpu"])
    assert exit_info.value.code == 2 and "--device: must be cpu or cuda[:N], got 'gpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():  # gpu_check.sh relies on this line where a session has no GPU
        with pytest.raises(SystemExit) as exit_info:
            main(["--device", "cuda", "--shapes", "4x5x3x8"])
        assert (
            str(exit_info.value)
            == f"rnnbench-bench: --device cuda: CUDA is not available here (torch {torch.__version__})"
        )


def _real_root(cell: str, input_size: int, target_per_direction: int) -> float:
    """The real h with G (h^2 + h I + 2h) [+ 3h peepholes] = target: the exact equal-parameter hidden size."""
    spec = get_cell(cell)
    a, b = spec.gates, spec.gates * (input_size + 2) + (3 if spec.peepholes else 0)
    return (-b + math.sqrt(b * b + 4 * a * target_per_direction)) / (2 * a)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("input_size", "hidden"), [(32, 128), (64, 256), (1, 1), (3, 8), (10, 37)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_equal_param_hidden_is_nearest(cell: str, input_size: int, hidden: int, bidirectional: bool) -> None:
    h = equal_param_hidden(cell, input_size, hidden, bidirectional)
    target = recurrent_parameter_count("lstm", input_size, hidden, bidirectional=bidirectional)

    def miss(size: int) -> int:
        return abs(recurrent_parameter_count(cell, input_size, size, bidirectional=bidirectional) - target)

    assert h >= 1 and miss(h) <= miss(h + 1) and (h == 1 or miss(h) <= miss(h - 1))
    assert abs(h - _real_root(cell, input_size, target // (2 if bidirectional else 1))) <= 1
    if cell == "lstm":
        assert h == hidden


def test_equal_param_hidden_known_values() -> None:
    # LSTM 32 -> 128: 4 (128 * 160 + 256) = 82944 parameters; GRU: 3 (h^2 + 34 h) = 82944 at h = 150.1
    assert equal_param_hidden("gru", 32, 128) == 150
    assert equal_param_hidden("rnn", 32, 128) == 272  # h^2 + 34 h = 82944 at h = 271.5
    assert equal_param_hidden("peephole_lstm", 32, 128) == 128  # 4 h^2 + 139 h = 82944 at h = 127.7


def test_peak_bytes_counts_held_allocations() -> None:
    def two_held() -> None:
        a = torch.empty(1000)  # 4000 bytes
        b = torch.empty(2000)  # 8000 bytes, both held
        del a, b

    def one_at_a_time() -> None:
        a = torch.empty(1000)
        del a
        b = torch.empty(1000)
        del b

    cpu = torch.device("cpu")
    assert peak_bytes(two_held, cpu) == 12000
    assert peak_bytes(one_at_a_time, cpu) == 4000


def _find(rows: list[dict], **want: object) -> dict:
    (row,) = [r for r in rows if all(r[k] == v for k, v in want.items())]
    return row


def test_cost_ratios_on_a_fixed_document() -> None:
    rows = cost_ratios(copy.deepcopy(FIXED))
    gru_custom = _find(rows, kind="cell", numerator="gru", impl="custom", direction="uni")
    assert gru_custom["denominator"] == "lstm" and gru_custom["shape"] == "2x3x4x5"
    assert gru_custom["time"] == pytest.approx(0.75) and gru_custom["params"] == pytest.approx(0.75)
    assert gru_custom["peak_bytes"] == pytest.approx(0.75)
    assert _find(rows, kind="cell", numerator="gru", impl="fused")["time"] == pytest.approx(2.0)
    assert _find(rows, kind="cell", numerator="gru", impl="custom", direction="bi")["time"] == pytest.approx(0.825)
    peep = _find(rows, kind="cell", numerator="peephole_lstm", impl="custom")
    assert peep["time"] == pytest.approx(1.1) and peep["peak_bytes"] == pytest.approx(1.05)
    bi = _find(rows, kind="direction", cell="lstm", impl="custom")
    assert (bi["numerator"], bi["denominator"], bi["time"], bi["params"]) == ("bi", "uni", 2.0, 2.0)
    assert _find(rows, kind="direction", cell="gru", impl="custom")["time"] == pytest.approx(2.2)
    # never across implementations: 4 cell ratios (gru custom uni and bi, gru fused, peephole custom) + 2 bi/uni
    assert len(rows) == 6
    assert not any(r["numerator"] == "peephole_lstm" and r["impl"] == "fused" for r in rows)


def test_cost_ratios_reject_other_documents() -> None:
    with pytest.raises(ValueError, match="rnnbench-bench v1"):
        cost_ratios({"schema": SCHEMA, "version": 99, "entries": []})


def test_cost_ratios_on_a_measured_document(doc: dict) -> None:
    rows = cost_ratios(doc["json"])
    index = benchmark._index(doc["json"])
    for r in rows:  # every ratio divides two entries of the same impl, sizing, mode and shape
        num_cell = r["numerator"] if r["kind"] == "cell" else r["cell"]
        den_cell = r["denominator"] if r["kind"] == "cell" else r["cell"]
        num_dir = r["direction"] if r["kind"] == "cell" else "bi"
        den_dir = r["direction"] if r["kind"] == "cell" else "uni"
        shape = Shape.parse(r["shape"])
        num = index[shape, num_cell, r["impl"], num_dir, r["sizing"], r["mode"]]
        den = index[shape, den_cell, r["impl"], den_dir, r["sizing"], r["mode"]]
        assert r["time"] == pytest.approx(num["time_ms"]["median"] / den["time_ms"]["median"])
        assert r["params"] == pytest.approx(num["params"] / den["params"])
    bi_params = [r["params"] for r in rows if r["kind"] == "direction"]
    assert bi_params and all(p == pytest.approx(2.0) for p in bi_params)  # one layer: exactly twice the weights

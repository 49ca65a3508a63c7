"""`rnnbench-report`: a table of recorded runs, regenerated from their run.json files.

Writes `results.md` and `results.csv` into `--out` (and prints the table). The sweep comparison reports with
statistics and plots build on the same rows.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from rnnbench.reports.collect import collect

COLUMNS = (
    "run",
    "task",
    "cell",
    "seed",
    "status",
    "metric",
    "value",
    "baseline",
    "beats_baseline",
    "num_parameters",
    "train_time_s",
    "epochs",
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows as a GitHub markdown table, in the order given."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Rows as CSV with the same columns as the markdown table."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: _fmt(row[c]) for c in COLUMNS} for row in rows)


def main(argv: list[str] | None = None) -> int:
    """Console entry."""
    parser = argparse.ArgumentParser(prog="rnnbench-report", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run directories, multirun directories or run.json files")
    parser.add_argument("--out", type=Path, default=None, help="directory for results.md and results.csv")
    args = parser.parse_args(argv)
    try:
        rows = collect(args.paths)
    except FileNotFoundError as err:
        print(f"rnnbench-report: error: {err}", file=sys.stderr)
        return 2
    if not rows:
        print(f"rnnbench-report: error: no run.json under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    rows.sort(key=lambda r: (str(r["task"]), str(r["cell"]), str(r["run"]), r["seed"] or 0))
    table = markdown_table(rows)
    print(table, end="")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.md").write_text(table)
        write_csv(rows, args.out / "results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

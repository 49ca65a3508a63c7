"""`rnnbench-study NAME [overrides...]`: tune each variant, then evaluate it at its chosen value, in one folder.

    rnnbench-study seq_len                     # tune -> selection.json -> eval, under outputs/studies/seq_len/
    rnnbench-study seq_len budget=smoke        # overrides pass through to both stages' rnnbench-train -m
    rnnbench-study seq_len --stage tune        # one stage: tune | select | eval | all (the default)
    rnnbench-study mine --config-dir ~/conf    # a user's sweep (~/conf/sweep/mine.yaml) with its study block

Relaunching the same command resumes: each stage skips its finished jobs. On a fresh machine the committed
archive reports/NAME/runs.jsonl.gz (or --restore PATH) is written back into the study folder first, so the
relaunch reruns nothing that finished elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnbench.reports.archive import read_archive
from rnnbench.reports.collect import local_records
from rnnbench.study.archive import default_archive, restore
from rnnbench.study.selection import write_selection
from rnnbench.study.spec import StudyError
from rnnbench.study.stages import Launch, in_grid, load, plan, run_stage
from rnnbench.study.tuning import RESULT_STATUSES, group_name, select


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnbench-study", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the sweep (sweeps/NAME.yaml, or sweep/NAME.yaml in --config-dir)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to both stages, e.g. budget=smoke")
    parser.add_argument("--stage", choices=("tune", "select", "eval", "all"), default="all")
    parser.add_argument("--dir", type=Path, help="the study folder (default: outputs/studies/NAME)")
    parser.add_argument("--config-dir", help="a folder of the user's own configs (sweep/NAME.yaml)")
    parser.add_argument("--restore", type=Path, help="a run record archive (default: reports/NAME/runs.jsonl.gz)")
    parser.add_argument("--no-restore", action="store_true", help="do not restore from the default archive")
    return parser


def restore_archive(launch: Launch, archive: Path | None) -> None:
    """Write an archive's finished records of this study into its folder (the default archive only if present)."""
    path = archive or default_archive(launch.name)
    if archive is None and not path.is_file():
        return
    if not path.is_file():
        raise StudyError(f"--restore {path}: no such archive")
    counts = restore(read_archive(path), launch.directory, launch.name)
    print(
        f"rnnbench-study: restored {counts['restored']} run record(s) from {path} into {launch.directory} "
        f"({counts['present']} already there, {counts['skipped']} not of this study, or failed)"
    )


def select_stage(launch: Launch) -> None:
    """Choose each group's value from the tuning records and write selection.json."""
    tune_dir = launch.stage_dir("tune")
    found = local_records([tune_dir]) if tune_dir.is_dir() else []
    inside = in_grid(launch)
    records = [r for r in found if inside(r.get("overrides") or [])]
    broken = [r.get("output_dir") for r in records if r.get("status") not in RESULT_STATUSES]
    if broken:
        raise StudyError(f"{len(broken)} tuning job(s) did not finish: {', '.join(map(str, broken))}; relaunch")
    selection = select(records, launch.study, launch.name)
    write_selection(launch.selection_path, selection)
    print(f"rnnbench-study: wrote {launch.selection_path} ({selection['key']} per group; its `rule` says how):")
    for choice in selection["choices"]:
        group = (choice["variant"], choice["task"], choice["factor"])
        edge = "  <- at the edge of the grid" if choice["at_edge"] else ""
        print(f"  {group_name(group, launch.study)}: {choice['value']:g}{edge}")


def main(argv: list[str] | None = None) -> None:
    """Console entry: one-line errors; the exit status is the last stage's (non-zero if any job failed)."""
    args = _parser().parse_intermixed_args(argv)
    try:
        launch = load(args.name, args.overrides, args.config_dir, args.dir)
        print(f"rnnbench-study: {launch.name}: {plan(launch).sentence()}", flush=True)
        if not args.no_restore:
            restore_archive(launch, args.restore)
        status = 0
        if args.stage in ("tune", "all"):
            status = run_stage(launch, "tune")
            if status == 2:  # a config error, already printed by rnnbench-train
                sys.exit(status)
        if args.stage in ("select", "all"):
            select_stage(launch)
        if args.stage in ("eval", "all"):
            if not launch.selection_path.is_file():
                raise StudyError(f"no {launch.selection_path}: run the tuning stage first (--stage tune, select)")
            status = run_stage(launch, "eval")
    except StudyError as err:
        print(f"rnnbench-study: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("rnnbench-study: interrupted; the same command resumes where it stopped", file=sys.stderr)
        sys.exit(130)
    sys.exit(status)


if __name__ == "__main__":
    main()

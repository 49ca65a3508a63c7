"""`rnnbench-train`: the Hydra entry point. Checks every job's config first, then lets Hydra run them.

A multirun keeps going when one job fails (the failure is in that job's run.json and in the summary printed at
the end, and the command exits non-zero), and re-launching into the same `hydra.sweep.dir` skips finished jobs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from rnnbench.tracking.run_record import RECORD_NAME, read_record
from rnnbench.training.config import ConfigError, config_dir, preflight
from rnnbench.training.train import train

log = logging.getLogger("rnnbench")
FAILED: list[str] = []  # output dirs of jobs that failed in this process (multirun continues past them)


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float | None:
    runtime = HydraConfig.get()
    output_dir = Path(runtime.runtime.output_dir)
    overrides = list(runtime.overrides.task)
    record_path = output_dir / RECORD_NAME
    if cfg.resume and record_path.exists():
        previous = read_record(record_path)
        if previous.get("status") == "finished" and previous.get("overrides") == overrides:
            log.info("already finished, skipping: %s", output_dir)
            return _objective(previous)
    try:
        record = train(cfg, output_dir, overrides)
    except Exception:
        if runtime.mode != RunMode.MULTIRUN:
            raise
        log.exception("job failed; its run.json says so, continuing the sweep: %s", output_dir)
        FAILED.append(str(output_dir))
        return None
    print(f"run record: {record_path}")
    if record.get("wandb"):
        print(f"W&B run ({record['wandb']['mode']}): {record['wandb']['dir']}")
    return _objective(record)


def _objective(record: dict[str, Any]) -> float | None:
    """The value a Hydra sweeper optimises: the task's primary test metric."""
    return record.get("test", {}).get(f"test/{record.get('primary_metric')}")


def main() -> None:
    """Console entry: one-line errors for bad configs, then Hydra's run or multirun."""
    args, _ = get_args_parser().parse_known_args()
    informational = args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
    if not informational:
        try:
            preflight(args.overrides, multirun=args.multirun, user_config_dir=args.config_dir)
        except ConfigError as err:
            print(f"rnnbench-train: error: {err}", file=sys.stderr)
            sys.exit(2)
    _hydra_main()
    if FAILED:
        print(f"rnnbench-train: {len(FAILED)} job(s) failed: {', '.join(FAILED)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

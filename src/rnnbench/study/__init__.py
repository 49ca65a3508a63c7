"""Studies: a sweep's declared comparison (spec), its tuning stage and the `rnnbench-study` command."""

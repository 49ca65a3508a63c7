"""rnnbench: evidence, not folklore, about recurrent architectures."""

__version__ = "0.1.0"

"""`evaluate` module folders shipped with corit_hf; load one by path, e.g. `evaluate.load(OPTIMIZATION_COLLAPSE)`."""

from pathlib import Path


OPTIMIZATION_COLLAPSE = str(Path(__file__).parent / "optimization_collapse")
"""Path of the `optimization_collapse` metric folder, for `evaluate.load`."""

__all__ = ["OPTIMIZATION_COLLAPSE"]

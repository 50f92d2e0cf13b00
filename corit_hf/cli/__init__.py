"""The `corit` command line: one module per command group, `main` is the console script's entry point."""

from .main import main


__all__ = ["main"]

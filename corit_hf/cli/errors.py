"""How `corit` reports bad input: one line, `corit COMMAND: error: ...`, that names the flag the user typed."""

import argparse
import re


class UsageError(Exception):
    """A command line that the parser refused; the message is the whole line to print."""


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line without the usage block (`--rho must be ...`), raised for
    `main` to print; the subcommand parsers are of this class too."""

    def error(self, message: str):
        message = re.sub(r"^argument (\S+): (?=must )", r"\1 ", message)
        raise UsageError(f"{self.prog}: error: {message}")


API_FLAGS = {
    "gsnr_chunks": "--gsnr-chunks",  # its minimum depends on --gsnr-estimator
    "hri_layers": "--hri-layers",  # its range depends on the backbone's depth
    "osf_rank": "--osf-rank",  # its range depends on the backbone's width
    "rhos": "--rhos",  # the grid must include 0
}
"""The API arguments whose checks depend on other values, so they are checked by the API rather than by the
flag's type (`values.py`): a command's ValueError that starts with one of them is printed with the flag."""


def with_flag_names(error: Exception) -> str:
    """The message of an error raised by a command, with a leading API argument name replaced by its flag."""
    name, _, rest = str(error).partition(" ")
    return f"{API_FLAGS[name]} {rest}" if name in API_FLAGS else str(error)

"""Value types of the `corit` flags: argparse converts and checks each value as it reads it, so a bad one is
refused at once (before any data or model loads) by the flag the user typed: `--rho must be ...`."""

import argparse
import math
from collections.abc import Callable


def number(
    kind: type = float,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An argparse `type`: a finite `kind` (int or float) between `low` and `high` (closed ends unless `*_open`)."""
    wanted = _describe(kind, low, high, low_open, high_open)

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        above = low is None or (value > low if low_open else value >= low)
        below = high is None or (value < high if high_open else value <= high)
        if not (math.isfinite(value) and above and below):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}.")
        return value

    return convert


def _describe(kind: type, low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """`an integer`, `an integer >= 1`, `a finite number >= 0`, `a number in (0, 1]`."""
    noun, show = ("an integer", str) if kind is int else ("a number", "{:g}".format)
    if low is None:
        return noun
    if high is None:
        return f"{noun if kind is int else 'a finite number'} {'>' if low_open else '>='} {show(low)}"
    return f"{noun} in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"


COUNT = number(int, 1)
"""Sizes, steps and counts: an integer >= 1."""
COUNT_OR_ZERO = number(int, 0)
"""Counts where 0 means none or off (workers, --gsnr-every)."""
SEED = number(int, 0, 2**32 - 1)
"""Seeds, in the range numpy's generators take."""
NON_NEGATIVE = number(float, 0)
"""Radii, strengths, learning rates: a finite number >= 0."""
POSITIVE = number(float, 0, low_open=True)
"""Epochs, temperatures, CPUs: a finite number > 0."""
PROBABILITY = number(float, 0, 1)
"""Probabilities and thresholds on the fake probability: a number in [0, 1]."""
PORT = number(int, 0, 65535)


def preset(text: str) -> str:
    """A backbone preset name (tiny, clip-vit-b16, ...); the list is read from the model's configuration."""
    from ..models.configuration_corit import PRESETS

    if text not in PRESETS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(sorted(PRESETS))}, got {text}.")
    return text


def method(text: str) -> str:
    """A registered training recipe (univfd, effort, gend, lora, corit, ...); the list is read from the registry."""
    from ..training.methods import METHODS

    if text not in METHODS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(sorted(METHODS))}, got {text}.")
    return text


def repo_id(text: str) -> str:
    """A Hub repo id, NAME or ORG/NAME, checked by huggingface_hub's own rules."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError as error:
        raise argparse.ArgumentTypeError(f"must be a Hub repo id, NAME or ORG/NAME: {error}") from None
    return text


class OrderedPair(argparse.Action):
    """`--flag MIN MAX` (nargs=2): refuses MIN > MAX; each value is checked by the flag's `type` first."""

    def __call__(self, parser, namespace, values, option_string=None):
        low, high = values
        if low > high:
            raise argparse.ArgumentError(self, f"must be MIN MAX with MIN <= MAX, got {low:g} {high:g}.")
        setattr(namespace, self.dest, values)

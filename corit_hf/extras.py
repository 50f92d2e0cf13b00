"""The optional extras of the package: what each brings, and the one-line error that says how to install one.

Every command or code path that needs an extra checks it here before any work, so a missing package is a clear
line naming the extra (from a source checkout and for the installed distribution) instead of a traceback.
"""

import importlib
import importlib.metadata
from types import ModuleType


PACKAGE = "corit_hf"
DISTRIBUTION = "corit-hf"
"""The distribution's name when the package metadata cannot tell (e.g. run from an uninstalled source tree)."""

EXTRAS = {
    "data": "scikit-image: more bundled photos for the built-in benchmark",
    "prior": "the EfficientNet-Lite0 teacher weights of `corit distill`",
    "demo": "Gradio: the demo app of `corit serve` and the Space",
    "video": "PyAV and MTCNN on onnxruntime: videos and --faces",
    "ray": "Ray Core: `corit study --engine ray` on a cluster",
    "tracking": "TensorBoard: `--report-to tensorboard` of `corit train` and `corit study`",
}
"""Extra -> what it brings (README's "Set up" table lists the same)."""


class MissingExtra(ValueError):
    """A package of an optional extra is not installed; the message says how to install the extra."""


def distribution_name() -> str:
    """The installed distribution that provides this package (its real name from the package metadata)."""
    names = importlib.metadata.packages_distributions().get(PACKAGE)
    return names[0] if names else DISTRIBUTION


def install_hint(extra: str) -> str:
    """How to install `extra`: from a source checkout, and for the installed distribution."""
    return f"pip install -e \".[{extra}]\" in a source checkout, or pip install '{distribution_name()}[{extra}]'"


def missing_extra(extra: str, need: str) -> MissingExtra:
    """The error for a missing extra: `need` says what needs which package, e.g. "corit serve needs gradio"."""
    return MissingExtra(f"{need}, from the `{extra}` extra: {install_hint(extra)}.")


def import_extra(module: str, extra: str, need: str) -> ModuleType:
    """Import `module` of `extra`, or raise `missing_extra(extra, need)` when it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(extra, need) from None

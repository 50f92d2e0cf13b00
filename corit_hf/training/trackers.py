"""Experiment trackers of `corit train` and `corit study`: the Trainer integrations `--report-to` names, checked
before any work, and the folder TensorBoard writes its event files into (`--logging-dir`).

transformers 5 has no `TrainingArguments.logging_dir`: its TensorBoardCallback reads TENSORBOARD_LOGGING_DIR when
it is made (unset: OUTPUT_DIR/runs/DATE_HOST), so `tensorboard_logging_dir` sets that variable while a Trainer is
built. Everything the Trainer logs reaches the trackers, CoritTrainer's `gsnr/<layer>` and `sam/` values included.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..extras import missing_extra


TENSORBOARD = "tensorboard"
LOGGING_DIR_ENV = "TENSORBOARD_LOGGING_DIR"
PACKAGES = {
    "clearml": "clearml",
    "codecarbon": "codecarbon",
    "comet_ml": "comet-ml",
    "dagshub": "dagshub mlflow",
    "dvclive": "dvclive",
    "mlflow": "mlflow",
    "neptune": "neptune",
    "swanlab": "swanlab",
    "tensorboard": "tensorboard",
    "trackio": "trackio",
    "wandb": "wandb",
}
"""What to install for each integration transformers detects (`get_available_reporting_integrations`)."""


def reporting_integrations(report_to: str | list[str], logging_dir: str | None = None) -> list[str]:
    """The integrations `--report-to` names (one or a list, as TrainingArguments' `report_to`; `all`: every
    installed one; `none`: none), checked before any work.

    A name that is no Trainer integration, one whose package is missing, and a `--logging-dir` without TensorBoard
    to write there are each one clear error.
    """
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    names = list(dict.fromkeys([report_to] if isinstance(report_to, str) else report_to))
    if len(names) > 1 and {"all", "none"} & set(names):
        raise ValueError(f"--report-to all and none stand alone, got: {' '.join(names)}.")
    available = get_available_reporting_integrations()
    names = available if names == ["all"] else [] if names == ["none"] else names
    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            known = ", ".join(["all", "none", *INTEGRATION_TO_CALLBACK])
            raise ValueError(f"--report-to {name}: no such Trainer integration; choose from {known}.")
        if name == TENSORBOARD and name not in available:
            raise missing_extra("tracking", f"--report-to {name} needs TensorBoard")
        if name in PACKAGES and name not in available:
            package = PACKAGES[name]
            raise ValueError(f"--report-to {name} needs {package}, which is not installed: pip install {package}")
    if logging_dir is not None and TENSORBOARD not in names:
        raise ValueError("--logging-dir is where TensorBoard writes: it needs --report-to tensorboard.")
    return names


@contextmanager
def tensorboard_logging_dir(path: str | os.PathLike | None) -> Iterator[None]:
    """TENSORBOARD_LOGGING_DIR set to `path` (None: left as it is) for the Trainer built inside, restored after."""
    if path is None:
        yield
        return
    former = os.environ.get(LOGGING_DIR_ENV)
    os.environ[LOGGING_DIR_ENV] = os.fspath(path)
    try:
        yield
    finally:
        if former is None:
            del os.environ[LOGGING_DIR_ENV]
        else:
            os.environ[LOGGING_DIR_ENV] = former


def tensorboard_folder(trainer) -> str | None:
    """The folder a finished run's TensorBoard event files went to, or None when it did not report to TensorBoard."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            return callback.logging_dir
    return None


def tensorboard_hint(folder: str | os.PathLike, what: str = "TensorBoard logs") -> str:
    """The line that says where the event files are and how to look at them."""
    return f"{what}: {folder} (view them with: tensorboard --logdir {folder})"

"""`--report-to` and `--logging-dir` of `corit train` and `corit study`: TensorBoard event files read back (the loss
and the `gsnr/<layer>` values), one folder per study run named like its cell, cells that do not depend on the
trackers, and one clear line for a missing package or a misplaced flag."""

import importlib.util
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from corit_hf.cli import main
from corit_hf.extras import install_hint


TINY_DATA = ["--n-train", "16", "--n-test", "8", "--batch-size", "8"]
STUDY = ["study", *TINY_DATA, "--max-steps", "2", "--gsnr-every", "2", "--configs", "baseline"]
STUDY_RUNS = {"tiny_baseline_rho0_seed0", "tiny_baseline_rho0.5_seed0"}
GSNR_TAGS = {"train/gsnr/embeddings", "train/gsnr/layer_00", "train/gsnr/head"}


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files in `folder`: tag -> [(step, value)]."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def cell_times(output: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (output / "cells").glob("*.json")}


def test_train_logs_the_loss_and_gsnr_to_tensorboard(tmp_path, capsys):
    logs = tmp_path / "logs"
    argv = ["train", *TINY_DATA, "--max-steps", "10", "--gsnr-every", "5", "--output-dir", str(tmp_path / "model")]
    assert main([*argv, "--report-to", "tensorboard", "--logging-dir", str(logs)]) == 0
    assert list(logs.glob("events.out.tfevents.*"))
    logged = scalars(logs)
    assert [step for step, _ in logged["train/loss"]] == [10]
    assert GSNR_TAGS <= set(logged)
    assert [step for step, _ in logged["train/gsnr/head"]] == [0, 5]
    assert all(value >= 0 for tag in GSNR_TAGS for _, value in logged[tag])
    assert f"TensorBoard logs: {logs} (view them with: tensorboard --logdir {logs})" in capsys.readouterr().out


def test_train_logs_under_the_model_folder_by_default(tmp_path):
    argv = ["train", *TINY_DATA, "--max-steps", "2", "--gsnr-every", "1", "--output-dir", str(tmp_path)]
    assert main([*argv, "--report-to", "tensorboard"]) == 0
    (run,) = (tmp_path / "runs").iterdir()  # transformers' OUTPUT_DIR/runs/DATE_HOST
    assert GSNR_TAGS <= set(scalars(run))


def test_study_logs_each_run_under_its_cell_name_and_its_cells_ignore_the_trackers(tmp_path, capsys):
    output, logs = tmp_path / "study", tmp_path / "logs"
    tracked = ["--report-to", "tensorboard", "--logging-dir", str(logs)]
    assert main([*STUDY, "--rhos", "0", "0.5", "--workers", "2", *tracked, "--output-dir", str(output)]) == 0
    assert {path.name for path in logs.iterdir()} == STUDY_RUNS
    for run in STUDY_RUNS:
        assert GSNR_TAGS <= set(scalars(logs / run))
    assert f"TensorBoard logs, one folder per run named like its cell: {logs}" in capsys.readouterr().out

    before = cell_times(output)
    assert main([*STUDY, "--rhos", "0", "0.5", "--workers", "1", "--output-dir", str(output)]) == 0
    assert cell_times(output) == before  # the same cells without trackers: nothing was retrained


def test_study_logs_under_its_output_folder_by_default(tmp_path):
    argv = [*STUDY, "--rhos", "0", "--workers", "1", "--report-to", "tensorboard", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    assert {path.name for path in (tmp_path / "runs").iterdir()} == {"tiny_baseline_rho0_seed0"}


@pytest.mark.parametrize("command", ["train", "study"])
def test_a_missing_tracker_package_is_one_line_naming_what_to_install(command, tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    hidden = {"tensorboard", "tensorboardX"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in hidden else find_spec(name, *a))
    output = tmp_path / "out"
    assert main([command, "--report-to", "tensorboard", "--output-dir", str(output)]) == 2
    errors = capsys.readouterr().err
    assert errors == (
        f"corit {command}: error: --report-to tensorboard needs TensorBoard, from the `tracking` extra: "
        f"{install_hint('tracking')}.\n"
    )
    assert not output.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--logging-dir", "logs"], "--logging-dir is where TensorBoard writes: it needs --report-to tensorboard."),
        (["--report-to", "tensorbord"], "--report-to tensorbord: no such Trainer integration; choose from all, none,"),
        (["--report-to", "all", "none"], "--report-to all and none stand alone, got: all none."),
    ],
)
@pytest.mark.parametrize("command", ["train", "study"])
def test_misplaced_tracker_flags_are_one_clear_line(command, flags, message, tmp_path, capsys):
    output = tmp_path / "out"
    assert main([command, *flags, "--output-dir", str(output)]) == 2
    errors = capsys.readouterr().err
    assert errors.startswith(f"corit {command}: error: {message}") and "Traceback" not in errors
    assert not output.exists()

"""`corit train` for long runs: checkpoints, kill and resume, the best checkpoint by validation AUC, early stopping,
and two processes under torchrun."""

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import corit_hf.training.run
from corit_hf.cli import main


SCRIPTS = Path(sysconfig.get_path("scripts"))
TINY = ["--n-train", "32", "--n-test", "16", "--batch-size", "8", "--workers", "0"]


def corit_command(*args: str) -> list[str]:
    return [str(SCRIPTS / "corit"), *args]


def subprocess_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL part-way, then --resume: bit-identical to the uninterrupted run (augmentation, SAM, GSNR on)."""
    run = [*TINY, "--max-steps", "24", "--save-steps", "4", "--augment", "blur-jpeg", "--gsnr-every", "4"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = subprocess.Popen(
        corit_command("train", *run, "--output-dir", str(whole)), env=subprocess_env(), stderr=subprocess.DEVNULL
    )
    victim = subprocess.Popen(
        corit_command("train", *run, "--output-dir", str(killed)), env=subprocess_env(), stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not (killed / "checkpoint-8" / "trainer_state.json").exists():
        assert victim.poll() is None and time.monotonic() < deadline, "the run ended before its second checkpoint"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed / "model.safetensors").exists() and not (killed / "checkpoint-24").exists()
    assert reference.wait(timeout=240) == 0

    resumed = subprocess.run(
        corit_command("train", *run, "--resume", "--output-dir", str(killed)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((killed / "metrics.json").read_text())["resumed_from"].startswith("checkpoint-")
    expected, actual = weights(whole), weights(killed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


@pytest.fixture
def crafted_validation_curve(monkeypatch):
    """Validation AUCs scripted per evaluation instead of measured: 0.6, 0.9, 0.7, 0.8, ..."""
    curve = iter([0.6, 0.9, 0.7, 0.8, 0.75, 0.7])

    def scripted(real_id):
        return lambda prediction: {"auc": next(curve), "ap": 0.5, "accuracy": 0.5}

    monkeypatch.setattr(corit_hf.training.run, "validation_metrics", scripted)


def test_the_saved_model_is_the_best_checkpoint_by_validation_auc(tmp_path, crafted_validation_curve):
    args = ["train", *TINY, "--max-steps", "8", "--eval-steps", "2", "--gsnr-every", "0", "--augment", "none"]
    assert main([*args, "--output-dir", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["best"]["step"] == 4 and metrics["best"]["auc"] == 0.9
    assert [entry["auc"] for entry in metrics["validation_history"]] == [0.6, 0.9, 0.7, 0.8]
    best, saved = weights(tmp_path / "checkpoint-4"), weights(tmp_path)
    assert all(torch.equal(best[name], saved[name]) for name in best)
    assert not all(torch.equal(best[name], tensor) for name, tensor in weights(tmp_path / "checkpoint-8").items())


def test_early_stopping_ends_after_patience_evaluations_without_a_better_auc(tmp_path, crafted_validation_curve):
    args = ["train", *TINY, "--max-steps", "20", "--eval-steps", "2", "--early-stopping-patience", "2"]
    assert main([*args, "--gsnr-every", "0", "--output-dir", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # Best at step 4 (0.9); steps 6 and 8 do not beat it, so training stops at step 8 of 20.
    assert metrics["best"]["step"] == 4 and metrics["train"]["step"] == 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_through_corit_train(tmp_path):
    """Both ranks end with the same weights; rank 0 alone prints the summary and writes the folder."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    launcher += ["--master_port", str(free_port()), "--no-python"]
    command = launcher + corit_command("train", *TINY, "--max-steps", "3", "--gsnr-every", "1", "--output-dir")
    result = subprocess.run(
        [*command, str(tmp_path)], env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("Saved the model") == 1 and result.stdout.count("validation ") == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["replica_weights_identical"] is True
    assert metrics["train"]["step"] == 3

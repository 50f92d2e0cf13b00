"""`corit study --engine ray` on a local Ray of 2 CPUs: the same cells as `--engine local`, each backbone's settings
in its runs, TensorBoard logs per run, a killed worker retried, a stopped driver resumed, a failing run recorded, and
clear errors for a missing extra and misplaced flags.

Runs that fail or die are made by replacing `run_cell` with a closure: Ray ships closures by value, so the workers
run it, and it calls the real `run_cell` once it has done its harm.
"""

import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from datasets import DatasetDict

import corit_hf
from corit_hf.cli import main
from corit_hf.data import build_benchmark, write_benchmark_folder
from corit_hf.study import run as study_run


CONFIGS = ["baseline", "corit"]
TINY = ["--max-steps", "2", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--gsnr-every", "2"]
GRID = ["--rhos", "0", "0.5", "--configs", *CONFIGS]
CELL_NAMES = {f"tiny_{config}_rho{rho}_seed0.json" for config in CONFIGS for rho in ("0", "0.5")}


class DriverStopped(BaseException):
    """Stands for the driver being killed: not an Exception, so nothing on the way catches it."""


def study(output: Path, *engine: str) -> int:
    return main(["study", *TINY, *GRID, *engine, "--output-dir", str(output)])


def ray_study(output: Path) -> int:
    return study(output, "--engine", "ray", "--cpus-per-run", "1")


def cells(output: Path) -> dict[str, dict]:
    """Each cell but its measured step time, which no two runs share."""
    return {
        path.name: {key: value for key, value in json.loads(path.read_text()).items() if key != "step_seconds"}
        for path in (output / "cells").glob("*.json")
    }


def cell_times(output: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (output / "cells").glob("*.json")}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module; its workers import the corit_hf under test, wherever it lives."""
    ray = pytest.importorskip("ray")
    package_root = str(Path(corit_hf.__file__).parents[1])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_cells(tmp_path_factory) -> dict[str, dict]:
    """The tiny study on the local engine, in this process with one torch thread (as --cpus-per-run 1)."""
    output = tmp_path_factory.mktemp("local")
    assert study(output, "--engine", "local", "--workers", "1") == 0
    return cells(output)


def test_ray_engine_gives_the_local_engines_cells(local_ray, local_cells, tmp_path):
    assert ray_study(tmp_path) == 0
    assert set(local_cells) == CELL_NAMES
    assert cells(tmp_path) == local_cells
    summary = json.loads((tmp_path / "study.json").read_text())
    assert list(summary["configs"]) == CONFIGS and summary["failed_runs"] == []


def test_ray_runs_log_to_tensorboard_under_their_cell_names(local_ray, local_cells, tmp_path):
    logs = tmp_path / "logs"
    assert study(tmp_path / "study", "--engine", "ray", "--report-to", "tensorboard", "--logging-dir", str(logs)) == 0
    assert {path.name for path in logs.iterdir()} == {name.removesuffix(".json") for name in CELL_NAMES}
    assert all(list(path.glob("events.out.tfevents.*")) for path in logs.iterdir())
    assert cells(tmp_path / "study") == local_cells  # the trackers change no cell


def test_ray_trains_each_backbone_with_its_own_settings(local_ray, local_cells, tmp_path):
    argv = ["study", *TINY, "--rhos", "0", "--configs", "baseline", "--preset", "tiny", "dinov2-tiny"]
    assert main([*argv, "--engine", "ray", "--cpus-per-run", "1", "--output-dir", str(tmp_path)]) == 0
    ray_cells = cells(tmp_path)
    assert set(ray_cells) == {"tiny_baseline_rho0_seed0.json", "dinov2-tiny_baseline_rho0_seed0.json"}
    assert ray_cells["tiny_baseline_rho0_seed0.json"] == local_cells["tiny_baseline_rho0_seed0.json"]
    assert ray_cells["dinov2-tiny_baseline_rho0_seed0.json"]["settings"]["preset"] == "dinov2-tiny"


def test_ray_trains_a_method_with_its_own_tuning(local_ray, tmp_path):
    argv = ["study", *TINY, "--rhos", "0", "--methods", "univfd", "--engine", "ray", "--cpus-per-run", "1"]
    assert main([*argv, "--output-dir", str(tmp_path)]) == 0
    (cell,) = cells(tmp_path).values()
    assert cell["config"] == "univfd" and cell["settings"]["finetuning"] == "head"
    assert 0 < cell["trainable_parameters"] < local_ray_weights(tmp_path)


def local_ray_weights(output: Path) -> int:
    """The trainable weights of the same run with every weight training (--finetune full), on the local engine."""
    argv = ["study", *TINY, "--rhos", "0", "--methods", "univfd", "--finetune", "full", "--workers", "1"]
    assert main([*argv, "--output-dir", str(output / "full")]) == 0
    return next(iter(cells(output / "full").values()))["trainable_parameters"]


def test_a_killed_worker_is_retried_and_the_study_completes(local_ray, local_cells, tmp_path, monkeypatch):
    killed = tmp_path / "killed"
    run_cell = study_run.run_cell

    def run_cell_dying_once(*args):
        if not killed.exists():
            killed.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return run_cell(*args)

    monkeypatch.setattr(study_run, "run_cell", run_cell_dying_once)
    assert ray_study(tmp_path / "study") == 0
    assert killed.exists()
    assert cells(tmp_path / "study") == local_cells


def test_a_stopped_driver_resumes_with_the_missing_runs_only(local_ray, local_cells, tmp_path, monkeypatch):
    write_json = study_run.write_json

    def write_then_stop(path, data):
        write_json(path, data)
        raise DriverStopped

    monkeypatch.setattr(study_run, "write_json", write_then_stop)
    with pytest.raises(DriverStopped):
        ray_study(tmp_path)
    monkeypatch.undo()
    first = cell_times(tmp_path)
    assert len(first) == 1

    assert ray_study(tmp_path) == 0
    after = cell_times(tmp_path)
    assert set(after) == CELL_NAMES
    assert {name: after[name] for name in first} == first
    assert cells(tmp_path) == local_cells


@pytest.mark.parametrize(
    "engine", [("--engine", "local", "--workers", "1"), ("--engine", "ray")], ids=("local", "ray")
)
def test_a_failing_run_is_recorded_and_the_others_complete(engine, request, tmp_path, monkeypatch, capsys):
    if "ray" in engine:
        request.getfixturevalue("local_ray")
    attempts = tmp_path / "attempts"
    run_cell = study_run.run_cell

    def run_cell_failing_for_corit_at_half(settings, backbone, splits, config, rho, seed):
        if (config, rho) == ("corit", 0.5):
            with attempts.open("a") as log:
                log.write("attempt\n")
            raise RuntimeError("out of memory, say")
        return run_cell(settings, backbone, splits, config, rho, seed)

    monkeypatch.setattr(study_run, "run_cell", run_cell_failing_for_corit_at_half)
    assert study(tmp_path / "study", *engine) == 1
    assert "run corit rho=0.5 seed=0 failed: RuntimeError: out of memory, say" in capsys.readouterr().err
    assert attempts.read_text() == "attempt\n"  # a Python exception is not retried
    assert set(cells(tmp_path / "study")) == CELL_NAMES - {"tiny_corit_rho0.5_seed0.json"}
    summary = json.loads((tmp_path / "study" / "study.json").read_text())
    [failure] = summary["failed_runs"]
    assert (failure["config"], failure["rho"], failure["seed"]) == ("corit", 0.5, 0)
    assert failure["error"] == "RuntimeError: out of memory, say"
    assert "run_cell_failing_for_corit_at_half" in failure["traceback"]
    assert list(summary["configs"]) == ["baseline"]
    assert "- corit rho=0.5 seed=0: RuntimeError: out of memory, say" in (tmp_path / "study" / "study.md").read_text()


def test_a_gpu_request_on_a_cpu_only_cluster_is_refused(local_ray, tmp_path, capsys):
    assert study(tmp_path, "--engine", "ray", "--gpus-per-run", "1") == 2
    assert "--gpus-per-run 1 asks for more GPUs than any Ray node has" in capsys.readouterr().err


def test_ray_engine_without_ray_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert study(tmp_path, "--engine", "ray") == 2
    assert "pip install 'corit-hf[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "cells").exists()


@pytest.mark.parametrize(
    ("address", "message"),
    [("127.0.0.1:{port}", "no Ray cluster at --ray-address 127.0.0.1:"), ("head-node", "must be auto or HOST:PORT")],
)
def test_a_ray_address_with_no_cluster_is_one_clear_error(tmp_path, capsys, address, message):
    with socket.socket() as unused:  # bound, never listening: a connection to it is refused at once
        unused.bind(("127.0.0.1", 0))
        address = address.format(port=unused.getsockname()[1])
        assert study(tmp_path, "--engine", "ray", "--ray-address", address) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cells").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--engine", "local", "--gpus-per-run", "1"], "--gpus-per-run: for --engine ray only"),
        (["--ray-address", "auto"], "--ray-address: for --engine ray only"),
        (["--engine", "ray", "--workers", "2"], "--workers: for --engine local only"),
    ],
)
def test_flags_of_the_other_engine_are_refused(tmp_path, capsys, flags, message):
    assert study(tmp_path, *flags) == 2
    assert message in capsys.readouterr().err


def test_a_study_on_a_folder_gives_the_same_cells_on_ray(local_ray, tmp_path):
    """Folder data stays lazy (files read by each run's DataLoader) and travels to Ray's workers as it is."""
    splits = build_benchmark(n_train=16, n_test=8, test_families=["gan", "vae"], progress=False)
    write_benchmark_folder(DatasetDict({name: splits[name] for name in ("train", "validation")}), tmp_path / "data")
    write_benchmark_folder(DatasetDict({"test": splits["test_vae"]}), tmp_path / "vae")
    flags = ["--data", str(tmp_path / "data"), "--test-data", str(tmp_path / "vae"), "--data-workers", "0"]
    assert study(tmp_path / "local", *flags, "--engine", "local", "--workers", "1") == 0
    assert study(tmp_path / "ray", *flags, "--engine", "ray", "--cpus-per-run", "1") == 0
    assert set(cells(tmp_path / "ray")) == CELL_NAMES
    assert cells(tmp_path / "ray") == cells(tmp_path / "local")
    assert list(cells(tmp_path / "ray")["tiny_corit_rho0.5_seed0.json"]["splits"]) == ["validation", "test_vae"]

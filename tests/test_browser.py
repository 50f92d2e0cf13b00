"""`corit serve` in a subprocess, loaded by headless Chromium: the page shows the app's title and its input."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _app_inputs import free_port, save_tiny_model

from corit_hf.app.space import TITLE


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (`apt-get install -y chromium`); the browser test needs it"
)
STARTUP_DEADLINE_S = 180  # only guards against a hung server; startup normally takes seconds


def chromium_dom(url: str, profile: Path) -> str:
    """The DOM of `url` after 20 s of virtual time; every host but 127.0.0.1 is unresolvable."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    """Poll `url` until it answers 200; fail with the server's log if the process exits first."""
    stop = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < stop:
        if process.poll() is not None:
            pytest.fail(f"corit serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"corit serve did not answer within {STARTUP_DEADLINE_S} s:\n{log.read_text()}")


@pytest.fixture
def served_app(tmp_path: Path):
    """`corit serve MODEL --port PORT` running in a subprocess; yields (url, model folder)."""
    model = save_tiny_model(tmp_path / "model")
    port, log = free_port(), tmp_path / "serve.log"
    command = [sys.executable, "-m", "corit_hf.cli", "serve", str(model), "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, process, log)
        yield url, model
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_page_shows_title_model_and_file_input(served_app, tmp_path):
    url, model = served_app

    dom = chromium_dom(url, tmp_path / "chromium-profile")

    assert f"<title>{TITLE}</title>" in dom
    assert f"<h1>{TITLE}</h1>" in dom
    assert f"Model: <code>{model}</code>" in dom
    assert 'data-testid="file-upload" multiple=""' in dom
    assert ">Analyse<" in dom

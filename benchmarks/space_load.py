"""Latency of the demo app under concurrent load: N gradio_client clients each sending M requests.

The app runs as `corit serve` in its own process (as on a Space), so the clients' threads do not share its
interpreter. Each request uploads one image (the app's 256x256 example photo), waits in the app's queue, runs
the tiny preset on CPU and downloads the heatmap strip, as a browser would. Prints the median and the 95th
percentile of the per-request latency seen by the clients, the throughput, and the same latency for one
client alone (the idle baseline) with the ratio between the two.

    python benchmarks/space_load.py [--clients 16] [--requests 5]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from gradio_client import Client, handle_file

from corit_hf import CoritConfig, CoritForImageClassification
from corit_hf.app.space import CONCURRENCY_LIMIT, example_files


def timed_session(url: str, image: Path, requests: int) -> list[float]:
    """One client sending `requests` sequential requests; the latency of each, in seconds."""
    client = Client(url, verbose=False)
    latencies = []
    for _ in range(requests):
        start = time.perf_counter()
        status = client.predict([handle_file(str(image))], api_name="/analyse")[0]
        latencies.append(time.perf_counter() - start)
        if not status.startswith("Analysed 1 image"):
            raise RuntimeError(f"Unexpected answer: {status}")
    return latencies


def start_server(model_dir: Path) -> tuple[subprocess.Popen, str]:
    """`corit serve MODEL` on a free port; returns the process and its URL once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "corit_hf.cli", "serve", str(model_dir), "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    while process.poll() is None:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    raise RuntimeError(f"corit serve exited with {process.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5, help="requests per client")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        CoritForImageClassification(CoritConfig.from_preset("tiny")).save_pretrained(model_dir)
        process, url = start_server(model_dir)
        image = example_files()[0]
        try:
            timed_session(url, image, 2)  # warm-up
            idle = np.array(timed_session(url, image, args.requests * 2))
            start = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                sessions = pool.map(lambda _: timed_session(url, image, args.requests), range(args.clients))
                latencies = np.array([latency for session in sessions for latency in session])
            wall = time.perf_counter() - start
        finally:
            process.terminate()
            process.wait()

    print(
        f"demo app (corit serve), tiny preset, {args.clients} clients x {args.requests} requests, queue "
        f"concurrency {CONCURRENCY_LIMIT}, {os.cpu_count()} CPUs"
    )
    print(f"requests:        {latencies.size}")
    print(f"median latency:  {np.median(latencies):.3f} s")
    print(f"p95 latency:     {np.percentile(latencies, 95):.3f} s")
    print(f"max latency:     {latencies.max():.3f} s")
    print(f"throughput:      {latencies.size / wall:.1f} requests/s ({wall:.1f} s wall)")
    print(f"idle median:     {np.median(idle):.3f} s (one client alone, {idle.size} requests)")
    print(f"median / idle:   {np.median(latencies) / np.median(idle):.1f}x")


if __name__ == "__main__":
    main()

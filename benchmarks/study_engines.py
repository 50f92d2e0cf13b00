"""Wall time of `corit study` on the Ray engine (a local Ray started for the study) against the local process pool,
measured in one run on this machine, and Ray's start-up time.

Both engines train every run with the same torch threads (the pool: CPUs / workers; Ray: 1 CPU per run), so they
must also write the same cells, which is checked. Prints seconds and the ratio; no assertion.

    python benchmarks/study_engines.py [--steps 100] [--configs baseline corit] [--rhos 0 0.5]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from corit_hf import defaults
from corit_hf.study.engines import LocalEngine, RayEngine
from corit_hf.study.run import StudySettings, run_study


def time_study(settings: StudySettings, engine, output_dir: Path) -> float:
    """Seconds to run every cell of `settings` from scratch on `engine`, Ray's start and stop included."""
    start = time.perf_counter()
    run_study(settings, output_dir, engine=engine, progress=False)
    return time.perf_counter() - start


def ray_start_and_stop() -> tuple[float, float]:
    """Seconds to start a local Ray the way the Ray engine does, and to stop it."""
    import ray

    start = time.perf_counter()
    ray.init()
    started = time.perf_counter()
    ray.shutdown()
    return started - start, time.perf_counter() - started


def same_cells(first: Path, second: Path) -> tuple[int, int]:
    """How many cell files of `first` have the same content in `second`, out of how many."""
    names = sorted(path.name for path in (first / "cells").glob("*.json"))
    same = sum(_cell(first, name) == _cell(second, name) for name in names)
    return same, len(names)


def _cell(output_dir: Path, name: str) -> dict:
    return json.loads((output_dir / "cells" / name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=defaults.STUDY_MAX_STEPS)
    parser.add_argument("--configs", nargs="+", default=list(defaults.STUDY_CONFIGS))
    parser.add_argument("--rhos", type=float, nargs="+", default=list(defaults.STUDY_RHOS))
    args = parser.parse_args()
    settings = StudySettings(rhos=args.rhos, configs=args.configs, max_steps=args.steps)
    local, ray = LocalEngine(), RayEngine(cpus_per_run=1)
    with tempfile.TemporaryDirectory() as scratch:
        local_dir, ray_dir = Path(scratch, "local"), Path(scratch, "ray")
        local_seconds = time_study(settings, local, local_dir)
        ray_seconds = time_study(settings, ray, ray_dir)
        same, cells = same_cells(local_dir, ray_dir)
    start_seconds, stop_seconds = ray_start_and_stop()
    threads = max(1, (os.cpu_count() or 1) // local.workers)
    print(f"{cells} runs of {args.steps} steps on {os.cpu_count()} CPUs")
    print(f"local engine, {local.workers} workers x {threads} thread(s): {local_seconds:6.1f} s")
    print(f"ray engine, local Ray, 1 CPU per run:     {ray_seconds:6.1f} s (start and stop included)")
    print(f"ray / local: {ray_seconds / local_seconds:.3f}x")
    print(f"Ray start-up (ray.init of a local Ray): {start_seconds:.1f} s; shutdown: {stop_seconds:.1f} s")
    print(f"cells identical across engines: {same}/{cells}")


if __name__ == "__main__":
    main()

"""Wall time of `corit study` on the Ray engine (a local Ray started for the study) against the local process pool,
measured in one run on this machine, and Ray's start-up time.

Both engines train every run with the same torch threads (the pool: CPUs / workers; Ray: 1 CPU per run), so they
must also write the same cells, which is checked. Every study builds its benchmark afresh, as `corit study` does in a
new folder. Prints seconds and the ratio; no assertion.

    python benchmarks/study_engines.py [--steps 100] [--configs baseline corit] [--rhos 0 0.5] [--rounds 2]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from corit_hf import defaults
from corit_hf.study.data import load_study_data
from corit_hf.study.engines import LocalEngine, RayEngine
from corit_hf.study.run import run_study
from corit_hf.study.settings import StudySettings


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
    parser.add_argument("--rounds", type=int, default=1, help="studies per engine, in the order AB BA AB ...")
    args = parser.parse_args()
    settings = StudySettings(rhos=args.rhos, configs=args.configs, max_steps=args.steps)
    engines = {"local": LocalEngine(), "ray": RayEngine(cpus_per_run=1)}
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    with tempfile.TemporaryDirectory() as scratch:
        # The first study must not pay this process's imports.
        load_study_data(settings, settings.backbones[0], Path(scratch, "warm-up"))
        for round_ in range(args.rounds):  # alternating the order spreads a machine load that drifts over both
            for name in list(engines)[:: 1 if round_ % 2 == 0 else -1]:
                seconds[name].append(time_study(settings, engines[name], Path(scratch, f"{name}{round_}")))
        same, cells = same_cells(Path(scratch, "local0"), Path(scratch, "ray0"))
    start_seconds, stop_seconds = ray_start_and_stop()
    workers = engines["local"].workers
    threads = max(1, (os.cpu_count() or 1) // workers)
    print(f"{cells} runs of {args.steps} steps on {os.cpu_count()} CPUs, {args.rounds} round(s)")
    print(f"local engine, {workers} workers x {threads} thread(s): {_seconds(seconds['local'])}")
    print(f"ray engine, local Ray, 1 CPU per run (its start and stop included): {_seconds(seconds['ray'])}")
    print(f"ray / local (total time): {sum(seconds['ray']) / sum(seconds['local']):.3f}x")
    print(f"Ray start-up (ray.init of a local Ray): {start_seconds:.1f} s; shutdown: {stop_seconds:.1f} s")
    print(f"cells identical across engines: {same}/{cells}")


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{value:.1f} s" for value in values)


if __name__ == "__main__":
    main()

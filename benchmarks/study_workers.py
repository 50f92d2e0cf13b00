"""Wall time of a small `corit study` grid in one process versus a pool of single-threaded workers.

Why `corit study` defaults to one worker per CPU (at most 4), each with one torch thread: the tiny model's
matrices are too small for intra-op threads to pay off, and on a busy machine two OpenMP threads spin against other
processes. Prints seconds per configuration and the ratio; no assertion.

    python benchmarks/study_workers.py [--workers 2] [--steps 100]
"""

import argparse
import os
import tempfile
import time

from corit_hf import defaults
from corit_hf.study.engines import LocalEngine
from corit_hf.study.run import run_study
from corit_hf.study.settings import StudySettings


def time_study(settings: StudySettings, workers: int) -> float:
    """Seconds to run every cell of `settings` from scratch with `workers` processes (1 = in this process)."""
    with tempfile.TemporaryDirectory() as output_dir:
        start = time.perf_counter()
        run_study(settings, output_dir, engine=LocalEngine(workers), progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=max(2, min(4, os.cpu_count() or 1)))
    parser.add_argument("--steps", type=int, default=defaults.STUDY_MAX_STEPS)
    args = parser.parse_args()
    settings = StudySettings(
        rhos=[0.0, 0.1, 0.5, 1.0], configs=["baseline", "corit"], max_steps=args.steps, n_train=128, n_test=64
    )
    runs = len(settings.cells())
    single = time_study(settings, workers=1)
    pooled = time_study(settings, workers=args.workers)
    print(f"{runs} runs of {args.steps} steps on {os.cpu_count()} CPUs")
    print(f"one process, default torch threads: {single:6.1f} s")
    print(f"{args.workers} workers, one thread each: {pooled:6.1f} s")
    print(f"speed-up: {single / pooled:.2f}x")


if __name__ == "__main__":
    main()

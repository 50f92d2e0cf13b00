"""Images per second of the offline forensic benchmark, per forgery family, at 64 and 224 px.

Two figures per family: `forge` is the family function alone on ready-made real crops; `build` is
`build_benchmark` end to end for a test split (half real, half fake: crops, forgery, size/moment calibration,
encoding, Dataset creation), divided by the number of images in it. Run: python benchmarks/data_speed.py
"""

import argparse
import time

import numpy as np

from corit_hf.data import FAMILIES, build_benchmark
from corit_hf.data.benchmark.sources import bundled_photos, real_crop


def forge_rate(family: str, size: int, count: int) -> float:
    """Images per second of one family's forge function on `count` real crops."""
    crops = [real_crop(size, np.random.default_rng(index)) for index in range(count)]
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for crop in crops:
        FAMILIES[family](crop, rng)
    return count / (time.perf_counter() - start)


def build_rate(family: str, size: int, count: int) -> float:
    """Images per second of `build_benchmark` for a `count`-image test split of one family."""
    start = time.perf_counter()
    build_benchmark(family, [family], n_train=2, n_validation=2, n_test=count, size=size, seed=1, progress=False)
    return (count + 4) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--count", type=int, default=100, help="images per measurement")
    args = parser.parse_args()
    bundled_photos()  # load the photos once, outside the timings
    print(f"{'family':<10} {'size':>5} {'forge img/s':>12} {'build img/s':>12}")
    for size in args.sizes:
        for family in sorted(FAMILIES):
            forge = forge_rate(family, size, args.count)
            build = build_rate(family, size, args.count)
            print(f"{family:<10} {size:>5} {forge:>12.0f} {build:>12.0f}")


if __name__ == "__main__":
    main()

"""Forward-time ratio of CoRIT to the plain CLIP linear-probe baseline on the same backbone.

CGP is one dot product per patch token and needs no backward pass, so the ratio should stay near 1
(target <= 1.10). Both models share the same random-init weights; the variants are interleaved and the
median of several runs in this one process is reported.

    python benchmarks/forward_cost.py [--preset clip-vit-b16] [--batch 8] [--repeats 7]
"""

import argparse
import statistics
import time

import torch

from corit_hf import CoritConfig, CoritForImageClassification


BASELINE = {"hri_layers": [-1], "use_cgp_mask": False, "rsi_strength": 0.0}


def time_forward(model: CoritForImageClassification, pixels: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model(pixels)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="clip-vit-b16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(0)
    corit = CoritForImageClassification(CoritConfig.from_preset(args.preset)).eval()
    baseline = CoritForImageClassification(CoritConfig.from_preset(args.preset, **BASELINE)).eval()
    baseline.load_state_dict(corit.state_dict())
    size = corit.config.vision_config.image_size
    pixels = torch.randn(args.batch, 3, size, size)

    time_forward(corit, pixels), time_forward(baseline, pixels)  # warm-up
    corit_times, baseline_times = [], []
    for repeat in range(args.repeats):
        # Alternate which model runs first so neither always pays for the other's cache state.
        order = [(baseline, baseline_times), (corit, corit_times)]
        for model, times in order if repeat % 2 == 0 else order[::-1]:
            times.append(time_forward(model, pixels))
    corit_median, baseline_median = statistics.median(corit_times), statistics.median(baseline_times)
    print(f"preset={args.preset} batch={args.batch} repeats={args.repeats} threads={torch.get_num_threads()}")
    print(f"baseline forward median: {baseline_median * 1000:.1f} ms")
    print(f"CoRIT forward median:    {corit_median * 1000:.1f} ms (HRI layers {corit.config.hri_layers})")
    print(f"CoRIT / baseline forward time ratio: {corit_median / baseline_median:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()

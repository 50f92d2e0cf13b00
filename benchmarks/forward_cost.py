"""Per backbone family on its B-sized shape: CoRIT's forward time over the plain linear-probe baseline's on the same
backbone, and the SAM/plain ratio of a CoRIT training step, measured in one run.

CGP is one dot product per patch token and needs no backward pass, so the forward ratio should stay near 1
(target <= 1.10 for each family); a SAM step is two forward/backward passes (bound 2.0). CoRIT and the baseline share
the same random-init weights; the variants are interleaved repetition by repetition (the first is a discarded
warm-up) and their medians compared. Time is this process's CPU time on one intra-op thread by default (`--threads`),
which other jobs on a shared machine disturb far less than wall time.

    python benchmarks/forward_cost.py                      # every family's B/16 shape (DINOv2: B/14)
    python benchmarks/forward_cost.py --presets tiny dinov2-tiny --repeats 15
"""

import argparse
import statistics
import tempfile
import time

import torch
from step_cost import make_trainer, timed_step

from corit_hf import CoritConfig, CoritForImageClassification
from corit_hf.models.modeling_corit import input_size


BASELINE = {"hri_layers": [-1], "use_cgp_mask": False, "rsi_strength": 0.0}
B_PRESETS = ["clip-vit-b16", "siglip-vit-b16", "dinov2-vit-b14", "dinov2-reg-vit-b14", "dinov3-vit-b16", "vit-b16"]


def time_forward(model: CoritForImageClassification, pixels: torch.Tensor) -> float:
    start = time.process_time()
    with torch.inference_mode():
        model(pixels)
    return time.process_time() - start


def interleaved_medians(variants: dict, run, repeats: int) -> dict[str, float]:
    """Median of `run(variant)` per variant; the order alternates so neither always pays for the other's caches."""
    times = {name: [] for name in variants}
    for repeat in range(repeats + 1):
        order = list(variants.items())
        for name, variant in order if repeat % 2 == 0 else order[::-1]:
            elapsed = run(variant)
            if repeat:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(preset: str, batch: int, repeats: int, step_repeats: int) -> dict:
    """Forward medians of CoRIT and the baseline, and step medians of plain and SAM training, for one preset."""
    torch.manual_seed(0)
    corit = CoritForImageClassification(CoritConfig.from_preset(preset)).eval()
    baseline = CoritForImageClassification(CoritConfig.from_preset(preset, **BASELINE)).eval()
    baseline.load_state_dict(corit.state_dict())
    size = input_size(corit.config)
    pixels = torch.randn(batch, 3, size, size)
    forward = interleaved_medians({"baseline": baseline, "corit": corit}, lambda m: time_forward(m, pixels), repeats)

    steps_batch = {"pixel_values": pixels, "labels": torch.arange(batch) % 2}
    with tempfile.TemporaryDirectory() as output_dir:
        plain = make_trainer(corit.train(), output_dir, None, sam_rho=0.0)
        trainers = {"plain": plain, "sam": make_trainer(corit, output_dir, plain.optimizer, sam_rho=0.05)}
        steps = interleaved_medians(trainers, lambda trainer: timed_step(trainer, steps_batch), step_repeats)
    return {"family": corit.config.vision_config.model_type, "size": size, **forward, **steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=B_PRESETS)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="forward repetitions of each model")
    parser.add_argument("--step-repeats", type=int, default=3, help="training steps of each kind")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"batch={args.batch} repeats={args.repeats} step_repeats={args.step_repeats} threads={args.threads}")
    print("medians of CPU time, interleaved; targets: CoRIT/baseline <= 1.10, SAM/plain <= 2.10 (bound 2.0)")
    columns = ["baseline s", "CoRIT s", "CoRIT/base", "plain step s", "SAM step s", "SAM/plain"]
    print(f"{'preset':<19} {'model_type':<22} {'px':>4} " + " ".join(f"{name:>12}" for name in columns))
    for preset in args.presets:
        r = measure(preset, args.batch, args.repeats, args.step_repeats)
        values = [r["baseline"], r["corit"], r["corit"] / r["baseline"], r["plain"], r["sam"], r["sam"] / r["plain"]]
        cells = " ".join(f"{value:>12.3f}" for value in values)
        print(f"{preset:<19} {r['family']:<22} {r['size']:>4} {cells}", flush=True)


if __name__ == "__main__":
    main()

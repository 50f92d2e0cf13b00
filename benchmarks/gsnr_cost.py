"""Where the extra time of microbatch GSNR on every SAM step goes: chunking, moment updates, per-layer GSNR, logging.

Under SAM the microbatch estimator *is* the ascent pass: its k chunk forward/backward passes replace SAM's first
full-batch pass. The extra cost of a SAM + GSNR step over a SAM step therefore splits into
  chunking     k passes over chunks of the batch minus one pass over the whole batch (the estimator's floor),
  moments      merging the k chunk gradients into running means and squared deviations,
  per-layer    turning the moments into one GSNR per layer,
  log/rest     the forked RNG, the cross-process mean and `Trainer.log`.
Each part is timed on its own, interleaved with the others, as the median CPU time on one thread (see step_cost.py);
the floor ratio is (SAM step + chunking) / SAM step, what no bookkeeping change can go below.

    python benchmarks/gsnr_cost.py                     # tiny, batch 16, 4 chunks
    python benchmarks/gsnr_cost.py --preset clip-vit-b16 --batch-size 4 --reps 5
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from step_cost import make_trainer, timed_step

from corit_hf import CoritConfig, CoritForImageClassification
from corit_hf.training.gsnr import gsnr_by_layer, microbatch_moments, split_batch, trainable_parameters


def median_times(parts: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median CPU seconds of each part, the parts interleaved repetition by repetition (first one discarded)."""
    times = {name: [] for name in parts}
    for rep in range(reps + 1):
        for name, part in parts.items():
            start = time.process_time()
            part()
            if rep:
                times[name].append(time.process_time() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(preset: str, batch_size: int, chunks: int, reps: int) -> None:
    torch.manual_seed(0)
    config = CoritConfig.from_preset(preset)
    model = CoritForImageClassification(config).train()
    size = config.vision_config.image_size
    batch = {"pixel_values": torch.randn(batch_size, 3, size, size), "labels": torch.arange(batch_size) % 2}
    names, params = trainable_parameters(model)
    gsnr = {"gsnr_every": 1, "gsnr_estimator": "microbatch", "gsnr_chunks": chunks}
    with tempfile.TemporaryDirectory() as output_dir:
        sam = make_trainer(model, output_dir, None, sam_rho=0.05)
        sam_gsnr = make_trainer(model, output_dir, sam.optimizer, sam_rho=0.05, **gsnr)
        probe = make_trainer(model, output_dir, sam.optimizer, sam_rho=0.05, **gsnr)  # its own GSNR step counter

        def one_pass(piece: dict[str, torch.Tensor]) -> None:
            probe._backward_gradients(probe._mean_loss(model, piece), params)

        def moments():
            generator = torch.Generator().manual_seed(0)
            return microbatch_moments(model, probe._mean_loss, batch, chunks, probe._backward_gradients, generator)

        kept = moments()
        parts = {
            "full pass": lambda: one_pass(batch),
            "chunk passes": lambda: [one_pass(chunk) for chunk, _ in split_batch(batch, chunks, torch.Generator())],
            "moments": moments,
            "per-layer": lambda: gsnr_by_layer(kept, names),
            "gsnr pass": lambda: probe._gsnr_pass(model, batch),
            "sam step": lambda: timed_step(sam, batch),
            "sam+gsnr step": lambda: timed_step(sam_gsnr, batch),
        }
        median = median_times(parts, reps)
    chunking = median["chunk passes"] - median["full pass"]
    rows = {
        "chunking (k chunk passes - 1 full pass)": chunking,
        "moment updates": median["moments"] - median["chunk passes"],
        "per-layer GSNR": median["per-layer"],
        "log, reduce, forked RNG": median["gsnr pass"] - median["moments"] - median["per-layer"],
    }
    print(
        f"preset={preset} batch={batch_size} chunks={chunks} reps={reps} threads={torch.get_num_threads()} "
        f"SAM step={median['sam step'] * 1000:.1f} ms CPU (medians, interleaved)"
    )
    print(f"  SAM + GSNR / SAM                          {median['sam+gsnr step'] / median['sam step']:6.3f}")
    print(f"  floor: (SAM + chunking) / SAM             {(median['sam step'] + chunking) / median['sam step']:6.3f}")
    for label, seconds in rows.items():
        print(f"  {label:<40} {seconds * 1000:7.2f} ms  ({seconds / median['sam step']:.1%} of a SAM step)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=4, help="gsnr_chunks of the microbatch estimator")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    measure(args.preset, args.batch_size, args.chunks, args.reps)


if __name__ == "__main__":
    main()

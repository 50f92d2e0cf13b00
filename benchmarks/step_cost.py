"""Cost of a CoritTrainer step: SAM and LookSAM vs plain, GSNR logging vs none, the per_sample GSNR estimator, and
each method's step (what it trains, its features and losses) relative to full fine-tuning.

Each variant is one optimizer step (training_step + AdamW step + zero_grad) on the same model and batch; LookSAM
(`sam_ascent_every` = k) is timed over a whole cycle of k steps (one full SAM step, k - 1 one-pass steps) and
divided by k. Variants are interleaved repetition by repetition (the first repetition is a discarded warm-up) and
the median time of each is compared, in one process, so that machine load drifts hit all variants alike. Time is
this process's CPU time on one intra-op thread by default (`--threads`), which other jobs on a shared machine
disturb far less than wall time. SAM's physical bound is 2.0 (two forward/backward passes) and LookSAM's 1 + 1/k;
the targets are SAM / plain <= 2.10, LookSAM k = 5 / plain <= 1.25 and SAM with microbatch GSNR on every step /
SAM <= 1.10. The methods are timed the same way, one plain step each (rho = 0; SAM doubles every method's passes
alike), against `baseline` with full fine-tuning: the same features (the final class token) with every weight
training; the expected order is univfd < gend < lora <= effort < full.

    python benchmarks/step_cost.py                       # tiny and ViT-B/16-shaped presets, methods on B/16
    python benchmarks/step_cost.py --presets tiny --reps 20 --ascent-every 5 --method-presets
    python benchmarks/step_cost.py --presets --method-presets clip-vit-b16 dinov2-vit-b14
"""

import argparse
import statistics
import tempfile
import time
import warnings

import torch

from corit_hf import CoritConfig, CoritForImageClassification
from corit_hf.models.finetuning import apply_finetuning, trainable_parameter_count
from corit_hf.training.gsnr import layer_gsnr
from corit_hf.training.methods import get_method
from corit_hf.training.run import build_detector
from corit_hf.training.trainer import CoritTrainer, CoritTrainingArguments


FULL = "baseline"
"""The reference of the method costs: the class-token head with every weight training."""
METHODS = ("univfd", "gend", "lora", "effort", "corit")


def make_trainer(model, output_dir: str, optimizer: torch.optim.Optimizer | None, **sam_gsnr) -> CoritTrainer:
    """A trainer that only runs steps by hand; all trainers of one model share one optimizer."""
    args = CoritTrainingArguments(
        output_dir=output_dir, report_to="none", use_cpu=True, logging_strategy="no", **sam_gsnr
    )
    trainer = CoritTrainer(model, args)
    if optimizer is None:
        trainer.create_optimizer()
    else:
        trainer.optimizer = optimizer
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which the benchmark bypasses
    return trainer


def timed_step(trainer: CoritTrainer, batch: dict[str, torch.Tensor]) -> float:
    """Seconds for one optimizer step, advancing global_step so that `gsnr_every=1` is due every time."""
    start = time.process_time()
    trainer.training_step(trainer.model, batch)
    trainer.optimizer.step()
    trainer.model.zero_grad()
    elapsed = time.process_time() - start
    trainer.state.global_step += 1
    return elapsed


def timed_cycle(trainer: CoritTrainer, batch: dict[str, torch.Tensor]) -> float:
    """Seconds per step over one LookSAM cycle: `sam_ascent_every` steps, starting with the full SAM step."""
    every = trainer.args.sam_ascent_every
    return sum(timed_step(trainer, batch) for _ in range(every)) / every


def measure(preset: str, batch_size: int, reps: int, chunks: int, per_sample_chunks: int, ascent_every: int) -> None:
    torch.manual_seed(0)
    config = CoritConfig.from_preset(preset)
    model = CoritForImageClassification(config).train()
    size = config.vision_config.image_size
    batch = {"pixel_values": torch.randn(batch_size, 3, size, size), "labels": torch.arange(batch_size) % 2}
    gsnr = {"gsnr_every": 1, "gsnr_estimator": "microbatch", "gsnr_chunks": chunks}
    with tempfile.TemporaryDirectory() as output_dir:
        plain = make_trainer(model, output_dir, None, sam_rho=0.0)
        variants = {
            "plain": plain,
            "sam": make_trainer(model, output_dir, plain.optimizer, sam_rho=0.05),
            "sam+gsnr": make_trainer(model, output_dir, plain.optimizer, sam_rho=0.05, **gsnr),
            "plain+gsnr": make_trainer(model, output_dir, plain.optimizer, sam_rho=0.0, **gsnr),
            "looksam": make_trainer(model, output_dir, plain.optimizer, sam_rho=0.05, sam_ascent_every=ascent_every),
        }
        times = {name: [] for name in [*variants, "per_sample"]}
        for rep in range(reps + 1):
            for name, trainer in variants.items():
                elapsed = timed_cycle(trainer, batch) if name == "looksam" else timed_step(trainer, batch)
                if rep:
                    times[name].append(elapsed)
            start = time.process_time()
            layer_gsnr(model, None, batch, estimator="per_sample", chunks=per_sample_chunks)
            if rep:
                times["per_sample"].append(time.process_time() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    rows = [
        ("SAM / plain", median["sam"] / median["plain"], "bound 2.0, target <= 2.10"),
        (
            f"LookSAM k={ascent_every} / plain",
            median["looksam"] / median["plain"],
            f"bound {1 + 1 / ascent_every:.2f}, target <= 1.25 at k=5",
        ),
        ("SAM + microbatch GSNR every step / SAM", median["sam+gsnr"] / median["sam"], f"k={chunks}, target <= 1.10"),
        (
            "plain + microbatch GSNR every step / plain",
            median["plain+gsnr"] / median["plain"],
            "rho=0: the estimator needs its own chunked pass",
        ),
        (
            "per_sample GSNR estimate / plain step",
            median["per_sample"] / median["plain"],
            f"{per_sample_chunks} chunk(s)",
        ),
    ]
    print(
        f"preset={preset} batch={batch_size} reps={reps} threads={torch.get_num_threads()} "
        f"plain step={median['plain']:.4f}s CPU (medians, interleaved)"
    )
    for label, ratio, note in rows:
        print(f"  {label:<44} {ratio:6.3f}  ({note})")


def measure_methods(preset: str, batch_size: int, reps: int) -> None:
    """Each method's plain optimizer step against full fine-tuning (`FULL`), interleaved, medians of CPU time."""
    torch.manual_seed(0)
    size = CoritConfig.from_preset(preset).vision_config.image_size
    batch = {"pixel_values": torch.randn(batch_size, 3, size, size), "labels": torch.arange(batch_size) % 2}
    trainers, trainable = {}, {}
    with tempfile.TemporaryDirectory() as output_dir:
        for name in (FULL, *METHODS):
            method = get_method(name)
            tuning = "full" if name == FULL else method.finetuning
            model = apply_finetuning(build_detector(preset, method=name), tuning).train()
            trainable[name] = trainable_parameter_count(model)
            trainers[name] = make_trainer(model, output_dir, None, sam_rho=0.0)
        times = {name: [] for name in trainers}
        for rep in range(reps + 1):
            for name, trainer in trainers.items():
                elapsed = timed_step(trainer, batch)
                if rep:
                    times[name].append(elapsed)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"methods: preset={preset} batch={batch_size} reps={reps} threads={torch.get_num_threads()} "
        f"full step ({FULL}, all weights)={median[FULL]:.3f}s CPU (medians, interleaved)"
    )
    for name in (FULL, *METHODS):
        label = f"{name} ({'full' if name == FULL else get_method(name).finetuning})"
        print(f"  {label:<22} {median[name] / median[FULL]:6.3f} x full   {trainable[name]:>11,} trainable weights")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="*", default=["tiny", "clip-vit-b16"])
    parser.add_argument(
        "--method-presets", nargs="*", default=["clip-vit-b16"], help="presets to time every method on"
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default: 15 for tiny, 5 otherwise)")
    parser.add_argument("--chunks", type=int, default=4, help="gsnr_chunks of the microbatch estimator")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--ascent-every", type=int, default=5, help="LookSAM's k (sam_ascent_every)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="There is a performance drop")  # functorch fallbacks (per_sample)
    for preset in args.presets:
        tiny = preset == "tiny"
        reps = args.reps or (15 if tiny else 5)
        measure(
            preset,
            batch_size=16 if tiny else 4,
            reps=reps,
            chunks=args.chunks,
            per_sample_chunks=1 if tiny else 2,
            ascent_every=args.ascent_every,
        )
    for preset in args.method_presets:
        tiny = preset in ("tiny", "dinov2-tiny") or preset.endswith("-tiny")
        measure_methods(preset, batch_size=16 if tiny else 4, reps=args.reps or (15 if tiny else 5))


if __name__ == "__main__":
    main()

"""Images per second of `corit train`'s input pipeline: JPEG files on disk, decoded, augmented (blur+JPEG, random
crop, flip) and preprocessed at 224 px by DataLoader workers, and how many workers would feed 2,000 images/s.

It writes `--count` JPEG files (256 px, the size of ProGAN training images, half real and half fake) into a
temporary folder, loads it with `load_forensic_folder`, and times full passes of the DataLoader that `corit train`
builds (AugmentedDataset + ForensicCollator with the CLIP ViT-B/16 image processor) for each worker count. The
workers needed for 2,000 images/s come from the images per CPU-second of the in-process pass (0 workers, always
timed), so a busy machine does not inflate them.
Run: python benchmarks/input_pipeline.py [--count 512] [--workers 0 1 2]
"""

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from corit_hf.data import ForensicCollator, load_forensic_folder
from corit_hf.data.sources import bundled_photos, real_crop
from corit_hf.models.modeling_corit import image_processor_for, input_size
from corit_hf.training.augmentation import AugmentationConfig, AugmentedDataset
from corit_hf.training.run import detector_config


TARGET = 2000
"""Images per second a fast GPU consumes when training a ViT-B/16 detector: what the workers must feed."""


def write_jpeg_folder(root: Path, count: int, size: int) -> None:
    """`count` JPEG photo crops at `size` px (quality 95), half under real/ and half under fake/."""
    for index in range(count):
        label = "real" if index % 2 == 0 else "fake"
        (root / label).mkdir(parents=True, exist_ok=True)
        pixels = real_crop(size, np.random.default_rng(index))
        Image.fromarray(pixels).save(root / label / f"{index:05d}.jpg", quality=95)


def images_per_second(dataset, collator, workers: int, batch_size: int) -> tuple[float, float]:
    """Images per wall-clock second of one full pass over `dataset` (worker start-up included, as in each epoch),
    and, with `workers` = 0 (all work in this process), images per CPU-second: the rate of one dedicated core,
    which a shared machine cannot lower."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collator)
    start, cpu_start = time.perf_counter(), time.process_time()
    seen = sum(len(batch["labels"]) for batch in loader)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return seen / wall, (seen / cpu if workers == 0 else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=512, help="JPEG files to write and read (default: 512)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="worker counts to time")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--file-size", type=int, default=256, help="side of the JPEG files in px (default: 256)")
    args = parser.parse_args()
    processor = image_processor_for(detector_config("clip-vit-b16"))
    size = input_size(detector_config("clip-vit-b16"))
    bundled_photos()
    with tempfile.TemporaryDirectory() as folder:
        write_jpeg_folder(Path(folder) / "train", args.count, args.file_size)
        splits, _ = load_forensic_folder(folder)
        train = splits["train"]
        collator = ForensicCollator(processor)
        print(f"{args.count} JPEG files of {args.file_size} px -> {size} px inputs, {os.cpu_count()} CPUs")
        print(f"{'augmentation':<12} {'workers':>7} {'images/s':>9} {'per worker':>10} {'per CPU-s':>9}")
        for name, dataset in (
            ("none", train),
            ("blur-jpeg", AugmentedDataset(train, size, AugmentationConfig())),
        ):
            for workers in sorted({0, *args.workers}):  # 0 gives the per-core rate
                rate, per_core = images_per_second(dataset, collator, workers, args.batch_size)
                print(f"{name:<12} {workers:>7} {rate:>9.1f} {rate / max(1, workers):>10.1f} {per_core:>9.1f}")
                if workers == 0:
                    needed = math.ceil(TARGET / per_core)
            print(f"  {name}: {TARGET} images/s needs about {needed} workers of one core each")


if __name__ == "__main__":
    main()

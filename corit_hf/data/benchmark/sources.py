"""Real images for the offline benchmark: photos bundled with installed packages, plus procedural textures.

Nothing is downloaded. scikit-image photos are used when scikit-image (the `data` extra) is installed; the
scikit-learn and matplotlib samples are always there. Crops are taken at a random scale and position and
resized to the working size, so a few photos yield many distinct images.
"""

import functools
import logging
from collections.abc import Callable

import numpy as np
from PIL import Image

from ...extras import install_hint
from ..images import open_image


logger = logging.getLogger(__name__)

SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "retina",
    "hubble_deep_field",
    "immunohistochemistry",
    "stereo_motorcycle",
    "camera",
    "coins",
    "moon",
    "gravel",
    "grass",
    "brick",
    "cell",
)
"""Natural photos shipped inside the scikit-image wheel (the ones fetched with pooch are left out)."""

TEXTURE_FRACTION = 0.25
"""Share of real crops that are procedural textures rather than photo crops."""

SENSOR_NOISE = (0.5, 2.5)
"""Range of the Gaussian sensor-noise sigma (grey levels) added to every real crop."""


def _as_rgb_array(pixels: np.ndarray) -> np.ndarray:
    """Greyscale, boolean or RGBA arrays as an HxWx3 uint8 array."""
    return np.asarray(open_image(Image.fromarray(np.asarray(pixels))))


def _skimage_photos() -> dict[str, np.ndarray]:
    """The bundled scikit-image photos that load offline; missing ones are skipped."""
    try:
        from skimage import data
    except ImportError:
        logger.warning(
            "scikit-image is not installed, so the built-in benchmark uses the scikit-learn and matplotlib photos "
            "only (other images, other scores than with it); for the full set: %s.",
            install_hint("data"),
        )
        return {}
    photos = {}
    for name in SKIMAGE_PHOTOS:
        try:
            pixels = getattr(data, name)()
        except (ImportError, OSError, ValueError, AttributeError) as error:
            logger.info("Skipping scikit-image photo %s (%s).", name, error)
            continue
        photos[f"skimage/{name}"] = _as_rgb_array(pixels[0] if isinstance(pixels, tuple) else pixels)
    return photos


def _sklearn_photos() -> dict[str, np.ndarray]:
    """scikit-learn's two sample photos (china, flower)."""
    from sklearn.datasets import load_sample_image

    return {f"sklearn/{name}": load_sample_image(f"{name}.jpg") for name in ("china", "flower")}


def _matplotlib_photos() -> dict[str, np.ndarray]:
    """matplotlib's sample photo (Grace Hopper)."""
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return {"matplotlib/grace_hopper": np.asarray(open_image(handle))}


@functools.lru_cache(maxsize=1)
def bundled_photos() -> dict[str, np.ndarray]:
    """Every bundled photo as an HxWx3 uint8 array, keyed by `package/name` (loaded once per process)."""
    return {**_skimage_photos(), **_sklearn_photos(), **_matplotlib_photos()}


def fractal_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Colour 1/f^alpha noise (alpha in [1.5, 2.5]): the power spectrum of natural scenes, with no content."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    amplitude = radius ** (-rng.uniform(1.5, 2.5) / 2)
    amplitude[0, 0] = 0.0
    spectra = amplitude * (rng.standard_normal((3, *radius.shape)) + 1j * rng.standard_normal((3, *radius.shape)))
    fields = np.fft.irfft2(spectra, s=(size, size), axes=(1, 2))
    mixing = np.eye(3) * rng.uniform(0.2, 1.0) + rng.uniform(0.0, 1.0, (3, 3))
    fields = np.einsum("ij,jhw->hwi", mixing, fields)
    return _stretch(fields, rng)


def colour_field(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth colour field: a random linear gradient plus a few soft Gaussian blobs."""
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij"), axis=-1)
    field = grid @ rng.normal(0, 1, (2, 3))
    for _ in range(rng.integers(2, 6)):
        centre, width = rng.uniform(-1, 1, 2), rng.uniform(0.2, 0.8)
        blob = np.exp(-np.sum((grid - centre) ** 2, axis=-1) / (2 * width**2))
        field += blob[..., None] * rng.normal(0, 1.5, 3)
    return _stretch(field, rng)


def _stretch(field: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Map a float HxWx3 field to uint8 with a random brightness range."""
    low, high = np.percentile(field, 1), np.percentile(field, 99)
    lo, hi = sorted(rng.uniform(0, 255, 2))
    hi = max(hi, lo + 60)
    scaled = lo + (field - low) / max(high - low, 1e-8) * (hi - lo)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


TEXTURES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "fractal": fractal_texture,
    "colour_field": colour_field,
}


def photo_crop(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of a random bundled photo, at a random scale, flipped half the time.

    The crop side is `size` times a log-uniform factor up to the photo's short side, then resized to
    `size` with antialiasing (photos smaller than `size` are upscaled).
    """
    photos = bundled_photos()
    names = sorted(photos)
    pixels = photos[names[rng.integers(len(names))]]
    height, width = pixels.shape[:2]
    short = min(height, width)
    side = int(round(size * np.exp(rng.uniform(0.0, np.log(max(short / size, 1.0))))))
    side = min(side, short)
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = Image.fromarray(pixels[top : top + side, left : left + side])
    if side != size:
        crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(crop)


def real_crop(size: int, rng: np.random.Generator) -> np.ndarray:
    """One real image: a photo crop, or (with probability `TEXTURE_FRACTION`) a procedural texture, with
    sensor noise (sigma 0.5..2.5 grey levels) that downscaling removed from the photo and textures never had."""
    if rng.random() < TEXTURE_FRACTION:
        names = sorted(TEXTURES)
        pixels = TEXTURES[names[rng.integers(len(names))]](size, rng)
    else:
        pixels = photo_crop(size, rng)
    noise = rng.normal(0.0, rng.uniform(*SENSOR_NOISE), pixels.shape)
    return np.clip(np.rint(pixels + noise), 0, 255).astype(np.uint8)

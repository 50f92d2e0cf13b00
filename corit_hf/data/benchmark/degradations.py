"""Image degradations the field trains against and tests under: JPEG, Gaussian blur, downscaling, noise.

One definition shared by training augmentation (`corit_hf.training.augmentation`) and the robustness sweeps
of `corit evaluate --perturb` (`corit_hf.evaluation.robustness`), so a model is tested under exactly the
degradation it was trained with. Each takes an RGB PIL image, a level and a NumPy generator (used by the
random ones) and returns an RGB PIL image.
"""

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


def jpeg(image: Image.Image, quality: float, rng: np.random.Generator | None = None) -> Image.Image:
    """Re-encode as JPEG at `quality` (1..100) and decode again."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def gaussian_blur(image: Image.Image, sigma: float, rng: np.random.Generator | None = None) -> Image.Image:
    """Gaussian blur with standard deviation `sigma` pixels (0 = unchanged)."""
    return image.filter(ImageFilter.GaussianBlur(radius=sigma)) if sigma > 0 else image


def downscale(image: Image.Image, scale: float, rng: np.random.Generator | None = None) -> Image.Image:
    """Resize by `scale` (bicubic, at least 1 pixel a side); the model's processor later brings it to its input
    size, so detail lost here stays lost (1 = unchanged)."""
    if scale == 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def gaussian_noise(image: Image.Image, sigma: float, rng: np.random.Generator | None = None) -> Image.Image:
    """Add Gaussian noise of standard deviation `sigma` (in 0..255 units), drawn from `rng` (0 = unchanged)."""
    if sigma == 0:
        return image
    rng = rng if rng is not None else np.random.default_rng(0)
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + rng.normal(0.0, sigma, size=pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


@dataclass(frozen=True)
class Degradation:
    """A degradation and the range of levels it accepts."""

    apply: Callable[[Image.Image, float, np.random.Generator | None], Image.Image]
    minimum: float
    maximum: float
    unit: str

    def check(self, name: str, level: float) -> float:
        """`level` if within [minimum, maximum], else ValueError naming the degradation and its range."""
        if not (self.minimum <= level <= self.maximum):
            span = f"from {self.minimum:g} to {self.maximum:g}"
            raise ValueError(f"{name} level {level:g} is out of range: {self.unit}, {span}.")
        return level


DEGRADATIONS = {
    "jpeg": Degradation(jpeg, 1, 100, "JPEG quality"),
    "blur": Degradation(gaussian_blur, 0, 50, "Gaussian blur sigma in pixels"),
    "resize": Degradation(downscale, 0.01, 1, "downscale factor"),
    "noise": Degradation(gaussian_noise, 0, 255, "Gaussian noise sigma in 0..255 units"),
}
"""Every degradation by name, as `corit evaluate --perturb NAME=LEVELS` spells it."""


__all__ = ["DEGRADATIONS", "Degradation", "downscale", "gaussian_blur", "gaussian_noise", "jpeg"]

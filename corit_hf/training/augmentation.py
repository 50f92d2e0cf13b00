"""Training augmentation as the field does it (CNNDetection's "blur+JPEG (0.5)", UnivFD, DeepfakeBench).

Per training image, in this order: Gaussian blur with sigma ~ U[0, 3] with probability 0.5, JPEG re-encoding
with quality ~ U{30..100} with probability 0.5, a random crop to the model's input size, a horizontal flip with
probability 0.5. Detectors that never saw blur or recompression learn those traces as "real" or "fake"; this is
what makes them hold up on images from the wild. Only the training split is augmented: evaluation never is.

Every image draws from its own generator seeded by (seed, epoch, index), so the same seed gives the same bytes
whatever the DataLoader workers, the batch order or an interruption and resume do. PIL and NumPy do the work
(the degradations are those of `corit_hf.data.benchmark.degradations`): no torchvision, no OpenCV.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps
from torch.utils.data import Dataset as TorchDataset

from ..data import open_image
from ..data.benchmark.degradations import gaussian_blur, jpeg


AUGMENTATIONS = ("none", "blur-jpeg")
"""The names `corit train --augment` accepts."""


@dataclass(frozen=True)
class AugmentationConfig:
    """Probabilities and ranges of the blur+JPEG augmentation (defaults: CNNDetection's blur+JPEG (0.5))."""

    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 100)
    flip_prob: float = 0.5
    random_crop: bool = True

    def __post_init__(self):
        for name in ("blur_prob", "jpeg_prob", "flip_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}.")
        low, high = self.blur_sigma
        if not 0 <= low <= high:
            raise ValueError(f"blur_sigma must be a range 0 <= MIN <= MAX, got {self.blur_sigma}.")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(f"jpeg_quality must be a range 1 <= MIN <= MAX <= 100, got {self.jpeg_quality}.")


def augment_image(image: Image.Image, size: int, config: AugmentationConfig, rng: np.random.Generator) -> Image.Image:
    """Blur, JPEG, random crop to `size` x `size`, flip: each with its probability, every draw from `rng`.

    The draws are made whether or not a step applies, so each step's randomness does not depend on the others.
    An image smaller than `size` on a side is first resized (bicubic) so its shorter side is `size`.
    """
    blur, sigma = rng.random() < config.blur_prob, rng.uniform(*config.blur_sigma)
    compress, quality = (
        rng.random() < config.jpeg_prob,
        rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1),
    )
    corner, flip = rng.random(2), rng.random() < config.flip_prob
    if blur:
        image = gaussian_blur(image, sigma)
    if compress:
        image = jpeg(image, quality)
    if config.random_crop:
        image = random_crop(image, size, corner)
    return ImageOps.mirror(image) if flip else image


def random_crop(image: Image.Image, size: int, corner: np.ndarray) -> Image.Image:
    """A `size` x `size` crop whose top-left corner sits at the fractions `corner` of the free room."""
    shorter = min(image.size)
    if shorter < size:
        scale = size / shorter
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    left = int(corner[0] * (image.width - size + 1))
    top = int(corner[1] * (image.height - size + 1))
    return image.crop((left, top, left + size, top + size))


class AugmentedDataset(TorchDataset):
    """Rows of `dataset` with their image opened and augmented on the fly; a DataLoader's workers do both.

    The Trainer calls `set_epoch` at each epoch, so an image is augmented differently every epoch and the
    same way again when the run is repeated or resumed.
    """

    def __init__(
        self,
        dataset,
        size: int,
        config: AugmentationConfig,
        seed: int = 0,
        image_column: str = "image",
    ):
        self.dataset, self.size, self.config, self.seed = dataset, size, config, seed
        self.image_column = image_column
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = dict(self.dataset[index])
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        row[self.image_column] = augment_image(open_image(row[self.image_column]), self.size, self.config, rng)
        return row


def augmentation_config(name: str, **overrides) -> AugmentationConfig | None:
    """The augmentation called `name` ("none" -> None) with field `overrides` (None values are ignored)."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}.")
    if name == "none":
        return None
    return AugmentationConfig(**{key: value for key, value in overrides.items() if value is not None})


__all__ = ["AUGMENTATIONS", "AugmentationConfig", "AugmentedDataset", "augment_image", "augmentation_config"]

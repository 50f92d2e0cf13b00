"""Training augmentation: seeded per image, identity at probability 0, train split only; the shared degradations."""

import io

import numpy as np
import pytest
from PIL import Image

from corit_hf.cli import main
from corit_hf.data import build_benchmark
from corit_hf.data.benchmark.degradations import DEGRADATIONS
from corit_hf.training.augmentation import AugmentationConfig, AugmentedDataset, augment_image
from corit_hf.training.run import build_detector, train_detector, training_arguments


def photo(width: int = 80, height: int = 72) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def train_split():
    return build_benchmark(n_train=8, n_test=4, progress=False)["train"]


def test_same_seed_same_bytes_other_seed_or_epoch_other_bytes(train_split):
    first = AugmentedDataset(train_split, 64, AugmentationConfig(), seed=3)
    again = AugmentedDataset(train_split, 64, AugmentationConfig(), seed=3)
    other_seed = AugmentedDataset(train_split, 64, AugmentationConfig(), seed=4)
    images = [png_bytes(first[i]["image"]) for i in range(8)]
    assert images == [png_bytes(again[i]["image"]) for i in reversed(range(8))][::-1]  # order does not matter
    assert images != [png_bytes(other_seed[i]["image"]) for i in range(8)]
    first.set_epoch(1)
    assert images != [png_bytes(first[i]["image"]) for i in range(8)]
    assert first[0]["label"] == train_split[0]["label"] and first[0]["image"].size == (64, 64)


def test_probability_zero_is_the_identity():
    image = photo(64, 64)
    config = AugmentationConfig(blur_prob=0, jpeg_prob=0, flip_prob=0)
    augmented = augment_image(image, 64, config, np.random.default_rng(0))
    assert png_bytes(augmented) == png_bytes(image)


def test_each_step_applies_at_probability_one():
    image, rng = photo(), np.random.default_rng(1)
    crop_only = augment_image(image, 64, AugmentationConfig(blur_prob=0, jpeg_prob=0, flip_prob=0), rng)
    assert crop_only.size == (64, 64)
    assert png_bytes(crop_only) in {png_bytes(image.crop((x, y, x + 64, y + 64))) for x in range(17) for y in range(9)}
    blurred = augment_image(image, 64, AugmentationConfig(blur_prob=1, blur_sigma=(2, 2), jpeg_prob=0), rng)
    assert np.asarray(blurred, dtype=float).std() < 0.5 * np.asarray(image, dtype=float).std()
    small = augment_image(photo(20, 30), 64, AugmentationConfig(blur_prob=0, jpeg_prob=0), rng)
    assert small.size == (64, 64)  # upscaled to the input size before the crop


def test_augmentation_reaches_only_the_training_split(train_split, tmp_path):
    model = build_detector(seed=0)
    args = training_arguments(tmp_path, max_steps=1, per_device_train_batch_size=4, gsnr_every=0, disable_tqdm=True)
    config = AugmentationConfig()
    trainer = train_detector(model, train_split, args, augmentation=config, eval_dataset=train_split)
    assert isinstance(trainer.train_dataset, AugmentedDataset) and trainer.train_dataset.config == config
    assert trainer.eval_dataset is train_split


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--blur-prob", "1.5"], "--blur-prob must be a number in [0, 1]"),
        (["--jpeg-quality", "50", "120"], "--jpeg-quality must be an integer in [1, 100]"),
        (["--early-stopping-patience", "2"], "needs --eval-steps"),
        (["--save-steps", "3", "--eval-steps", "2"], "multiple of --eval-steps"),
    ],
)
def test_bad_training_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    assert main(["train", "--augment", "blur-jpeg", *flags, "--output-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("corit train: error:") and message in error and "\n" not in error


def test_degradations_are_deterministic_and_checked():
    image = photo()
    for name, degradation in DEGRADATIONS.items():
        level = (degradation.minimum + degradation.maximum) / 2
        once = degradation.apply(image, level, np.random.default_rng(5))
        assert png_bytes(once) == png_bytes(degradation.apply(image, level, np.random.default_rng(5))), name
        with pytest.raises(ValueError, match=name):
            degradation.check(name, degradation.maximum + 1)
    assert DEGRADATIONS["resize"].apply(image, 0.25, None).size == (20, 18)

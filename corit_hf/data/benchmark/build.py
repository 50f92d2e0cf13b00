"""The offline forensic benchmark: real crops and family forgeries as a `datasets.DatasetDict`.

Protocol (cross-domain, as ForenSynths or FF++ -> Celeb-DF): train and validate on one forgery family, test
on every family. Each image is generated from its own seed stream (benchmark seed, split, index), so a build
is deterministic and an image does not depend on the split sizes or the other families asked for. Real and
fake images come from the same crop distribution (a fake is forged from a different real crop of the same
split), both are produced at `size` by the same crop-and-resize, each fake is calibrated to its source crop's
channel moments and encoded size, and both classes go through the same encoder, so no content, colour or
format cue separates them. Test splits share their real images and fake source crops across families, so
per-family scores are paired comparisons.
"""

import functools
import hashlib
import io
import json
import os
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Image, Value, load_from_disk
from PIL import Image as PILImage
from tqdm.auto import tqdm

from .families import FAMILIES, calibrate_fake, get_family
from .sources import real_crop


LABEL_NAMES = ["real", "fake"]
REAL_FAMILY = "real"
"""The `family` column's value for real images."""

BENCHMARK_VERSION = 1
"""Bump when the generators change, so on-disk caches of older builds are not reused."""

MEMORY_CACHE_BYTES = 512 * 2**20
"""Encoded bytes kept by the in-memory build cache (least recently used builds are dropped first)."""

FEATURES = Features({"image": Image(), "label": ClassLabel(names=LABEL_NAMES), "family": Value("string")})
ENCODINGS = {"png": "PNG", "jpeg": "JPEG"}


def build_benchmark(
    train_family: str = "gan",
    test_families: Sequence[str] | None = None,
    n_train: int = 1000,
    n_test: int = 400,
    size: int = 64,
    seed: int = 0,
    encoding: str = "png",
    jpeg_quality: int = 90,
    *,
    n_validation: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> DatasetDict:
    """Build the benchmark: `train` and `validation` from `train_family`, one `test_<family>` split per test family.

    Counts are images per split, half real and half fake (rounded up to even); `n_validation` defaults to
    `n_test`. `test_families=None` tests on every registered family. Columns: `image` (encoded PNG or JPEG
    bytes), `label` (ClassLabel real=0 / fake=1) and `family` ("real" or the forgery family). The build
    parameters are stored as JSON in every split's `info.description`.
    Builds are cached in memory per argument set; with `cache_dir` they are also saved to and reloaded from disk.
    A progress bar appears for builds that take more than a second unless `progress=False`.
    """
    params = _normalise_params(
        train_family, test_families, n_train, n_test, n_validation, size, seed, encoding, jpeg_quality
    )
    if cache_dir is None:
        return _to_dataset_dict(_records(params, progress), params)
    target = Path(cache_dir) / _cache_key(params)
    if target.exists():
        return load_from_disk(str(target))
    dataset = _to_dataset_dict(_records(params, progress), params)
    dataset.save_to_disk(str(target))
    return dataset


def benchmark_params(dataset: DatasetDict | Dataset) -> dict | None:
    """The build parameters of a benchmark made by `build_benchmark`, or None for other datasets."""
    split = next(iter(dataset.values())) if isinstance(dataset, DatasetDict) else dataset
    try:
        params = json.loads(split.info.description)
    except (json.JSONDecodeError, TypeError):
        return None
    return params if isinstance(params, dict) and params.get("builder") == "corit_hf.data.build_benchmark" else None


def encode_image(pixels: np.ndarray, encoding: str = "png", jpeg_quality: int = 90) -> bytes:
    """Encode a uint8 HxWx3 array as PNG or JPEG bytes (the one encoder both classes go through)."""
    buffer = io.BytesIO()
    options = {"quality": jpeg_quality} if encoding == "jpeg" else {}
    PILImage.fromarray(pixels).save(buffer, format=ENCODINGS[encoding], **options)
    return buffer.getvalue()


def _normalise_params(
    train_family: str,
    test_families: Sequence[str] | None,
    n_train: int,
    n_test: int,
    n_validation: int | None,
    size: int,
    seed: int,
    encoding: str,
    jpeg_quality: int,
) -> dict:
    """Validate the arguments and return them as a JSON-able dict with even per-split counts."""
    families = sorted(FAMILIES) if test_families is None else list(dict.fromkeys(test_families))
    for name in [train_family, *families]:
        get_family(name)
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {sorted(ENCODINGS)}, got {encoding!r}.")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}.")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}.")
    counts = {"train": n_train, "test": n_test, "validation": n_test if n_validation is None else n_validation}
    for split, count in counts.items():
        if count < 2:
            raise ValueError(f"The {split} split needs at least 2 images (one per class), got {count}.")
    return {
        "builder": "corit_hf.data.build_benchmark",
        "version": BENCHMARK_VERSION,
        "train_family": train_family,
        "test_families": families,
        "n_train": n_train + n_train % 2,
        "n_validation": counts["validation"] + counts["validation"] % 2,
        "n_test": n_test + n_test % 2,
        "size": size,
        "seed": seed,
        "encoding": encoding,
        "jpeg_quality": jpeg_quality,
    }


def _cache_key(params: dict) -> str:
    """Directory name of a build in `cache_dir`."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return f"forensic-benchmark-{params['train_family']}-{params['size']}px-{digest}"


def _rng(seed: int, stream: str, index: int, role: str) -> np.random.Generator:
    """The independent random stream of one image: (benchmark seed, split stream, index, role)."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode()), index, zlib.crc32(role.encode())])


Records = tuple[tuple[bytes, ...], tuple[int, ...], tuple[str, ...]]


_BUILDS: OrderedDict[str, dict[str, Records]] = OrderedDict()


def _records(params: dict, progress: bool) -> dict[str, Records]:
    """The records of a build, from the in-memory cache when present (the study rebuilds the same benchmark)."""
    key = json.dumps(params, sort_keys=True)
    if key not in _BUILDS:
        _BUILDS[key] = _generate(params, progress)
    _BUILDS.move_to_end(key)
    while len(_BUILDS) > 1 and sum(map(_records_bytes, _BUILDS.values())) > MEMORY_CACHE_BYTES:
        _BUILDS.popitem(last=False)
    return _BUILDS[key]


def _records_bytes(records: dict[str, Records]) -> int:
    """Encoded image bytes held by one build."""
    return sum(len(data) for images, _, _ in records.values() for data in images)


def _generate(params: dict, progress: bool) -> dict[str, Records]:
    """Encoded images, labels and families of every split."""
    plan = {
        "train": ("train", params["train_family"], params["n_train"]),
        "validation": ("validation", params["train_family"], params["n_validation"]),
        **{f"test_{family}": ("test", family, params["n_test"]) for family in params["test_families"]},
    }
    total = sum(count for _, _, count in plan.values())
    with tqdm(total=total, desc="Building forensic benchmark", unit="img", delay=1.0, disable=not progress) as bar:
        return {split: _generate_split(params, *spec, bar) for split, spec in plan.items()}


def _generate_split(params: dict, stream: str, family: str, count: int, bar: tqdm) -> Records:
    """Alternating real (even index) and fake (odd index) images of one split."""
    images, labels, families = [], [], []
    forge = FAMILIES[family]
    size, seed = params["size"], params["seed"]
    encode = functools.partial(encode_image, encoding=params["encoding"], jpeg_quality=params["jpeg_quality"])
    for index in range(count):
        is_fake = index % 2
        crop = real_crop(size, _rng(seed, stream, index, "crop"))
        pixels = calibrate_fake(forge(crop, _rng(seed, stream, index, family)), crop, encode) if is_fake else crop
        images.append(encode(pixels))
        labels.append(is_fake)
        families.append(family if is_fake else REAL_FAMILY)
        bar.update()
    return tuple(images), tuple(labels), tuple(families)


def _to_dataset_dict(records: dict[str, Records], params: dict) -> DatasetDict:
    """Fresh `Dataset` objects over the (cached) records, so callers may set formats without sharing state."""
    description = json.dumps(params, sort_keys=True)
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {
                    "image": [{"bytes": data, "path": None} for data in images],
                    "label": list(labels),
                    "family": list(families),
                },
                info=DatasetInfo(description=description, features=FEATURES),
                split=split,
            )
            for split, (images, labels, families) in records.items()
        }
    )

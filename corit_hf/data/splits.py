"""Which splits of a forensic dataset train and which are tested, unique names for the test splits of several
folders, a seeded, class-balanced validation split carved out of the training data, and subsets for a budget."""

from collections.abc import Iterable, Mapping

import numpy as np
from datasets import Dataset, DatasetDict

from ..defaults import VAL_FRACTION
from .folders import sanitise


TEST_PREFIX = "test"
TRAIN, VALIDATION = "train", "validation"
VIDEO_COLUMN = "video"
"""The column naming a frame's video in data with videos (see `load_forensic_folder`)."""
VALIDATION_SEED = 0
"""The seed of the validation carve-out: the same images whatever the training seed, so runs compare on one split."""
_CARVE_STREAM = 1
"""Keeps the carve-out's random draws apart from `balanced_subset`'s with the same seed."""


def test_split_names(splits: Iterable[str]) -> list[str]:
    """The splits named `test` or `test_*`, else all of them: what a dataset given only for testing is tested on."""
    names = list(splits)
    return [name for name in names if name.startswith(TEST_PREFIX)] or names


def unique_test_splits(splits: Mapping[str, Dataset], source: str, taken: Iterable[str]) -> dict[str, Dataset]:
    """`splits` renamed as test splits whose names clash neither with `taken` nor with each other.

    A `test_*` name is kept; `test` becomes `test_<source>` and any other name `test_<source>_<name>`. A name
    still taken gets `_<source>` appended (unless it ends with it), then `_2`, `_3`, ...
    """
    used, renamed = set(taken), {}
    label = sanitise(source)
    for name, dataset in splits.items():
        parts = [name] if name.startswith(f"{TEST_PREFIX}_") else [TEST_PREFIX, label] + [name] * (name != TEST_PREFIX)
        candidate = "_".join(parts)
        if candidate in used and not candidate.endswith(f"_{label}"):
            candidate = f"{candidate}_{label}"
        unique, number = candidate, 2
        while unique in used:
            unique, number = f"{candidate}_{number}", number + 1
        used.add(unique)
        renamed[unique] = dataset
    return renamed


def balanced_subset(dataset: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """At most `n` rows, half real and half fake, drawn with `seed` and kept in their order (None: all rows).

    With a `video` column `n` counts videos, each kept with all its frames, so video-level scores stay whole.
    A class with fewer than its half is kept whole; the draw of each class does not depend on the other's size.
    """
    if n is None:
        return dataset
    if n <= 0:
        raise ValueError(f"a subset needs a positive size, got {n}.")
    unit_of_row, fake_units = _units(dataset)
    chosen = []
    for is_fake, share in ((False, n // 2), (True, n - n // 2)):
        rng = np.random.default_rng([seed, int(is_fake)])
        chosen.append(rng.permutation(np.flatnonzero(fake_units == is_fake))[:share])
    return dataset.select(np.flatnonzero(np.isin(unit_of_row, np.concatenate(chosen))))


def with_validation(splits: DatasetDict, fraction: float | None = None) -> tuple[DatasetDict, dict | None]:
    """The splits to train on, with a validation split carved out of the training data where there is none, and
    the record of the carve-out (None: nothing carved).

    Data without a `train` split and with one split only (a folder of real/fake class folders alone) trains on
    that split less `fraction` of it (None: `VAL_FRACTION`) for validation; data with `train` and no `validation`
    has one carved out of `train` only when `fraction` is given. See `carve_validation`.
    """
    if TRAIN not in splits:
        if len(splits) != 1:
            raise ValueError(
                f"--data has no train split and {len(splits)} splits ({', '.join(splits)}), so nothing says which "
                "to train on: put the training images in train/0_real and train/1_fake (and validation images in "
                "val/), or give a folder of real/fake class folders alone, which trains with --val-fraction of it "
                "for validation."
            )
        source, fraction = next(iter(splits)), VAL_FRACTION if fraction is None else fraction
    elif fraction is None:
        return splits, None
    elif VALIDATION in splits:
        raise ValueError(
            f"--val-fraction carves a validation split out of train, but the data has its own (splits: "
            f"{', '.join(splits)})."
        )
    else:
        source = TRAIN
    train, validation = carve_validation(splits[source], fraction)
    rest = {name: split for name, split in splits.items() if name != source}
    carved = {VALIDATION: validation} if len(validation) else {}
    return DatasetDict({TRAIN: train, **carved, **rest}), carve_record(splits[source], validation, fraction, source)


def carve_validation(dataset: Dataset, fraction: float, seed: int = VALIDATION_SEED) -> tuple[Dataset, Dataset]:
    """`dataset` as (train, validation): `fraction` of each class's images (with a `video` column: videos, each
    with all its frames on one side), drawn with `seed`, validate and the rest train, both in their order.

    A class of two or more gives at least one to each side; a class of one trains.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"a validation fraction must be at least 0 and below 1, got {fraction}.")
    unit_of_row, fake_units = _units(dataset)
    chosen = []
    for is_fake in (False, True):
        units = np.flatnonzero(fake_units == is_fake)
        count = min(max(int(len(units) * fraction + 0.5), 1), len(units) - 1) if fraction and len(units) > 1 else 0
        rng = np.random.default_rng([seed, int(is_fake), _CARVE_STREAM])
        chosen.append(rng.permutation(units)[:count])
    held_out = np.isin(unit_of_row, np.concatenate(chosen))
    return dataset.select(np.flatnonzero(~held_out)), dataset.select(np.flatnonzero(held_out))


def carve_record(source: Dataset, validation: Dataset, fraction: float, name: str) -> dict:
    """What `with_validation` carved: the fraction and seed, the split it came from, and how many images (or
    videos) went to each side."""
    held_out = _unit_count(validation)
    return {
        "fraction": fraction,
        "seed": VALIDATION_SEED,
        "from": name,
        "unit": "videos" if VIDEO_COLUMN in source.column_names else "images",
        "validation": held_out,
        "train": _unit_count(source) - held_out,
    }


def describe_carve(record: dict) -> str:
    """The printed line of a carve-out, e.g. `validation: 10 % of train, seed 0, class-balanced (4 of 40 images;
    36 train)`."""
    if not record["validation"]:
        return (
            f"validation: none (--val-fraction {record['fraction']:g}); all {record['train']} {record['unit']} train"
        )
    count = f"{record['validation']} of {record['validation'] + record['train']} {record['unit']}"
    return (
        f"validation: {record['fraction'] * 100:g} % of train, seed {record['seed']}, class-balanced ({count}; "
        f"{record['train']} train)"
    )


def _unit_count(dataset: Dataset) -> int:
    """How many images (with a `video` column: videos) `dataset` holds."""
    return len(np.unique(np.asarray(dataset[VIDEO_COLUMN]))) if VIDEO_COLUMN in dataset.column_names else len(dataset)


def _units(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The unit of each row (its video with a `video` column, else the row itself) and whether each unit is fake."""
    keys = dataset[VIDEO_COLUMN] if VIDEO_COLUMN in dataset.column_names else np.arange(len(dataset))
    _, first_rows, unit_of_row = np.unique(np.asarray(keys), return_index=True, return_inverse=True)
    return unit_of_row, (np.asarray(dataset["label"]) != _real_label(dataset))[first_rows]


def _real_label(dataset: Dataset) -> int:
    """The id of the real class: the ClassLabel name `real` (any case), else 0."""
    names = getattr(dataset.features.get("label"), "names", None) or []
    lowered = [name.lower() for name in names]
    return lowered.index("real") if "real" in lowered else 0


__all__ = ["balanced_subset", "carve_validation", "test_split_names", "unique_test_splits", "with_validation"]

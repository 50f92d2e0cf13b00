"""Which splits of a forensic dataset are tested, unique names for the test splits of several folders, and seeded,
class-balanced subsets for a budget."""

from collections.abc import Iterable, Mapping

import numpy as np
from datasets import Dataset

from .folders import sanitise


TEST_PREFIX = "test"
VIDEO_COLUMN = "video"
"""The column naming a frame's video in data with videos (see `load_forensic_folder`)."""


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
    keys = dataset[VIDEO_COLUMN] if VIDEO_COLUMN in dataset.column_names else np.arange(len(dataset))
    _, first_rows, unit_of_row = np.unique(np.asarray(keys), return_index=True, return_inverse=True)
    fake_units = (np.asarray(dataset["label"]) != _real_label(dataset))[first_rows]
    chosen = []
    for is_fake, share in ((False, n // 2), (True, n - n // 2)):
        rng = np.random.default_rng([seed, int(is_fake)])
        chosen.append(rng.permutation(np.flatnonzero(fake_units == is_fake))[:share])
    return dataset.select(np.flatnonzero(np.isin(unit_of_row, np.concatenate(chosen))))


def _real_label(dataset: Dataset) -> int:
    """The id of the real class: the ClassLabel name `real` (any case), else 0."""
    names = getattr(dataset.features.get("label"), "names", None) or []
    lowered = [name.lower() for name in names]
    return lowered.index("real") if "real" in lowered else 0


__all__ = ["balanced_subset", "test_split_names", "unique_test_splits"]

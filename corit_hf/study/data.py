"""The data of a collapse study: the training split and the splits every run is scored on.

The built-in benchmark is small, so its splits are decoded and preprocessed once into memory and shared by every
run. `--data` (any folder `corit train` reads, or a saved DatasetDict) can be large: its images stay where they
are and each run's DataLoader reads them batch by batch. Its validation and test splits and every `--test-data`
folder's test splits are scored, all cut to seeded, class-balanced subsets when `--n-train` / `--n-test` ask.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import datasets
import torch
from datasets import DatasetDict
from torch.utils.data import Dataset as TorchDataset

from ..data import ForensicCollator
from ..data.splits import TEST_PREFIX, VALIDATION, balanced_subset, with_validation
from ..models.modeling_corit import image_processor_for, input_size
from ..training.run import detector_config, load_data, load_test_data


if TYPE_CHECKING:
    from .run import StudySettings


SUBSET_SEED = 0
"""Subsets are drawn once with this seed, the same for every run, so runs differ only in config, rho and seed."""


def study_splits(settings: "StudySettings", cache_dir: Path | None = None) -> tuple[DatasetDict, dict | None]:
    """`train` and the splits every run scores, as images: the built-in benchmark's test splits (the benchmark is
    cached on disk in `cache_dir`), or `folder_splits`; and the record of a validation split carved out of --data
    (None: none). Checks that the in-domain split is among them."""
    image_size = input_size(detector_config(settings.preset, settings.backbone))
    carved = None
    if settings.data is not None:
        splits, carved = folder_splits(settings)
    else:
        with _quiet_datasets():  # the benchmark cache's save/load bars would interleave with the study's bar
            benchmark, _ = load_data(
                None,
                settings.train_family,
                settings.n_train,
                settings.n_test,
                image_size,
                cache_dir=cache_dir,
                faces=settings.faces,  # refused on the benchmark, which has no faces
            )
        splits = DatasetDict({name: split for name, split in benchmark.items() if name != VALIDATION})
    check_in_domain(settings, [name for name in splits if name != "train"])
    return splits, carved


def check_in_domain(settings: "StudySettings", scored: list[str]) -> None:
    """The in-domain split must be one of the `scored` splits, and not the only one (nothing would be unseen)."""
    if settings.in_domain not in scored:
        fix = "; name the split whose AUC defines COR with --in-domain" if settings.in_domain_split is None else ""
        raise ValueError(f"the data has no split {settings.in_domain!r}{fix} (scored splits: {', '.join(scored)}).")
    if scored == [settings.in_domain]:
        raise ValueError(f"nothing to test generalisation on besides {settings.in_domain!r}: add --test-data.")


def folder_splits(settings: "StudySettings") -> tuple[DatasetDict, dict | None]:
    """--data's `train` split (less a validation split carved out by `with_validation`), then its validation and
    test splits and each --test-data folder's test splits (named uniquely), each cut to a seeded, class-balanced
    subset of --n-train / --n-test (None: whole); and the record of the carve-out (None: none)."""
    request = prepared_request(settings)
    splits, _ = load_data(settings.data, **request)
    splits, carved = with_validation(splits, settings.val_fraction)
    scored = {name: split for name, split in splits.items() if name == VALIDATION or name.startswith(TEST_PREFIX)}
    scored.update(load_test_data(settings.test_data, taken=splits, **request))
    subsets = {
        "train": balanced_subset(splits["train"], settings.n_train, SUBSET_SEED),
        **{name: balanced_subset(split, settings.n_test, SUBSET_SEED) for name, split in scored.items()},
    }
    return DatasetDict(subsets), carved


def prepared_request(settings: "StudySettings") -> dict:
    """How `load_data` prepares --data and --test-data folders: the frame and face settings as given (None: as
    prepared) and where raw folders are prepared."""
    names = ("frames", "faces", "face_fallback", "prepared_cache")
    return {name: getattr(settings, name) for name in names}


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Turn the `datasets` progress bars off for the block, then back to how they were."""
    were_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not were_disabled:
            datasets.enable_progress_bars()


def load_study_data(settings: "StudySettings", cache_dir: Path | None = None) -> tuple[dict, dict | None]:
    """What each run trains and is scored on, and the record of a validation split carved out of --data (None:
    none). The benchmark's splits become model inputs in memory, once (with augmentation the training split stays
    as images, augmented afresh in every run); --data stays lazy."""
    splits, carved = study_splits(settings, cache_dir)
    if settings.data is not None:
        return dict(splits), carved
    collate = ForensicCollator(image_processor_for(detector_config(settings.preset, settings.backbone)))
    augmented = settings.augment != "none"
    inputs = {
        name: split if name == "train" and augmented else PixelDataset(**collate(list(split)))
        for name, split in splits.items()
    }
    return inputs, carved


class PixelDataset(TorchDataset):
    """Preprocessed images and labels in memory, served as `{"pixel_values", "labels"}` rows."""

    def __init__(self, pixel_values: torch.Tensor, labels: torch.Tensor):
        self.pixel_values, self.labels = pixel_values, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixel_values[index], "labels": self.labels[index]}

"""What defines a collapse study: its grid (methods, rhos, seeds), the backbones it runs the grid on, and the
settings every run shares.

Both the study's data (`data.py`) and its runs (`run.py`) read these settings; this module imports neither.
"""

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import defaults
from ..data.splits import TEST_PREFIX, VALIDATION
from ..models.finetuning import FINETUNING_MODES
from ..training.augmentation import AUGMENTATIONS
from ..training.methods import METHODS, method_finetuning
from ..training.run import default_learning_rate
from ..training.trackers import reporting_integrations


CELL_VERSION = 1
"""Bumped when what a cell records changes, so older cells are retrained rather than mixed in."""
DEFAULT_PRESET = "tiny"
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Backbone:
    """One backbone the study runs its grid on: a random-init preset shape (`preset`), or the vision tower and image
    processor of a checkpoint (`checkpoint`: a folder, a Hub repo id or a shipped prior such as `tiny-semantic`)."""

    preset: str | None = None
    checkpoint: str | None = None

    def __post_init__(self):
        if (self.preset is None) == (self.checkpoint is None):
            raise ValueError("A study backbone is a preset or a checkpoint: give exactly one of them.")

    @property
    def name(self) -> str:
        """The backbone as the report names it: the preset, or the checkpoint as given."""
        return self.preset or self.checkpoint

    @property
    def label(self) -> str:
        """The backbone in cell file and run names: its name where that is a plain file name (presets, shipped
        priors), else the last part of the path or repo id and a short hash of the whole (unique and bounded)."""
        if _FILE_NAME.fullmatch(self.name):
            return self.name
        tail = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(self.name).name).strip("-.") or "backbone"
        return f"{tail}-{hashlib.sha1(self.name.encode()).hexdigest()[:8]}"

    def run_settings(self) -> dict:
        """How a cell records its backbone, as cells did before a study had several: a checkpoint beside the
        default preset, or a preset and no checkpoint."""
        return {"preset": self.preset or DEFAULT_PRESET, "backbone": self.checkpoint}


@dataclass
class StudySettings:
    """Everything that defines a study. The grid (rhos, configs, seeds) can grow between runs; the rest, if
    changed, makes earlier cells stale. `configs` are registered methods (`corit_hf.training.methods`: CoRIT, its
    ablations, the field's detectors), each trained as its recipe says unless `finetuning` overrides them all."""

    rhos: list[float] = field(default_factory=lambda: list(defaults.STUDY_RHOS))
    configs: list[str] = field(default_factory=lambda: list(defaults.STUDY_CONFIGS))
    seeds: list[int] = field(default_factory=lambda: list(defaults.STUDY_SEEDS))
    train_family: str = defaults.TRAIN_FAMILY
    n_train: int | None = None
    n_test: int | None = None
    max_steps: int = defaults.STUDY_MAX_STEPS
    batch_size: int = defaults.STUDY_BATCH_SIZE
    learning_rate: float | None = None
    """None: each backbone's default, as `corit train` picks it (`default_learning_rate`)."""
    adaptive: bool = False
    sam_ascent_every: int = 1
    gsnr_every: int = defaults.STUDY_GSNR_EVERY
    backbones: list[Backbone] = field(default_factory=lambda: [Backbone(DEFAULT_PRESET)])
    augment: str = defaults.AUGMENT_BENCHMARK
    finetuning: str | None = None
    """None: each method's own tuning; a mode of FINETUNING_MODES overrides every method's."""
    data: str | None = None
    test_data: list[str] = field(default_factory=list)
    in_domain_split: str | None = None
    val_fraction: float | None = None
    frames: int | None = None
    faces: bool | None = None
    face_fallback: str | None = None
    prepared_cache: str | None = None
    bf16: bool = False
    data_workers: int = 0
    report_to: str | list[str] = field(default_factory=list)
    logging_dir: str | None = None

    def __post_init__(self):
        if self.test_data and self.data is None:
            raise ValueError("--test-data needs --data: the built-in benchmark brings its own test splits.")
        if self.val_fraction is not None and self.data is None:
            raise ValueError("--val-fraction needs --data: the built-in benchmark brings its own validation split.")
        if self.data is None:  # the benchmark's sizes; on --data, None = every image
            self.n_train = defaults.N_TRAIN if self.n_train is None else self.n_train
            self.n_test = defaults.N_TEST if self.n_test is None else self.n_test
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"Unknown augmentation {self.augment!r}; choose from {', '.join(AUGMENTATIONS)}.")
        unknown = sorted(set(self.configs) - set(METHODS))
        if unknown:
            raise ValueError(f"Unknown method(s) {unknown}; choose from {', '.join(sorted(METHODS))}.")
        if 0.0 not in self.rhos:
            raise ValueError(f"rhos must include 0 (the reference run of COR), got {self.rhos}.")
        if not all(math.isfinite(rho) and rho >= 0 for rho in self.rhos):
            raise ValueError(f"rhos must be finite numbers >= 0, got {self.rhos}.")
        if self.finetuning is not None and self.finetuning not in FINETUNING_MODES:
            raise ValueError(f"finetuning must be one of {FINETUNING_MODES}, got {self.finetuning!r}.")
        self.rhos = sorted(set(float(rho) for rho in self.rhos))
        self.configs = list(dict.fromkeys(self.configs))
        self.seeds = list(dict.fromkeys(self.seeds))
        self.backbones = list(dict.fromkeys(self.backbones))
        check_backbone_labels(self.backbones)
        self.report_to = reporting_integrations(self.report_to, self.logging_dir)

    def run_settings(self, backbone: Backbone, method: str) -> dict:
        """The settings a cell's result depends on besides its own method, rho and seed (+ the cell format): the
        shared ones, its backbone, its learning rate and what trains (`tuning_of`)."""
        grid = ("rhos", "configs", "seeds", "backbones", "learning_rate")
        per_method = ("finetuning",)  # recorded below as the method's tuning
        # How cells are summarised, read or watched (trackers), not what they hold:
        summary_only = ("in_domain_split", "data_workers", "prepared_cache", "report_to", "logging_dir")
        # Settings at the value they had before they existed (plain SAM, no augmentation, full fine-tuning, the
        # benchmark in fp32) are left out, so cells written before them stay valid.
        former = {"sam_ascent_every": 1, "augment": "none", "finetuning": "full", "data": None, "test_data": []}
        former.update(frames=None, faces=None, face_fallback=None, bf16=False, val_fraction=None)
        unset = tuple(key for key, value in former.items() if getattr(self, key) == value)
        settings = {
            key: value for key, value in asdict(self).items() if key not in grid + per_method + summary_only + unset
        }
        # A full-tuning cell records no tuning, as before methods (and --finetune) existed: so the default study's
        # cells (CoRIT, its ablations and the baseline, all full) stay valid.
        tuning = self.tuning_of(method)
        if tuning != former["finetuning"]:
            settings["finetuning"] = tuning
        return {
            "cell_version": CELL_VERSION,
            **settings,
            "learning_rate": self.learning_rate_of(backbone),
            **backbone.run_settings(),
        }

    def tuning_of(self, method: str) -> str:
        """What trains in `method`'s runs: `finetuning` where given, else the method's own tuning."""
        return self.finetuning or method_finetuning(method)

    def learning_rate_of(self, backbone: Backbone) -> float:
        """`learning_rate`, else the default for `backbone` (gentler for pretrained weights)."""
        return default_learning_rate(backbone.checkpoint) if self.learning_rate is None else self.learning_rate

    @property
    def in_domain(self) -> str:
        """The split whose AUC defines COR, where collapse is measured: `in_domain_split` if given, else the
        validation split of --data, else the benchmark's held-out test split of the training family."""
        if self.in_domain_split:
            return self.in_domain_split
        return VALIDATION if self.data is not None else f"{TEST_PREFIX}_{self.train_family}"

    def cells(self) -> list[tuple[str, float, int]]:
        """Every (method, rho, seed) of the grid, seed-major so a first seed completes the picture first."""
        return [(config, rho, seed) for seed in self.seeds for config in self.configs for rho in self.rhos]


def check_backbone_labels(backbones: list[Backbone]) -> None:
    """Two backbones must not share cell files: only a preset and a checkpoint folder of the same name would."""
    labels = [backbone.label for backbone in backbones]
    shared = next((label for label in labels if labels.count(label) > 1), None)
    if shared is not None:
        raise ValueError(
            f"--preset {shared} and --backbone {shared} would share cell files; pass the folder as ./{shared}."
        )

"""What defines a collapse study: its grid (configurations, rhos, seeds) and the settings every run shares.

Both the study's data (`data.py`) and its runs (`run.py`) read these settings; this module imports neither.
"""

from dataclasses import asdict, dataclass, field

from .. import defaults
from ..data.splits import TEST_PREFIX, VALIDATION
from ..defaults import CONFIGURATIONS
from ..models.finetuning import FINETUNING_MODES
from ..training.augmentation import AUGMENTATIONS
from ..training.trackers import reporting_integrations


CELL_VERSION = 1
"""Bumped when what a cell records changes, so older cells are retrained rather than mixed in."""


@dataclass
class StudySettings:
    """Everything that defines a study. The grid (rhos, configs, seeds) can grow between runs; the rest, if
    changed, makes earlier cells stale."""

    rhos: list[float] = field(default_factory=lambda: list(defaults.STUDY_RHOS))
    configs: list[str] = field(default_factory=lambda: list(defaults.STUDY_CONFIGS))
    seeds: list[int] = field(default_factory=lambda: list(defaults.STUDY_SEEDS))
    train_family: str = defaults.TRAIN_FAMILY
    n_train: int | None = None
    n_test: int | None = None
    max_steps: int = defaults.STUDY_MAX_STEPS
    batch_size: int = defaults.STUDY_BATCH_SIZE
    learning_rate: float = defaults.LEARNING_RATE
    adaptive: bool = False
    sam_ascent_every: int = 1
    gsnr_every: int = defaults.STUDY_GSNR_EVERY
    preset: str = "tiny"
    backbone: str | None = None
    augment: str = defaults.AUGMENT_BENCHMARK
    finetuning: str = "full"
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
        unknown = sorted(set(self.configs) - set(CONFIGURATIONS))
        if unknown:
            raise ValueError(f"Unknown configuration(s) {unknown}; choose from {sorted(CONFIGURATIONS)}.")
        if 0.0 not in self.rhos:
            raise ValueError(f"The rho grid must include 0 (the reference run of COR), got {self.rhos}.")
        if min(self.rhos) < 0:
            raise ValueError(f"rho must be >= 0, got {self.rhos}.")
        if self.finetuning not in FINETUNING_MODES:
            raise ValueError(f"finetuning must be one of {FINETUNING_MODES}, got {self.finetuning!r}.")
        self.rhos = sorted(set(float(rho) for rho in self.rhos))
        self.configs = list(dict.fromkeys(self.configs))
        self.seeds = list(dict.fromkeys(self.seeds))
        self.report_to = reporting_integrations(self.report_to, self.logging_dir)

    def run_settings(self) -> dict:
        """The settings a cell's result depends on besides its own config, rho and seed (+ the cell format)."""
        grid = ("rhos", "configs", "seeds")
        # How cells are summarised, read or watched (trackers), not what they hold:
        summary_only = ("in_domain_split", "data_workers", "prepared_cache", "report_to", "logging_dir")
        # Settings at the value they had before they existed (plain SAM, no augmentation, full fine-tuning, the
        # benchmark in fp32) are left out, so cells written before them stay valid.
        former = {"sam_ascent_every": 1, "augment": "none", "finetuning": "full", "data": None, "test_data": []}
        former.update(frames=None, faces=None, face_fallback=None, bf16=False, val_fraction=None)
        unset = tuple(key for key, value in former.items() if getattr(self, key) == value)
        settings = {key: value for key, value in asdict(self).items() if key not in grid + summary_only + unset}
        return {"cell_version": CELL_VERSION, **settings}

    @property
    def in_domain(self) -> str:
        """The split whose AUC defines COR, where collapse is measured: `in_domain_split` if given, else the
        validation split of --data, else the benchmark's held-out test split of the training family."""
        if self.in_domain_split:
            return self.in_domain_split
        return VALIDATION if self.data is not None else f"{TEST_PREFIX}_{self.train_family}"

    def cells(self) -> list[tuple[str, float, int]]:
        """Every (config, rho, seed) of the grid, seed-major so a first seed completes the picture first."""
        return [(config, rho, seed) for seed in self.seeds for config in self.configs for rho in self.rhos]

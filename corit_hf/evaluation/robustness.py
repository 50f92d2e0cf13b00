"""Robustness sweeps of `corit evaluate --perturb`: the scores of a detector on test images degraded step by step.

The field reports how a detector holds up under JPEG quality 100..30, Gaussian blur sigma 0..4, downscaling and
noise, applied to real and fake images alike. The degradations are those of
`corit_hf.data.benchmark.degradations`, the same functions the training augmentation uses; random ones (noise) draw
from a generator seeded by the image's index, so a sweep is deterministic.
"""

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm

from ..data import open_image
from ..data.benchmark.degradations import DEGRADATIONS
from ..files import atomic_target
from .collapse import DEFAULT_MARGIN, DEFAULT_THRESHOLD, HEADLINE_SCORES, SCORE_NAMES
from .scoring import score_dataset


ROBUSTNESS_PLOT = "robustness.png"


def parse_perturbation(spec: str) -> tuple[str, list[float]]:
    """`NAME=L1,L2,...` (e.g. `jpeg=100,90,80`) as (name, levels); ValueError names what is wrong."""
    name, equals, levels = spec.partition("=")
    name = name.strip().lower()
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown perturbation {name!r} in --perturb {spec}; choose from {', '.join(DEGRADATIONS)}.")
    if not equals or not levels.strip():
        raise ValueError(f"--perturb {spec}: give the levels as {name}=LEVEL,LEVEL,...")
    parsed = []
    for text in levels.split(","):
        try:
            level = float(text)
        except ValueError:
            raise ValueError(f"--perturb {spec}: {text.strip()!r} is not a number.") from None
        parsed.append(DEGRADATIONS[name].check(name, level))
    return name, parsed


def parse_perturbations(specs: list[str]) -> dict[str, list[float]]:
    """Every `--perturb` spec, keyed by perturbation name; a name given twice is refused."""
    sweeps = {}
    for spec in specs:
        name, levels = parse_perturbation(spec)
        if name in sweeps:
            raise ValueError(f"--perturb {name} is given twice; list all its levels in one {name}=... flag.")
        sweeps[name] = levels
    return sweeps


class PerturbedDataset(TorchDataset):
    """Rows of `dataset` with their image degraded by `name` at `level` (noise seeded by the row's index)."""

    def __init__(self, dataset, name: str, level: float, image_column: str = "image"):
        self.dataset, self.degradation, self.level, self.image_column = (
            dataset,
            DEGRADATIONS[name],
            level,
            image_column,
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = dict(self.dataset[index])
        image = open_image(row[self.image_column])
        row[self.image_column] = self.degradation.apply(image, self.level, np.random.default_rng(index))
        return row


def level_key(level: float) -> str:
    """A level as eval_results.json keys it: `90`, `0.5`."""
    return f"{level:g}"


def robustness_sweep(
    model,
    splits: dict,
    image_processor,
    perturbations: dict[str, list[float]],
    batch_size: int = 64,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    progress: bool = True,
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """split -> perturbation -> level -> `HEADLINE_SCORES` (AUC, AP, accuracy) of `model` on the degraded split."""
    jobs = [(split, name, level) for split in splits for name, levels in perturbations.items() for level in levels]
    sweep: dict = {split: {name: {} for name in perturbations} for split in splits}
    for split, name, level in tqdm(jobs, desc="robustness", unit="level", disable=not progress):
        degraded = PerturbedDataset(splits[split], name, level)
        scores = score_dataset(model, degraded, image_processor, batch_size, threshold, margin)
        sweep[split][name][level_key(level)] = {key: scores[key] for key in HEADLINE_SCORES}
    return sweep


def format_robustness_table(sweep: dict) -> str:
    """One row per split, perturbation and level with its AUC, AP and accuracy."""
    header = f"{'split':<20} {'perturbation':<12} {'level':>6} " + " ".join(
        f"{SCORE_NAMES[key]:>8}" for key in HEADLINE_SCORES
    )
    rows = [
        f"{split:<20} {name:<12} {level:>6} " + " ".join(f"{scores[key]:>8.3f}" for key in HEADLINE_SCORES)
        for split, by_name in sweep.items()
        for name, by_level in by_name.items()
        for level, scores in by_level.items()
    ]
    return "\n".join([header, *rows])


def robustness_figure(sweep: dict) -> Figure:
    """AUC against level, one panel per perturbation, one line per split."""
    names = list(next(iter(sweep.values())))
    figure = Figure(figsize=(4.2 * len(names), 3.6), layout="constrained")
    for axes, name in zip(np.atleast_1d(figure.subplots(1, len(names), squeeze=False)[0]), names):
        for split, by_name in sweep.items():
            levels = [float(level) for level in by_name[name]]
            axes.plot(levels, [scores["auc"] for scores in by_name[name].values()], marker="o", label=split)
        axes.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        axes.set(title=name, xlabel=DEGRADATIONS[name].unit, ylabel="AUC", ylim=(0, 1.02))
        if name in ("jpeg", "resize"):
            axes.invert_xaxis()  # clean (quality 100, scale 1) on the left, the heaviest degradation on the right
    figure.axes[0].legend(fontsize="small")
    return figure


def write_robustness_plot(sweep: dict, path: str | os.PathLike) -> Path:
    """`robustness_figure` saved atomically as a PNG at `path`."""
    path = Path(path)
    with atomic_target(path) as temporary:
        robustness_figure(sweep).savefig(temporary, format="png", dpi=110)
    return path


__all__ = [
    "PerturbedDataset",
    "format_robustness_table",
    "parse_perturbations",
    "robustness_figure",
    "robustness_sweep",
    "write_robustness_plot",
]

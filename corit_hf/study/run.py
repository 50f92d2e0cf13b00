"""The collapse study: train every method (configuration) at every SAM radius rho (and seed), score every forgery
family, log layer-wise GSNR, then summarise each method by its Critical Optimization Radius (COR).

The grid runs on each backbone of the study. Each finished run ("cell") is written to
`OUTPUT/cells/<backbone>_<method>_rho<rho>_seed<seed>.json` at once, so an interrupted study resumes where it stopped
and a study grown by a backbone trains only that backbone's runs; cells trained with other settings are run again.
"""

import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from ..evaluation.collapse import critical_radius
from ..evaluation.scoring import score_splits
from ..files import write_json
from ..models.finetuning import trainable_parameter_count
from ..models.modeling_corit import image_processor_for
from ..training.augmentation import augmentation_config
from ..training.run import (
    build_detector,
    detector_config,
    final_train_loss,
    gsnr_records,
    mean_gsnr_by_layer,
    train_detector,
    training_arguments,
)
from ..training.trackers import LOGGING_DIR_ENV, TENSORBOARD
from .data import check_in_domain, load_study_data
from .engines import Engine, LocalEngine, RunFailure, RunKey
from .report import run_text, write_report
from .settings import Backbone, StudySettings


BENCHMARK_CACHE = "benchmark"
CellKey = tuple[Backbone, str, float, int]
"""One run of the study: (backbone, configuration, rho, seed)."""


def grid_name(config: str, rho: float, seed: int) -> str:
    """A run's place in the grid; alone, the name of cells written before a study had several backbones."""
    return f"{config}_rho{rho:g}_seed{seed}"


def cell_name(backbone: Backbone, config: str, rho: float, seed: int) -> str:
    """One run's name: its cell file's, its tracker run's and its TensorBoard folder's."""
    return f"{backbone.label}_{grid_name(config, rho, seed)}"


def cell_path(output_dir: Path, backbone: Backbone, config: str, rho: float, seed: int) -> Path:
    """Where one run's result is kept."""
    return output_dir / "cells" / f"{cell_name(backbone, config, rho, seed)}.json"


def with_logging_dir(settings: StudySettings, output_dir: Path) -> StudySettings:
    """`settings` with the folder the runs' TensorBoard folders go in when they report to TensorBoard: `logging_dir`,
    else $TENSORBOARD_LOGGING_DIR, else OUTPUT_DIR/runs; absolute, so the workers find it from any directory."""
    if TENSORBOARD not in settings.report_to:
        return settings
    folder = settings.logging_dir or os.environ.get(LOGGING_DIR_ENV) or output_dir / "runs"
    return replace(settings, logging_dir=str(Path(folder).expanduser().absolute()))


def find_finished_cell(output_dir: Path, settings: StudySettings, key: CellKey) -> dict | None:
    """The cell of run `key` written earlier with the same run settings, else None: at its own path, else under
    the name it had before a study had several backbones (its recorded settings name the backbone it ran on)."""
    backbone, *grid = key
    for path in (cell_path(output_dir, *key), output_dir / "cells" / f"{grid_name(*grid)}.json"):
        cell = load_finished_cell(path, settings.run_settings(backbone, key[1]))
        if cell is not None:
            return cell
    return None


def load_finished_cell(path: Path, run_settings: dict) -> dict | None:
    """The cell at `path` if it was written with `run_settings`, else None (missing, unreadable or stale)."""
    try:
        cell = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return cell if cell.get("settings") == run_settings else None


def run_cell(settings: StudySettings, backbone: Backbone, splits, config: str, rho: float, seed: int) -> dict:
    """Train one method (`config`) on `backbone` at one rho and seed, as its recipe says unless the study's
    `finetuning` overrides it; score it on every test split and collect its GSNR, trainable weights and step cost."""
    model = build_detector(backbone.preset, backbone.checkpoint, seed=seed, method=config)
    run_name = cell_name(backbone, config, rho, seed)
    with tempfile.TemporaryDirectory() as scratch:
        args = training_arguments(
            scratch,
            max_steps=settings.max_steps,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate_of(backbone),
            seed=seed,
            sam_rho=rho,
            sam_adaptive=settings.adaptive,
            sam_ascent_every=settings.sam_ascent_every,
            gsnr_every=settings.gsnr_every,
            bf16=settings.bf16,
            dataloader_num_workers=settings.data_workers,
            disable_tqdm=True,
            report_to=settings.report_to,
            run_name=run_name,
        )
        augmentation = augmentation_config(settings.augment)
        in_memory = settings.data is None  # the benchmark's splits are already model inputs (`load_study_data`)
        trainer = train_detector(
            model,
            splits["train"],
            args,
            finetuning=settings.tuning_of(config),
            preprocessed=in_memory and augmentation is None,
            augmentation=augmentation,
            logging_dir=Path(settings.logging_dir) / run_name if settings.logging_dir else None,
        )
    scored = {name: split for name, split in splits.items() if name != "train"}
    image_processor = None if in_memory else image_processor_for(model.config)
    scores = score_splits(trainer.model, scored, image_processor, workers=settings.data_workers)
    gsnr_log = gsnr_records(trainer.state.log_history)
    return {
        "settings": settings.run_settings(backbone, config),
        "config": config,
        "rho": rho,
        "seed": seed,
        "train_loss": final_train_loss(trainer.state.log_history),
        "trainable_parameters": trainable_parameter_count(trainer.model),
        "step_seconds": step_seconds(trainer.state),
        "gsnr": mean_gsnr_by_layer(gsnr_log),
        "gsnr_log": gsnr_log,
        "splits": scores,
    }


def step_seconds(state) -> float | None:
    """Seconds per optimizer step of a finished run: the Trainer's train_runtime over its steps (data loading, SAM's
    two passes and GSNR logging included)."""
    runtime = next((entry["train_runtime"] for entry in state.log_history if "train_runtime" in entry), None)
    return runtime / state.global_step if runtime is not None and state.global_step else None


def run_study(
    settings: StudySettings, output_dir: str | Path, engine: Engine | None = None, progress: bool = True
) -> dict:
    """Run (or resume) every cell of every backbone on `engine` (default: `LocalEngine()`), then write study.json /
    .csv / .md and the plots; returns the summary. A run that fails is listed in the summary's `failed_runs`, not
    written as a cell, so the next call retries it."""
    output_dir = Path(output_dir)
    engine = engine or LocalEngine()
    settings = with_logging_dir(settings, output_dir)
    keys = [(backbone, *grid) for backbone in settings.backbones for grid in settings.cells()]
    cells = {key: find_finished_cell(output_dir, settings, key) for key in keys}
    pending: dict[Backbone, list[RunKey]] = {}
    for backbone, *grid in (key for key, cell in cells.items() if cell is None):
        pending.setdefault(backbone, []).append(tuple(grid))
    for backbone in pending:  # a mistyped preset or checkpoint fails before any run trains
        detector_config(backbone.preset, backbone.checkpoint)
    failures = {}
    if pending:
        missing = sum(map(len, pending.values()))
        bar = tqdm(desc="study", unit="run", disable=not progress, initial=len(cells) - missing, total=len(cells))
        for key, result in train_pending(settings, pending, engine, output_dir / BENCHMARK_CACHE):
            backbone, config, rho, seed = key
            run = run_text(config, rho, seed, backbone.name)
            if isinstance(result, RunFailure):
                failures[key] = result
                bar.set_postfix_str(f"{run} failed: {result.error}")
            else:
                write_json(cell_path(output_dir, *key), result)
                cells[key] = result
                bar.set_postfix_str(f"{run} AUC={result['splits'][settings.in_domain]['auc']:.2f}")
            bar.update()
        bar.close()
    finished = [cell for cell in cells.values() if cell is not None]
    if finished:  # --in-domain may name any scored split
        check_in_domain(settings, list(finished[0]["splits"]))
    summary = summarise(settings, cells, failures)
    write_report(summary, output_dir)
    return summary


def train_pending(
    settings: StudySettings, pending: dict[Backbone, list[RunKey]], engine: Engine, cache_dir: Path
) -> Iterator[tuple[CellKey, dict | RunFailure]]:
    """Train each backbone's pending runs on `engine`, one backbone after another (each on the data as its own
    preprocessing gives it); yield each run's cell (with the validation split carved out of --data) or failure."""
    for backbone, grid in pending.items():
        splits, carved = load_study_data(settings, backbone, cache_dir)
        for key, result in engine.run(partial(run_cell, settings, backbone), splits, grid):
            if carved and not isinstance(result, RunFailure):
                result = {**result, "validation_split": carved}
            yield (backbone, *key), result


def summarise(settings: StudySettings, cells: dict[CellKey, dict | None], failures: dict[CellKey, RunFailure]) -> dict:
    """Each backbone's summary (`summarise_backbone`), the finished cells, and every failure in `failed_runs`. A
    study of one backbone also has that backbone's `configs` and `gsnr_cor_spearman` at the top, as before a study
    could have several."""
    finished = [cell for cell in cells.values() if cell is not None]
    backbones = {
        backbone.name: summarise_backbone(
            settings,
            backbone,
            [cell for (owner, *_), cell in cells.items() if owner == backbone and cell is not None],
            {config for owner, config, _, _ in failures if owner == backbone},
        )
        for backbone in settings.backbones
    }
    single = {}
    if len(backbones) == 1:
        (only,) = backbones.values()
        single = {"configs": only["configs"], "gsnr_cor_spearman": only["gsnr_cor_spearman"]}
    return {
        "settings": asdict(settings),
        "validation_split": next((cell["validation_split"] for cell in finished if "validation_split" in cell), None),
        "in_domain_split": settings.in_domain,
        **single,
        "backbones": backbones,
        "failed_runs": [
            {"backbone": backbone.name, "config": config, "rho": rho, "seed": seed, **asdict(failure)}
            for (backbone, config, rho, seed), failure in failures.items()
        ],
        "cells": finished,
    }


def summarise_backbone(settings: StudySettings, backbone: Backbone, cells: list[dict], incomplete: set[str]) -> dict:
    """One backbone's runs: per configuration and rho, seed means and spreads; per configuration, COR and mean GSNR;
    and their Spearman rank correlation across configurations. A configuration with a failed run (`incomplete`) is
    left out (its finished cells stay in the study's `cells`)."""
    configs = {
        config: summarise_config(settings, cells, config) for config in settings.configs if config not in incomplete
    }
    return {
        **asdict(backbone),
        "learning_rate": settings.learning_rate_of(backbone),
        "configs": configs,
        "gsnr_cor_spearman": gsnr_cor_correlation(configs),
    }


def summarise_config(settings: StudySettings, cells: list[dict], config: str) -> dict:
    """One method's rows (one per rho), its COR on the training family (seed mean and per seed), its mean GSNR,
    step cost (seconds per step) and trainable weights at rho = 0, and its best rho: the one with the highest
    in-domain AUC (model selection that never looks at the unseen splits), with the unseen AUC there."""
    rows = []
    for rho in settings.rhos:
        runs = [cell for cell in cells if cell["config"] == config and cell["rho"] == rho]
        rows.append(summarise_runs(rho, runs, settings.in_domain))
    per_seed = [
        critical_radius(settings.rhos, [row["auc_by_seed"][i] for row in rows]) for i in range(len(settings.seeds))
    ]
    defined = [cor for cor in per_seed if cor is not None]
    best = max(rows, key=lambda row: row["auc_mean"])  # the first (smallest) rho on ties
    runs = [cell for cell in cells if cell["config"] == config]
    return {
        "finetuning": settings.tuning_of(config),
        "trainable_parameters": next(
            (run["trainable_parameters"] for run in runs if "trainable_parameters" in run), None
        ),
        "step_seconds": rows[0]["step_seconds_mean"],
        "best_rho": best["rho"],
        "unseen_auc_at_best_rho": best["unseen_auc_mean"],
        "rows": rows,
        "cor": critical_radius(settings.rhos, [row["auc_mean"] for row in rows]),
        "cor_by_seed": per_seed,
        "cor_std": float(np.std(defined)) if len(defined) > 1 else None,
        "mean_gsnr": rows[0]["gsnr_mean"],
    }


def summarise_runs(rho: float, runs: list[dict], in_domain: str) -> dict:
    """Seed mean and spread of one (config, rho): in-domain AUC, mean AUC on unseen families, loss, GSNR."""
    aucs = [run["splits"][in_domain]["auc"] for run in runs]
    unseen = [np.mean([s["auc"] for name, s in run["splits"].items() if name != in_domain]) for run in runs]
    gsnr_layers = _mean_dicts([run["gsnr"] for run in runs])
    return {
        "rho": rho,
        "seeds": len(runs),
        "auc_by_seed": aucs,
        "auc_mean": float(np.mean(aucs)),
        "auc_std": float(np.std(aucs)),
        "unseen_auc_mean": float(np.mean(unseen)),
        "unseen_auc_std": float(np.std(unseen)),
        "collapsed_runs": sum(run["splits"][in_domain]["collapsed"] for run in runs),
        "split_auc_mean": _split_means(runs, "auc"),
        "split_video_auc_mean": _split_means(runs, "video_auc"),
        "train_loss_mean": _mean_or_none([run["train_loss"] for run in runs]),
        "step_seconds_mean": _mean_or_none([run.get("step_seconds") for run in runs]),
        "gsnr_by_layer": gsnr_layers,
        "gsnr_mean": float(np.mean(list(gsnr_layers.values()))) if gsnr_layers else None,
    }


def gsnr_cor_correlation(configs: dict[str, dict]) -> dict:
    """Spearman rank correlation between each configuration's mean GSNR (rho = 0 runs) and its COR."""
    pairs = [
        (s["mean_gsnr"], s["cor"]) for s in configs.values() if s["mean_gsnr"] is not None and s["cor"] is not None
    ]
    if len(pairs) < 3:
        return {"rho": None, "p_value": None, "n": len(pairs), "note": "needs at least 3 configurations with a COR"}
    gsnr, cor = zip(*pairs)
    if len(set(gsnr)) == 1 or len(set(cor)) == 1:
        return {"rho": None, "p_value": None, "n": len(pairs), "note": "undefined: all GSNR or all COR values tie"}
    result = spearmanr(gsnr, cor)
    return {"rho": float(result.statistic), "p_value": float(result.pvalue), "n": len(pairs), "note": ""}


def _split_means(runs: list[dict], score: str) -> dict[str, float]:
    """The seed mean of one score on every split that has it (video scores exist only on data with videos)."""
    names = [name for name, scores in runs[0]["splits"].items() if score in scores]
    return {name: float(np.mean([run["splits"][name][score] for run in runs])) for name in names}


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = [key for key in dicts[0] if all(key in d for d in dicts)] if dicts else []
    return {key: float(np.mean([d[key] for d in dicts])) for key in keys}


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None and math.isfinite(value)]
    return float(np.mean(present)) if present else None

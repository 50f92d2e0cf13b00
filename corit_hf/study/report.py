"""The collapse study's outputs: study.json, study.csv, study.md and two PNG plots, each written atomically. A study of
several backbones sets them side by side (tables with a column or a row per backbone, a row of plots per backbone).

Plots use `matplotlib.figure.Figure` directly (the Agg canvas), so no pyplot state or GUI backend is touched.
"""

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..data.splits import describe_carve
from ..files import atomic_target, write_json, write_text_atomic
from .comparison import auc_cell, cor_text, methods_lines, number


REPORT_FILES = ("study.json", "study.csv", "study.md", "auc_vs_rho.png", "gsnr_heatmap.png")


def write_report(summary: dict, output_dir: str | Path) -> None:
    """Write every report file of a summarised study into `output_dir`."""
    output_dir = Path(output_dir)
    write_json(output_dir / "study.json", summary)
    write_text_atomic(output_dir / "study.csv", study_csv(summary))
    write_text_atomic(output_dir / "study.md", study_markdown(summary))
    _save_figure(auc_figure(summary), output_dir / "auc_vs_rho.png")
    _save_figure(gsnr_figure(summary), output_dir / "gsnr_heatmap.png")


def run_text(config: str, rho: float, seed: int, backbone: str | None = None) -> str:
    """One run as the progress bar, the report and the command's error lines name it."""
    return f"{backbone + ' ' if backbone else ''}{config} rho={rho:g} seed={seed}"


def study_csv(summary: dict) -> str:
    """One row per configuration and rho (and backbone, in a first column, where the study has several): seed
    means/spreads, collapsed runs, loss, GSNR, AUC of every split (and video-level AUC where there are videos)."""
    backbones = summary["backbones"]
    rows = [
        (name, config, row)
        for name, backbone in backbones.items()
        for config, config_summary in backbone["configs"].items()
        for row in config_summary["rows"]
    ]
    first_row = rows[0][2] if rows else {}
    split_columns = {"auc": "split_auc_mean", "video_auc": "split_video_auc_mean"}
    columns = ["backbone"] if len(backbones) > 1 else []
    columns += ["config", "rho", "seeds", "auc_mean", "auc_std", "unseen_auc_mean", "unseen_auc_std"]
    columns += ["collapsed_runs", "train_loss_mean", "gsnr_mean", "step_seconds_mean", "trainable_parameters"]
    columns += [f"{score}_{name}" for score, key in split_columns.items() for name in first_row.get(key, {})]
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for name, config, row in rows:
        split_scores = {
            f"{score}_{split}": value
            for score, key in split_columns.items()
            for split, value in row.get(key, {}).items()
        }
        weights = backbones[name]["configs"][config].get("trainable_parameters")
        writer.writerow({"backbone": name, "config": config, **row, **split_scores, "trainable_parameters": weights})
    return stream.getvalue()


def study_markdown(summary: dict) -> str:
    """The study as Markdown: AUC by rho on the training family and on unseen families, then COR and GSNR; with
    several backbones, COR, unseen AUC and GSNR per configuration and backbone first."""
    backbones = summary["backbones"]
    if len(backbones) > 1:
        return _backbones_markdown(summary)
    (backbone,) = backbones.values()
    settings = summary["settings"]
    rhos = settings["rhos"]
    rows = {(config,): s for config, s in backbone["configs"].items()}
    lines = [
        f"Trained on {_data_text(settings)} ({_size_text(settings)}, lr {backbone['learning_rate']:g}, "
        f"{_backbone_text(backbone)}, {_tuning_text(settings)}, {_sam_text(settings)}), seeds {settings['seeds']}.",
        "",
        *_carve_lines(summary),
        *methods_lines(summary),
        *_auc_by_rho_lines(summary, rows, ("config",)),
        *_cor_table(backbone["configs"], rhos),
        "",
        _spearman_line(backbone["gsnr_cor_spearman"]),
        "",
        *_failure_lines(summary.get("failed_runs", []), with_backbone=False),
    ]
    return "\n".join(lines)


def _auc_by_rho_lines(summary: dict, rows: dict, keys: tuple[str, ...]) -> list[str]:
    """The two AUC-by-rho tables: in domain (with COR) and the mean over the unseen splits, a row per `rows` key."""
    settings = summary["settings"]
    rhos, spread = settings["rhos"], _spread_text(settings)
    return [
        f"Held-out AUC in domain (`{summary['in_domain_split']}`){spread}; `*` = collapsed in at least one seed:",
        "",
        *_auc_table(rows, keys, rhos, "auc_mean", "auc_std", with_cor=True),
        "",
        f"Mean AUC on the unseen splits{spread}:",
        "",
        *_auc_table(rows, keys, rhos, "unseen_auc_mean", "unseen_auc_std", with_cor=False),
        "",
    ]


def _backbones_markdown(summary: dict) -> str:
    """A study of several backbones: per configuration and backbone, COR, unseen AUC and mean GSNR at rho=0 and
    the Spearman correlation per backbone; then AUC by rho with a row per configuration and backbone."""
    settings = summary["settings"]
    backbones = summary["backbones"]
    rhos = settings["rhos"]
    rows = {
        (config, name): backbone["configs"][config]
        for config in settings["configs"]
        for name, backbone in backbones.items()
        if config in backbone["configs"]
    }
    spread = _spread_text(settings)
    lines = [
        f"Trained on {_data_text(settings)} ({_size_text(settings)}, {_tuning_text(settings)}, "
        f"{_sam_text(settings)}), seeds {settings['seeds']}, on each of {len(backbones)} backbones:",
        "",
        *(f"- {_backbone_text(backbone)}, lr {backbone['learning_rate']:g}" for backbone in backbones.values()),
        "",
        *_carve_lines(summary),
        *methods_lines(summary),
        f"COR per configuration and backbone, from the held-out AUC in domain (`{summary['in_domain_split']}`):",
        "",
        *_backbone_matrix(summary, lambda s: cor_text(s["cor"], rhos)),
        "",
        f"Mean AUC on the unseen splits at rho=0{spread}:",
        "",
        *_backbone_matrix(summary, lambda s: auc_cell(s["rows"][0], "unseen_auc_mean", "unseen_auc_std", False)),
        "",
        "Mean GSNR at rho=0:",
        "",
        *_backbone_matrix(summary, lambda s: number(s["mean_gsnr"], ".3f")),
        "",
        *(f"- `{name}`: {_spearman_line(b['gsnr_cor_spearman'])}" for name, b in backbones.items()),
        "",
        *_auc_by_rho_lines(summary, rows, ("config", "backbone")),
        _cor_note(rhos),
        "",
        *_failure_lines(summary.get("failed_runs", []), with_backbone=True),
    ]
    return "\n".join(lines)


def _backbone_matrix(summary: dict, value: Callable[[dict], str]) -> list[str]:
    """A table with a row per configuration and a column per backbone; `value` of each configuration's summary
    (`failed` where the configuration has a failed run on that backbone)."""
    backbones = summary["backbones"]
    lines = ["| config | " + " | ".join(backbones) + " |", "|---|" + "---:|" * len(backbones)]
    for config in summary["settings"]["configs"]:
        cells = [value(b["configs"][config]) if config in b["configs"] else "failed" for b in backbones.values()]
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return lines


def _size_text(settings: dict) -> str:
    return f"{settings['n_train'] or 'all'} images, {settings['max_steps']} steps, batch {settings['batch_size']}"


def _spread_text(settings: dict) -> str:
    return " ± std over seeds" if len(settings["seeds"]) > 1 else ""


def _data_text(settings: dict) -> str:
    if settings.get("data"):
        return f"`{settings['data']}`"
    return f"the benchmark family `{settings['train_family']}`"


def _carve_lines(summary: dict) -> list[str]:
    """The validation split carved out of --data (see `with_validation`), or nothing."""
    carved = summary.get("validation_split")
    return [describe_carve(carved) + ".", ""] if carved else []


def _failure_lines(failures: list[dict], with_backbone: bool) -> list[str]:
    """The runs that failed (their configurations are left out above), or nothing."""
    if not failures:
        return []
    lines = [f"Failed runs ({len(failures)}; not in the tables above, retried when the study runs again):", ""]
    for f in failures:
        run = run_text(f["config"], f["rho"], f["seed"], f["backbone"] if with_backbone else None)
        lines.append(f"- {run}: {f['error']}")
    return [*lines, ""]


def _sam_text(settings: dict) -> str:
    name = "ASAM" if settings["adaptive"] else "SAM"
    every = settings.get("sam_ascent_every", 1)
    return f"LookSAM over {name}, a full ascent every {every} steps" if every > 1 else name


def _tuning_text(settings: dict) -> str:
    tuning = settings.get("finetuning", "full")
    return "each method's own tuning" if tuning is None else f"{tuning} fine-tuning (every method)"


def _backbone_text(backbone: dict) -> str:
    if backbone["checkpoint"]:
        return f"backbone `{backbone['checkpoint']}`"
    return f"random-init `{backbone['preset']}` backbone"


def _auc_table(
    rows: dict[tuple[str, ...], dict],
    columns: tuple[str, ...],
    rhos: list[float],
    mean_key: str,
    std_key: str,
    with_cor: bool,
) -> list[str]:
    """One row per configuration summary in `rows` (labelled in `columns`), one column per rho; with COR (and
    collapse marks) for the training family."""
    header = (
        f"| {' | '.join(columns)} | " + " | ".join(f"rho={rho:g}" for rho in rhos) + (" | COR |" if with_cor else " |")
    )
    lines = [header, "|" + "---|" * len(columns) + "---:|" * (len(rhos) + with_cor)]
    for labels, config_summary in rows.items():
        cells = [auc_cell(row, mean_key, std_key, with_cor) for row in config_summary["rows"]]
        if with_cor:
            cells.append(cor_text(config_summary["cor"], rhos))
        lines.append(f"| {' | '.join(labels)} | " + " | ".join(cells) + " |")
    return lines


def _cor_table(configs: dict[str, dict], rhos: list[float]) -> list[str]:
    lines = [
        "| config | COR | COR per seed | loss at rho=0 | mean GSNR at rho=0 |",
        "|---|---:|---|---:|---:|",
    ]
    for config, s in configs.items():
        per_seed = ", ".join(cor_text(cor, rhos) for cor in s["cor_by_seed"])
        loss = s["rows"][0]["train_loss_mean"]
        lines.append(
            f"| {config} | {cor_text(s['cor'], rhos)} | {per_seed} | {number(loss, '.3f')} | "
            f"{number(s['mean_gsnr'], '.3g')} |"
        )
    return [*lines, "", _cor_note(rhos)]


def _cor_note(rhos: list[float]) -> str:
    return (
        f"COR `>={max(rhos):g}`: no run on the grid fell below half of the rho=0 run's above-chance AUC. "
        "n/a: the rho=0 run itself is not above chance. GSNR: mean over layers and logged steps after step 0."
    )


def _spearman_line(spearman: dict) -> str:
    if spearman["rho"] is None:
        return f"Spearman(mean GSNR, COR): n/a ({spearman['note']}; {spearman['n']} configurations)."
    return (
        f"Spearman(mean GSNR, COR) over {spearman['n']} configurations: {spearman['rho']:.2f} "
        f"(p = {spearman['p_value']:.2f})."
    )


def auc_figure(summary: dict) -> Figure:
    """AUC against rho per configuration: the training family and the unseen-family mean, error bars = std; a row
    of the two panels per backbone."""
    backbones = summary["backbones"]
    figure = Figure(figsize=(10, 4 * len(backbones)), layout="constrained")
    panels = figure.subplots(len(backbones), 2, sharey=True, squeeze=False)
    colours = {config: f"C{index}" for index, config in enumerate(summary["settings"]["configs"])}
    titles = (f"held-out {summary['in_domain_split']}", "mean of unseen families")
    for row, (name, backbone) in zip(panels, backbones.items()):
        prefix = f"{name}: " if len(backbones) > 1 else ""
        for axes, title, keys in zip(row, titles, [("auc_mean", "auc_std"), ("unseen_auc_mean", "unseen_auc_std")]):
            _plot_auc(axes, backbone["configs"], summary["settings"]["rhos"], *keys, colours)
            axes.set_title(prefix + title)
        row[0].set_ylabel("ROC AUC")
    if any(backbone["configs"] for backbone in backbones.values()):
        panels[0, 0].legend(title="method", fontsize="small")
    return figure


def _plot_auc(
    axes, configs: dict[str, dict], rhos: list[float], mean_key: str, std_key: str, colours: dict[str, str]
) -> None:
    """One panel of `auc_figure`: a line per configuration, chance dashed, rho on a symlog axis."""
    for config, s in configs.items():
        means = [row[mean_key] for row in s["rows"]]
        spreads = [row[std_key] for row in s["rows"]]
        axes.errorbar(rhos, means, yerr=spreads, marker="o", capsize=3, label=config, color=colours[config])
    axes.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axes.set_xscale("symlog", linthresh=0.1, linscale=0.5)  # linear up to 0.1, then logarithmic
    axes.set(xlabel="SAM radius rho", xticks=rhos, xticklabels=[f"{rho:g}" for rho in rhos])
    axes.set_xlim(-0.01, max(rhos) * 1.2)
    axes.tick_params(axis="x", labelrotation=90)


def gsnr_figure(summary: dict) -> Figure:
    """log10 layer GSNR (seed mean) against rho, one heatmap panel per configuration, a row of them per backbone,
    all on one colour scale."""
    backbones = summary["backbones"]
    configs = [c for c in summary["settings"]["configs"] if any(c in b["configs"] for b in backbones.values())]
    figure = Figure(figsize=(3.2 * len(configs) + 1, 3.6 * len(backbones)), layout="constrained")
    panels = figure.subplots(len(backbones), max(1, len(configs)), sharey="row", squeeze=False)
    layers = {name: _layers(backbone["configs"]) for name, backbone in backbones.items()}
    grids = {
        (name, config): _log_gsnr_grid(s["rows"], layers[name])
        for name, backbone in backbones.items()
        for config, s in backbone["configs"].items()
    }
    finite = np.concatenate([np.empty(0), *(grid[np.isfinite(grid)] for grid in grids.values())])
    limits = {"vmin": finite.min(), "vmax": finite.max()} if finite.size else {}
    image = None
    for row, (name, backbone) in zip(panels, backbones.items()):
        for axes, config in zip(row, configs):
            if config not in backbone["configs"]:  # failed on this backbone
                axes.set_axis_off()
                continue
            image = axes.imshow(grids[name, config], aspect="auto", origin="lower", cmap="viridis", **limits)
            rhos = [r["rho"] for r in backbone["configs"][config]["rows"]]
            title = f"{name}: {config}" if len(backbones) > 1 else config
            axes.set(title=title, xlabel="rho", xticks=range(len(rhos)), xticklabels=[f"{rho:g}" for rho in rhos])
            axes.tick_params(axis="x", labelrotation=90)
        row[0].set(yticks=range(len(layers[name])), yticklabels=layers[name], ylabel="layer")
    if image is not None and any(layers.values()):
        figure.colorbar(image, ax=panels.ravel().tolist(), label="log10 GSNR")
    return figure


def _layers(configs: dict[str, dict]) -> list[str]:
    """Every layer with a GSNR in any configuration's rows, in model order."""
    names = {layer for s in configs.values() for row in s["rows"] for layer in row["gsnr_by_layer"]}
    return sorted(names, key=_layer_order)


def _log_gsnr_grid(rows: list[dict], layers: list[str]) -> np.ndarray:
    """log10 GSNR as a layers x rhos array; NaN where a layer was not logged or its GSNR is not positive."""
    grid = np.array([[row["gsnr_by_layer"].get(layer, np.nan) for row in rows] for layer in layers], dtype=float)
    grid = grid.reshape(len(layers), len(rows))
    with np.errstate(divide="ignore", invalid="ignore"):
        logged = np.log10(grid)
    logged[~np.isfinite(logged)] = np.nan
    return logged


def _layer_order(name: str) -> tuple[int, int, str]:
    """embeddings first, encoder blocks by number, everything else (head) last."""
    if name.startswith("embed"):
        return (0, 0, name)
    number = re.search(r"\d+", name)
    return (1, int(number.group()), name) if number else (2, 0, name)


def _save_figure(figure: Figure, path: Path) -> None:
    with atomic_target(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)

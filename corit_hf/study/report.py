"""The collapse study's outputs: study.json, study.csv, study.md and two PNG plots, each written atomically.

Plots use `matplotlib.figure.Figure` directly (the Agg canvas), so no pyplot state or GUI backend is touched.
"""

import csv
import io
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..data.splits import describe_carve
from ..files import atomic_target, write_json, write_text_atomic


REPORT_FILES = ("study.json", "study.csv", "study.md", "auc_vs_rho.png", "gsnr_heatmap.png")


def write_report(summary: dict, output_dir: str | Path) -> None:
    """Write every report file of a summarised study into `output_dir`."""
    output_dir = Path(output_dir)
    write_json(output_dir / "study.json", summary)
    write_text_atomic(output_dir / "study.csv", study_csv(summary))
    write_text_atomic(output_dir / "study.md", study_markdown(summary))
    _save_figure(auc_figure(summary), output_dir / "auc_vs_rho.png")
    _save_figure(gsnr_figure(summary), output_dir / "gsnr_heatmap.png")


def study_csv(summary: dict) -> str:
    """One row per configuration and rho: seed means/spreads, collapsed runs, loss, GSNR, AUC of every split (and
    video-level AUC where there are videos)."""
    rows = [row for config_summary in summary["configs"].values() for row in config_summary["rows"]]
    first_row = rows[0] if rows else {}
    split_columns = {"auc": "split_auc_mean", "video_auc": "split_video_auc_mean"}
    columns = ["config", "rho", "seeds", "auc_mean", "auc_std", "unseen_auc_mean", "unseen_auc_std"]
    columns += ["collapsed_runs", "train_loss_mean", "gsnr_mean"]
    columns += [f"{score}_{name}" for score, key in split_columns.items() for name in first_row.get(key, {})]
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for config, config_summary in summary["configs"].items():
        for row in config_summary["rows"]:
            split_scores = {
                f"{score}_{name}": value
                for score, key in split_columns.items()
                for name, value in row.get(key, {}).items()
            }
            writer.writerow({"config": config, **row, **split_scores})
    return stream.getvalue()


def study_markdown(summary: dict) -> str:
    """The study as Markdown: AUC by rho on the training family and on unseen families, then COR and GSNR."""
    settings = summary["settings"]
    seeds = len(settings["seeds"])
    spread = " ± std over seeds" if seeds > 1 else ""
    lines = [
        f"Trained on {_data_text(settings)} ({settings['n_train'] or 'all'} images, {settings['max_steps']} steps, "
        f"batch {settings['batch_size']}, lr {settings['learning_rate']:g}, "
        f"{_backbone_text(settings)}, "
        f"{_sam_text(settings)}), seeds {settings['seeds']}.",
        "",
        *_carve_lines(summary),
        f"Held-out AUC in domain (`{summary['in_domain_split']}`){spread}; `*` = collapsed in at least one seed:",
        "",
        *_auc_table(summary, "auc_mean", "auc_std", with_cor=True),
        "",
        f"Mean AUC on the unseen splits{spread}:",
        "",
        *_auc_table(summary, "unseen_auc_mean", "unseen_auc_std", with_cor=False),
        "",
        *_cor_table(summary),
        "",
        _spearman_line(summary["gsnr_cor_spearman"]),
        "",
        *_failure_lines(summary.get("failed_runs", [])),
    ]
    return "\n".join(lines)


def _data_text(settings: dict) -> str:
    if settings.get("data"):
        return f"`{settings['data']}`"
    return f"the benchmark family `{settings['train_family']}`"


def _carve_lines(summary: dict) -> list[str]:
    """The validation split carved out of --data (see `with_validation`), or nothing."""
    carved = summary.get("validation_split")
    return [describe_carve(carved) + ".", ""] if carved else []


def _failure_lines(failures: list[dict]) -> list[str]:
    """The runs that failed (their configurations are left out above), or nothing."""
    if not failures:
        return []
    lines = [f"Failed runs ({len(failures)}; not in the tables above, retried when the study runs again):", ""]
    lines += [f"- {f['config']} rho={f['rho']:g} seed={f['seed']}: {f['error']}" for f in failures]
    return [*lines, ""]


def _sam_text(settings: dict) -> str:
    name = "ASAM" if settings["adaptive"] else "SAM"
    every = settings.get("sam_ascent_every", 1)
    return f"LookSAM over {name}, a full ascent every {every} steps" if every > 1 else name


def _backbone_text(settings: dict) -> str:
    tuning = f"{settings.get('finetuning', 'full')} fine-tuning"
    if settings.get("backbone"):
        return f"backbone `{settings['backbone']}`, {tuning}"
    return f"random-init `{settings['preset']}` backbone, {tuning}"


def _auc_table(summary: dict, mean_key: str, std_key: str, with_cor: bool) -> list[str]:
    """One row per configuration, one column per rho; with COR (and collapse marks) for the training family."""
    rhos = summary["settings"]["rhos"]
    header = "| config | " + " | ".join(f"rho={rho:g}" for rho in rhos) + (" | COR |" if with_cor else " |")
    lines = [header, "|---|" + "---:|" * (len(rhos) + with_cor)]
    for config, config_summary in summary["configs"].items():
        cells = [_auc_cell(row, mean_key, std_key, with_cor) for row in config_summary["rows"]]
        if with_cor:
            cells.append(_cor_text(config_summary["cor"], rhos))
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return lines


def _auc_cell(row: dict, mean_key: str, std_key: str, mark_collapse: bool) -> str:
    text = f"{row[mean_key]:.2f}"
    if row["seeds"] > 1:
        text += f"±{row[std_key]:.2f}"
    return text + ("*" if mark_collapse and row["collapsed_runs"] else "")


def _cor_table(summary: dict) -> list[str]:
    rhos = summary["settings"]["rhos"]
    lines = [
        "| config | COR | COR per seed | loss at rho=0 | mean GSNR at rho=0 |",
        "|---|---:|---|---:|---:|",
    ]
    for config, s in summary["configs"].items():
        per_seed = ", ".join(_cor_text(cor, rhos) for cor in s["cor_by_seed"])
        loss = s["rows"][0]["train_loss_mean"]
        lines.append(
            f"| {config} | {_cor_text(s['cor'], rhos)} | {per_seed} | {_number(loss, '.3f')} | "
            f"{_number(s['mean_gsnr'], '.3g')} |"
        )
    lines += [
        "",
        f"COR `>={max(rhos):g}`: no run on the grid fell below half of the rho=0 run's above-chance AUC. "
        "n/a: the rho=0 run itself is not above chance. GSNR: mean over layers and logged steps after step 0.",
    ]
    return lines


def _cor_text(cor: float | None, rhos: list[float]) -> str:
    if cor is None:
        return "n/a"
    return f">={cor:g}" if cor >= max(rhos) else f"{cor:.2f}"


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _spearman_line(spearman: dict) -> str:
    if spearman["rho"] is None:
        return f"Spearman(mean GSNR, COR): n/a ({spearman['note']}; {spearman['n']} configurations)."
    return (
        f"Spearman(mean GSNR, COR) over {spearman['n']} configurations: {spearman['rho']:.2f} "
        f"(p = {spearman['p_value']:.2f})."
    )


def auc_figure(summary: dict) -> Figure:
    """AUC against rho per configuration: the training family and the unseen-family mean, error bars = std."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    configs = summary["configs"]
    titles = (f"held-out {summary['in_domain_split']}", "mean of unseen families")
    for axes, title, (mean_key, std_key) in zip(
        panels, titles, [("auc_mean", "auc_std"), ("unseen_auc_mean", "unseen_auc_std")]
    ):
        for config, s in configs.items():
            rhos = [row["rho"] for row in s["rows"]]
            means = [row[mean_key] for row in s["rows"]]
            spreads = [row[std_key] for row in s["rows"]]
            axes.errorbar(rhos, means, yerr=spreads, marker="o", capsize=3, label=config)
        axes.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        axes.set_xscale("symlog", linthresh=0.1, linscale=0.5)  # linear up to 0.1, then logarithmic
        rhos = summary["settings"]["rhos"]
        axes.set(title=title, xlabel="SAM radius rho", xticks=rhos, xticklabels=[f"{rho:g}" for rho in rhos])
        axes.set_xlim(-0.01, max(rhos) * 1.2)
        axes.tick_params(axis="x", labelrotation=90)
    panels[0].set_ylabel("ROC AUC")
    if configs:
        panels[0].legend(fontsize="small")
    return figure


def gsnr_figure(summary: dict) -> Figure:
    """log10 layer GSNR (seed mean) against rho, one heatmap panel per configuration."""
    configs = summary["configs"]
    figure = Figure(figsize=(3.2 * len(configs) + 1, 3.6), layout="constrained")
    panels = np.atleast_1d(figure.subplots(1, max(1, len(configs)), sharey=True))
    layers = sorted(
        {layer for s in configs.values() for row in s["rows"] for layer in row["gsnr_by_layer"]}, key=_layer_order
    )
    grids = {config: _log_gsnr_grid(s["rows"], layers) for config, s in configs.items()}
    finite = np.concatenate([np.empty(0), *(grid[np.isfinite(grid)] for grid in grids.values())])
    limits = {"vmin": finite.min(), "vmax": finite.max()} if finite.size else {}
    image = None
    for axes, (config, s) in zip(panels, configs.items()):
        image = axes.imshow(grids[config], aspect="auto", origin="lower", cmap="viridis", **limits)
        rhos = [row["rho"] for row in s["rows"]]
        axes.set(title=config, xlabel="rho", xticks=range(len(rhos)), xticklabels=[f"{rho:g}" for rho in rhos])
        axes.tick_params(axis="x", labelrotation=90)
    panels[0].set(yticks=range(len(layers)), yticklabels=layers, ylabel="layer")
    if image is not None and layers:
        figure.colorbar(image, ax=list(panels), label="log10 GSNR")
    return figure


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

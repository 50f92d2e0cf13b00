"""The study's methods side by side (`methods_lines`), and how its numbers are written in every table of the
report (`report.py`)."""


def methods_lines(summary: dict) -> list[str]:
    """The methods side by side (per backbone where there are several): in-domain AUC at rho=0, COR, mean unseen
    AUC at rho=0 and at the method's best rho, trainable weights and seconds per step (at rho=0)."""
    backbones = summary["backbones"]
    rhos = summary["settings"]["rhos"]
    several = len(backbones) > 1
    lines = [
        "Methods side by side. Best rho: the rho with the highest in-domain AUC (model selection that never looks "
        "at the unseen splits). Step cost: seconds per optimizer step of the rho=0 run (train_runtime / steps), "
        "and relative to the study's first full-tuning method on the same backbone:",
        "",
        ("| backbone " if several else "")
        + "| method | tuning | in-domain AUC rho=0 | COR | unseen AUC rho=0 | best rho | unseen AUC at best rho "
        "| trainable weights | s/step | step cost vs full |",
        ("|---" if several else "") + "|---|---|" + "---:|" * 8,
    ]
    for name, backbone in backbones.items():
        configs = backbone["configs"]
        full = next((c for c, s in configs.items() if s.get("finetuning") == "full" and s.get("step_seconds")), None)
        for config, s in configs.items():
            first = s["rows"][0]
            relative = (
                f"{s['step_seconds'] / configs[full]['step_seconds']:.2f}x {full}"
                if full and s.get("step_seconds")
                else "n/a"
            )
            cells = [
                s.get("finetuning", "full"),
                auc_cell(first, "auc_mean", "auc_std", True),
                cor_text(s["cor"], rhos),
                auc_cell(first, "unseen_auc_mean", "unseen_auc_std", False),
                number(s.get("best_rho"), "g"),
                number(s.get("unseen_auc_at_best_rho"), ".2f"),
                number(s.get("trainable_parameters"), ","),
                number(s.get("step_seconds"), ".3f"),
                relative,
            ]
            lines.append(("| " + name + " " if several else "") + f"| {config} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def auc_cell(row: dict, mean_key: str, std_key: str, mark_collapse: bool) -> str:
    """A seed mean (± std over several seeds), `*` where `mark_collapse` and a seed collapsed."""
    text = f"{row[mean_key]:.2f}"
    if row["seeds"] > 1:
        text += f"±{row[std_key]:.2f}"
    return text + ("*" if mark_collapse and row["collapsed_runs"] else "")


def cor_text(cor: float | None, rhos: list[float]) -> str:
    """COR as the report writes it: `>=` the largest rho where no run fell, n/a where undefined."""
    if cor is None:
        return "n/a"
    return f">={cor:g}" if cor >= max(rhos) else f"{cor:.2f}"


def number(value: float | None, spec: str) -> str:
    """`value` in format `spec`, or n/a."""
    return "n/a" if value is None else format(value, spec)

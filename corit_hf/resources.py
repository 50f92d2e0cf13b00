"""Folders the package reads at run time that live at the top of the source tree: card templates, the Space.

A wheel carries them inside the package (setup.py copies them at build time); a source checkout or an editable
install reads them where they are, so `hub_cards/` and `spaces/corit-demo/` stay the single source of truth.
"""

from pathlib import Path


PACKAGE_DIR = Path(__file__).resolve().parent


def shared_folder(relative: str) -> Path:
    """The folder `relative` (e.g. "hub_cards") inside the installed package, else in the source checkout."""
    for candidate in (PACKAGE_DIR / relative, PACKAGE_DIR.parent / relative):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"{relative}/ is neither inside the installed corit_hf package nor next to it in a source checkout; "
        "reinstall corit-hf."
    )


def card_template(name: str) -> Path:
    """A card template of `hub_cards/` (model_card.md, dataset_card.md, metric_card.md)."""
    path = shared_folder("hub_cards") / name
    if not path.is_file():
        raise FileNotFoundError(f"No card template {name} in {path.parent}.")
    return path

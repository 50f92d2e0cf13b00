"""Backbones shipped inside the package, selectable by name wherever a backbone checkpoint path is accepted."""

from pathlib import Path


PRIORS = {"tiny-semantic": Path(__file__).parent / "tiny-semantic"}
"""Name -> `CLIPVisionModel` folder. `tiny-semantic`: the `tiny` shape distilled from an ImageNet teacher
(`corit distill`; its README.md is the model card)."""


def resolve_backbone(backbone: str | None) -> str | None:
    """The folder of a shipped prior named `backbone`, else `backbone` unchanged (a path or Hub repo id)."""
    return str(PRIORS[backbone]) if backbone in PRIORS else backbone

"""Backbones shipped inside the package, selectable by name wherever a backbone checkpoint path is accepted."""

from pathlib import Path

from ..models.loading import resolve_model


PRIORS = {"tiny-semantic": Path(__file__).parent / "tiny-semantic"}
"""Name -> `CLIPVisionModel` folder. `tiny-semantic`: the `tiny` shape distilled from an ImageNet teacher
(`corit distill`; its README.md is the model card)."""


def resolve_backbone(backbone: str | None) -> str | None:
    """The folder of a shipped prior named `backbone`, else where `backbone` (a folder or Hub repo id) loads from,
    checked as `resolve_model` does."""
    if backbone in PRIORS:
        return str(PRIORS[backbone])
    return resolve_model(backbone, "--backbone") if backbone else None

"""Methods: named training recipes, CoRIT's and the field's detectors under one protocol (data, SAM, scoring).

A method is a function returning `CoritConfig` overrides (the CoRIT switches, the feature normalisation, the extra
losses' weights), registered by name with `@register_method("name", finetuning=MODE)`, where MODE says what trains
(`corit_hf.defaults.FINETUNING_MODES`: full, head, layernorm, lora, osf); its docstring is its
documentation. Extra losses are computed in the model's forward, so both SAM passes see them. A user adds one in
a few lines:

    @register_method("corit-ln", finetuning="layernorm")
    def corit_ln() -> dict:
        \"\"\"CoRIT with LayerNorm tuning only.\"\"\"
        return {}

then `build_detector(method="corit-ln")` and `train_detector` build and train it (`corit train --method` takes the
methods registered when the CLI starts: the ones below).
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass

from ..defaults import CONFIGURATIONS, FINETUNING_MODES


GEND_LOSS_WEIGHTS = {"uniformity_weight": 0.5, "alignment_weight": 0.1}
"""GenD's published weights (its `LN+L2+UnAl` runs: `Loss(ce_labels=1.0, uniformity=0.5, alignment_labels=0.1)`
in src/exp/wacv_rebuttal.py of github.com/yermandy/GenD); cross-entropy keeps weight 1."""

Overrides = Callable[[], dict]


@dataclass(frozen=True)
class Method:
    """A named recipe: the config overrides it returns, what trains (`finetuning`), and its documentation."""

    name: str
    finetuning: str
    overrides: Overrides
    description: str

    def config_overrides(self) -> dict:
        """The recipe's CoritConfig fields (a fresh copy), with `method` naming it."""
        return {**copy.deepcopy(self.overrides()), "method": self.name}


METHODS: dict[str, Method] = {}


def register_method(name: str, finetuning: str = "full") -> Callable[[Overrides], Overrides]:
    """Decorator adding a function that returns CoritConfig overrides to `METHODS` under `name`, training what
    `finetuning` says, documented by its docstring."""

    def register(overrides: Overrides) -> Overrides:
        if name in METHODS:
            raise ValueError(f"Method {name!r} is already registered.")
        if finetuning not in FINETUNING_MODES:
            raise ValueError(f"finetuning must be one of {FINETUNING_MODES}, got {finetuning!r}.")
        description = " ".join((overrides.__doc__ or "").split())
        METHODS[name] = Method(name=name, finetuning=finetuning, overrides=overrides, description=description)
        return overrides

    return register


def get_method(name: str) -> Method:
    """The registered method `name`; a ValueError listing the known methods otherwise."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; registered methods: {', '.join(sorted(METHODS))}.")
    return METHODS[name]


def method_finetuning(method: str | None) -> str:
    """What the method named `method` trains; `full` for a detector built without one."""
    return get_method(method).finetuning if method else "full"


@register_method("corit")
def corit() -> dict:
    """CoRIT: RRM + RSI + HRI at the config defaults (the CGP-masked regional signal injected into the global token
    of 4 evenly spaced blocks, averaged), every weight trained."""
    return CONFIGURATIONS["corit"]


@register_method("baseline")
def baseline() -> dict:
    """Every CoRIT mechanism off: a linear head on the final class token after the backbone's final norm (the mean
    patch token on families without one, such as SigLIP), every weight trained."""
    return CONFIGURATIONS["baseline"]


@register_method("corit-no-rrm")
def corit_no_rrm() -> dict:
    """CoRIT without the Region Refinement Mask: RSI injects the mean of all patch tokens; every weight trained."""
    return CONFIGURATIONS["corit-no-rrm"]


@register_method("corit-no-rsi")
def corit_no_rsi() -> dict:
    """CoRIT without Regional Signal Injection (so RRM does nothing): HRI alone, the mean of the global tokens of 4
    blocks; every weight trained."""
    return CONFIGURATIONS["corit-no-rsi"]


@register_method("corit-no-hri")
def corit_no_hri() -> dict:
    """CoRIT on the last block alone (no Hierarchical Representation Integration); every weight trained."""
    return CONFIGURATIONS["corit-no-hri"]


@register_method("univfd", finetuning="head")
def univfd() -> dict:
    """UnivFD (Ojha et al., CVPR 2023): the backbone frozen, a linear head on its final class token after the final
    norm, the only weights that train. UnivFD's head reads CLIP's projected image embedding (768-d on ViT-L/14);
    here it reads the token before that projection, as every other method does."""
    return CONFIGURATIONS["baseline"]


@register_method("effort", finetuning="osf")
def effort() -> dict:
    """Effort (Yan et al., ICML 2025): each Linear of every block's attention (query, key, value and output
    projections) is split by SVD, W = U S V^T; its top min(dim) - r singular directions stay frozen and the residual
    of rank r trains (r = 1: Effort's 1023 of 1024 on ViT-L/14; `osf_rank`, --osf-rank). peft's OSF does this and
    projects the residual's gradients orthogonal to the frozen directions. Biases, norms and the rest of the
    backbone stay frozen; a linear head reads the final class token after the final norm. Effort's orthogonality
    and singular-value losses are commented out in its released code: here they are `orthogonality_weight` and
    `singular_value_weight`, 0 (off)."""
    return {**CONFIGURATIONS["baseline"], "orthogonality_weight": 0.0, "singular_value_weight": 0.0}


@register_method("gend", finetuning="layernorm")
def gend() -> dict:
    """GenD (Yermakov et al., WACV 2026): only the backbone's norms train (every one: CLIP's pre_layrnorm,
    layer_norm1/2 and post_layernorm; DINOv2/v3's norm1/2 and final norm), with the head. The head reads the final
    class token after the final norm, L2-normalised, and the loss adds 0.5 x uniformity + 0.1 x alignment (Wang &
    Isola 2020, GenD's published weights) on those unit features: alignment is the mean squared distance over
    every pair of images of the same class in the batch (i < j: real with real, fake with fake), uniformity
    log mean exp(-2 d^2) over every pair."""
    return {**CONFIGURATIONS["baseline"], "feature_normalization": "l2", **GEND_LOSS_WEIGHTS}


@register_method("lora", finetuning="lora")
def lora() -> dict:
    """LoRA (Hu et al., ICLR 2022) via peft on the query and value projections of every block's attention, rank 8
    (`lora_rank`, --lora-rank), alpha 16, the rest of the backbone frozen; a linear head reads the final class token
    after the final norm."""
    return CONFIGURATIONS["baseline"]

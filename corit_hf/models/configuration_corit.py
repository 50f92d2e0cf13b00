"""CoRIT model configuration, and what CoRIT knows of each backbone family (preprocessing, presets)."""

import difflib
import math
from dataclasses import dataclass, field

from huggingface_hub.dataclasses import strict
from transformers import CONFIG_MAPPING, AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PILImageResampling,
)


DEFAULT_VISION_TYPE = "clip_vision_model"
"""The backbone of a `vision_config` that names no `model_type`: every CoRIT folder saved before other families."""

VIT_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")
"""What a vision config needs for CoRIT's token rule: a fixed grid of patch tokens of one width, layer by layer."""


@dataclass(frozen=True)
class BackboneFamily:
    """What CoRIT cannot find by probing a backbone: the preprocessing of a random-init one (a checkpoint brings
    its own image processor), and the switches that leave out pooling heads CoRIT never uses."""

    image_processor: str
    """PIL-backend processor class (torchvision is not required)."""
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    resample: int
    center_crop: bool
    """Resize the shortest edge, then crop the centre square; else resize to the square."""
    config_overrides: dict = field(default_factory=dict)
    """vision-config fields set whenever CoRIT builds this backbone."""
    model_kwargs: dict = field(default_factory=dict)
    """Arguments of the backbone class that `AutoModel.from_config` and `from_pretrained` pass on."""


BACKBONE_FAMILIES = {
    "clip_vision_model": BackboneFamily(
        "CLIPImageProcessorPil", OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling.BICUBIC, center_crop=True
    ),
    # SigLIP, and SigLIP2 at a fixed resolution (its Hub checkpoints are `siglip` models). The attention-pooling
    # head is left out: CoRIT pools with the mean patch token.
    "siglip_vision_model": BackboneFamily(
        "SiglipImageProcessorPil",
        IMAGENET_STANDARD_MEAN,
        IMAGENET_STANDARD_STD,
        PILImageResampling.BICUBIC,
        center_crop=False,
        config_overrides={"vision_use_head": False},
    ),
    "dinov2": BackboneFamily(
        "BitImageProcessorPil", IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling.BICUBIC, True
    ),
    "dinov2_with_registers": BackboneFamily(
        "BitImageProcessorPil", IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling.BICUBIC, True
    ),
    # DINOv3's own processor needs torchvision; the ViT one applies the same steps with PIL.
    "dinov3_vit": BackboneFamily(
        "ViTImageProcessorPil", IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling.BILINEAR, False
    ),
    # ViT's tanh pooler is left out: CoRIT reads the class token through the final norm.
    "vit": BackboneFamily(
        "ViTImageProcessorPil",
        IMAGENET_STANDARD_MEAN,
        IMAGENET_STANDARD_STD,
        PILImageResampling.BILINEAR,
        center_crop=False,
        model_kwargs={"add_pooling_layer": False},
    ),
}
OTHER_FAMILY = BackboneFamily(
    "ViTImageProcessorPil", IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling.BICUBIC, False
)
"""A ViT-style family not listed above: ImageNet statistics, the most common among them."""


def backbone_family(model_type: str) -> BackboneFamily:
    """The family entry of a vision `model_type` (`OTHER_FAMILY` when it is not listed)."""
    return BACKBONE_FAMILIES.get(model_type, OTHER_FAMILY)


TINY_SHAPE = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "image_size": 64, "patch_size": 8}
"""The random-init toy backbone of the tests and the toy study (intermediate size 128)."""
BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12}
LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16}
VIT_B16 = {**BASE, "intermediate_size": 3072, "image_size": 224, "patch_size": 16}
VIT_L16 = {**LARGE, "intermediate_size": 4096, "image_size": 224, "patch_size": 16}
# DINOv2 sizes its MLP by `mlp_ratio` (4, its default); its Hub configs give 518 px (the position table it was
# trained with) while its processor crops 224 px, the size the presets use (DINOv2 always interpolates the table).
DINOV2_B14 = {**BASE, "image_size": 224, "patch_size": 14}
DINOV2_L14 = {**LARGE, "image_size": 224, "patch_size": 14}
REGISTERS = {"num_register_tokens": 4}

PRESETS = {
    # CLIP: `tiny` is the offline default and the tests' model.
    "tiny": {"model_type": "clip_vision_model", **TINY_SHAPE, "intermediate_size": 128},
    "clip-vit-b16": {"model_type": "clip_vision_model", **VIT_B16, "projection_dim": 512},
    "clip-vit-l14": {"model_type": "clip_vision_model", **VIT_L16, "patch_size": 14, "projection_dim": 768},
    # SigLIP (google/siglip-base-patch16-224, google/siglip-large-patch16-256; SigLIP2 fixed-res has these shapes).
    "siglip-tiny": {"model_type": "siglip_vision_model", **TINY_SHAPE, "intermediate_size": 128},
    "siglip-vit-b16": {"model_type": "siglip_vision_model", **VIT_B16},
    "siglip-vit-l16": {"model_type": "siglip_vision_model", **VIT_L16, "image_size": 256},
    # DINOv2 (facebook/dinov2-base, -large) and with 4 registers (facebook/dinov2-with-registers-base, -large).
    "dinov2-tiny": {"model_type": "dinov2", **TINY_SHAPE, "mlp_ratio": 2},
    "dinov2-vit-b14": {"model_type": "dinov2", **DINOV2_B14},
    "dinov2-vit-l14": {"model_type": "dinov2", **DINOV2_L14},
    "dinov2-reg-tiny": {"model_type": "dinov2_with_registers", **TINY_SHAPE, "mlp_ratio": 2, **REGISTERS},
    "dinov2-reg-vit-b14": {"model_type": "dinov2_with_registers", **DINOV2_B14, **REGISTERS},
    "dinov2-reg-vit-l14": {"model_type": "dinov2_with_registers", **DINOV2_L14, **REGISTERS},
    # DINOv3 ViT with RoPE and 4 registers (facebook/dinov3-vitb16-pretrain-lvd1689m, -vitl16-).
    "dinov3-tiny": {"model_type": "dinov3_vit", **TINY_SHAPE, "intermediate_size": 128, **REGISTERS},
    "dinov3-vit-b16": {"model_type": "dinov3_vit", **VIT_B16, **REGISTERS},
    "dinov3-vit-l16": {"model_type": "dinov3_vit", **VIT_L16, **REGISTERS},
    # ViT trained on ImageNet-21k (google/vit-base-patch16-224, google/vit-large-patch16-224).
    "vit-tiny": {"model_type": "vit", **TINY_SHAPE, "intermediate_size": 128},
    "vit-b16": {"model_type": "vit", **VIT_B16},
    "vit-l16": {"model_type": "vit", **VIT_L16},
}

CORIT_FIELDS = (
    "hri_layers",
    "use_cgp_mask",
    "rrm_keep_ratio",
    "rsi_strength",
    "classifier_dropout",
    "real_label_id",
    "feature_normalization",
    "alignment_weight",
    "uniformity_weight",
    "orthogonality_weight",
    "singular_value_weight",
    "method",
)
FEATURE_NORMALIZATIONS = ("none", "l2")
LOSS_WEIGHTS = ("alignment_weight", "uniformity_weight", "orthogonality_weight", "singular_value_weight")


def default_hri_layers(num_hidden_layers: int, count: int = 4) -> list[int]:
    """`count` evenly spaced encoder blocks ending with the last, as indices into `hidden_states`."""
    count = min(count, num_hidden_layers)
    return [round(num_hidden_layers * (k + 1) / count) for k in range(count)]


@strict
class CoritConfig(PreTrainedConfig):
    r"""
    Configuration of [`CoritForImageClassification`]: a ViT-style vision backbone plus the CoRIT mechanisms.

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            The vision backbone: the config of any ViT-style family of transformers (CLIP, SigLIP, DINOv2, DINOv3,
            ViT, ...), or a dict with its `model_type`; a dict without one is CLIP (`clip_vision_model`).
        image_processor (`dict`, *optional*):
            The settings of the backbone checkpoint's own image processor (`from_backbone` keeps them); None uses
            the family's preprocessing at the backbone's input size.
        hri_layers (`list[int]`, *optional*):
            Indices into the backbone's `hidden_states` (0 = embeddings, L = last block; negative counts from
            the end) whose features HRI averages. Defaults to 4 evenly spaced blocks ending with the last.
            `[-1]` turns HRI off.
        use_cgp_mask (`bool`, *optional*, defaults to `True`):
            Region Refinement Mask: keep only the patches with the largest |CGP| score. Off = all patches.
        rrm_keep_ratio (`float`, *optional*, defaults to 0.25):
            Fraction of patches RRM keeps, in (0, 1].
        rsi_strength (`float`, *optional*, defaults to 1.0):
            beta of Regional Signal Injection; 0 turns RSI off.
        classifier_dropout (`float`, *optional*, defaults to 0.0):
            Dropout before the linear classifier.
        real_label_id (`int`, *optional*, defaults to 0):
            The id of the real class; every other id is a fake class.
        feature_normalization (`str`, *optional*, defaults to `"none"`):
            What the feature goes through before the classifier: `"none"`, or `"l2"` (unit length, as GenD).
        alignment_weight (`float`, *optional*, defaults to 0.0):
            Weight of the alignment loss (Wang & Isola, 2020) on the L2-normalised features: the mean squared
            distance between the features of every pair of same-class images in the batch.
        uniformity_weight (`float`, *optional*, defaults to 0.0):
            Weight of the uniformity loss (Wang & Isola, 2020) on the L2-normalised features: log of the mean of
            exp(-2 ||f_i - f_j||^2) over every pair of images in the batch.
        orthogonality_weight (`float`, *optional*, defaults to 0.0):
            Weight of Effort's orthogonality loss on the SVD-residual layers (peft OSF) of the attention, averaged
            over the layers; 0 without such layers.
        singular_value_weight (`float`, *optional*, defaults to 0.0):
            Weight of Effort's singular-value loss |‖W‖_F^2 - ‖W_0‖_F^2| on the same layers, averaged over them.
        method (`str`, *optional*):
            The name of the training recipe the detector was built with (`corit_hf.training.methods`), for the
            record: what the model computes comes from the other fields.
    """

    model_type = "corit"
    sub_configs_defaults = {"vision_config": SubConfigSpec(config_class=AutoConfig, model_type=DEFAULT_VISION_TYPE)}

    vision_config: dict | PreTrainedConfig | None = None
    image_processor: dict | None = None
    hri_layers: list[int] | None = None
    use_cgp_mask: bool = True
    rrm_keep_ratio: float | int = 0.25
    rsi_strength: float | int = 1.0
    classifier_dropout: float | int = 0.0
    real_label_id: int = 0
    feature_normalization: str = "none"
    alignment_weight: float | int = 0.0
    uniformity_weight: float | int = 0.0
    orthogonality_weight: float | int = 0.0
    singular_value_weight: float | int = 0.0
    method: str | None = None

    def __post_init__(self, **kwargs):
        reject_misspelled_fields(kwargs)
        self.vision_config = vision_config_fields(self.vision_config)
        check_heads_divide_hidden_size(self.vision_config)
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = {0: "real", 1: "fake"}
            self.label2id = {"real": 0, "fake": 1}
        super().__post_init__(**kwargs)
        check_vit_style(self.vision_config)
        if self.hri_layers is None:
            self.hri_layers = default_hri_layers(self.vision_config.num_hidden_layers)
        self.hri_layers = list(self.hri_layers)
        self.check_ranges()

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "CoritConfig":
        """A config whose backbone has the shape of a named preset (`PRESETS`: `tiny`, `clip-vit-b16`, `dinov2-tiny`,
        `siglip-vit-b16`, ...); a `vision_config` dict in `kwargs` overrides fields of the preset's backbone."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        vision_overrides = kwargs.pop("vision_config", None) or {}
        return cls(vision_config={**PRESETS[name], **vision_overrides}, **kwargs)

    @property
    def family(self) -> BackboneFamily:
        """What CoRIT knows of this backbone's family."""
        return backbone_family(self.vision_config.model_type)

    def num_kept_patches(self, num_patches: int) -> int:
        """How many of an image's `num_patches` patches RRM keeps: ceil(ratio x N), at least one.

        N is the count the backbone produced, which differs from the config's grid under `interpolate_pos_encoding`.
        """
        return max(1, math.ceil(self.rrm_keep_ratio * num_patches))

    def check_ranges(self):
        """Every CoRIT field within its allowed range; a plain ValueError naming the field."""
        vision = self.vision_config
        if not 0.0 < self.rrm_keep_ratio <= 1.0:
            raise ValueError(f"rrm_keep_ratio must be in (0, 1], got {self.rrm_keep_ratio}.")
        if self.rsi_strength < 0:
            raise ValueError(f"rsi_strength must be >= 0, got {self.rsi_strength}.")
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}.")
        if self.feature_normalization not in FEATURE_NORMALIZATIONS:
            raise ValueError(
                f"feature_normalization must be one of {', '.join(FEATURE_NORMALIZATIONS)}, "
                f"got {self.feature_normalization!r}."
            )
        for name in LOSS_WEIGHTS:
            weight = getattr(self, name)
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {weight}.")
        num_states = vision.num_hidden_layers + 1
        if not self.hri_layers:
            raise ValueError("hri_layers must name at least one layer.")
        for layer in self.hri_layers:
            if not -num_states <= layer < num_states:
                raise ValueError(
                    f"hri_layers entry {layer} is out of range: allowed {-num_states}..{num_states - 1} "
                    f"for a backbone with {vision.num_hidden_layers} layers."
                )
        if self.num_labels < 2:
            raise ValueError(f"num_labels must be at least 2 (a real and a fake class), got {self.num_labels}.")
        if self.real_label_id not in self.id2label:
            raise ValueError(
                f"real_label_id ({self.real_label_id}) must be one of the label ids {sorted(self.id2label)}."
            )
        if sorted(self.id2label) != list(range(self.num_labels)):
            raise ValueError(f"id2label keys must be 0..{self.num_labels - 1}, got {sorted(self.id2label)}.")


def vision_config_fields(vision_config: dict | PreTrainedConfig | None) -> dict:
    """The backbone config as a dict naming its `model_type` (CLIP when it names none), with its family's
    `config_overrides` applied; an unknown model type is a ValueError."""
    if isinstance(vision_config, PreTrainedConfig):
        vision_config = vision_config.to_dict()
    vision = {"model_type": DEFAULT_VISION_TYPE, **(vision_config or {})}
    if vision["model_type"] not in CONFIG_MAPPING:
        raise ValueError(f"vision_config names model_type {vision['model_type']!r}, which transformers does not know.")
    return {**vision, **backbone_family(vision["model_type"]).config_overrides}


def check_heads_divide_hidden_size(vision_config: dict) -> None:
    """Checked before the backbone config's own validator (CLIP has one, most have none) so that the error is a
    ValueError naming the field for every family."""
    defaults = CONFIG_MAPPING[vision_config["model_type"]].default_config_fields()
    hidden_size = vision_config.get("hidden_size", defaults.get("hidden_size"))
    num_heads = vision_config.get("num_attention_heads", defaults.get("num_attention_heads"))
    if isinstance(hidden_size, int) and isinstance(num_heads, int) and hidden_size % num_heads != 0:
        raise ValueError(
            f"vision_config.hidden_size ({hidden_size}) must be divisible by "
            f"vision_config.num_attention_heads ({num_heads})."
        )


def check_vit_style(vision_config: PreTrainedConfig) -> None:
    """CoRIT reads a fixed grid of patch tokens of one width from every layer; a backbone config without the fields
    that define one (SigLIP2 NaFlex has no `image_size`, a CNN no heads, a hierarchical ViT one width per stage) is
    refused, naming what it lacks."""
    missing = [name for name in VIT_FIELDS if getattr(vision_config, name, None) is None]
    varying = [
        name for name in VIT_FIELDS[:3] if name not in missing and not isinstance(getattr(vision_config, name), int)
    ]
    if missing or varying:
        lacks = f"no {', '.join(missing)}" if missing else f"no single value of {', '.join(varying)}"
        raise ValueError(
            f"CoRIT needs a ViT-style backbone (a fixed grid of patch tokens of one width); the "
            f"{vision_config.model_type!r} vision config has {lacks}."
        )


def reject_misspelled_fields(kwargs: dict) -> None:
    """Unknown keys are kept as attributes (transformers' rule), but a near-miss of a CoRIT field is a typo."""
    for key in kwargs:
        close = difflib.get_close_matches(key, CORIT_FIELDS, n=1, cutoff=0.8)
        if close:
            raise ValueError(f"Unknown config key {key!r}; did you mean {close[0]!r}?")


__all__ = ["CoritConfig"]

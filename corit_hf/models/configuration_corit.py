"""CoRIT model configuration."""

import difflib
import math

from huggingface_hub.dataclasses import strict
from transformers import CLIPVisionConfig, PreTrainedConfig


PRESETS = {
    # Random-init toy backbone: the offline default and the tests' model.
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "image_size": 64,
        "patch_size": 8,
    },
    "clip-vit-b16": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 16,
        "projection_dim": 512,
    },
    "clip-vit-l14": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 224,
        "patch_size": 14,
        "projection_dim": 768,
    },
}

CORIT_FIELDS = ("hri_layers", "use_cgp_mask", "rrm_keep_ratio", "rsi_strength", "classifier_dropout", "real_label_id")


def default_hri_layers(num_hidden_layers: int, count: int = 4) -> list[int]:
    """`count` evenly spaced encoder blocks ending with the last, as indices into `hidden_states`."""
    count = min(count, num_hidden_layers)
    return [round(num_hidden_layers * (k + 1) / count) for k in range(count)]


@strict
class CoritConfig(PreTrainedConfig):
    r"""
    Configuration of [`CoritForImageClassification`]: a CLIP vision backbone plus the CoRIT mechanisms.

    Args:
        vision_config (`dict` or `CLIPVisionConfig`, *optional*):
            The CLIP vision backbone.
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
    """

    model_type = "corit"
    sub_configs_defaults = {"vision_config": CLIPVisionConfig}

    vision_config: dict | CLIPVisionConfig | None = None
    hri_layers: list[int] | None = None
    use_cgp_mask: bool = True
    rrm_keep_ratio: float | int = 0.25
    rsi_strength: float | int = 1.0
    classifier_dropout: float | int = 0.0
    real_label_id: int = 0

    def __post_init__(self, **kwargs):
        reject_misspelled_fields(kwargs)
        check_heads_divide_hidden_size(self.vision_config)
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = {0: "real", 1: "fake"}
            self.label2id = {"real": 0, "fake": 1}
        super().__post_init__(**kwargs)
        if self.hri_layers is None:
            self.hri_layers = default_hri_layers(self.vision_config.num_hidden_layers)
        self.hri_layers = list(self.hri_layers)
        self.check_ranges()

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "CoritConfig":
        """A config whose backbone has the shape of a named preset: `tiny`, `clip-vit-b16` or `clip-vit-l14`."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        vision_overrides = kwargs.pop("vision_config", None) or {}
        return cls(vision_config={**PRESETS[name], **vision_overrides}, **kwargs)

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


def check_heads_divide_hidden_size(vision_config: dict | CLIPVisionConfig | None) -> None:
    """Checked before CLIPVisionConfig's own validator so the error is a ValueError naming the field."""
    if isinstance(vision_config, CLIPVisionConfig) or not vision_config:
        return
    defaults = CLIPVisionConfig.default_config_fields()
    hidden_size = vision_config.get("hidden_size", defaults["hidden_size"])
    num_heads = vision_config.get("num_attention_heads", defaults["num_attention_heads"])
    if hidden_size % num_heads != 0:
        raise ValueError(
            f"vision_config.hidden_size ({hidden_size}) must be divisible by "
            f"vision_config.num_attention_heads ({num_heads})."
        )


def reject_misspelled_fields(kwargs: dict) -> None:
    """Unknown keys are kept as attributes (transformers' rule), but a near-miss of a CoRIT field is a typo."""
    for key in kwargs:
        close = difflib.get_close_matches(key, CORIT_FIELDS, n=1, cutoff=0.8)
        if close:
            raise ValueError(f"Unknown config key {key!r}; did you mean {close[0]!r}?")


__all__ = ["CoritConfig"]

"""CoRIT: Contrastive Regional Injection Transformer on a ViT-style vision backbone (CLIP, SigLIP, DINOv2, DINOv3,
ViT, or any family of transformers that follows the token rule).

Self-contained (torch + transformers + configuration_corit) so it also loads as remote code. What CoRIT finds by
probing a backbone lives here: the token rule, the final norm, the blocks, the norms and the attention projections;
what it cannot find (preprocessing, presets) is the family table of configuration_corit.
"""

import inspect
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoImageProcessor, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BaseImageProcessor, ImageProcessingMixin
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import logging

from .configuration_corit import CoritConfig, backbone_family


RSI_EPS = 1e-6
FINAL_NORM_NAMES = ("post_layernorm", "layernorm", "norm", "final_layernorm", "rms_norm", "ln_post")
"""What ViT-style families of transformers call the norm after their last block (which `hidden_states` lack)."""
BLOCK_PATHS = ("encoder.layers", "encoder.layer", "model.layer", "layers", "blocks")
"""Where ViT-style families keep their blocks: `<path>.<i>`."""
BLOCK_PATTERN = re.compile(r"(?:^|\.)(?:" + "|".join(map(re.escape, BLOCK_PATHS)) + r")\.(\d+)\.")
"""Matches a parameter or module name inside block i (group 1), e.g. `backbone.encoder.layers.3.mlp.fc1.weight`."""
ATTENTION_PROJECTIONS = (("q_proj", "v_proj"), ("query", "value"))
"""Names of the attention's query and value projections (LoRA's targets): every family of transformers 5.25 uses
the first pair, older releases the second."""
ATTENTION_MODULE = re.compile(r"attn|attention")
"""What ViT-style families call a block's attention (`self_attn`, `attention`): its Linear layers are the query,
key, value and output projections."""
NORM_CLASS_SUFFIXES = ("LayerNorm", "RMSNorm")
"""Normalisation classes that families define themselves, besides `nn.LayerNorm`."""
UNIFORMITY_TEMPERATURE = 2.0
"""t of the uniformity loss (Wang & Isola 2020, and GenD)."""
UNIFORMITY_FLOOR = 1e-6
"""GenD clamps the uniformity loss's mean kernel value to this before the log."""


def final_norm_name(backbone: nn.Module) -> str:
    """The name of the norm after the backbone's last block: the shallowest module named as in `FINAL_NORM_NAMES`."""
    found = [
        (name.count("."), FINAL_NORM_NAMES.index(name.rsplit(".", 1)[-1]), name)
        for name, _ in backbone.named_modules()
        if name.rsplit(".", 1)[-1] in FINAL_NORM_NAMES
    ]
    if not found:
        raise ValueError(
            f"CoRIT normalises tokens with the backbone's final norm, and {type(backbone).__name__} has no module "
            f"named {', '.join(FINAL_NORM_NAMES)}."
        )
    return min(found)[2]


def norm_modules(model: nn.Module) -> list[nn.Module]:
    """Every normalisation layer of `model` (what LayerNorm tuning trains)."""
    return [
        module
        for module in model.modules()
        if isinstance(module, nn.LayerNorm) or type(module).__name__.endswith(NORM_CLASS_SUFFIXES)
    ]


def attention_projections(model: nn.Module) -> list[str]:
    """The names of the query and value projections of `model`'s attention (LoRA's targets)."""
    linear_names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    for pair in ATTENTION_PROJECTIONS:
        if set(pair) <= linear_names:
            return list(pair)
    raise ValueError(
        f"No attention projections named {' or '.join('/'.join(pair) for pair in ATTENTION_PROJECTIONS)}."
    )


def attention_projection_names(model: nn.Module) -> list[str]:
    """The full names of the Linear layers inside each block's attention: the query, key, value and output
    projections, whatever the family calls them (q_proj/k_proj/v_proj/out_proj or o_proj, query/key/value/dense)."""
    names = []
    for name, module in model.named_modules():
        block = BLOCK_PATTERN.search(name)
        if isinstance(module, nn.Linear) and block and ATTENTION_MODULE.search(name[block.end() :]):
            names.append(name)
    if not names:
        raise ValueError("No Linear layers inside a block's attention (a module named *attn* or *attention*).")
    return names


def alignment_loss(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Wang & Isola's alignment on unit-length `features`, with GenD's pairs: the mean squared distance
    ||f_i - f_j||^2 over every pair i < j of images with the same label in the batch (0 without such a pair)."""
    first, second = (labels[:, None] == labels[None, :]).triu(diagonal=1).nonzero(as_tuple=True)
    if first.numel() == 0:
        return features.new_zeros(())
    return (features[first] - features[second]).pow(2).sum(dim=-1).mean()


def uniformity_loss(features: torch.Tensor) -> torch.Tensor:
    """Wang & Isola's uniformity on unit-length `features`: log mean exp(-t ||f_i - f_j||^2) over every pair i < j
    in the batch, the mean floored at `UNIFORMITY_FLOOR` as GenD does (0 for a batch of one)."""
    if features.shape[0] < 2:
        return features.new_zeros(())
    kernel = torch.pdist(features).pow(2).mul(-UNIFORMITY_TEMPERATURE).exp()
    return kernel.mean().clamp(min=UNIFORMITY_FLOOR).log()


def svd_residual_layers(model: nn.Module) -> list[nn.Module]:
    """The SVD-residual layers of `model`: peft's OSF layers (Effort's W = top-r frozen + trainable residual),
    recognised by their attributes, so that this file needs no peft."""
    return [module for module in model.modules() if hasattr(module, "osf_svd_params") and module.active_adapters]


def svd_residual_factors(layer: nn.Module) -> tuple[torch.Tensor, ...]:
    """(U, S, V) of the residual as it trains and (U0, S0, V0) as it started, of the layer's active adapter."""
    adapter = layer.active_adapters[0]
    trained = layer.osf_svd_params[adapter]
    initial = (layer._osf_U_low_init[adapter], layer._osf_S_low_init[adapter], layer._osf_V_low_init[adapter])
    return trained["U_low"], trained["S_low"], trained["V_low"], *initial


def orthogonality_loss(layer: nn.Module) -> torch.Tensor:
    """Effort's orthogonality loss, 0.5 ||U_all U_all^T - I||_F + 0.5 ||V_all V_all^T - I||_F with U_all = [U_top U],
    V_all = [V_top; V]. On a square weight (every attention projection) the frozen top part cancels out:
    0.5 ||U U^T - U0 U0^T||_F + 0.5 ||V^T V - V0^T V0||_F, zero while the residual's factors stay orthonormal
    bases of their initial subspaces."""
    u, _, v, u0, _, v0 = (factor.float() for factor in svd_residual_factors(layer))
    columns = torch.linalg.matrix_norm(u @ u.T - u0 @ u0.T)
    rows = torch.linalg.matrix_norm(v.T @ v - v0.T @ v0)
    return 0.5 * columns + 0.5 * rows


def singular_value_loss(layer: nn.Module) -> torch.Tensor:
    """Effort's singular-value loss |‖W‖_F^2 - ‖W_0‖_F^2|: the weight keeps its energy (sum of squared singular
    values) while the residual trains."""
    u, s, v, u0, s0, v0 = (factor.float() for factor in svd_residual_factors(layer))
    initial = layer.get_base_layer().weight.float()
    current = initial + (u * s) @ v - (u0 * s0) @ v0
    return (current.pow(2).sum() - initial.pow(2).sum()).abs()


def patch_count(vision_config: PreTrainedConfig, pixel_values: torch.Tensor) -> int:
    """N, the patch grid of the actual input: it differs from the config's grid under `interpolate_pos_encoding`."""
    patch = vision_config.patch_size
    patch_height, patch_width = (patch, patch) if isinstance(patch, int) else patch
    return (pixel_values.shape[-2] // patch_height) * (pixel_values.shape[-1] // patch_width)


def split_tokens(tokens: torch.Tensor, num_patches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The token rule: a sequence is [prefix tokens, N patch tokens]. With a prefix, token 0 is the class token (the
    others, registers and the like, are neither); without one (SigLIP), the global token is the mean patch token."""
    prefix = tokens.shape[1] - num_patches
    if prefix < 0:
        raise ValueError(f"The backbone gave {tokens.shape[1]} tokens for an input of {num_patches} patches.")
    patches = tokens[:, prefix:]
    return (tokens[:, 0] if prefix else patches.mean(dim=1)), patches


def image_processor_for(config: CoritConfig) -> BaseImageProcessor:
    """The detector's preprocessing: the backbone checkpoint's own image processor where `from_backbone` kept it,
    else the family's (mean, std, resampling) at the backbone's input size."""
    if config.image_processor:
        settings = dict(config.image_processor)
        return getattr(transformers, settings.pop("image_processor_type"))(**settings)
    family = config.family
    size = config.vision_config.image_size
    square = {"height": size, "width": size}
    resize = {"size": {"shortest_edge": size}, "crop_size": square} if family.center_crop else {"size": square}
    return getattr(transformers, family.image_processor)(
        image_mean=list(family.image_mean),
        image_std=list(family.image_std),
        resample=family.resample,
        do_center_crop=family.center_crop,
        **resize,
    )


def processor_input_size(processor: BaseImageProcessor) -> int | None:
    """The side of the square images `processor` makes (its crop, else its resize target); None when it makes none."""
    size = processor.crop_size if processor.do_center_crop else processor.size
    return size.get("height") or size.get("shortest_edge")


def input_size(config: CoritConfig) -> int:
    """The side of the square images that the detector's preprocessing gives its backbone."""
    return processor_input_size(image_processor_for(config))


def checkpoint_image_processor(pretrained_model_name_or_path: str | os.PathLike, model_type: str) -> dict | None:
    """The settings of the image processor saved beside a checkpoint (None when it has none) in the PIL backend, so
    that they load with or without torchvision: a processor that exists only for torchvision (DINOv3's) is rebuilt
    with the family's PIL processor and the same settings."""
    try:
        settings, _ = ImageProcessingMixin.get_image_processor_dict(pretrained_model_name_or_path)
    except OSError:
        return None
    try:
        processor = AutoImageProcessor.from_pretrained(pretrained_model_name_or_path, backend="pil")
    except ImportError:  # torchvision is not installed
        processor = None
    if not isinstance(processor, PilBackend):
        settings = {key: value for key, value in settings.items() if key != "image_processor_type"}
        processor = getattr(transformers, backbone_family(model_type).image_processor)(**settings)
    return {**processor.to_dict(), "image_processor_type": type(processor).__name__}


def backbone_config(pretrained_model_name_or_path: str | os.PathLike, **config_kwargs) -> CoritConfig:
    """The config of CoRIT on a checkpoint's vision tower: the checkpoint itself when it is a vision model, else its
    `vision_config` (CLIPModel, SiglipModel), with the checkpoint's own image processor."""
    checkpoint = AutoConfig.from_pretrained(pretrained_model_name_or_path)
    vision = getattr(checkpoint, "vision_config", checkpoint)
    processor = checkpoint_image_processor(pretrained_model_name_or_path, vision.model_type)
    config = CoritConfig(vision_config=vision, **{"image_processor": processor, **config_kwargs})
    config.base_model_name_or_path = str(pretrained_model_name_or_path)
    return config


@dataclass
class CoritImageClassifierOutput(ImageClassifierOutput):
    r"""
    region_scores (`tuple(torch.FloatTensor)`, *optional*, returned when `output_region_scores=True`):
        Per HRI layer, the CGP score of each patch, shape `(batch_size, num_patches)`.
    region_masks (`tuple(torch.FloatTensor)`, *optional*, returned when `output_region_scores=True`):
        Per HRI layer, the RRM mask (1 = kept patch), shape `(batch_size, num_patches)`.
    layer_features (`tuple(torch.FloatTensor)`, *optional*, returned when `output_region_scores=True`):
        Per HRI layer, the feature f_l that HRI averages, shape `(batch_size, hidden_size)`.
    """

    region_scores: tuple[torch.FloatTensor, ...] | None = None
    region_masks: tuple[torch.FloatTensor, ...] | None = None
    layer_features: tuple[torch.FloatTensor, ...] | None = None


class CoritPreTrainedModel(PreTrainedModel):
    config: CoritConfig
    config_class = CoritConfig
    base_model_prefix = "corit"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, CoritForImageClassification):
            std = self.config.vision_config.hidden_size**-0.5
            nn.init.normal_(module.classifier.weight, std=std)
            nn.init.zeros_(module.classifier.bias)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """Also writes `auto_map` for the three Auto classes and the image processor of this config."""
        self.config.auto_map = {
            "AutoConfig": "configuration_corit.CoritConfig",
            "AutoModel": "modeling_corit.CoritForImageClassification",
            "AutoModelForImageClassification": "modeling_corit.CoritForImageClassification",
        }
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            image_processor_for(self.config).save_pretrained(save_directory)


@contextmanager
def quiet_load_report():
    """Hide the report of a checkpoint's weights outside the vision tower (a CLIPModel's text tower, a SigLIP
    pooling head), which a vision-only load rightly ignores."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)


class CoritForImageClassification(CoritPreTrainedModel):
    """A ViT-style vision backbone + CGP, RRM, RSI and HRI + a linear classifier (see the config for the switches)."""

    def __init__(self, config: CoritConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.backbone = AutoModel.from_config(config.vision_config, **config.family.model_kwargs)
        self.final_norm_name = final_norm_name(self.backbone)
        self.backbone_interpolates = "interpolate_pos_encoding" in inspect.signature(self.backbone.forward).parameters
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.vision_config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_backbone(
        cls, pretrained_model_name_or_path: str | os.PathLike, **config_kwargs
    ) -> "CoritForImageClassification":
        """CoRIT on the vision tower of a checkpoint, with its weights and its image processor: a vision model
        (DINOv2, DINOv3, ViT, a CLIP or SigLIP vision tower) or a model holding one (CLIPModel, SiglipModel).

        `config_kwargs` are CoritConfig fields. A checkpoint without the tower's weights is a ValueError.
        """
        model = cls(backbone_config(pretrained_model_name_or_path, **config_kwargs))
        tower_class = type(model.backbone)
        with quiet_load_report():
            tower, info = tower_class.from_pretrained(
                pretrained_model_name_or_path,
                config=model.config.vision_config,
                output_loading_info=True,
                **model.config.family.model_kwargs,
            )
        if info["missing_keys"]:
            raise ValueError(
                f"{pretrained_model_name_or_path} lacks the weights of a {tower_class.__name__}: "
                f"{sorted(info['missing_keys'])[:5]}"
            )
        model.backbone.load_state_dict(tower.state_dict())
        return model

    from_clip = from_backbone
    """The name `from_backbone` had when CoRIT sat on CLIP alone."""

    @property
    def final_norm(self) -> nn.Module:
        """The backbone's norm after its last block, which CoRIT applies to the tokens of every HRI layer."""
        return self.backbone.get_submodule(self.final_norm_name)

    def forward(
        self,
        pixel_values: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_region_scores: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        interpolate_pos_encoding: bool = False,
        return_dict: bool | None = None,
    ) -> CoritImageClassifierOutput | tuple:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class ids (`real_label_id` for real images); gives a cross-entropy loss.
        output_region_scores (`bool`, *optional*, defaults to `False`):
            Also return each HRI layer's CGP scores, RRM mask and feature f_l (for heatmaps and attributions).
        interpolate_pos_encoding (`bool`, *optional*, defaults to `False`):
            Interpolate the backbone's position embeddings to the input size (families that always do, such as
            DINOv2, or need not, such as DINOv3's RoPE, take any size anyway).
        """
        interpolate = {"interpolate_pos_encoding": interpolate_pos_encoding} if self.backbone_interpolates else {}
        outputs = self.backbone(
            pixel_values, output_hidden_states=True, output_attentions=output_attentions, **interpolate
        )
        num_patches = patch_count(self.config.vision_config, pixel_values)
        direction = self.contrastive_direction(outputs.hidden_states[-1], num_patches)
        features, scores, masks = [], [], []
        for layer in self.config.hri_layers:
            feature, score, mask = self.layer_feature(
                outputs.hidden_states[layer], num_patches, direction, output_region_scores
            )
            features.append(feature)
            scores.append(score)
            masks.append(mask)
        pooled = torch.stack(features).mean(dim=0)
        logits = self.classifier(self.dropout(self.head_input(pooled)))

        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = nn.functional.cross_entropy(logits.float(), labels) + self.extra_loss(pooled, labels)

        output = CoritImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=outputs.attentions,
            region_scores=tuple(scores) if output_region_scores else None,
            region_masks=tuple(masks) if output_region_scores else None,
            layer_features=tuple(features) if output_region_scores else None,
        )
        use_return_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if use_return_dict else output.to_tuple()

    def head_input(self, features: torch.Tensor) -> torch.Tensor:
        """The feature as the classifier reads it: L2-normalised with `feature_normalization="l2"`."""
        if self.config.feature_normalization == "l2":
            return nn.functional.normalize(features, dim=-1)
        return features

    def extra_loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | float:
        """The config's weighted extra losses, added to the cross-entropy in the forward so that both SAM passes see
        them: alignment and uniformity on the L2-normalised pooled features (GenD), Effort's orthogonality and
        singular-value losses averaged over the SVD-residual layers; 0 when every weight is 0."""
        config = self.config
        loss = 0.0
        if config.alignment_weight or config.uniformity_weight:
            unit = nn.functional.normalize(features.float(), dim=-1)
            if config.alignment_weight:
                loss = loss + config.alignment_weight * alignment_loss(unit, labels)
            if config.uniformity_weight:
                loss = loss + config.uniformity_weight * uniformity_loss(unit)
        layers = svd_residual_layers(self) if config.orthogonality_weight or config.singular_value_weight else []
        if layers and config.orthogonality_weight:
            loss = loss + config.orthogonality_weight * torch.stack([orthogonality_loss(x) for x in layers]).mean()
        if layers and config.singular_value_weight:
            loss = loss + config.singular_value_weight * torch.stack([singular_value_loss(x) for x in layers]).mean()
        return loss

    @torch.no_grad()
    def contrastive_direction(self, last_hidden_state: torch.Tensor, num_patches: int) -> torch.Tensor:
        """d = normalise(W[fake] - W[real]) per sample; with several fake classes, the one the last layer's global
        token makes most likely."""
        weight = self.classifier.weight.detach()
        real = self.config.real_label_id
        fake_ids = [i for i in range(self.num_labels) if i != real]
        if len(fake_ids) == 1:
            fake_rows = weight[fake_ids[0]].expand(last_hidden_state.shape[0], -1)
        else:
            global_token, _ = split_tokens(self.final_norm(last_hidden_state), num_patches)
            fake_logits = self.classifier(self.head_input(global_token))[:, fake_ids]
            best = torch.tensor(fake_ids, device=global_token.device)[fake_logits.argmax(dim=-1)]
            fake_rows = weight[best]
        return nn.functional.normalize(fake_rows - weight[real], dim=-1)

    def layer_feature(
        self, hidden_state: torch.Tensor, num_patches: int, direction: torch.Tensor, need_scores: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """f_l = c^ + beta (||c^|| / ||r||) r, with c^ the global token and r the mean of the RRM-kept patch tokens."""
        global_token, patches = split_tokens(self.final_norm(hidden_state), num_patches)
        use_rsi = self.config.rsi_strength > 0
        scores = self.region_scores(patches, direction) if (use_rsi or need_scores) else None
        mask = self.region_mask(scores) if scores is not None else None
        if not use_rsi:
            return global_token, scores, mask
        weights = mask.unsqueeze(-1).to(patches.dtype)
        region = (patches * weights).sum(dim=1) / weights.sum(dim=1)
        scale = (global_token.norm(dim=-1) / region.norm(dim=-1).clamp_min(RSI_EPS)).detach()
        return global_token + self.config.rsi_strength * scale.unsqueeze(-1) * region, scores, mask

    @torch.no_grad()
    def region_scores(self, patches: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        """CGP: s_i = <P^_i - mean_j P^_j, d>, the closed-form margin gradient w.r.t. a region's token."""
        centred = patches - patches.mean(dim=1, keepdim=True)
        return torch.einsum("bnd,bd->bn", centred.float(), direction.float())

    @torch.no_grad()
    def region_mask(self, scores: torch.Tensor) -> torch.Tensor:
        """RRM: 1 for the top ceil(ratio x N) patches by |score|, 0 elsewhere; all ones when RRM is off."""
        if not self.config.use_cgp_mask:
            return torch.ones_like(scores)
        keep = self.config.num_kept_patches(scores.shape[1])
        top = scores.abs().topk(keep, dim=1).indices
        return torch.zeros_like(scores).scatter_(1, top, 1.0)


CoritConfig.register_for_auto_class("AutoConfig")
CoritForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = ["CoritForImageClassification", "CoritPreTrainedModel", "CoritImageClassifierOutput"]

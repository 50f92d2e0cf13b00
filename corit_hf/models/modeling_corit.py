"""CoRIT: Contrastive Regional Injection Transformer on a CLIP vision backbone.

Self-contained (torch + transformers + configuration_corit) so it also loads as remote code.
"""

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, CLIPImageProcessorPil, CLIPVisionModel, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import logging

from .configuration_corit import CoritConfig


CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
RSI_EPS = 1e-6


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
    _no_split_modules = ["CLIPEncoderLayer", "CLIPVisionEmbeddings"]
    _supports_sdpa = True

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, CoritForImageClassification):
            std = self.config.vision_config.hidden_size**-0.5
            nn.init.normal_(module.classifier.weight, std=std)
            nn.init.zeros_(module.classifier.bias)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """Also writes `auto_map` for the three Auto classes and the CLIP preprocessor of this config."""
        self.config.auto_map = {
            "AutoConfig": "configuration_corit.CoritConfig",
            "AutoModel": "modeling_corit.CoritForImageClassification",
            "AutoModelForImageClassification": "modeling_corit.CoritForImageClassification",
        }
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            image_processor_for(self.config).save_pretrained(save_directory)


def image_processor_for(config: CoritConfig) -> CLIPImageProcessorPil:
    """The CLIP preprocessing (resize, centre crop, CLIP mean/std) at the backbone's input size."""
    size = config.vision_config.image_size
    return CLIPImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )


@contextmanager
def quiet_load_report():
    """Hide the report of a CLIPModel checkpoint's text weights, which a vision-only load rightly ignores."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)


class CoritForImageClassification(CoritPreTrainedModel):
    """CLIP vision backbone + CGP, RRM, RSI and HRI + a linear classifier (see the config for the switches)."""

    def __init__(self, config: CoritConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.backbone = CLIPVisionModel._from_config(config.vision_config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.vision_config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_clip(
        cls, pretrained_model_name_or_path: str | os.PathLike, **config_kwargs
    ) -> "CoritForImageClassification":
        """CoRIT whose backbone holds the vision weights of a CLIP checkpoint (`CLIPModel` or `CLIPVisionModel`)."""
        clip_config = AutoConfig.from_pretrained(pretrained_model_name_or_path)
        vision_config = getattr(clip_config, "vision_config", clip_config)
        model = cls(CoritConfig(vision_config=vision_config.to_dict(), **config_kwargs))
        with quiet_load_report():
            vision, info = CLIPVisionModel.from_pretrained(
                pretrained_model_name_or_path, config=vision_config, output_loading_info=True
            )
        if info["missing_keys"]:
            raise ValueError(
                f"{pretrained_model_name_or_path} lacks CLIP vision weights: {sorted(info['missing_keys'])[:5]}"
            )
        model.backbone.load_state_dict(vision.state_dict())
        model.config.base_model_name_or_path = str(pretrained_model_name_or_path)
        return model

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
        """
        outputs = self.backbone(
            pixel_values,
            output_hidden_states=True,
            output_attentions=output_attentions,
            interpolate_pos_encoding=interpolate_pos_encoding,
        )
        direction = self.contrastive_direction(outputs.pooler_output)
        features, scores, masks = [], [], []
        for layer in self.config.hri_layers:
            feature, score, mask = self.layer_feature(outputs.hidden_states[layer], direction, output_region_scores)
            features.append(feature)
            scores.append(score)
            masks.append(mask)
        pooled = torch.stack(features).mean(dim=0)
        logits = self.classifier(self.dropout(pooled))

        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.to(logits.device))

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

    @torch.no_grad()
    def contrastive_direction(self, pooled: torch.Tensor) -> torch.Tensor:
        """d = normalise(W[fake] - W[real]) per sample; with several fake classes, the most likely one."""
        weight = self.classifier.weight.detach()
        real = self.config.real_label_id
        fake_ids = [i for i in range(self.num_labels) if i != real]
        if len(fake_ids) == 1:
            fake_rows = weight[fake_ids[0]].expand(pooled.shape[0], -1)
        else:
            fake_logits = self.classifier(pooled)[:, fake_ids]
            best = torch.tensor(fake_ids, device=pooled.device)[fake_logits.argmax(dim=-1)]
            fake_rows = weight[best]
        return nn.functional.normalize(fake_rows - weight[real], dim=-1)

    def layer_feature(
        self, hidden_state: torch.Tensor, direction: torch.Tensor, need_scores: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """f_l = c^ + beta (||c^|| / ||r||) r, with r the mean of the RRM-kept patch tokens."""
        tokens = self.backbone.post_layernorm(hidden_state)
        cls_token, patches = tokens[:, 0], tokens[:, 1:]
        use_rsi = self.config.rsi_strength > 0
        scores = self.region_scores(patches, direction) if (use_rsi or need_scores) else None
        mask = self.region_mask(scores) if scores is not None else None
        if not use_rsi:
            return cls_token, scores, mask
        weights = mask.unsqueeze(-1).to(patches.dtype)
        region = (patches * weights).sum(dim=1) / weights.sum(dim=1)
        scale = (cls_token.norm(dim=-1) / region.norm(dim=-1).clamp_min(RSI_EPS)).detach()
        return cls_token + self.config.rsi_strength * scale.unsqueeze(-1) * region, scores, mask

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

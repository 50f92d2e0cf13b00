"""Fine-tuning modes: which parameters of a CoRIT model train (the head alone, LayerNorms, LoRA or OSF via peft, or
everything)."""

import re

from peft import LoraConfig, OSFConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from ..defaults import FINETUNING_MODES, LORA_RANK, OSF_RANK
from .modeling_corit import attention_projection_names, attention_projections, norm_modules


def apply_finetuning(
    model: PreTrainedModel,
    mode: str = "full",
    lora_rank: int = LORA_RANK,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    osf_rank: int = OSF_RANK,
) -> PreTrainedModel | PeftModel:
    """Set which weights train; the classifier always trains. `head` freezes the backbone; `layernorm` trains the
    backbone's norms, whatever their class; `lora` returns a `PeftModel` on the attention's query and value
    projections; `osf` one on all of each block's attention projections, whose top singular directions stay frozen
    and whose residual of rank `osf_rank` trains (peft's OSF, Effort's SVD residual)."""
    if mode not in FINETUNING_MODES:
        raise ValueError(f"finetuning mode must be one of {FINETUNING_MODES}, got {mode!r}.")
    if mode == "lora":
        lora_config = LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=attention_projections(model),
            modules_to_save=["classifier"],
        )
        return get_peft_model(model, lora_config)
    if mode == "osf":
        return get_peft_model(model, osf_config(model, osf_rank))
    model.requires_grad_(mode == "full")
    if mode == "layernorm":
        for module in norm_modules(model):
            module.requires_grad_(True)
    model.classifier.requires_grad_(True)
    return model


def osf_config(model: PreTrainedModel, rank: int) -> OSFConfig:
    """OSF on every attention projection of `model`, each keeping its top min(shape) - `rank` singular directions
    frozen (peft's `effective_rank`), so that `rank` residual directions train in every one."""
    names = attention_projection_names(model)
    smallest = {name: min(model.get_submodule(name).weight.shape) for name in names}
    if rank >= min(smallest.values()):
        raise ValueError(
            f"osf_rank must be below the attention projections' smaller side ({min(smallest.values())}), got {rank}."
        )
    return OSFConfig(
        target_modules=names,
        rank_pattern={f"^{re.escape(name)}$": side - rank for name, side in smallest.items()},
        modules_to_save=["classifier"],
    )


def trainable_parameter_count(model: nn.Module) -> int:
    """How many weights train (after `apply_finetuning`)."""
    return sum(param.numel() for param in model.parameters() if param.requires_grad)

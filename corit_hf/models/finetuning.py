"""Fine-tuning modes: which parameters of a CoRIT model train (full, LayerNorm-only, or LoRA via peft)."""

from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

from .modeling_corit import attention_projections, norm_modules


FINETUNING_MODES = ("full", "layernorm", "lora")


def apply_finetuning(
    model: PreTrainedModel,
    mode: str = "full",
    lora_rank: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
) -> PreTrainedModel | PeftModel:
    """Set which weights train; the classifier always trains. `layernorm` trains the backbone's norms, whatever
    their class; LoRA returns a `PeftModel` on the attention's query and value projections, whatever their names."""
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
    model.requires_grad_(mode == "full")
    if mode == "layernorm":
        for module in norm_modules(model):
            module.requires_grad_(True)
    model.classifier.requires_grad_(True)
    return model

"""corit_hf: the CoRIT forged-image detector for transformers, with SAM, GSNR and COR tooling."""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .models.configuration_corit import CoritConfig
from .models.modeling_corit import CoritForImageClassification, CoritPreTrainedModel, image_processor_for


__version__ = "0.1.0"

AutoConfig.register("corit", CoritConfig, exist_ok=True)
AutoModel.register(CoritConfig, CoritForImageClassification, exist_ok=True)
AutoModelForImageClassification.register(CoritConfig, CoritForImageClassification, exist_ok=True)

__all__ = [
    "CoritConfig",
    "CoritForImageClassification",
    "CoritPreTrainedModel",
    "CoritTrainer",
    "CoritTrainingArguments",
    "image_processor_for",
]


def __getattr__(name: str):
    # The trainer pulls in Trainer/accelerate: imported on first use so `import corit_hf` and `corit --help` stay fast.
    if name in ("CoritTrainer", "CoritTrainingArguments"):
        from .training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

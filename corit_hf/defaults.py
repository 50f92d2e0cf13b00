"""Default settings of `corit train` and `corit study`, in one dependency-free module so `corit --help` stays fast.

The study defaults are sized to finish in about 10 minutes on a 2-core CPU with the random-init `tiny` backbone.
"""

MARGIN = 0.05
"""A run whose held-out AUC is within this distance of 0.5 is at chance (collapsed)."""
THRESHOLD = 0.5
"""Fake probability above which an image is labelled fake: exactly 0.5 is real, as argmax over [real, fake] logits
and the field's evaluation code (`> 0.5`) decide (`evaluation.collapse.is_labelled_fake` applies it)."""

CONFIGURATIONS: dict[str, dict] = {
    # The plain linear probe on the backbone (UniversalFakeDetect style on CLIP): every CoRIT mechanism off.
    "baseline": {"use_cgp_mask": False, "rsi_strength": 0.0, "hri_layers": [-1]},
    # The section-3 reading of CoRIT: RRM + RSI + HRI at the config defaults.
    "corit": {},
    # Single-mechanism ablations of CoRIT. RRM only acts through RSI, so "corit-no-rsi" is HRI alone.
    "corit-no-rrm": {"use_cgp_mask": False},
    "corit-no-rsi": {"rsi_strength": 0.0},
    "corit-no-hri": {"hri_layers": [-1]},
}
"""Named model configurations: `CoritConfig` overrides on top of the preset."""

CONFIG_NAMES = tuple(CONFIGURATIONS)

METHOD = "corit"
"""The training recipe (`corit_hf.training.methods`) of `corit train` without --method."""
FINETUNING_MODES = ("full", "head", "layernorm", "lora", "osf")
"""What trains: everything, the head alone (frozen backbone), the norms, LoRA or OSF adapters (with the head)."""
LORA_RANK = 8
OSF_RANK = 1
"""OSF's trainable residual rank per attention projection: Effort's (the top min(dim) - 1 singular directions
frozen, 1023 of 1024 on ViT-L)."""

TRAIN_FAMILY = "gan"
N_TRAIN = 512
N_TEST = 128
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
LEARNING_RATE_PRETRAINED = 2e-5
EPOCHS = 8
VAL_FRACTION = 0.1
"""Share of a folder of real/fake class folders alone (no train split) carved out for validation, class by class."""
GSNR_EVERY = 10
VIDEO_FRAMES = 32
"""Frames sampled per video (DeepfakeBench and GenD score 32 frames)."""
PREPARE_SIZE = 256
"""Shorter side of prepared frames and side of face crops: DeepfakeBench's face-crop size, above the 224 px input
of CLIP ViT-B/16 and L/14, so every model input size is a downscale."""
AUGMENT_FOLDER = "blur-jpeg"
"""`corit train --data FOLDER` augments as the field does (CNNDetection's blur+JPEG (0.5))."""
AUGMENT_BENCHMARK = "none"
"""The built-in benchmark's default, chosen by measurement: with blur+JPEG the tiny 64 px study detector learns
nothing in 100 steps (README: "Augmentation on the built-in benchmark, as measured")."""

STUDY_RHOS = (0.0, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 5.0)
STUDY_CONFIGS = CONFIG_NAMES
STUDY_SEEDS = (0,)
STUDY_MAX_STEPS = 100
STUDY_BATCH_SIZE = 16
STUDY_GSNR_EVERY = 25
STUDY_OUTPUT_DIR = "corit-study"

DISTILL_PRESET = "tiny"
DISTILL_N_CROPS = 12000
DISTILL_N_HOLDOUT_CROPS = 1000
DISTILL_EPOCHS = 12
DISTILL_BATCH_SIZE = 128
DISTILL_LEARNING_RATE = 2e-3
DISTILL_TEMPERATURE = 2.0
DISTILL_TEACHER_SIZE = 128
DISTILL_HOLDOUT_FRACTION = 0.15

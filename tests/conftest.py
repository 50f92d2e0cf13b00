"""Offline, CPU-only test settings shared by the whole suite."""

import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
# Tiny models on a shared 2-core machine: more threads only oversubscribe (subprocesses inherit this too).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402


torch.set_num_threads(1)

"""Offline, CPU-only test settings shared by the whole suite."""

import atexit
import os
import shutil
import tempfile


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
# Raw --data folders are prepared into a cache: a fresh one per test session, never the user's.
if "CORIT_CACHE" not in os.environ:
    os.environ["CORIT_CACHE"] = tempfile.mkdtemp(prefix="corit-test-cache-")
    atexit.register(shutil.rmtree, os.environ["CORIT_CACHE"], ignore_errors=True)
# Tiny models on a shared 2-core machine: more threads only oversubscribe (subprocesses inherit this too).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402


torch.set_num_threads(1)

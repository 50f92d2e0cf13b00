"""Gradio widget of the metric, the standard `evaluate` Space entry point."""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget


# The script by its file name: loading the folder needs it to be named like the script, and a Space's is not.
module = evaluate.load(str(Path(__file__).with_name("optimization_collapse.py")))
launch_gradio_widget(module)

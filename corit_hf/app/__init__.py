"""The Gradio demo (`corit serve`, the Space): fake probabilities, region heatmaps and video analysis."""

"""Evaluation: the field's detection scores, collapse and COR (collapse.py), scoring, predictions, robustness."""

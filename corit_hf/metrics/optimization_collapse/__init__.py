"""The `optimization_collapse` evaluate metric; load it with `evaluate.load` on this folder's path."""

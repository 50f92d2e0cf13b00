"""The semantic prior: an ImageNet teacher distilled into a CLIP vision tower, and the priors the package ships."""

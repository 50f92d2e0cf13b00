"""Forensic data: robust image opening, the offline forgery benchmark, folder loaders, prepared datasets
(`corit prepare`) and the collator."""

from .benchmark.build import build_benchmark
from .benchmark.export import write_benchmark_folder
from .benchmark.families import FAMILIES, ForgeryFamily, get_family, register_family
from .collator import ForensicCollator
from .folders import ForensicFolder, LoadReport, load_forensic_folder
from .images import DEFAULT_MAX_PIXELS, ImageLoadError, open_image
from .preparation.prepare import PrepareSummary, prepare_dataset
from .preparation.prepared import open_prepared
from .preparation.prepared_format import PrepareOptions


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FAMILIES",
    "ForensicCollator",
    "ForensicFolder",
    "ForgeryFamily",
    "ImageLoadError",
    "LoadReport",
    "PrepareOptions",
    "PrepareSummary",
    "build_benchmark",
    "get_family",
    "load_forensic_folder",
    "open_image",
    "open_prepared",
    "prepare_dataset",
    "register_family",
    "write_benchmark_folder",
]

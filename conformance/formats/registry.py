"""The registered weight formats, tensor layouts and architecture sources. A new one is a module plus one entry here.

Order matters: the first format that claims a file name owns it, and the first format with header files
supplies the tensors the static facts count (registry order is load preference). The first layout whose
config matches folds quantized tensors before counting. The first source present in a folder supplies its
architecture; config.json answers (with its own error) when none is.
"""

from __future__ import annotations

from typing import Any

from ..candidate import Candidate
from .base import ArchitectureSource, TensorLayout, WeightFormat
from .config_json import ConfigJsonSource
from .gguf import GGUFFormat, GGUFSource
from .listed import LISTED_FORMATS
from .quantized import QUANTIZED_LAYOUTS
from .safetensors import SafetensorsFormat
from .torch_pickle import TorchPickleFormat

WEIGHT_FORMATS: list[WeightFormat] = [SafetensorsFormat(), TorchPickleFormat(), GGUFFormat(), *LISTED_FORMATS]
TENSOR_LAYOUTS: list[TensorLayout] = [*QUANTIZED_LAYOUTS]
# config.json first: a folder holding config.json and a GGUF export is described by its config.json.
ARCHITECTURE_SOURCES: list[ArchitectureSource] = [ConfigJsonSource(), GGUFSource()]


def format_claiming(relative: str) -> WeightFormat | None:
    """The format of a weight file named `relative` (posix, relative to the folder), or None.

    Only top-level files are weights: sub-folders hold adapters, pooling configs, other tools' checkpoints.
    """
    if "/" in relative:
        return None
    return next((fmt for fmt in WEIGHT_FORMATS if fmt.claims(relative)), None)


def format_named(name: str) -> WeightFormat:
    """The registered format called `name`; KeyError naming the known ones otherwise."""
    for fmt in WEIGHT_FORMATS:
        if fmt.name == name:
            return fmt
    raise KeyError(f"unknown weight format {name!r} (known: {', '.join(f.name for f in WEIGHT_FORMATS)})")


def tensor_layout(config: dict[str, Any] | None) -> TensorLayout | None:
    """The first registered layout the config says the tensors are stored in, or None (stored as the model has them)."""
    return next((layout for layout in TENSOR_LAYOUTS if layout.applies(config)), None)


def weight_suffixes() -> tuple[str, ...]:
    """Every file name ending a registered format claims (lower case)."""
    return tuple(suffix for fmt in WEIGHT_FORMATS for suffix in fmt.suffixes)


def architecture_source(candidate: Candidate) -> ArchitectureSource:
    """The first registered source the folder holds, else the first registered (config.json, which says what is missing)."""
    try:
        names = set(candidate.file_names())
    except OSError:  # an unlistable folder: config.json's reader then says what is wrong
        return ARCHITECTURE_SOURCES[0]
    return next((source for source in ARCHITECTURE_SOURCES if source.present(names)), ARCHITECTURE_SOURCES[0])

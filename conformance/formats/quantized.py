"""Quantized tensor layouts: how GPTQ, AWQ, compressed-tensors, bitsandbytes and FP8 checkpoints store a model's tensors.

Each layout folds its stored pieces (packed integers, zeros, scales, group indices, absmax, quant maps) into
the one tensor the model has (see `base.TensorLayout`), so parameter counts are the unquantized model's and
stored bytes stay the bytes on disk.
"""

from __future__ import annotations

from .base import TensorLayout

QUANTIZED_LAYOUTS: list[TensorLayout] = []  # in preference order; the first whose config matches folds the tensors

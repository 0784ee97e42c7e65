"""FP8 checkpoints: F8_E4M3 (or F8_E5M2) weights at their full shape with scale tensors beside them.

Stored pieces per linear layer `<m>` (transformers' fine-grained FP8, `quant_method: fp8`; FBGEMM,
`quant_method: fbgemm_fp8`): `weight` F8 [out, in]; `weight_scale_inv` F32 [ceil(out/bo), ceil(in/bi)] for
`weight_block_size: [bo, bi]` (block scales, DeepSeek-V3's layout), or `weight_scale` / `weight_scale_inv`
[out, 1] or [out] (channel scales) or one value (tensor scale); `input_scale` (and FBGEMM's `input_scale_ub`)
one value. The weight is the parameter (F8 is a float dtype); the scales fold into its stored bytes.
"""

from __future__ import annotations

from typing import Any

from .quantized_base import PiecewiseLayout, expect_shape, folded, quantization_config
from .tensors import TensorInfo

SCALE_PIECES = ("weight_scale_inv", "weight_scale", "input_scale", "input_scale_ub")


class Fp8Layout(PiecewiseLayout):
    """FP8 weights with block, channel or tensor scales (see the module docstring)."""

    name = "fp8"
    methods = ("fp8", "fbgemm_fp8")
    pieces = ("weight", *SCALE_PIECES)
    markers = SCALE_PIECES
    standalone = ("weight",)

    def settings(self, config: dict[str, Any]) -> dict[str, Any]:
        """`weight_block_size` [bo, bi] (positive integers) or None; ValueError when malformed."""
        block = (quantization_config(config) or {}).get("weight_block_size")
        if block is not None and not (
            isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)
        ):
            raise ValueError(f"quantization_config.weight_block_size {block!r} is not two positive integers")
        return {"block": tuple(block) if block else None}

    def check_standalone(self, prefix: str, module: dict[str, TensorInfo]) -> None:
        """ValueError for an F8 weight with no scale beside it: the scales are a missing piece, not an unquantized layer."""
        weight = module.get("weight")
        if weight is not None and weight.dtype.startswith("F8"):
            raise ValueError(f"incomplete FP8 group {prefix}: {weight.dtype} weight without weight_scale_inv or weight_scale")

    def fold(self, prefix: str, pieces: dict[str, TensorInfo], settings: dict[str, Any]) -> list[TensorInfo]:
        """`<m>.weight` as stored (F8), its `packed_bytes` with the scales'; ValueError when a scale's shape disagrees."""
        weight = pieces.get("weight")
        if weight is None:
            raise ValueError(f"incomplete FP8 group {prefix}: scales without weight")
        if not weight.dtype.startswith("F8"):
            raise ValueError(f"{weight.name}: stored as {weight.dtype} beside FP8 scales")
        if len(weight.shape) != 2:
            raise ValueError(f"{weight.name}: an FP8 linear weight has 2 dimensions, not {len(weight.shape)}")
        out, in_features = weight.shape
        channel = {(out, 1), (out,), (), (1,)}
        for name in ("weight_scale_inv", "weight_scale"):
            scale = pieces.get(name)
            if scale is None:
                continue
            if settings["block"] and name == "weight_scale_inv":
                rows, columns = settings["block"]
                expect_shape(scale, (-(-out // rows), -(-in_features // columns)), f"block {name}")
            elif scale.shape not in channel:
                raise ValueError(f"{scale.name}: {name} shape {list(scale.shape)} is neither per channel [{out}, 1] nor one value")
        for name in ("input_scale", "input_scale_ub"):
            if name in pieces and pieces[name].elements != 1:
                raise ValueError(f"{pieces[name].name}: {name} holds {pieces[name].elements} values, not one")
        return [folded(prefix, weight.dtype, weight.shape, pieces, weight)]

"""bitsandbytes 4-bit (nf4, fp4) and 8-bit (LLM.int8) checkpoints as transformers saves them.

Stored pieces per linear layer `<m>` (bitsandbytes `Params4bit` / `Linear8bitLt` state dicts, n = out·in):

- 4-bit: `weight` U8 [ceil(n/2), 1] (two 4-bit codes a byte), `weight.absmax` F32 [ceil(n/blocksize)] (U8 with
  double quantization, then `weight.nested_absmax` F32 and `weight.nested_quant_map` F32 [256] too),
  `weight.quant_map` F32 [16], `weight.quant_state.bitsandbytes__nf4` (or `__fp4`) U8: the quant state as
  JSON bytes, which alone holds the weight's shape.
- 8-bit: `weight` I8 [out, in], `SCB` F32 [out] (the row scales), `weight_format` U8.

Headers never say whether n was odd (ceil(n/2) bytes either way), so a 4-bit weight folds into `<m>.weight`
of 2·bytes elements, shaped [2·bytes]: exact for every even n (any layer with an even in or out). The model
computes in `bnb_4bit_compute_dtype` (default float32); an 8-bit layer in float16.
"""

from __future__ import annotations

from typing import Any

from .quantized_base import TORCH_DTYPE_NAMES, PiecewiseLayout, dims, expect_dtype, expect_shape, folded, quantization_config
from .tensors import TensorInfo

QUANT_STATES = ("weight.quant_state.bitsandbytes__nf4", "weight.quant_state.bitsandbytes__fp4")
BLOCK_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)  # the blocksizes bitsandbytes' quantize_4bit accepts


class BitsAndBytesLayout(PiecewiseLayout):
    """bitsandbytes 4-bit and 8-bit linear layers (see the module docstring for the shapes folded)."""

    name = "bitsandbytes"
    methods = ("bitsandbytes", "bitsandbytes_4bit", "bitsandbytes_8bit")
    pieces = (
        "weight", "weight.absmax", "weight.quant_map", "weight.nested_absmax", "weight.nested_quant_map",
        *QUANT_STATES, "SCB", "weight_format",
    )
    markers = ("weight.absmax", "weight.quant_map", *QUANT_STATES, "SCB")
    standalone = ("weight",)

    def settings(self, config: dict[str, Any]) -> dict[str, Any]:
        """The 4-bit quant type (nf4, fp4) and compute dtype; ValueError for a compute dtype it does not know."""
        settings = quantization_config(config) or {}
        compute = settings.get("bnb_4bit_compute_dtype") or "float32"
        if not isinstance(compute, str) or compute.removeprefix("torch.") not in TORCH_DTYPE_NAMES:
            raise ValueError(f"quantization_config.bnb_4bit_compute_dtype {compute!r} is not a float dtype")
        quant_type = settings.get("bnb_4bit_quant_type") or "fp4"
        return {"compute_dtype": TORCH_DTYPE_NAMES[compute.removeprefix("torch.")], "quant_type": quant_type}

    def fold(self, prefix: str, pieces: dict[str, TensorInfo], settings: dict[str, Any]) -> list[TensorInfo]:
        """`<m>.weight` of the unquantized layer from its 4-bit or 8-bit pieces; ValueError for a missing or odd piece."""
        if "SCB" in pieces:
            return [self._fold_int8(prefix, pieces)]
        return [self._fold_4bit(prefix, pieces, settings)]

    def _fold_int8(self, prefix: str, pieces: dict[str, TensorInfo]) -> TensorInfo:
        if "weight" not in pieces:
            raise ValueError(f"incomplete bitsandbytes 8-bit group {prefix}: weight missing beside SCB")
        weight, scb = pieces["weight"], pieces["SCB"]
        expect_dtype(weight, {"I8"}, "8-bit weight")
        out, _ = dims(weight, 2, "8-bit weight")
        expect_shape(scb, (out,), "SCB")
        return folded(prefix, "F16", weight.shape, pieces, weight)

    def _fold_4bit(self, prefix: str, pieces: dict[str, TensorInfo], settings: dict[str, Any]) -> TensorInfo:
        missing = [name for name in ("weight", "weight.absmax", "weight.quant_map") if name not in pieces]
        states = [name for name in QUANT_STATES if name in pieces]
        if missing or len(states) != 1:
            what = ", ".join(missing) or ("no quant_state" if not states else "two quant states")
            raise ValueError(f"incomplete bitsandbytes 4-bit group {prefix}: {what}")
        state_type = states[0].rsplit("__", 1)[1]
        if state_type != settings["quant_type"]:
            raise ValueError(f"{prefix}: quant state {state_type} disagrees with bnb_4bit_quant_type {settings['quant_type']}")
        weight, absmax = pieces["weight"], pieces["weight.absmax"]
        expect_dtype(weight, {"U8"}, "4-bit weight")
        expect_shape(pieces["weight.quant_map"], (16,), "quant_map")
        nested = [name for name in ("weight.nested_absmax", "weight.nested_quant_map") if name in pieces]
        if absmax.dtype == "U8" and len(nested) != 2:
            raise ValueError(f"incomplete bitsandbytes 4-bit group {prefix}: 8-bit absmax without nested_absmax and nested_quant_map")
        if absmax.dtype != "U8" and nested:
            raise ValueError(f"{prefix}: nested absmax beside a {absmax.dtype} absmax (double quantization stores it as U8)")
        elements = 2 * weight.elements
        blocks = absmax.elements
        if not any(-(-elements // size) == blocks or -(-(elements - 1) // size) == blocks for size in BLOCK_SIZES):
            raise ValueError(f"{absmax.name}: {blocks} blocks fit no bitsandbytes blocksize for {elements} values")
        return folded(prefix, settings["compute_dtype"], (elements,), pieces, weight)

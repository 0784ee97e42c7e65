"""Quantized tensor layouts: how GPTQ, AWQ, compressed-tensors, bitsandbytes and FP8 checkpoints store a model's tensors.

Each layout folds its stored pieces (packed integers, zeros, scales, group indices, absmax, quant maps) into
the one tensor the model has (see `base.TensorLayout`), so parameter counts are the unquantized model's and
stored bytes stay the bytes on disk. The layouts live in `integer_packed.py` (GPTQ, AWQ, compressed-tensors),
`bitsandbytes.py` and `fp8.py`; this module lists them and describes a checkpoint's quantization
(`describe_quantization`, the static fact `quantization`).
"""

from __future__ import annotations

import re
from typing import Any

from .base import TensorLayout
from .bitsandbytes import BitsAndBytesLayout
from .dtypes import DTYPES
from .fp8 import Fp8Layout
from .integer_packed import AwqLayout, CompressedTensorsLayout, GptqLayout
from .parameters import is_buffer
from .quantized_base import MAX_CONFIG_LIST, PiecewiseLayout, quant_method, quantization_config
from .tensors import TensorInfo


def _packed(tensors: list[TensorInfo]) -> list[TensorInfo]:
    """Integer tensors of two or more dimensions: packed quantized weights (ids and masks are 1-D or buffers)."""
    return [t for t in tensors if len(t.shape) >= 2 and not is_buffer(t.name) and not (DTYPES.get(t.dtype) and DTYPES[t.dtype].floating)]


class UnreadLayout(TensorLayout):
    """Any other `quant_method` (hqq, quanto, eetq, ...): float tensors pass, packed integers are an error, never a wrong count."""

    name = "unread"

    def applies(self, config: dict[str, Any] | None) -> bool:
        """True when the config names a quant_method no registered layout reads."""
        method = quant_method(config)
        return method is not None and not any(method in getattr(layout, "methods", ()) for layout in KNOWN_LAYOUTS)

    def logical_tensors(self, tensors: list[TensorInfo], config: dict[str, Any]) -> list[TensorInfo]:
        """The tensors as stored when none is packed; ValueError naming the method and a packed tensor otherwise."""
        packed = _packed(tensors)
        if packed:
            raise ValueError(
                f"quant_method {quant_method(config)!r} stores packed {packed[0].dtype} tensors ({packed[0].name}, {len(packed)} in all) "
                "in a layout this suite does not read: counting them would not give the model's parameters"
            )
        return tensors


KNOWN_LAYOUTS: list[TensorLayout] = [GptqLayout(), AwqLayout(), CompressedTensorsLayout(), BitsAndBytesLayout(), Fp8Layout()]
# in preference order; the first whose config matches folds the tensors; any other quant_method: UnreadLayout
QUANTIZED_LAYOUTS: list[TensorLayout] = [*KNOWN_LAYOUTS, UnreadLayout()]

# Every piece a known layout folds, less a plain `weight` (every model's own name): one of these left after
# the fold is a quantized layer no layout folded (no config, an unread config, or one that does not describe it).
QUANTIZATION_PIECES: tuple[str, ...] = tuple(sorted({
    piece for layout in KNOWN_LAYOUTS if isinstance(layout, PiecewiseLayout) for piece in layout.pieces if piece not in layout.standalone
}))
_PIECE_TAILS = tuple(f".{piece}" for piece in QUANTIZATION_PIECES)
INTEGER_DTYPES = frozenset(name for name, dtype in DTYPES.items() if not dtype.floating and name.startswith(("I", "U")))
MAX_NAMED_UNFOLDED = 3  # tensors named in the error; the count says how many there are


def unfolded_quantized(tensors: list[TensorInfo]) -> list[TensorInfo]:
    """Tensors that are quantization pieces (`QUANTIZATION_PIECES`) or integer matrices (2+ dims), known buffers left out.

    Applied to the tensors after the layout's fold: any found is a quantized weight no layout folded, so
    counting the tensors as stored would leave it out (integers are not parameters) or count its scales.
    """
    return [
        t for t in tensors
        if (t.name.endswith(_PIECE_TAILS) or (t.dtype in INTEGER_DTYPES and len(t.shape) >= 2)) and not is_buffer(t.name)
    ]


def require_folded(tensors: list[TensorInfo], config: dict[str, Any] | None, folded_by: str | None) -> None:
    """Raise ValueError naming the first unfolded quantized tensors (`unfolded_quantized`), if any.

    `folded_by` is the layout that folded `tensors` (None: no layout applied, the config names none this
    suite reads). GGUF block types are floating in the dtype table, so GGUF tensors never match.
    """
    left = unfolded_quantized(tensors)
    if not left:
        return
    named = ", ".join(f"{t.name[:200]} ({t.dtype} {list(t.shape)})" for t in left[:MAX_NAMED_UNFOLDED])
    more = f" and {len(left) - MAX_NAMED_UNFOLDED} more" if len(left) > MAX_NAMED_UNFOLDED else ""
    if folded_by is None:
        why = "without a quantization_config this suite reads"
    else:
        why = f"that its quantization_config (quant_method {quant_method(config)!r}) does not describe"
    raise ValueError(
        f"the checkpoint stores quantized or integer weights {why}: {named}{more}; "
        "counting them as stored would not give the model's parameters"
    )

PLAIN_FLOATS = frozenset({"F64", "F32", "F16", "BF16"})  # stored as computed: not a quantization
MAX_NAMED_MODULES = 20  # unquantized matrices named in the fact; the count says how many there are
_NOMINAL_BITS = re.compile(r"^(?:I?Q|TQ)(\d)|^(?:MX|NV)FP(\d)|^F(\d+)")
# config keys that list the modules a method leaves in full precision
NOT_CONVERTED_KEYS = ("modules_to_not_convert", "llm_int8_skip_modules", "ignore", "modules_in_block_to_quantize_not")


def nominal_bits(dtype: str) -> int | None:
    """The bits a stored dtype's name states: Q4_1 -> 4, IQ2_XXS -> 2, TQ1_0 -> 1, F8_E4M3 -> 8, BF16 -> 16; None if unnamed.

    Block types spend more than this on each value (their block scales): `bits_per_parameter` says how much.
    """
    if dtype == "BF16":
        return 16
    match = _NOMINAL_BITS.match(dtype)
    if not match:
        return None
    return int(next(group for group in match.groups() if group))


def _not_converted(settings: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for key in NOT_CONVERTED_KEYS:
        value = settings.get(key)
        if isinstance(value, list):
            names.extend(str(item)[:200] for item in value[:MAX_CONFIG_LIST] if isinstance(item, str))
    return sorted(set(names))[:MAX_CONFIG_LIST]


def _config_bits(method: str, settings: dict[str, Any]) -> int | None:
    """The weight bits the config states for `method`; None when it states none."""
    if method.startswith("bitsandbytes"):
        return 4 if settings.get("load_in_4bit") or method.endswith("4bit") else 8
    if method in ("fp8", "fbgemm_fp8"):
        return 8
    bits = _first_int(settings, ("bits", "w_bit", "nbits", "weight_bits"))
    if bits is not None:
        return bits
    group_bits = _group_weight_ints(settings, "num_bits")
    return max(group_bits) if group_bits else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _first_int(settings: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of `keys` the settings give as an integer (booleans are not), or None."""
    return next((settings[key] for key in keys if _is_int(settings.get(key))), None)


def _group_weight_ints(settings: dict[str, Any], field: str) -> set[int]:
    """The distinct integer `weights.<field>` of compressed-tensors' `config_groups` (the first 1,000 groups)."""
    groups = settings.get("config_groups")
    if not isinstance(groups, dict):
        return set()
    values = {g["weights"].get(field) for g in list(groups.values())[:1000] if isinstance(g, dict) and isinstance(g.get("weights"), dict)}
    return {value for value in values if _is_int(value)}


def _config_group_size(settings: dict[str, Any]) -> int | None:
    size = _first_int(settings, ("group_size", "q_group_size", "bnb_4bit_blocksize"))
    if size is not None:
        return size
    if isinstance(settings.get("config_groups"), dict):
        sizes = _group_weight_ints(settings, "group_size")
        return next(iter(sizes)) if len(sizes) == 1 else None
    block = settings.get("weight_block_size")
    return block[1] if isinstance(block, list) and len(block) == 2 and isinstance(block[1], int) else None


def _config_format(method: str, settings: dict[str, Any]) -> str | None:
    if method.startswith("bitsandbytes"):
        return str(settings.get("bnb_4bit_quant_type") or "fp4") if _config_bits(method, settings) == 4 else "int8"
    for key in ("format", "version", "checkpoint_format"):
        if isinstance(settings.get(key), str):
            return str(settings[key])[:100]
    if isinstance(settings.get("weight_block_size"), list):
        return "block"
    return None


def _element_types(tensors: list[TensorInfo]) -> dict[str, int]:
    types: dict[str, int] = {}
    for tensor in tensors:
        if not is_buffer(tensor.name):
            types[tensor.dtype] = types.get(tensor.dtype, 0) + tensor.elements
    return types


def describe_quantization(
    stored: list[TensorInfo], logical: list[TensorInfo], config: dict[str, Any] | None, tensor_format: str | None
) -> dict[str, Any]:
    """The quantization fact of a checkpoint: what `size.quantization` judges.

    `stored` are the tensors as the headers give them, `logical` the same after the layout's fold (the
    stored ones when no layout applies). Keys: `quantized` (bool), `method` (the config's `quant_method`;
    for a checkpoint without one whose weights are stored in block or low-bit types, the weight format, e.g.
    `gguf`, or `fp8`; None when not quantized), `bits` (the config's weight bits; else the nominal bits of
    the quantized type holding most elements; for an unquantized model, the bits of its predominant float
    type), `group_size`, `format` (nf4, int8, gemm, pack-quantized, block ... or None), `folded` (whether
    a registered layout folded the tensors), `quantized_tensors` (weights stored quantized), `stored_types`
    (elements per stored type that is not a plain float: Q4_1, F8_E4M3, packed I32 ...), `unquantized_matrices`
    (count of 2-D float weights left in full precision) with up to MAX_NAMED_MODULES names,
    `not_converted` (the modules the config lists as left out) and `config_method` (the config's
    `quant_method` as written: a config naming one over float weights only is not quantized).
    """
    settings = quantization_config(config) or {}
    config_method = quant_method(config)
    stored_ids = {id(t) for t in stored}
    folded_names = {t.name for t in logical if id(t) not in stored_ids}  # a layout's fold made these
    element_types = _element_types(stored)
    stored_types = {dtype: count for dtype, count in element_types.items() if dtype not in PLAIN_FLOATS}
    low_precision = {dtype: count for dtype, count in stored_types.items() if DTYPES.get(dtype) is not None and DTYPES[dtype].floating}
    quantized_by_type = [t for t in stored if t.dtype in low_precision and not is_buffer(t.name)]
    # A config naming a method over float weights only (dequantized, the config left behind) is not quantized.
    quantized = bool(folded_names) or bool(low_precision) or (config_method is not None and bool(_packed(stored)))
    bits: int | None
    method: str | None = None
    if config_method is not None and quantized:
        method = config_method
        bits, group_size, fmt = _config_bits(method, settings), _config_group_size(settings), _config_format(method, settings)
        quantized_tensors = len(folded_names) or len(quantized_by_type) or len(_packed(stored))
    elif low_precision:
        main = max(low_precision, key=lambda dtype: low_precision[dtype])
        # block types: the weight format's own quantization (gguf); low-bit floats: fp8, fp6, fp4
        method = tensor_format if DTYPES[main].block > 1 else f"fp{nominal_bits(main)}"
        bits, group_size, fmt = nominal_bits(main), (DTYPES[main].block if DTYPES[main].block > 1 else None), main
        quantized_tensors = len(quantized_by_type)
    else:
        plain = {dtype: count for dtype, count in element_types.items() if dtype in PLAIN_FLOATS}
        bits = nominal_bits(max(plain, key=lambda dtype: plain[dtype])) if plain else None
        group_size, fmt, quantized_tensors = None, None, 0
    unquantized = sorted(
        t.name for t in logical
        if quantized and t.dtype in PLAIN_FLOATS and len(t.shape) == 2 and t.name not in folded_names
    )
    return {
        "quantized": quantized,
        "method": method,
        "bits": bits,
        "group_size": group_size,
        "format": fmt,
        "folded": bool(folded_names),
        "quantized_tensors": quantized_tensors,
        "stored_types": dict(sorted(stored_types.items())),
        "unquantized_matrices": len(unquantized),
        "unquantized_names": unquantized[:MAX_NAMED_MODULES],
        "not_converted": _not_converted(settings),
        "config_method": config_method,
    }

"""The one table of stored dtypes: bits per storage block, elements per block, and whether it holds parameters.

A dtype stores `block` elements in `bits` bits. Plain types have blocks of one element (F32: 32 bits);
sub-byte types pack elements into bytes (F4: 4 bits each, so a tensor of an odd count ends half a byte
early, rounded up); block-quantized types (GGML's Q4_0: 32 elements in 18 bytes, scales included) are
rows of this table too, with `block` > 1, so stored bytes never assume elements x a whole dtype size.
Names are safetensors' (`safetensors/src/tensor.rs` `Dtype`); a format with names of its own adds its rows
and keeps the set it accepts (see `SAFETENSORS_DTYPES`). GGUF's tensor types are GGML's (`GGML_TYPES`: type
id -> name): its plain types map onto the rows above (F32, F16, BF16, F64, I8..I64) and its block types
(Q4_0 ... Q1_0, `GGML_BLOCK_TYPES`) are rows of their own, with the block sizes of ggml's `type_traits`
(`ggml/src/ggml.c`; gguf-py's `GGML_QUANT_SIZES`, which a test holds this table equal to).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dtype:
    """One stored dtype: `block` elements take `bits` bits; `floating` dtypes hold parameters (others: ids, masks, packed data)."""

    name: str
    bits: int
    floating: bool
    block: int = 1

    def stored_bytes(self, elements: int) -> int:
        """Bytes that `elements` elements take on disk: whole blocks, the last bits rounded up to a byte."""
        blocks = -(-elements // self.block)
        return (blocks * self.bits + 7) // 8


_FLOATS = (
    ("F64", 64), ("F32", 32), ("F16", 16), ("BF16", 16), ("F8_E4M3", 8), ("F8_E5M2", 8), ("F8_E8M0", 8),
    ("F8_E4M3FNUZ", 8), ("F8_E5M2FNUZ", 8), ("F6_E2M3", 6), ("F6_E3M2", 6), ("F4", 4),
)
# C64 is a complex pair of F32; it is not counted as parameters (no model stores its weights complex).
_OTHERS = (("C64", 64), ("I64", 64), ("I32", 32), ("I16", 16), ("I8", 8), ("U64", 64), ("U32", 32), ("U16", 16), ("U8", 8), ("BOOL", 8))

# GGML's block-quantized types: (name, GGML type id, elements per block, bytes per block). Each block holds
# its own scales (and minimums), so bytes per block is everything the file spends on those elements.
# They store parameters (dequantized to floats when loaded), so they count as floating.
GGML_BLOCK_TYPES: tuple[tuple[str, int, int, int], ...] = (
    ("Q4_0", 2, 32, 18), ("Q4_1", 3, 32, 20), ("Q5_0", 6, 32, 22), ("Q5_1", 7, 32, 24), ("Q8_0", 8, 32, 34),
    ("Q8_1", 9, 32, 40), ("Q2_K", 10, 256, 84), ("Q3_K", 11, 256, 110), ("Q4_K", 12, 256, 144),
    ("Q5_K", 13, 256, 176), ("Q6_K", 14, 256, 210), ("Q8_K", 15, 256, 292), ("IQ2_XXS", 16, 256, 66),
    ("IQ2_XS", 17, 256, 74), ("IQ3_XXS", 18, 256, 98), ("IQ1_S", 19, 256, 50), ("IQ4_NL", 20, 32, 18),
    ("IQ3_S", 21, 256, 110), ("IQ2_S", 22, 256, 82), ("IQ4_XS", 23, 256, 136), ("IQ1_M", 29, 256, 56),
    ("TQ1_0", 34, 256, 54), ("TQ2_0", 35, 256, 66), ("MXFP4", 39, 32, 17), ("NVFP4", 40, 64, 36),
    ("Q1_0", 41, 128, 18),
)
# GGML type id -> the name in this table, for every type a GGUF file may declare (ids 4, 5 and 31..33, 36..38
# belonged to types ggml has removed; a file naming them is refused).
GGML_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 30: "BF16",
    **{type_id: name for name, type_id, _, _ in GGML_BLOCK_TYPES},
}

DTYPES: dict[str, Dtype] = {
    **{name: Dtype(name, bits, True) for name, bits in _FLOATS},
    **{name: Dtype(name, bits, False) for name, bits in _OTHERS},
    **{name: Dtype(name, 8 * block_bytes, True, block) for name, _, block, block_bytes in GGML_BLOCK_TYPES},
}
# The names a safetensors header may use (the library refuses any other).
SAFETENSORS_DTYPES = frozenset(name for name, _ in (*_FLOATS, *_OTHERS))
FLOAT_DTYPES = frozenset(name for name, dtype in DTYPES.items() if dtype.floating)


def element_bits(name: str) -> int:
    """Bits per element of a dtype whose blocks are one element (every safetensors dtype); KeyError otherwise."""
    dtype = DTYPES[name]
    if dtype.block != 1:
        raise KeyError(f"{name} is stored in blocks of {dtype.block} elements")
    return dtype.bits

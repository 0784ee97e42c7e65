"""The one table of stored dtypes: bits per storage block, elements per block, and whether it holds parameters.

A dtype stores `block` elements in `bits` bits. Plain types have blocks of one element (F32: 32 bits);
sub-byte types pack elements into bytes (F4: 4 bits each, so a tensor of an odd count ends half a byte
early, rounded up); block-quantized types (GGML's Q4_0: 32 elements in 18 bytes, scales included) are
rows of this table too, with `block` > 1, so stored bytes never assume elements x a whole dtype size.
Names are safetensors' (`safetensors/src/tensor.rs` `Dtype`); a format with names of its own adds its rows
and keeps the set it accepts (see `SAFETENSORS_DTYPES`).
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

DTYPES: dict[str, Dtype] = {
    **{name: Dtype(name, bits, True) for name, bits in _FLOATS},
    **{name: Dtype(name, bits, False) for name, bits in _OTHERS},
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

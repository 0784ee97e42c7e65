"""`TensorInfo`: one tensor of a weight file as its header describes it, logical elements apart from stored bytes."""

from __future__ import annotations

from dataclasses import dataclass

from .dtypes import DTYPES


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as its header describes it, without its data.

    `shape` is the logical shape: the tensor a framework holds once it is loaded (dequantized, unpacked), so
    `elements` is what `numel()` would give. `stored_bytes` is what the file spends on it: from the dtype
    table (`dtypes.DTYPES`, blocks and sub-byte packing included) unless the format states it in
    `packed_bytes` (block-quantized or packed tensors whose bytes the format knows better).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str
    packed_bytes: int | None = None

    @property
    def elements(self) -> int:
        """Logical element count: the product of `shape` (1 for a scalar)."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def stored_bytes(self) -> int:
        """Bytes of data in the file: `packed_bytes` if given, else from the dtype table (a byte an element if unknown)."""
        if self.packed_bytes is not None:
            return self.packed_bytes
        dtype = DTYPES.get(self.dtype)
        return dtype.stored_bytes(self.elements) if dtype is not None else self.elements

"""What every quantized layout shares: reading `quantization_config`, and folding each module's stored pieces.

A quantized checkpoint stores a linear layer `<module>` as pieces named `<module>.<piece>` (GPTQ's `qweight`,
`qzeros`, `scales`, `g_idx`; bitsandbytes' `weight`, `weight.absmax`, ...). `PiecewiseLayout` groups the
tensors by module, hands each module holding one of the layout's marker pieces to the subclass's `fold`,
and passes every other tensor through unchanged (embeddings, norms, modules left unquantized). A piece that
only makes sense beside a marker (scales without packed weights) is an incomplete group: ValueError.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from .base import TensorLayout
from .tensors import TensorInfo

# torch dtype names in configs (bnb_4bit_compute_dtype, torch_dtype) -> the stored dtype names of the table.
TORCH_DTYPE_NAMES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float": "F32", "half": "F16"}
MAX_CONFIG_LIST = 10_000  # entries read of a config list (modules_to_not_convert, ignore): more is hostile


def quantization_config(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The config's `quantization_config` object, or None when there is none (or it is not an object)."""
    if not isinstance(config, dict):
        return None
    value = config.get("quantization_config")
    return value if isinstance(value, dict) else None


def quant_method(config: dict[str, Any] | None) -> str | None:
    """`quantization_config.quant_method` in lower case, or None."""
    settings = quantization_config(config)
    method = settings.get("quant_method") if settings else None
    return method.lower() if isinstance(method, str) else None


def config_int(settings: dict[str, Any], keys: tuple[str, ...], default: int | None, allowed: tuple[int, ...] | None = None) -> int:
    """The first of `keys` present in `settings` as an integer (else `default`); ValueError naming the key if unusable.

    `allowed`, when given, is the set of values the layout can fold (GPTQ bits 2, 3, 4, 8).
    """
    for key in keys:
        if key in settings and settings[key] is not None:
            value = settings[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"quantization_config.{key} is not an integer: {value!r}")
            if allowed is not None and value not in allowed:
                raise ValueError(f"quantization_config.{key} is {value}; folded values are {', '.join(map(str, allowed))}")
            return value
    if default is None:
        raise ValueError(f"quantization_config has no {' or '.join(keys)}")
    return default


def group_count(in_features: int, group_size: int) -> int:
    """Quantization groups along the input dimension: ceil(in / group_size); one group when group_size is -1 (per channel)."""
    if group_size == -1:
        return 1
    if group_size < 1:
        raise ValueError(f"group_size {group_size} is neither -1 nor positive")
    return -(-in_features // group_size)


def unpacked(count: int, bits: int, what: str) -> int:
    """Values held by `count` 32-bit integers of `bits`-bit values (count * 32 / bits); ValueError unless whole."""
    if (count * 32) % bits:
        raise ValueError(f"{what}: {count} int32 do not hold a whole number of {bits}-bit values")
    return count * 32 // bits


def expect_shape(tensor: TensorInfo, shape: tuple[int, ...], what: str) -> None:
    """ValueError naming the tensor when its stored shape is not `shape`."""
    if tensor.shape != shape:
        raise ValueError(f"{tensor.name}: {what} shape {list(tensor.shape)} disagrees with {list(shape)}")


def expect_dtype(tensor: TensorInfo, dtypes: frozenset[str] | set[str], what: str) -> None:
    """ValueError naming the tensor when its stored dtype is not one of `dtypes`."""
    if tensor.dtype not in dtypes:
        raise ValueError(f"{tensor.name}: {what} stored as {tensor.dtype}, expected {' or '.join(sorted(dtypes))}")


def dims(tensor: TensorInfo, rank: int, what: str) -> tuple[int, ...]:
    """The tensor's shape when it has `rank` dimensions; ValueError naming it otherwise."""
    if len(tensor.shape) != rank:
        raise ValueError(f"{tensor.name}: {what} has {len(tensor.shape)} dimensions, expected {rank}")
    return tensor.shape


def folded(prefix: str, dtype: str, shape: tuple[int, ...], pieces: dict[str, TensorInfo], anchor: TensorInfo) -> TensorInfo:
    """The model's `<prefix>.weight`: its logical shape and dtype, `packed_bytes` = every stored piece's bytes."""
    stored = sum(piece.stored_bytes for piece in pieces.values())
    return TensorInfo(f"{prefix}.weight", dtype, shape, anchor.file, packed_bytes=stored)


class PiecewiseLayout(TensorLayout):
    """A layout whose quantized modules are groups of `<module>.<piece>` tensors (see the module docstring).

    Subclasses set `methods` (the `quant_method` values it reads), `pieces` (every piece name it folds),
    `markers` (the pieces that make a module quantized), and implement `settings(config)` (the validated
    config values; ValueError) and `fold(prefix, pieces, settings)` (the module's logical tensors;
    ValueError for a missing piece or shapes that disagree).
    """

    methods: ClassVar[tuple[str, ...]]
    pieces: ClassVar[tuple[str, ...]]
    markers: ClassVar[tuple[str, ...]]
    # Pieces that may stand alone in an unquantized module (a plain `weight`): passed through without a marker.
    standalone: ClassVar[tuple[str, ...]] = ()

    def applies(self, config: dict[str, Any] | None) -> bool:
        """True when `quantization_config.quant_method` is one of `methods`."""
        return quant_method(config) in self.methods

    def check_standalone(self, prefix: str, module: dict[str, TensorInfo]) -> None:
        """ValueError when a module holding only `standalone` pieces is a quantized one missing its other pieces; here never."""

    @abstractmethod
    def settings(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config values `fold` needs, validated; ValueError naming a bad key."""

    @abstractmethod
    def fold(self, prefix: str, pieces: dict[str, TensorInfo], settings: dict[str, Any]) -> list[TensorInfo]:
        """The logical tensors of one quantized module from its stored pieces; ValueError when they disagree."""

    def _split(self, name: str) -> tuple[str, str] | None:
        for piece in self._ordered:
            if name.endswith("." + piece):
                return name[: -len(piece) - 1], piece
        return None

    @property
    def _ordered(self) -> tuple[str, ...]:
        return tuple(sorted(self.pieces, key=len, reverse=True))  # "weight.absmax" before "weight"

    def logical_tensors(self, tensors: list[TensorInfo], config: dict[str, Any]) -> list[TensorInfo]:
        """The model's tensors: each quantized module folded, everything else as stored (see the class docstring).

        Raises ValueError for a bad `quantization_config`, a piece stored twice, an incomplete group or
        pieces whose shapes disagree.
        """
        settings = self.settings(config)
        groups: dict[str, dict[str, TensorInfo]] = {}
        logical: list[TensorInfo] = []
        for tensor in tensors:
            split = self._split(tensor.name)
            if split is None:
                logical.append(tensor)
                continue
            prefix, piece = split
            module = groups.setdefault(prefix, {})
            if piece in module:
                raise ValueError(f"{tensor.name} is stored twice ({module[piece].file}, {tensor.file})")
            module[piece] = tensor
        for prefix, module in groups.items():
            if any(marker in module for marker in self.markers):
                logical.extend(self.fold(prefix, module, settings))
                continue
            orphans = sorted(piece for piece in module if piece not in self.standalone)
            if orphans:
                wanted = " or ".join(self.markers)
                raise ValueError(f"incomplete {self.name} group {prefix}: {', '.join(orphans)} without {wanted}")
            self.check_standalone(prefix, module)
            logical.extend(module.values())
        return logical

"""GPTQ, AWQ and compressed-tensors layouts: low-bit integers packed into int32, with per-group scales and zeros.

Stored pieces per linear layer `<m>` (in = input features, out = output features, G = ceil(in / group_size),
one group when group_size is -1; shapes as AutoGPTQ / GPTQModel, AutoAWQ and compressed-tensors save them):

- GPTQ (`quant_method: gptq`, bits 2/3/4/8): `qweight` I32 [in·bits/32, out], `qzeros` I32 [G, out·bits/32],
  `scales` F16 [G, out], `g_idx` I32 [in] (optional), `bias` (as the model has it).
- AWQ (`quant_method: awq`, GEMM kernels, also `version: exllama | ipex`): `qweight` I32 [in, out·bits/32],
  `qzeros` I32 [G, out·bits/32], `scales` F16 [G, out]; GEMV (`version: gemv`): `qweight` I32 [out, in·bits/32],
  `scales` and `qzeros` with out rows.
- compressed-tensors (`quant_method: compressed-tensors`), `format: pack-quantized`: `weight_packed` I32
  [out, in·bits/32], `weight_scale` [out, G] (channel strategy: [out, 1]), `weight_zero_point`, `weight_shape`
  I64 [2], `weight_g_idx` I32 [in]; `nvfp4-pack-quantized`: `weight_packed` U8 [out, in/2] with FP8 block scales
  and global scales; `float-quantized` / `int-quantized` / `naive-quantized`: `weight` in F8 or I8 at its
  full shape with `weight_scale` (and `input_scale`, `weight_zero_point`). Mixed precision (`config_groups`
  with different bits or group sizes, `pack-quantized` only): each layer folds by the one group scheme its
  weight_packed and weight_scale shapes fit; a layer two schemes fit alike, or none, is an error.

Each group folds into `<m>.weight` [out, in] in the scales' dtype (F8 weights stay F8: the model holds them
so), its `packed_bytes` the bytes of every piece.
"""

from __future__ import annotations

from typing import Any

from .quantized_base import (
    PiecewiseLayout,
    config_int,
    dims,
    expect_dtype,
    expect_shape,
    folded,
    group_count,
    quantization_config,
    unpacked,
)
from .tensors import TensorInfo

SCALE_DTYPES = frozenset({"F16", "BF16", "F32"})
PACKED_BITS = (2, 3, 4, 8)
FULL_SHAPE_FORMATS = ("float-quantized", "int-quantized", "naive-quantized")
PACKED_FORMATS = ("pack-quantized", "nvfp4-pack-quantized")


def _require(prefix: str, pieces: dict[str, TensorInfo], names: tuple[str, ...], method: str) -> list[TensorInfo]:
    missing = [name for name in names if name not in pieces]
    if missing:
        raise ValueError(f"incomplete {method} group {prefix}: {', '.join(missing)} missing")
    return [pieces[name] for name in names]


def _check_groups(scales: TensorInfo, groups: int, axis: int, group_size: int, in_features: int) -> None:
    """ValueError when the scales' group axis does not hold ceil(in / group_size) groups."""
    if len(scales.shape) == 2 and scales.shape[axis] != groups:
        raise ValueError(
            f"{scales.name}: {scales.shape[axis]} groups disagree with ceil({in_features} / group_size {group_size}) = {groups}"
        )


class GptqLayout(PiecewiseLayout):
    """GPTQ (AutoGPTQ, GPTQModel, optimum): see the module docstring for the shapes folded."""

    name = "gptq"
    methods = ("gptq",)
    pieces = ("qweight", "qzeros", "scales", "g_idx")
    markers = ("qweight",)

    def settings(self, config: dict[str, Any]) -> dict[str, Any]:
        """bits (2, 3, 4, 8) and group_size (-1 or positive; default 128, as GPTQConfig's) of the config."""
        settings = quantization_config(config) or {}
        checkpoint = settings.get("checkpoint_format", "gptq")
        if checkpoint not in (None, "gptq", "gptq_v2"):
            raise ValueError(f"GPTQ checkpoint_format {checkpoint!r} is not folded (only gptq and gptq_v2)")
        return {"bits": config_int(settings, ("bits",), None, PACKED_BITS), "group_size": config_int(settings, ("group_size",), 128)}

    def fold(self, prefix: str, pieces: dict[str, TensorInfo], settings: dict[str, Any]) -> list[TensorInfo]:
        """`<m>.weight` [out, in] from qweight [in·bits/32, out], qzeros [G, out·bits/32], scales [G, out], g_idx [in]."""
        bits, group_size = settings["bits"], settings["group_size"]
        qweight, qzeros, scales = _require(prefix, pieces, ("qweight", "qzeros", "scales"), "GPTQ")
        expect_dtype(qweight, {"I32"}, "qweight")
        expect_dtype(qzeros, {"I32"}, "qzeros")
        expect_dtype(scales, SCALE_DTYPES, "scales")
        rows, out = dims(qweight, 2, "qweight")
        in_features = unpacked(rows, bits, qweight.name)
        groups = group_count(in_features, group_size)
        _check_groups(scales, groups, 0, group_size, in_features)
        expect_shape(scales, (groups, out), "scales")
        zero_columns = dims(qzeros, 2, "qzeros")[1]
        expect_shape(qzeros, (groups, zero_columns), "qzeros")
        if unpacked(zero_columns, bits, qzeros.name) != out:
            raise ValueError(f"{qzeros.name}: {zero_columns} int32 columns hold {unpacked(zero_columns, bits, qzeros.name)} zeros, not {out}")
        if "g_idx" in pieces:
            expect_dtype(pieces["g_idx"], {"I32", "I64"}, "g_idx")
            expect_shape(pieces["g_idx"], (in_features,), "g_idx")
        return [folded(prefix, scales.dtype, (out, in_features), pieces, qweight)]


class AwqLayout(PiecewiseLayout):
    """AWQ (AutoAWQ, llm-awq): GEMM-packed (also exllama, ipex) or GEMV-packed; see the module docstring."""

    name = "awq"
    methods = ("awq",)
    pieces = ("qweight", "qzeros", "scales")
    markers = ("qweight",)

    def settings(self, config: dict[str, Any]) -> dict[str, Any]:
        """bits (`bits` or `w_bit`), group_size (`group_size` or `q_group_size`, default 128) and the kernel version."""
        settings = quantization_config(config) or {}
        version = str(settings.get("version") or "gemm").lower()
        if version not in ("gemm", "gemv", "exllama", "ipex"):
            raise ValueError(f"AWQ version {version!r} is not folded (gemm, gemv, exllama, ipex)")
        return {
            "bits": config_int(settings, ("bits", "w_bit"), None, PACKED_BITS),
            "group_size": config_int(settings, ("group_size", "q_group_size"), 128),
            "gemv": version == "gemv",
        }

    def fold(self, prefix: str, pieces: dict[str, TensorInfo], settings: dict[str, Any]) -> list[TensorInfo]:
        """`<m>.weight` [out, in] from qweight [in, out·bits/32] (GEMV: [out, in·bits/32]), qzeros and scales."""
        bits, group_size = settings["bits"], settings["group_size"]
        qweight, qzeros, scales = _require(prefix, pieces, ("qweight", "qzeros", "scales"), "AWQ")
        expect_dtype(qweight, {"I32"}, "qweight")
        expect_dtype(qzeros, {"I32"}, "qzeros")
        expect_dtype(scales, SCALE_DTYPES, "scales")
        first, packed = dims(qweight, 2, "qweight")
        dims(scales, 2, "scales")
        dims(qzeros, 2, "qzeros")
        if settings["gemv"]:
            out, in_features = first, unpacked(packed, bits, qweight.name)
            if scales.shape[0] != out or qzeros.shape[0] != out:
                raise ValueError(f"{prefix}: GEMV scales {list(scales.shape)} and qzeros {list(qzeros.shape)} need {out} rows")
        else:
            in_features, out = first, unpacked(packed, bits, qweight.name)
            groups = group_count(in_features, group_size)
            _check_groups(scales, groups, 0, group_size, in_features)
            expect_shape(scales, (groups, out), "scales")
            expect_shape(qzeros, (groups, packed), "qzeros")
        return [folded(prefix, scales.dtype, (out, in_features), pieces, qweight)]


def _scheme(weights: dict[str, Any]) -> dict[str, Any]:
    """bits, group_size and strategy of one config group's weights scheme; ValueError naming a bad value."""
    bits = config_int(weights, ("num_bits",), None, (*PACKED_BITS, 16))
    group_size = weights.get("group_size")
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"compressed-tensors group_size {group_size!r} is not a positive integer")
    return {"bits": bits, "group_size": group_size, "strategy": weights.get("strategy")}


def _compressed_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """format and the weight schemes of a compressed-tensors config (one format; schemes may differ per group).

    Mixed precision (config groups with different bits or group sizes) is folded for `pack-quantized` only,
    each layer by the one scheme its stored shapes fit (`_packed_in_features`): the groups' `targets` name
    module classes and patterns this suite does not match. The first scheme's values stay the settings'
    `bits`, `group_size` and `strategy`.
    """
    groups = settings.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise ValueError("compressed-tensors quantization_config has no config_groups")
    weights: list[dict[str, Any]] = [
        group["weights"] for group in list(groups.values())[:1000] if isinstance(group, dict) and isinstance(group.get("weights"), dict)
    ]
    if not weights:
        raise ValueError("compressed-tensors config_groups hold no weights scheme")
    formats = {settings.get("format")} if isinstance(settings.get("format"), str) else {g.get("format") for g in groups.values() if isinstance(g, dict)}
    if len(formats) != 1:
        raise ValueError("compressed-tensors config groups with different formats are not folded")
    fmt = formats.pop()
    if fmt not in (*PACKED_FORMATS, *FULL_SHAPE_FORMATS):
        raise ValueError(f"compressed-tensors format {fmt!r} is not folded ({', '.join((*PACKED_FORMATS, *FULL_SHAPE_FORMATS))})")
    schemes: list[dict[str, Any]] = []
    for scheme in map(_scheme, weights):
        if scheme not in schemes:
            schemes.append(scheme)
    if len(schemes) > 1 and fmt != "pack-quantized":
        raise ValueError(f"compressed-tensors config groups with different bits or group sizes are not folded for format {fmt}")
    return {"format": fmt, **schemes[0], "schemes": schemes}


def _packed_in_features(packed: TensorInfo, scale: TensorInfo, scheme: dict[str, Any]) -> int:
    """Input features of a pack-quantized weight under `scheme`; ValueError when its scale's shape disagrees."""
    rows, columns = packed.shape
    in_features = unpacked(columns, scheme["bits"], packed.name)
    if scheme["strategy"] == "group" and scheme["group_size"]:
        groups = group_count(in_features, scheme["group_size"])
        if len(scale.shape) == 2:
            _check_groups(scale, groups, 1, scheme["group_size"], in_features)
        expect_shape(scale, (rows, groups), "weight_scale")
    elif scheme["strategy"] == "channel":
        expect_shape(scale, (rows, 1), "weight_scale")
    return in_features


def _mixed_in_features(packed: TensorInfo, scale: TensorInfo, schemes: list[dict[str, Any]]) -> int:
    """Input features of a pack-quantized weight by the one scheme (of several) its shapes fit; ValueError otherwise."""
    fits: dict[int, int] = {}
    for scheme in schemes:
        try:
            fits.setdefault(_packed_in_features(packed, scale, scheme), scheme["bits"])
        except ValueError:
            continue
    if len(fits) != 1:
        told = "no config group's scheme fits" if not fits else f"schemes of {', '.join(f'{b} bits' for b in fits.values())} fit"
        raise ValueError(
            f"{packed.name}: {told} its weight_packed {list(packed.shape)} and weight_scale {list(scale.shape)} "
            "(mixed-precision config groups are told apart by shapes only)"
        )
    return next(iter(fits))


def _check_full_shape_scale(scale: TensorInfo, weight: TensorInfo, settings: dict[str, Any]) -> None:
    """ValueError when a full-shape weight's scale does not fit its strategy: channel [out, 1], tensor one value, group [out, G]."""
    strategy = settings["strategy"]
    out = weight.shape[0] if weight.shape else 1
    if strategy == "channel" and scale.shape not in ((out, 1), (out,)):
        raise ValueError(f"{scale.name}: weight_scale shape {list(scale.shape)} is neither per channel [{out}, 1] nor [{out}]")
    if strategy == "tensor" and scale.elements != 1:
        raise ValueError(f"{scale.name}: a per-tensor weight_scale holds {scale.elements} values, not one")
    if strategy == "group" and settings["group_size"] and len(weight.shape) == 2:
        expect_shape(scale, (out, group_count(weight.shape[1], settings["group_size"])), "weight_scale")


class CompressedTensorsLayout(PiecewiseLayout):
    """compressed-tensors (llm-compressor): pack-quantized int32, NVFP4 bytes, or full-shape F8/I8 weights with scales."""

    name = "compressed-tensors"
    methods = ("compressed-tensors", "compressed_tensors")
    pieces = (
        "weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx", "weight_global_scale",
        "input_scale", "input_global_scale", "input_zero_point", "weight",
    )
    markers = ("weight_packed", "weight_scale")
    standalone = ("weight",)

    def settings(self, config: dict[str, Any]) -> dict[str, Any]:
        """format, bits, group_size and strategy from `config_groups` (see `_compressed_settings`)."""
        return _compressed_settings(quantization_config(config) or {})

    def fold(self, prefix: str, pieces: dict[str, TensorInfo], settings: dict[str, Any]) -> list[TensorInfo]:
        """`<m>.weight` [out, in] from weight_packed and its scales, or the full-shape F8/I8 weight and its scales."""
        if "weight_packed" not in pieces:
            (weight,) = _require(prefix, pieces, ("weight",), "compressed-tensors")
            if weight.dtype in SCALE_DTYPES:
                raise ValueError(f"{prefix}: weight_scale beside a {weight.dtype} weight (not quantized)")
            dtype = weight.dtype if weight.dtype.startswith("F") else pieces["weight_scale"].dtype
            dtype = dtype if dtype in SCALE_DTYPES or dtype.startswith("F8") else "F16"
            if "weight_scale" in pieces:
                _check_full_shape_scale(pieces["weight_scale"], weight, settings)
            return [folded(prefix, dtype, weight.shape, pieces, weight)]
        packed, scale = _require(prefix, pieces, ("weight_packed", "weight_scale"), "compressed-tensors")
        rows, columns = dims(packed, 2, "weight_packed")
        if settings["format"] == "nvfp4-pack-quantized":
            expect_dtype(packed, {"U8"}, "weight_packed")
            in_features, dtype = columns * 2, "BF16"  # two 4-bit values a byte; the model computes in 16 bits
        else:
            expect_dtype(packed, {"I32"}, "weight_packed")
            expect_dtype(scale, SCALE_DTYPES, "weight_scale")
            schemes = settings["schemes"]
            in_features = _packed_in_features(packed, scale, schemes[0]) if len(schemes) == 1 else _mixed_in_features(packed, scale, schemes)
            dtype = scale.dtype
        if "weight_shape" in pieces and pieces["weight_shape"].elements != 2:
            raise ValueError(f"{pieces['weight_shape'].name}: a linear weight's shape has 2 entries, not {pieces['weight_shape'].elements}")
        if "weight_g_idx" in pieces:
            expect_shape(pieces["weight_g_idx"], (in_features,), "weight_g_idx")
        return [folded(prefix, dtype, (rows, in_features), pieces, packed)]

"""Weight files and tensor headers (see safetensors_header.py): never tensor data, never torch."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..candidate import Candidate

# Bytes per element of each safetensors dtype; sub-byte types are counted in bits.
DTYPE_BITS: dict[str, int] = {
    "F64": 64, "F32": 32, "F16": 16, "BF16": 16, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8,
    "F6_E2M3": 6, "F6_E3M2": 6, "F4": 4, "C64": 64,
    "I64": 64, "I32": 32, "I16": 16, "I8": 8, "U64": 64, "U32": 32, "U16": 16, "U8": 8, "BOOL": 8,
}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"})

# Float tensors that some exporters save although they are buffers, not parameters.
_BUFFER_PATTERNS = re.compile(r"(\.inv_freq$|\.masked_bias$|(^|\.)attn\.bias$|\.rotary_emb\.|(^|\.)position_ids$|(^|\.)token_type_ids$)")
# Embedding and unembedding matrices, excluded from the non-embedding count (as in Kaplan et al. 2020).
EMBEDDING_PATTERNS = re.compile(
    r"(embed_tokens|word_embeddings|position_embeddings|token_type_embeddings|embed_positions|"
    r"(^|\.)wte\.|(^|\.)wpe\.|^lm_head\.|\.lm_head\.|(^|\.)shared\.|embed_out\.|output_embeddings)"
)
INPUT_EMBEDDING_PATTERNS = re.compile(r"(embed_tokens\.weight$|word_embeddings\.weight$|(^|\.)wte\.weight$|(^|\.)shared\.weight$)")

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_OTHER_FORMATS = {".gguf": "gguf", ".h5": "tensorflow-h5", ".msgpack": "flax-msgpack", ".onnx": "onnx", ".npz": "numpy"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def nbytes(self) -> int:
        return (self.numel * DTYPE_BITS.get(self.dtype, 8) + 7) // 8


@dataclass
class WeightsInfo:
    files: dict[str, str] = field(default_factory=dict)  # weight file -> format
    tensors: list[TensorInfo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    index_file: str | None = None

    @property
    def formats(self) -> list[str]:
        return sorted(set(self.files.values()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "index_file": self.index_file,
            "tensor_count": len(self.tensors),
            "errors": self.errors,
        }


def _weight_format(relative: str) -> str | None:
    name = relative.rsplit("/", 1)[-1].lower()
    if "/" in relative:
        return None  # sub-folders hold adapters, pooling configs, checkpoints of other tools
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(_PICKLE_SUFFIXES) and not name.startswith("training_args"):
        return "pickle"
    for suffix, fmt in _OTHER_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    return None


def read_weights(candidate: Candidate) -> WeightsInfo:
    info = WeightsInfo()
    for entry in candidate.files:
        fmt = _weight_format(entry.path)
        if fmt:
            info.files[entry.path] = fmt
    present = set(info.files)
    shards: list[str] = sorted(name for name, fmt in info.files.items() if fmt == "safetensors")
    if "model.safetensors.index.json" in candidate.file_names():
        info.index_file = "model.safetensors.index.json"
        try:
            index = candidate.read_json(info.index_file, max_bytes=64 * 1024 * 1024)
            weight_map = index["weight_map"]
            if not isinstance(weight_map, dict):
                raise ValueError("weight_map is not an object")
            shards = sorted(set(map(str, weight_map.values())))
            for shard in shards:
                candidate.resolve_inside(shard)
                if shard not in present:
                    info.errors.append(f"{info.index_file} names missing shard {shard}")
            shards = [s for s in shards if s in present]
        except (ValueError, KeyError, TypeError) as exc:
            info.errors.append(f"{info.index_file}: {exc}")
    from .safetensors_header import read_safetensors_header

    for shard in shards:
        try:
            info.tensors.extend(read_safetensors_header(str(candidate.resolve_inside(shard)), shard))
        except (ValueError, OSError) as exc:
            info.errors.append(f"{shard}: unreadable safetensors header: {exc}")
    return info


def count_parameters(tensors: list[TensorInfo], config: dict[str, Any] | None) -> dict[str, int]:
    """Parameters as `sum(p.numel() for p in model.parameters())` counts them, from headers alone."""
    counted = [t for t in tensors if t.dtype in FLOAT_DTYPES and not _BUFFER_PATTERNS.search(t.name)]
    # Without a readable config nothing says the two are tied; a stored lm_head (safetensors cannot hold
    # shared tensors, so save_pretrained drops a tied one) is then a parameter of its own.
    tied = config.get("tie_word_embeddings", True) if config is not None else False
    input_embedding = next((t for t in counted if INPUT_EMBEDDING_PATTERNS.search(t.name)), None)
    lm_head = next((t for t in counted if t.name.endswith("lm_head.weight")), None)
    if tied and input_embedding and lm_head and input_embedding.shape == lm_head.shape:
        counted = [t for t in counted if t is not lm_head]  # tied weights are one parameter
    total = sum(t.numel for t in counted)
    embedding = sum(t.numel for t in counted if EMBEDDING_PATTERNS.search(t.name))
    return {"parameters": total, "embedding_parameters": embedding, "non_embedding_parameters": total - embedding}


def dtype_summary(tensors: list[TensorInfo]) -> dict[str, int]:
    """Element count per dtype across weight tensors (known buffers such as position_ids left out)."""
    summary: dict[str, int] = {}
    for tensor in tensors:
        if _BUFFER_PATTERNS.search(tensor.name):
            continue
        summary[tensor.dtype] = summary.get(tensor.dtype, 0) + tensor.numel
    return dict(sorted(summary.items()))


def embedding_rows(tensors: list[TensorInfo]) -> int | None:
    tensor = next((t for t in tensors if INPUT_EMBEDDING_PATTERNS.search(t.name) and len(t.shape) == 2), None)
    return tensor.shape[0] if tensor else None

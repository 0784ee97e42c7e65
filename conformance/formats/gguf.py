"""GGUF (llama.cpp, Ollama, LM Studio): the weight format and the architecture source its metadata is.

A GGUF file carries its architecture (`{arch}.*` metadata), its tokenizer (`tokenizer.ggml.*`, the chat
template), its license (`general.license`) and every tensor's shape and GGML type in one header, read by
`gguf_header.py` (bounded; never tensor data). Here that header becomes the suite's facts:

- `GGUFFormat` (`.gguf`, reads tensors): tensors with torch's dimension order and their GGML type as dtype
  (Q4_1, Q8_0, F16, ...), stored bytes from the block sizes in `dtypes.py`; parameters are every tensor but
  llama.cpp's precomputed rope factors (`rope_freqs`, `rope_factors_long/short`, buffers in transformers),
  which is what `sum(p.numel())` gives for the model transformers builds from the file (`gguf_file=`, the
  weights dequantized): llama.cpp stores a tied output matrix once, by leaving `output.weight` out. For the
  finiteness probe its tensors are streamed in whole rows, read with `pread` and dequantized by gguf-py.
- `GGUFSource`: the metadata under config.json's names (`gguf_config`), so every architecture check applies
  unchanged. It is registered after config.json: a folder holding both is described by its config.json
  (a Hugging Face repository that also ships a GGUF export), a folder of GGUF alone by the GGUF file.

A candidate is one model: a folder may hold one GGUF file, the shards of one split file
(`name-00001-of-00003.gguf`; the metadata is the first shard's; an incomplete split, one shard alone
included, is an error of every fact), and multimodal projectors (`mmproj*`, left out). Several different GGUF files (one repository's many quantizations) are an error naming them:
point the suite at the file itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..candidate import Candidate
from .base import ArchitectureSource, WeightFormat
from .dtypes import DTYPES, FLOAT_DTYPES, GGML_TYPES
from .gguf_header import GGUFArray, GGUFHeader, StringTable, read_gguf_header
from .tensors import TensorInfo

SUFFIX = ".gguf"
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)
# llama.cpp's precomputed rope factors: buffers in transformers (never loaded into a parameter).
NON_PARAMETER_TENSORS = frozenset({"rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"})
EMBEDDING_TENSORS = frozenset({"token_embd.weight", "output.weight", "position_embd.weight", "token_types.weight"})

# Architecture metadata `{arch}.<key>` -> config.json's name (transformers' GGUF_CONFIG_MAPPING, shared by its
# decoder families; `probes/architecture.py` reads these names for every family).
ARCHITECTURE_KEYS: dict[str, str] = {
    "block_count": "num_hidden_layers",
    "embedding_length": "hidden_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "context_length": "max_position_embeddings",
    "feed_forward_length": "intermediate_size",
    "vocab_size": "vocab_size",
    "rope.freq_base": "rope_theta",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "attention.layer_norm_epsilon": "layer_norm_epsilon",
    "attention.key_length": "head_dim",
    "attention.sliding_window": "sliding_window",
    "expert_count": "num_local_experts",
    "expert_used_count": "num_experts_per_tok",
    "expert_feed_forward_length": "moe_intermediate_size",
    "expert_shared_feed_forward_length": "shared_expert_intermediate_size",
}
# Families whose config names differ from the table (transformers' config classes).
ARCHITECTURE_KEY_OVERRIDES: dict[str, dict[str, str]] = {
    "llama": {"rope.dimension_count": "head_dim"},  # transformers: only llama and mistral take it as head_dim
    "qwen2moe": {"expert_count": "num_experts"},
    "qwen3moe": {"expert_count": "num_experts"},
}
# llama.cpp architecture names -> transformers' model_type where they differ (transformers'
# `load_gguf_checkpoint` and llama.cpp's convert_hf_to_gguf.py registrations); others are the same.
MODEL_TYPES: dict[str, str] = {
    "qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "minimax-m2": "minimax_m2",
    "gemma3": "gemma3_text", "gemma4": "gemma4_text", "command-r": "cohere", "t5encoder": "t5",
    "phi2": "phi", "gptneox": "gpt_neox", "starcoder": "gpt_bigcode",
}
UNTIED_FAMILIES = frozenset({"falcon", "bloom"})  # transformers reads these as tied even with output.weight
# tokenizer.ggml.<role>_token_id (llama.cpp's spelling, "seperator" included) -> the suite's role names.
SPECIAL_TOKEN_KEYS: dict[str, str] = {
    "bos": "tokenizer.ggml.bos_token_id", "eos": "tokenizer.ggml.eos_token_id",
    "unk": "tokenizer.ggml.unknown_token_id", "pad": "tokenizer.ggml.padding_token_id",
    "sep": "tokenizer.ggml.seperator_token_id", "cls": "tokenizer.ggml.cls_token_id",
    "mask": "tokenizer.ggml.mask_token_id",
    # llama.cpp's end-of-turn and end-of-message tokens: generation stops at them too (its end-of-generation set).
    "eot": "tokenizer.ggml.eot_token_id", "eom": "tokenizer.ggml.eom_token_id",
}


def is_gguf_name(relative: str) -> bool:
    """True for a top-level file name ending in `.gguf` (any case)."""
    return "/" not in relative and relative.lower().endswith(SUFFIX)


def gguf_model_files(file_names: list[str] | set[str]) -> list[str]:
    """The GGUF files of the one model a folder holds: a single file, or a complete split's shards in order.

    Projector files (`mmproj*`) are left out when a model file is present. Raises ValueError when there
    are none, several different models, or an incomplete split (one shard alone included: the first
    shard of three is not a model).
    """
    names = sorted(name for name in file_names if is_gguf_name(name))
    models = [name for name in names if not name.lower().startswith("mmproj")] or names
    if not models:
        raise ValueError("no GGUF file")
    splits = [_SPLIT.match(name) for name in models]
    if len(models) == 1 and splits[0] is None:
        return models
    groups = {(m.group("stem"), m.group("total")) for m in splits if m is not None}
    if all(splits) and len(groups) == 1:
        total = int(next(iter(groups))[1])
        indexes = sorted(int(m.group("index")) for m in splits if m is not None)
        if indexes != list(range(1, total + 1)):
            raise ValueError(f"split GGUF file incomplete: {len(models)} of {total} shards ({', '.join(models[:5])})")
        return models
    shown = ", ".join(models[:6]) + (f" and {len(models) - 6} more" if len(models) > 6 else "")
    raise ValueError(f"{len(models)} GGUF files ({shown}): a candidate is one model; name the file to check")


def read_gguf(candidate: Candidate, relative: str) -> GGUFHeader:
    """The header of one GGUF file of the candidate (opened through safe_files; parsed once per file identity)."""
    with candidate.open_regular(relative) as handle:
        return read_gguf_header(handle, relative)


def _plain(value: Any) -> Any:
    """A metadata value as JSON holds it: short arrays as lists, long ones as None."""
    if isinstance(value, GGUFArray):
        return list(value.values) if value.values is not None else None
    if isinstance(value, StringTable):
        return None
    return value


def model_type(architecture: str, model_name: str | None) -> str:
    """transformers' model_type for a llama.cpp architecture (a llama named mistral loads as mistral, as transformers does)."""
    if architecture == "llama" and model_name and "mistral" in model_name.lower():
        return "mistral"
    if architecture in ("t5", "t5encoder") and model_name and "umt5" in model_name.lower():
        return "umt5"
    return MODEL_TYPES.get(architecture, architecture)


def gguf_config(header: GGUFHeader, tensor_names: set[str] | None) -> dict[str, Any]:
    """The header's architecture facts under config.json's names, plus `gguf`: file-level metadata.

    `tensor_names` (every shard's; None when unreadable) tells `tie_word_embeddings` as transformers
    does: tied unless the file stores `output.weight`. Raises ValueError without `general.architecture`.
    """
    architecture = header.string("general.architecture")
    if not architecture:
        raise ValueError("general.architecture is missing or not a string")
    metadata = header.metadata
    config: dict[str, Any] = {"model_type": model_type(architecture, header.string("general.name"))}
    keys = {**ARCHITECTURE_KEYS, **ARCHITECTURE_KEY_OVERRIDES.get(architecture, {})}
    for suffix, name in keys.items():
        full = f"{architecture}.{suffix}"
        if full in metadata:
            config[name] = _plain(metadata[full])
    tokens = metadata.get("tokenizer.ggml.tokens")
    if "vocab_size" not in config and isinstance(tokens, StringTable):
        config["vocab_size"] = len(tokens)  # as transformers (its issue 32526)
    for role in ("bos", "eos", "unk", "pad"):
        value = metadata.get(SPECIAL_TOKEN_KEYS[role])
        if value is not None:
            config[f"{role}_token_id"] = _plain(value)
    if tensor_names is not None:
        config["tie_word_embeddings"] = "output.weight" not in tensor_names or architecture in UNTIED_FAMILIES
    file_type = metadata.get("general.file_type")
    config["gguf"] = {
        "file": header.relative,
        "version": header.version,
        "architecture": architecture,
        "name": header.string("general.name"),
        "license": header.string("general.license"),
        "license_name": header.string("general.license.name"),
        "size_label": header.string("general.size_label"),
        "file_type": file_type if type(file_type) is int else None,
        "quantization_version": _plain(metadata.get("general.quantization_version")),
        "tensors_error": header.tensors_error,
    }
    return config


def config_source_name(config: dict[str, Any] | None) -> str:
    """Where a config dict's fields were read, for messages: "<file>.gguf metadata" for `gguf_config`'s, else "config.json"."""
    gguf = (config or {}).get("gguf")
    if isinstance(gguf, dict) and isinstance(gguf.get("file"), str):
        return f"{gguf['file']} metadata"
    return "config.json"


def _tensor_names(candidate: Candidate, files: list[str]) -> set[str] | None:
    names: set[str] = set()
    for relative in files:
        header = read_gguf(candidate, relative)
        if header.tensors is None:
            return None
        names.update(tensor.name for tensor in header.tensors)
    return names


class GGUFSource(ArchitectureSource):
    """A GGUF file's metadata as config.json's fields (registered after config.json; see the module doc)."""

    name = "GGUF metadata"

    def present(self, file_names: set[str]) -> bool:
        """True if the folder has a top-level `.gguf` file."""
        return any(is_gguf_name(name) for name in file_names)

    def read_config(self, candidate: Candidate) -> dict[str, Any]:
        """`gguf_config` of the model's first (or only) GGUF file; ValueError with the reason when unreadable."""
        files = gguf_model_files(candidate.file_names())
        header = read_gguf(candidate, files[0])
        try:
            tensor_names = _tensor_names(candidate, files)
        except (OSError, ValueError):  # another shard unreadable: the weights facts say why
            tensor_names = None
        return gguf_config(header, tensor_names)


class GGUFFormat(WeightFormat):
    """`*.gguf` files: tensors from the bounded header reader; counted as transformers counts the dequantized model."""

    name = "gguf"
    suffixes = (SUFFIX,)
    reads_tensors = True
    streams_tensors = True
    kind_error = "not a GGUF file"

    def file_kind(self, candidate: Candidate, relative: str) -> str:
        """"gguf" when the file starts with the GGUF magic; ValueError otherwise (it could be anything)."""
        with candidate.open_regular(relative) as handle:
            magic = handle.read(4)
        if magic != b"GGUF":
            raise ValueError(f"magic {magic!r}, expected b'GGUF'")
        return self.name

    def header_files(self, candidate: Candidate, claimed: list[str], present: set[str], errors: list[str]) -> tuple[str | None, list[str]]:
        """The one model's files (`gguf_model_files`); several different models are an error, and none is read."""
        if not claimed:
            return None, []
        try:
            return None, gguf_model_files(claimed)
        except ValueError as exc:
            errors.append(str(exc))
            return None, []

    def read_tensors(self, candidate: Candidate, relative: str) -> list[TensorInfo]:
        """The file's tensors in file order; ValueError when the header or its tensor infos are bad."""
        header = read_gguf(candidate, relative)
        if header.tensors is None:
            raise ValueError(header.tensors_error or "tensor infos unreadable")
        return header.tensors

    def is_parameter(self, tensor: TensorInfo) -> bool:
        """Every floating or block-quantized tensor but llama.cpp's rope factors (buffers in transformers)."""
        return tensor.dtype in FLOAT_DTYPES and tensor.name not in NON_PARAMETER_TENSORS

    def count_parameters(self, tensors: list[TensorInfo], config: dict[str, Any] | None) -> dict[str, int]:
        """`parameters`, `embedding_parameters`, `non_embedding_parameters` from the logical shapes.

        A tied output matrix is stored once (no `output.weight`), so nothing is deduplicated. Embeddings are
        the token (and position, token-type) embeddings and the output matrix, as in Kaplan et al. 2020.
        """
        counted = [t for t in tensors if self.is_parameter(t)]
        total = sum(t.elements for t in counted)
        embedding = sum(t.elements for t in counted if t.name in EMBEDDING_TENSORS)
        return {"parameters": total, "embedding_parameters": embedding, "non_embedding_parameters": total - embedding}

    def tensor_slices(self, handle: IO[bytes], resolved: Path, slice_bytes: int) -> Iterator[tuple[str, Iterator[Any]]]:
        """Every tensor of the open file in slices of whole rows, dequantized to float32 torch tensors by gguf-py.

        A row is the innermost dimension (whole blocks, as the header reader checked); each slice holds
        about `slice_bytes` of float32. Raises ValueError when the header is bad or gguf-py cannot
        dequantize a type.
        """
        header = read_gguf_header(handle, resolved.name)
        if header.tensors is None or header.data_starts is None:
            raise ValueError(header.tensors_error or "tensor infos unreadable")
        for tensor, start in zip(header.tensors, header.data_starts, strict=True):
            yield tensor.name, _row_slices(handle.fileno(), tensor, start, slice_bytes)


_NUMPY_TYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4", "I64": "<i8"}


def _row_slices(descriptor: int, tensor: TensorInfo, start: int, slice_bytes: int) -> Iterator[Any]:
    """Slices of whole rows of one tensor, read with `pread` and dequantized (numpy, then torch without a copy)."""
    import gguf
    import numpy as np
    import torch

    dtype = DTYPES[tensor.dtype]
    row_elements = tensor.shape[-1] if tensor.shape else 1
    rows = tensor.elements // row_elements if row_elements else 0
    row_bytes = dtype.stored_bytes(row_elements)
    step = max(1, slice_bytes // max(1, 4 * row_elements))
    type_id = next(code for code, name in GGML_TYPES.items() if name == tensor.dtype)
    for first in range(0, rows, step):
        count = min(step, rows - first)
        raw = os.pread(descriptor, count * row_bytes, start + first * row_bytes)
        if len(raw) != count * row_bytes:
            raise ValueError(f"{tensor.name}: the file ended inside its data")
        if tensor.dtype in _NUMPY_TYPES:
            values = np.frombuffer(bytearray(raw), dtype=_NUMPY_TYPES[tensor.dtype])  # writable, as torch wants
        else:
            try:
                values = gguf.quants.dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(count, row_bytes), gguf.GGMLQuantizationType(type_id))
            except NotImplementedError:
                raise ValueError(f"{tensor.name}: the installed gguf cannot dequantize {tensor.dtype}") from None
        yield torch.from_numpy(values.reshape(-1))

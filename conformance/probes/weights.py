"""Weight files and tensor headers (see safetensors_header.py): never tensor data, never torch.

Every file is opened through `safe_files` (regular files inside the folder only), and each file's failure
is recorded against that file, so one bad shard or archive never hides the others.
"""

from __future__ import annotations

import os
import re
import struct
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

from ..candidate import Candidate

# Bytes per element of each safetensors dtype; sub-byte types are counted in bits.
DTYPE_BITS: dict[str, int] = {
    "F64": 64, "F32": 32, "F16": 16, "BF16": 16, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F6_E2M3": 6, "F6_E3M2": 6, "F4": 4, "C64": 64,
    "I64": 64, "I32": 32, "I16": 16, "I8": 8, "U64": 64, "U32": 32, "U16": 16, "U8": 8, "BOOL": 8,
}
FLOAT_DTYPES = frozenset(
    {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F6_E2M3", "F6_E3M2", "F4"}
)

# Float tensors that some exporters save although they are buffers, not parameters.
_BUFFER_PATTERNS = re.compile(r"(\.inv_freq$|\.masked_bias$|(^|\.)attn\.bias$|\.rotary_emb\.|(^|\.)position_ids$|(^|\.)token_type_ids$)")
# Embedding and unembedding matrices, excluded from the non-embedding count (as in Kaplan et al. 2020).
EMBEDDING_PATTERNS = re.compile(
    r"(embed_tokens|word_embeddings|position_embeddings|token_type_embeddings|embed_positions|"
    r"(^|\.)wte\.|(^|\.)wpe\.|^lm_head\.|\.lm_head\.|(^|\.)shared\.|embed_out\.|output_embeddings)"
)
INPUT_EMBEDDING_PATTERNS = re.compile(r"(embed_tokens\.weight$|word_embeddings\.weight$|(^|\.)wte\.weight$|(^|\.)shared\.weight$)")

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_OTHER_FORMATS = {
    ".gguf": "gguf", ".h5": "tensorflow-h5", ".hdf5": "tensorflow-h5", ".keras": "keras", ".msgpack": "flax-msgpack",
    ".onnx": "onnx", ".npz": "numpy", ".tflite": "tflite",
}


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
    errors: list[str] = field(default_factory=list)  # index and safetensors header problems (tensor facts)
    format_errors: list[str] = field(default_factory=list)  # archives whose kind could not be told (format facts)
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
            "format_errors": self.format_errors,
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


MAX_ZIP_DIRECTORY_BYTES = 16 * 1024 * 1024  # a torch archive's central directory is KiBs; bounds the member list
_EOCD = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 65_535  # the end record plus the longest zip comment


def _zip_directory_size(handle: IO[bytes], size: int) -> int | None:
    """Bytes of the zip's central directory from its end record; None if the file has no end record."""
    handle.seek(size - min(size, _EOCD_SEARCH))
    tail = handle.read(_EOCD_SEARCH)
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        return None
    (directory_size,) = struct.unpack_from("<I", tail, at + 12)
    return int(directory_size)


def is_torchscript(names: list[str]) -> bool:
    """True for the member names of a TorchScript archive (torch.jit.save): compiled code and constants.

    torch.save's zips hold `<archive>/data.pkl`, `<archive>/data/<n>`, `version`, `byteorder`; torch.jit.save
    adds `<archive>/code/__torch__/...` (the TorchScript source) and `<archive>/constants.pkl`.
    """
    for name in names:
        parts = name.split("/")
        if parts[-1] == "constants.pkl" or any(parts[i : i + 2] == ["code", "__torch__"] for i in range(len(parts))):
            return True
    return False


def archive_format(candidate: Candidate, relative: str) -> str:
    """"torchscript" if the pickle-named weight file is a TorchScript zip, else "pickle".

    Reads the first 4 bytes, the last 64 KiB and a central directory of at most 16 MiB. Raises ValueError
    (UnsafeFileError included) or OSError when the file cannot be opened or its directory is over the bound.
    """
    with candidate.open_regular(relative) as handle:
        size = os.fstat(handle.fileno()).st_size
        if handle.read(4) != b"PK\x03\x04":
            return "pickle"  # a raw or legacy-tar pickle: the scan judges its content
        directory = _zip_directory_size(handle, size)
        if directory is None:
            return "pickle"  # not a readable zip; torch cannot load it as an archive either
        if directory > MAX_ZIP_DIRECTORY_BYTES:
            raise ValueError(f"zip central directory of {directory} bytes is over the {MAX_ZIP_DIRECTORY_BYTES}-byte limit")
        handle.seek(0)
        try:
            names = zipfile.ZipFile(handle).namelist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise ValueError(f"unreadable zip archive: {exc}") from None
    return "torchscript" if is_torchscript(names) else "pickle"


def _read_header(candidate: Candidate, shard: str) -> list[TensorInfo]:
    from .safetensors_header import read_safetensors_header

    with candidate.open_regular(shard) as handle:
        return read_safetensors_header(handle, shard)


def _index_shards(candidate: Candidate, info: WeightsInfo, present: set[str]) -> list[str]:
    assert info.index_file is not None
    index = candidate.read_json(info.index_file, max_bytes=64 * 1024 * 1024)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ValueError("weight_map is not an object")
    shards = sorted({value for value in weight_map.values() if isinstance(value, str)})
    if len(shards) != len(set(map(str, weight_map.values()))):
        info.errors.append(f"{info.index_file}: weight_map values must be file names")
    for shard in shards:
        candidate.resolve_inside(shard)
        if shard not in present:
            info.errors.append(f"{info.index_file} names missing shard {shard}")
    return [s for s in shards if s in present]


def read_weights(candidate: Candidate) -> WeightsInfo:
    """Weight files by format, and the tensors of every safetensors shard (the index's, or all at top level).

    Never raises for bad model bytes: each file's problem is one entry of `errors` (tensor headers, index)
    or `format_errors` (archives whose kind could not be read).
    """
    info = WeightsInfo()
    for entry in candidate.files:
        fmt = _weight_format(entry.path)
        if fmt:
            info.files[entry.path] = fmt
    for relative, fmt in list(info.files.items()):
        if fmt == "pickle":
            try:
                info.files[relative] = archive_format(candidate, relative)
            except Exception as exc:  # noqa: BLE001 - any failure of this file's bytes is this file's error
                info.format_errors.append(f"{relative}: archive kind unknown: {exc}")
    present = set(info.files)
    shards: list[str] = sorted(name for name, fmt in info.files.items() if fmt == "safetensors")
    if "model.safetensors.index.json" in candidate.file_names():
        info.index_file = "model.safetensors.index.json"
        try:
            shards = _index_shards(candidate, info, present)
        except Exception as exc:  # noqa: BLE001
            info.errors.append(f"{info.index_file}: {exc}")
    for shard in shards:
        try:
            info.tensors.extend(_read_header(candidate, shard))
        except Exception as exc:  # noqa: BLE001
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

"""A bounded reader of GGUF headers (llama.cpp's single-file format): metadata and tensor infos, never tensor data.

Layout (GGUF v2 and v3, `ggml/docs/gguf.md`): magic `GGUF`, uint32 version, uint64 tensor count, uint64
metadata count; the metadata (key string, uint32 value type, value); the tensor infos (name string, uint32
n_dims, n_dims uint64 dimensions innermost first, uint32 GGML type, uint64 offset into the data section);
padding to `general.alignment` (32 by default); then the tensor data. A string is a uint64 byte length and
that many UTF-8 bytes; an array a uint32 item type, a uint64 count and the items.

Why not `gguf.GGUFReader` (gguf-py 0.19): it memory-maps the whole file and trusts every count. An array
of 2**60 numbers loops for ever (its `for idx in range(alen[0])` goes on past the end of the file, each read
an empty view of no bytes: still running after 20 s in a test here); a string length past the end of the
file is silently cut short; a tensor count past the end fails only with an IndexError. It also builds a
numpy view for every length and string (247,312 for SmolLM2's tokenizer: 10-19 s on the benchmark
machine, `benchmarks/gguf_static.py`) and imports numpy. This reader takes the format's constants (value types here,
GGML types and block sizes in `dtypes.py`; tests hold both equal to the installed gguf package) and reads
with plain `pread`s into one growing buffer, checking every length and count before it reads or loops:

- at most `MAX_HEADER_BYTES` of header are read, never past the end of the file;
- metadata count <= `MAX_KV_COUNT`, tensor count <= `MAX_TENSOR_COUNT`, and every count is first checked
  against the bytes left in the file (an item takes at least its smallest encoding);
- a string is at most `MAX_STRING_BYTES`, an array at most `MAX_STRING_ITEMS` strings or `MAX_ARRAY_ITEMS`
  numbers; only the token list (as a `StringTable`) and arrays of at most `KEPT_ARRAY_ITEMS` items are kept,
  and those only while the file's kept arrays stay within `KEPT_ARRAY_BYTES` of stored items in all (a
  header of 15,000 short arrays would otherwise become ~9x its size in Python tuples); every other array
  is recorded as its type and length without its items being built; arrays of arrays are refused
  (as llama.cpp refuses them); keys and tensor names must be UTF-8 (GGUFReader decodes them strictly),
  values are decoded with replacement characters;
- n_dims <= 4 (ggml's GGML_MAX_DIMS), the element count fits an int64, the GGML type is known, a block
  type's innermost dimension is a whole number of blocks, names are unique, and every tensor's data lies
  inside the file.

Failures are split by what they spoil: a bad magic, version or metadata entry raises ValueError (every fact
of the file needs the metadata), while a bad tensor count, tensor info, alignment or data offset is
recorded in `GGUFHeader.tensors_error`, so the architecture and tokenizer facts still stand.
"""

from __future__ import annotations

import os
import struct
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import IO, Any

from .dtypes import DTYPES, GGML_TYPES
from .tensors import TensorInfo

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  # gguf-py's READER_SUPPORTED_VERSIONS; version 1 used 32-bit counts
DEFAULT_ALIGNMENT = 32  # GGUF_DEFAULT_ALIGNMENT
MAX_HEADER_BYTES = 64 * 1024 * 1024  # real headers are 1-20 MB (a 262k-token vocabulary with scores and types)
MAX_KV_COUNT = 65_536  # real files have 20-60 entries
MAX_TENSOR_COUNT = 262_144  # a 128-expert model stored one tensor per expert has ~15,000
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_STRING_BYTES = 16 * 1024 * 1024
MAX_ARRAY_ITEMS = 1 << 24  # numbers in one metadata array (skipped unless short; bounded by the header too)
MAX_STRING_ITEMS = 1 << 22  # strings in one metadata array: 16x the largest real vocabularies (~262,144 tokens)
KEPT_ARRAY_ITEMS = 4096  # longer arrays are kept as their type and length (the token list excepted)
# Stored bytes of kept array items over the whole file (a string item counts its 8-byte length too): real
# headers keep a few per-layer arrays (head counts, sliding-window patterns) of at most a few KiB.
KEPT_ARRAY_BYTES = 1024 * 1024
TOKENS_KEY = "tokenizer.ggml.tokens"
TOKEN_TYPES_KEY = "tokenizer.ggml.token_type"
# llama.cpp's token types (gguf-py TokenType): a CONTROL or USER_DEFINED token is matched whole in text
# (`<|im_end|>`), never split by the model's merges; their ids are kept even when the array is not.
SPECIAL_TOKEN_TYPES = frozenset({3, 4})
MAX_SPECIAL_TOKEN_IDS = 65_536
_INT64_MAX = 2**63 - 1
_READ_CHUNK = 1024 * 1024

# GGUF value types (gguf-py's GGUFValueType): id -> (name, struct code, bytes); strings and arrays apart.
_STRING, _ARRAY = 8, 9
SCALAR_TYPES: dict[int, tuple[str, str, int]] = {
    0: ("UINT8", "B", 1), 1: ("INT8", "b", 1), 2: ("UINT16", "H", 2), 3: ("INT16", "h", 2),
    4: ("UINT32", "I", 4), 5: ("INT32", "i", 4), 6: ("FLOAT32", "f", 4), 7: ("BOOL", "?", 1),
    10: ("UINT64", "Q", 8), 11: ("INT64", "q", 8), 12: ("FLOAT64", "d", 8),
}
VALUE_TYPE_NAMES: dict[int, str] = {**{code: spec[0] for code, spec in SCALAR_TYPES.items()}, _STRING: "STRING", _ARRAY: "ARRAY"}


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array: its item type name, its length, and its items when kept (short arrays only).

    `values` is None for arrays longer than `KEPT_ARRAY_ITEMS` (merges, scores, token types), whose items
    no fact needs, and for arrays past the file's `KEPT_ARRAY_BYTES` budget; the token list is kept apart
    as a `StringTable`.
    """

    item_type: str
    length: int
    values: tuple[Any, ...] | None
    special_ids: tuple[int, ...] | None = None  # `TOKEN_TYPES_KEY` only: ids of CONTROL/USER_DEFINED tokens (bounded)


class StringTable:
    """A metadata array of strings held as its raw bytes and one offset an item (8 bytes), decoded on access."""

    def __init__(self, raw: bytes, offsets: array[int], order: str) -> None:
        """Item i is the GGUF string (uint64 length in byte order `order`, UTF-8 bytes) at `raw[offsets[i]:]`."""
        self._raw, self._offsets, self._length = raw, offsets, struct.Struct(order + "Q")

    def __len__(self) -> int:
        """The number of items."""
        return len(self._offsets)

    def __getitem__(self, index: int) -> str:
        """Item `index` as text; IndexError outside 0..len-1."""
        if not 0 <= index < len(self._offsets):
            raise IndexError(index)
        start = self._offsets[index]
        (size,) = self._length.unpack_from(self._raw, start)
        return self._raw[start + 8 : start + 8 + size].decode("utf-8", errors="replace")


@dataclass
class GGUFHeader:
    """One GGUF file's header: version, metadata (key -> value) and tensors, or why the tensors could not be read.

    Scalars are Python ints, floats, bools and strings; arrays are `GGUFArray`s, the token list a
    `StringTable`. `tensors` are in file order with torch's dimension order (GGUF stores the innermost
    dimension first) and their GGML type as dtype; None with `tensors_error` when the tensor infos are bad.
    """

    relative: str
    version: int
    file_bytes: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[TensorInfo] | None = None
    tensors_error: str | None = None
    data_offset: int | None = None  # where the tensor data section starts (bytes)
    data_starts: list[int] | None = None  # each tensor's first data byte in the file, in `tensors` order

    def string(self, key: str) -> str | None:
        """The metadata string under `key`, or None when absent or not a string."""
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None


class _Cursor:
    """Reads a file front to back into one buffer, in chunks, never past `MAX_HEADER_BYTES` or the file's end."""

    def __init__(self, descriptor: int, file_bytes: int) -> None:
        self.descriptor = descriptor
        self.file_bytes = file_bytes
        self.buffer = bytearray()
        self.position = 0
        self.order = "<"  # "<" little-endian (every real file), ">" for a big-endian one
        self.kept_bytes = 0  # stored bytes of the array items kept so far (bounded by KEPT_ARRAY_BYTES)

    def keep(self, count: int, stored_bytes: int) -> bool:
        """Whether to keep an array of `count` items stored in `stored_bytes`; a kept one is charged to the budget."""
        if count > KEPT_ARRAY_ITEMS or self.kept_bytes + stored_bytes > KEPT_ARRAY_BYTES:
            return False
        self.kept_bytes += stored_bytes
        return True

    def left(self) -> int:
        """Bytes of the file after the current position."""
        return self.file_bytes - self.position

    def need(self, count: int, what: str) -> None:
        """Make `count` bytes from the position readable; ValueError past the end of the file or the header budget."""
        end = self.position + count
        if end <= len(self.buffer):
            return
        if end > self.file_bytes:
            raise ValueError(f"{what} at byte {self.position} runs past the end of the file ({self.file_bytes} bytes)")
        if end > MAX_HEADER_BYTES:
            raise ValueError(f"{what} at byte {self.position} runs past the {MAX_HEADER_BYTES // (1024 * 1024)} MiB header budget")
        target = min(max(end, 2 * len(self.buffer), _READ_CHUNK), self.file_bytes, MAX_HEADER_BYTES)
        while len(self.buffer) < end:
            chunk = os.pread(self.descriptor, target - len(self.buffer), len(self.buffer))
            if not chunk:
                raise ValueError(f"{what} at byte {self.position}: the file ended early (it shrank while read)")
            self.buffer += chunk

    def unpack(self, code: str, size: int, what: str) -> Any:
        """One scalar of struct `code` (`size` bytes) at the position, which moves past it."""
        self.need(size, what)
        (value,) = struct.unpack_from(self.order + code, self.buffer, self.position)
        self.position += size
        return value

    def length(self, limit: int, item_bytes: int, what: str) -> int:
        """A uint64 count of items of at least `item_bytes` each, checked against `limit` and the bytes left."""
        count: int = self.unpack("Q", 8, what)
        if count > limit:
            raise ValueError(f"{what}: {count} is over the limit of {limit}")
        if count * item_bytes > self.left():
            raise ValueError(f"{what}: {count} items cannot fit in the {self.left()} bytes left in the file")
        return count

    def raw_string(self, what: str) -> tuple[int, int]:
        """(start, length) of the string at the position in `buffer`; the position moves past it."""
        size = self.length(MAX_STRING_BYTES, 1, f"{what} length")
        self.need(size, what)
        start = self.position
        self.position += size
        return start, size

    def text(self, what: str, strict: bool = False) -> str:
        """The string at the position as text: strict UTF-8 (ValueError) for names, else with replacement characters."""
        start, size = self.raw_string(what)
        data = bytes(self.buffer[start : start + size])
        try:
            return data.decode("utf-8", errors="strict" if strict else "replace")
        except UnicodeDecodeError:
            raise ValueError(f"{what} is not UTF-8: {data[:60]!r}") from None


def _value_type(cursor: _Cursor, what: str) -> int:
    code: int = cursor.unpack("I", 4, f"{what} type")
    if code not in VALUE_TYPE_NAMES:
        raise ValueError(f"{what}: unknown value type {code}")
    return code


def _string_items(cursor: _Cursor, count: int, key: str, keep: bool) -> tuple[int, array[int]]:
    """Walk `count` strings from the position: (start, each item's offset from start if `keep`); inlined for speed."""
    length_of = struct.Struct(cursor.order + "Q").unpack_from
    buffer, start = cursor.buffer, cursor.position
    position = start
    offsets = array("Q")
    for _ in range(count):
        if position + 8 > len(buffer):
            cursor.position = position
            cursor.need(8, f"{key} item length")  # grows `buffer` in place
        (size,) = length_of(buffer, position)
        if size > MAX_STRING_BYTES:
            raise ValueError(f"{key} item length: {size} is over the limit of {MAX_STRING_BYTES}")
        if keep:
            offsets.append(position - start)
        position += 8
        if position + size > len(buffer):
            cursor.position = position
            cursor.need(size, f"{key} item")
        position += size
    cursor.position = position
    return start, offsets


def _array(cursor: _Cursor, key: str) -> GGUFArray | StringTable:
    item_code = _value_type(cursor, f"{key} item")
    if item_code == _ARRAY:
        raise ValueError(f"{key}: arrays of arrays are not supported (llama.cpp refuses them)")
    if item_code == _STRING:
        count = cursor.length(MAX_STRING_ITEMS, 8, f"{key} item count")
        tokens = key == TOKENS_KEY
        # Walked first (the stored size is known only then), so the offsets are kept for a short array only.
        start, offsets = _string_items(cursor, count, key, tokens or count <= KEPT_ARRAY_ITEMS)
        if tokens:
            return StringTable(bytes(cursor.buffer[start : cursor.position]), offsets, cursor.order)
        if not cursor.keep(count, cursor.position - start):
            return GGUFArray("STRING", count, None)
        table = StringTable(bytes(cursor.buffer[start : cursor.position]), offsets, cursor.order)
        return GGUFArray("STRING", count, tuple(table[index] for index in range(count)))
    name, code, size = SCALAR_TYPES[item_code]
    count = cursor.length(MAX_ARRAY_ITEMS, size, f"{key} item count")
    cursor.need(count * size, f"{key} items")
    values = struct.unpack_from(f"{cursor.order}{count}{code}", cursor.buffer, cursor.position) if cursor.keep(count, count * size) else None
    special_ids = _special_ids(cursor, count, code, size) if key == TOKEN_TYPES_KEY and code in "bBhHiIqQ" else None
    cursor.position += count * size
    return GGUFArray(name, count, values, special_ids)


def _special_ids(cursor: _Cursor, count: int, code: str, size: int) -> tuple[int, ...]:
    """Ids whose token type is CONTROL or USER_DEFINED, the first `MAX_SPECIAL_TOKEN_IDS` of them."""
    found: list[int] = []
    for index, (token_type,) in enumerate(struct.iter_unpack(f"{cursor.order}{code}", cursor.buffer[cursor.position : cursor.position + count * size])):
        if token_type in SPECIAL_TOKEN_TYPES:
            found.append(index)
            if len(found) >= MAX_SPECIAL_TOKEN_IDS:
                break
    return tuple(found)


def _metadata(cursor: _Cursor, count: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for index in range(count):
        key = cursor.text(f"metadata key {index}", strict=True)
        if key in metadata:
            raise ValueError(f"metadata key {key!r} appears twice")
        code = _value_type(cursor, f"metadata {key!r}")
        if code == _STRING:
            metadata[key] = cursor.text(f"metadata {key!r}")
        elif code == _ARRAY:
            metadata[key] = _array(cursor, key)
        else:
            _, struct_code, size = SCALAR_TYPES[code]
            metadata[key] = cursor.unpack(struct_code, size, f"metadata {key!r}")
    return metadata


def _tensor_info(cursor: _Cursor, index: int, relative: str) -> tuple[TensorInfo, int, int]:
    """One tensor info: (tensor, offset into the data section, data bytes)."""
    name = cursor.text(f"tensor {index} name", strict=True)
    n_dims: int = cursor.unpack("I", 4, f"tensor {name!r} n_dims")
    if n_dims > MAX_DIMS:
        raise ValueError(f"tensor {name!r}: {n_dims} dimensions, over ggml's {MAX_DIMS}")
    cursor.need(8 * n_dims, f"tensor {name!r} dimensions")
    dims = struct.unpack_from(f"{cursor.order}{n_dims}Q", cursor.buffer, cursor.position)
    cursor.position += 8 * n_dims
    elements = 1
    for dim in dims:
        elements *= dim
        if dim > _INT64_MAX or elements > _INT64_MAX:
            raise ValueError(f"tensor {name!r}: dimensions {list(dims)} overflow int64")
    type_id: int = cursor.unpack("I", 4, f"tensor {name!r} type")
    dtype_name = GGML_TYPES.get(type_id)
    if dtype_name is None:
        raise ValueError(f"tensor {name!r}: unknown GGML type {type_id}")
    dtype = DTYPES[dtype_name]
    if dims and dims[0] % dtype.block:
        raise ValueError(f"tensor {name!r}: innermost dimension {dims[0]} is not a whole number of {dtype_name} blocks of {dtype.block}")
    offset: int = cursor.unpack("Q", 8, f"tensor {name!r} offset")
    tensor = TensorInfo(name, dtype_name, tuple(reversed(dims)), relative)
    return tensor, offset, tensor.stored_bytes


def _alignment(metadata: dict[str, Any]) -> int:
    """`general.alignment` (a uint32 power of two, as gguf-py requires), else 32."""
    if "general.alignment" not in metadata:
        return DEFAULT_ALIGNMENT
    value = metadata["general.alignment"]
    if type(value) is not int or not 0 < value < 2**32 or value & (value - 1):
        raise ValueError(f"general.alignment {str(value)[:40]} is not a power of two")
    return value


def _tensors(cursor: _Cursor, count: int, header: GGUFHeader) -> None:
    """Read the tensor infos into `header` (or record why they cannot be read)."""
    try:
        if count > MAX_TENSOR_COUNT:
            raise ValueError(f"tensor count {count} is over the limit of {MAX_TENSOR_COUNT}")
        if count * 24 > cursor.left():  # name length, n_dims, type and offset: 24 bytes at least
            raise ValueError(f"tensor count {count} cannot fit in the {cursor.left()} bytes left in the file")
        infos = [_tensor_info(cursor, index, header.relative) for index in range(count)]
        alignment = _alignment(header.metadata)
        data_offset = -(-cursor.position // alignment) * alignment
        seen: set[str] = set()
        for tensor, offset, size in infos:
            if tensor.name in seen:
                raise ValueError(f"tensor {tensor.name!r} appears twice")
            seen.add(tensor.name)
            if data_offset + offset + size > header.file_bytes:
                raise ValueError(
                    f"tensor {tensor.name!r}: data at bytes {data_offset + offset}..{data_offset + offset + size} "
                    f"runs past the end of the file ({header.file_bytes} bytes)"
                )
    except ValueError as exc:
        header.tensors_error = str(exc)
        return
    header.tensors = [tensor for tensor, _, _ in infos]
    header.data_offset = data_offset
    header.data_starts = [data_offset + offset for _, offset, _ in infos]


def parse_gguf(handle: IO[bytes], relative: str) -> GGUFHeader:
    """The header of the GGUF file open as `handle` (read with `pread`, the handle's position untouched).

    Raises ValueError (bad magic, unsupported version, bad metadata) or OSError; tensor-info problems are
    in the result's `tensors_error` instead (see the module doc for every bound).
    """
    descriptor = handle.fileno()
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead into tensor data
    cursor = _Cursor(descriptor, os.fstat(descriptor).st_size)
    cursor.need(4, "magic")
    if bytes(cursor.buffer[:4]) != MAGIC:
        raise ValueError(f"not a GGUF file (magic {bytes(cursor.buffer[:4])!r}, expected {MAGIC!r})")
    cursor.position = 4
    version: int = cursor.unpack("I", 4, "version")
    if version and not version & 0xFFFF:  # written on a big-endian machine (as gguf-py tells it)
        cursor.order = ">"
        version = struct.unpack(">I", struct.pack("<I", version))[0]
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"GGUF version {version} is not supported (supported: {', '.join(map(str, SUPPORTED_VERSIONS))})")
    tensor_count: int = cursor.unpack("Q", 8, "tensor count")
    kv_count: int = cursor.unpack("Q", 8, "metadata count")
    if kv_count > MAX_KV_COUNT:
        raise ValueError(f"metadata count {kv_count} is over the limit of {MAX_KV_COUNT}")
    if kv_count * 13 > cursor.left():  # key length, type and a one-byte value: 13 bytes at least
        raise ValueError(f"metadata count {kv_count} cannot fit in the {cursor.left()} bytes left in the file")
    header = GGUFHeader(relative, version, cursor.file_bytes, _metadata(cursor, kv_count))
    _tensors(cursor, tensor_count, header)
    return header


# Parsed headers by file identity, so the architecture, weights and tokenizer facts parse a file once.
_CACHE: OrderedDict[tuple[Any, ...], GGUFHeader | str] = OrderedDict()
_CACHE_SIZE = 4  # the files of the model being checked; a header holds at most MAX_HEADER_BYTES of token text
_CACHE_LOCK = threading.Lock()


def read_gguf_header(handle: IO[bytes], relative: str) -> GGUFHeader:
    """`parse_gguf`, remembered by the open file's identity (device, inode, size, change times) and name.

    A failure is remembered too and raised again as the same ValueError.
    """
    stat = os.fstat(handle.fileno())
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, relative)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
    if cached is None:
        try:
            cached = parse_gguf(handle, relative)
        except ValueError as exc:
            cached = str(exc)
        with _CACHE_LOCK:
            _CACHE[key] = cached
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    if isinstance(cached, str):
        raise ValueError(cached)
    return cached

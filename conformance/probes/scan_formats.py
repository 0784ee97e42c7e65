"""Readers of the non-pickle formats the scan interprets.

Safetensors and npy headers, GGUF metadata, ONNX external-data locations, Keras configs and HDF5 model
configs, and the compressed streams joblib writes.

Every reader is bounded (lengths, counts, depth, bytes) and raises `FormatError` with a one-line reason
on a malformed or over-budget input; none of them runs anything from the file.
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import IO, Any

from .scan_pickle import LimitExceeded


class FormatError(ValueError):
    """A file that claims a format (by magic number or name) but does not follow it, or exceeds a bound."""


# ---------------------------------------------------------------------------------------------
# Magic numbers
# ---------------------------------------------------------------------------------------------

NPY_MAGIC = b"\x93NUMPY"
GGUF_MAGIC = b"GGUF"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_START_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
ZIP_END_MAGIC = b"PK\x05\x06"
# joblib.compressor's prefixes (zlib, gzip, bz2, lzma-alone, xz, lz4 frame), plus the pre-0.10 "ZF" zlib files.
_ZF_HEADER_BYTES = 2 + 19  # b"ZF" then the uncompressed length as a hex literal padded to 19 bytes (joblib.numpy_pickle_compat)


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """8-byte little-endian header length that fits the file, then a JSON object (the static probe validates the rest)."""
    if len(head) < 9:
        return False
    header_bytes = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 8 + header_bytes <= size


def compression_of(head: bytes) -> str | None:
    """The compressor whose magic opens `head` ("zlib", "gzip", "bz2", "lzma", "xz", "lz4", "zf"), or None.

    These are the prefixes joblib.load dispatches on (joblib/compressor.py); zlib is also checked by its
    header checksum (RFC 1950: CMF*256+FLG divisible by 31) so text starting with "x" is not taken for it.
    """
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"]\x00\x00"):
        return "lzma"
    if head.startswith(b"ZF") and len(head) >= _ZF_HEADER_BYTES + 2 and head[_ZF_HEADER_BYTES] == 0x78:
        return "zf"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


class _Decompressing(io.RawIOBase):
    """A forward stream of the decompressed bytes, inflating `raw` in chunks; output per call is bounded.

    Concatenated streams are read one after another, and trailing bytes that do not decompress end the
    stream, as joblib's and the standard library's readers (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile) do.
    Raises LimitExceeded past `max_bytes` of output, or once output exceeds `max_ratio` times the compressed
    bytes consumed (after `ratio_floor` bytes, so small streams are never refused).
    """

    _IN_CHUNK = 1 << 16

    def __init__(self, raw: IO[bytes], kind: str, *, max_bytes: int, max_ratio: int, ratio_floor: int) -> None:
        super().__init__()
        self._raw = raw
        self._kind = kind
        self._decompress = _decompressor(kind)
        self._pending = b""  # compressed bytes not yet handed to the decompressor
        self._eof = False
        self._next_stream = False  # the current decompressor started on bytes after a finished stream
        self.consumed = 0
        self.produced = 0
        self._max_bytes, self._max_ratio, self._floor = max_bytes, max_ratio, ratio_floor
        if kind == "zf":
            self._raw.read(_ZF_HEADER_BYTES)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        while not self._eof:
            if not self._pending:
                self._pending = self._raw.read(self._IN_CHUNK)
                self.consumed += len(self._pending)
            try:
                out, self._pending, finished, unused = self._decompress(self._pending, want)
            except Exception:
                if self._next_stream:  # trailing garbage after a complete stream: the readers stop there
                    self._eof = True
                    break
                raise
            if out:
                self._next_stream = False
            if finished:
                leftover = unused or self._raw.read(self._IN_CHUNK)
                self.consumed += 0 if unused else len(leftover)
                if leftover and self._kind != "zf":
                    self._decompress, self._pending, self._next_stream = _decompressor(self._kind), leftover, True
                else:
                    self._eof = True
            elif not out and not self._pending and self._raw_at_eof():
                self._eof = True
            if out:
                self.produced += len(out)
                if self.produced > self._max_bytes:
                    raise LimitExceeded(f"decompressed {self._kind} stream is over the {self._max_bytes}-byte budget")
                if self.produced > self._floor and self.produced > self._max_ratio * max(1, self.consumed):
                    raise LimitExceeded(f"{self._kind} stream inflates over the {self._max_ratio}:1 compression-ratio budget")
                buffer[: len(out)] = out
                return len(out)
        return 0

    def _raw_at_eof(self) -> bool:
        more = self._raw.read(self._IN_CHUNK)
        self.consumed += len(more)
        self._pending = more
        return not more


_Step = Callable[[bytes, int], tuple[bytes, bytes, bool, bytes]]


def _decompressor(kind: str) -> _Step:
    """A function (compressed, max_out) -> (output, input not yet consumed, stream finished, bytes after the stream)."""
    if kind in ("zlib", "gzip", "zf"):
        inflater = zlib.decompressobj(31 if kind == "gzip" else 15)

        def step(data: bytes, limit: int) -> tuple[bytes, bytes, bool, bytes]:
            out = inflater.decompress(data, limit)
            return out, inflater.unconsumed_tail, inflater.eof, inflater.unused_data if inflater.eof else b""

        return step
    if kind == "lz4":
        import lz4.frame  # a dependency; imported here because only joblib files need it

        lz4_state = lz4.frame.LZ4FrameDecompressor()

        def lz4_step(data: bytes, limit: int) -> tuple[bytes, bytes, bool, bytes]:
            out = lz4_state.decompress(data, max_length=limit)
            # lz4 keeps unconsumed input internally and is fed b"" until it needs more.
            return out, b"", lz4_state.eof, (lz4_state.unused_data or b"") if lz4_state.eof else b""

        return lz4_step
    import bz2  # lazy: most scans meet no bz2 or lzma stream
    import lzma

    other: Any = bz2.BZ2Decompressor() if kind == "bz2" else lzma.LZMADecompressor(lzma.FORMAT_ALONE if kind == "lzma" else lzma.FORMAT_XZ)

    def other_step(data: bytes, limit: int) -> tuple[bytes, bytes, bool, bytes]:
        out = other.decompress(data, max_length=limit)
        return out, b"", other.eof, other.unused_data if other.eof else b""

    return other_step


def decompressing_stream(raw: IO[bytes], kind: str, *, max_bytes: int, max_ratio: int, ratio_floor: int) -> IO[bytes]:
    """A buffered reader (read, readline, peek) of `raw` decompressed; see `_Decompressing` for the budgets."""
    return io.BufferedReader(_Decompressing(raw, kind, max_bytes=max_bytes, max_ratio=max_ratio, ratio_floor=ratio_floor))


# ---------------------------------------------------------------------------------------------
# npy: numpy's own header reader
# ---------------------------------------------------------------------------------------------


def npy_has_objects(reader: IO[bytes], max_header_bytes: int) -> bool:
    """Read an .npy header with numpy's own reader; True if the dtype holds Python objects (a pickle follows).

    numpy is imported here only: the scan imports it only when a file starts with the npy magic. The header
    is parsed by `numpy.lib.format` itself (so 'object', '|O' and [('a', 'object')] are read as np.load reads
    them); `max_header_bytes` bounds it, where np.load(allow_pickle=True) accepts any size.
    """
    import numpy
    from numpy.lib import format as npy_format

    try:
        read_header = npy_format._read_array_header  # type: ignore[attr-defined]  # numpy 1.x; private, so not in the stubs
    except AttributeError:
        from numpy.lib import _format_impl

        read_header = _format_impl._read_array_header  # type: ignore[attr-defined]  # numpy 2.x moved the implementation
    try:
        version = npy_format.read_magic(reader)
        _shape, _fortran, dtype = read_header(reader, version, max_header_size=max_header_bytes)
    except (ValueError, TypeError, SyntaxError, OverflowError, MemoryError, RecursionError, EOFError) as exc:
        raise FormatError(f"bad .npy header: {type(exc).__name__}: {str(exc)[:200]}") from None
    return bool(isinstance(dtype, numpy.dtype) and dtype.hasobject)


# ---------------------------------------------------------------------------------------------
# GGUF
# ---------------------------------------------------------------------------------------------

MAX_GGUF_KV = 100_000
MAX_GGUF_TENSORS = 1_000_000
MAX_GGUF_STRING_BYTES = 16 << 20  # one key or value; the largest real chat templates are tens of KB
MAX_GGUF_ARRAY_ITEMS = 10_000_000  # tokenizer vocabularies are ~250k entries
MAX_GGUF_DIMS = 8
MAX_GGUF_VALUES = 20_000_000  # values visited in all (array items included): bounds the time of a forged count
# Fixed-size value types of the GGUF spec (ggml/docs/gguf.md): type id -> bytes.
_GGUF_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


class _Cursor:
    """Exact reads and forward skips over a stream, with a clear error at a premature end."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.position = 0

    def read(self, n: int) -> bytes:
        data = self._raw.read(n)
        if len(data) != n:
            raise FormatError(f"truncated at byte {self.position + len(data)} (needed {n} more bytes)")
        self.position += n
        return data

    def skip(self, n: int) -> None:
        while n > 0:
            step = min(n, 1 << 20)
            self.read(step)
            n -= step

    def u32(self) -> int:
        return int(struct.unpack("<I", self.read(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.read(8))[0])


@dataclass
class GgufFacts:
    """A GGUF file's header as the scan reads it: format version, tensor and metadata counts, chat templates.

    `chat_templates` maps each `tokenizer.chat_template*` metadata key to its Jinja source.
    """

    version: int
    tensors: int
    metadata: int
    chat_templates: dict[str, str]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_gguf(raw: IO[bytes]) -> GgufFacts:
    """Parse a GGUF header, metadata and tensor infos with bounded counts and lengths.

    Layout per the GGUF spec (ggml/docs/gguf.md): magic, u32 version, u64 tensor count, u64 metadata count
    (u32 both in version 1), key/value pairs, tensor infos. Keeps only `tokenizer.chat_template*` strings
    (every copy of a repeated key).
    Raises FormatError on a malformed file or a count/length over a bound.
    """
    cursor = _Cursor(raw)
    if cursor.read(4) != GGUF_MAGIC:
        raise FormatError("no GGUF magic")
    version = cursor.u32()
    if version not in (1, 2, 3):
        raise FormatError(f"unsupported GGUF version {version}")
    size_of = cursor.u32 if version == 1 else cursor.u64
    tensors, kv_count = size_of(), size_of()
    if tensors > MAX_GGUF_TENSORS or kv_count > MAX_GGUF_KV:
        raise FormatError(f"{tensors} tensors and {kv_count} metadata entries: over the bounds ({MAX_GGUF_TENSORS}, {MAX_GGUF_KV})")

    def string() -> bytes:
        length = size_of()
        if length > MAX_GGUF_STRING_BYTES:
            raise FormatError(f"a string of {length} bytes at byte {cursor.position}: over the {MAX_GGUF_STRING_BYTES}-byte bound")
        return cursor.read(length)

    visited = 0

    def skip_value(kind: int, depth: int) -> None:
        nonlocal visited
        visited += 1
        if visited > MAX_GGUF_VALUES:
            raise FormatError(f"more than {MAX_GGUF_VALUES} metadata values: over the bound")
        if kind in _GGUF_FIXED:
            cursor.skip(_GGUF_FIXED[kind])
        elif kind == _GGUF_STRING:
            string()
        elif kind == _GGUF_ARRAY and depth < 2:
            item_kind, count = cursor.u32(), size_of()
            if count > MAX_GGUF_ARRAY_ITEMS:
                raise FormatError(f"an array of {count} items: over the {MAX_GGUF_ARRAY_ITEMS}-item bound")
            if item_kind in _GGUF_FIXED:
                cursor.skip(_GGUF_FIXED[item_kind] * count)
            else:
                for _ in range(count):
                    skip_value(item_kind, depth + 1)
        else:
            raise FormatError(f"unknown or too deeply nested value type {kind} at byte {cursor.position}")

    templates: dict[str, str] = {}
    for _ in range(kv_count):
        key = string().decode("utf-8", "replace")
        kind = cursor.u32()
        if key.startswith("tokenizer.chat_template") and kind == _GGUF_STRING:
            # A repeated key is kept under a numbered name: readers differ on which copy they use.
            name = key if key not in templates else f"{key}#{len(templates) + 1}"
            data = string()
            templates[name] = data.decode("utf-8", "replace")
            if not _is_utf8(data):
                # A reader that drops undecodable bytes sees another template ("_\xff_" becomes "__"): judge that too.
                templates[f"{name} (undecodable bytes dropped)"] = data.decode("utf-8", "ignore")
        else:
            skip_value(kind, 0)
    for _ in range(tensors):
        string()
        dims = cursor.u32()
        if dims > MAX_GGUF_DIMS:
            raise FormatError(f"a tensor with {dims} dimensions: over the {MAX_GGUF_DIMS} bound")
        cursor.skip(8 * dims if version > 1 else 4 * dims)
        cursor.skip(4 + 8)  # ggml type, data offset
    return GgufFacts(version, tensors, kv_count, templates)


# ---------------------------------------------------------------------------------------------
# ONNX: a bounded protobuf wire reader, enough to find external-data locations
# ---------------------------------------------------------------------------------------------

MAX_ONNX_FIELDS = 10_000_000
MAX_ONNX_DEPTH = 64
# The message fields (onnx/onnx.proto3) that lead to a TensorProto; all others are skipped unread.
_MODEL, _GRAPH, _NODE, _ATTRIBUTE, _TENSOR, _SPARSE, _FUNCTION, _ENTRY = range(8)
_ONNX_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 25: _FUNCTION},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _FUNCTION: {7: _NODE},
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _GRAPH, 11: _TENSOR, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
    _TENSOR: {13: _ENTRY},
}


def onnx_external_locations(data: IO[bytes], size: int) -> list[str]:
    """Every external-data `location` of every tensor in an ONNX ModelProto (graph, subgraphs, functions).

    Reads the protobuf wire format (https://protobuf.dev/programming-guides/encoding/) without the onnx
    package, descending only into the fields that can hold a TensorProto; `data` must be seekable. Raises
    FormatError on malformed wire data, nesting deeper than MAX_ONNX_DEPTH or more than MAX_ONNX_FIELDS fields.
    """
    locations: list[str] = []
    fields = 0
    # (message kind, end offset, depth, entry key/value collected so far)
    stack: list[tuple[int, int, int, dict[int, bytes]]] = [(_MODEL, size, 0, {})]
    position = 0
    data.seek(0)

    def varint() -> int:
        nonlocal position
        result, shift = 0, 0
        while True:
            byte = data.read(1)
            if not byte:
                raise FormatError(f"truncated varint at byte {position}")
            position += 1
            result |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise FormatError(f"varint longer than 10 bytes at byte {position}")

    while stack:
        kind, end, depth, entry = stack[-1]
        if position >= end:
            if position > end:
                raise FormatError(f"a field overruns its message at byte {position}")
            stack.pop()
            if kind == _ENTRY and entry.get(1) == b"location":
                locations.append(entry.get(2, b"").decode("utf-8", "replace"))
            continue
        fields += 1
        if fields > MAX_ONNX_FIELDS:
            raise FormatError(f"more than {MAX_ONNX_FIELDS} protobuf fields")
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            varint()
        elif wire == 1 or wire == 5:
            position += 8 if wire == 1 else 4
            data.seek(position)
        elif wire == 2:
            length = varint()
            if position + length > end:
                raise FormatError(f"a field of {length} bytes overruns its message at byte {position}")
            child = _ONNX_CHILDREN.get(kind, {}).get(number)
            if child is not None:
                if depth + 1 > MAX_ONNX_DEPTH:
                    raise FormatError(f"messages nested more than {MAX_ONNX_DEPTH} deep")
                stack.append((child, position + length, depth + 1, {}))
            elif kind == _ENTRY and number in (1, 2) and length <= 1 << 16:
                entry[number] = data.read(length)
                position += length
            else:
                position += length
                data.seek(position)
        else:
            raise FormatError(f"wire type {wire} at byte {position} is not valid protobuf")
    return locations


def unsafe_location(location: str) -> str | None:
    """Why an external-data location would read outside the model's folder, or None if it stays inside."""
    if not location:
        return "an empty external-data location"
    if "\x00" in location:
        return "a location with a NUL byte"
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith(("\\", "~")):
        return f"absolute location {location!r}"
    if ".." in posix.parts or ".." in windows.parts:
        return f"location {location!r} climbs out of the model folder"
    return None


# ---------------------------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------------------------

# Keras deserializes {"module": m, "class_name": c} by importing m; these modules are Keras' own.
_KERAS_MODULE_PREFIXES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras", "tensorflow")
MAX_KERAS_NODES = 1_000_000


def keras_config_findings(config: Any) -> Iterator[tuple[str, str, str]]:
    """(severity, name, detail) for each construct in a Keras model config that loads code.

    A `Lambda` layer carries marshalled Python bytecode; a `function` object or `__lambda__` names a callable
    that deserialization imports; a `module` outside Keras is imported. Walks at most MAX_KERAS_NODES values.
    """
    stack: list[Any] = [config]
    seen = 0
    while stack:
        seen += 1
        if seen > MAX_KERAS_NODES:
            yield "error", "", f"config has more than {MAX_KERAS_NODES} values; not fully checked"
            return
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
            continue
        if not isinstance(value, dict):
            continue
        stack.extend(value.values())
        class_name = value.get("class_name")
        module = value.get("module")
        if class_name in ("Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"):
            yield "dangerous", f"keras.{class_name}", f"a {class_name} layer holds Python code that loading runs"
        elif class_name == "function" and not (isinstance(module, str) and module.startswith(_KERAS_MODULE_PREFIXES)):
            yield "dangerous", f"{module}.{value.get('config')}", "a function object that loading imports from outside Keras"
        elif isinstance(module, str) and module and not module.startswith(_KERAS_MODULE_PREFIXES):
            yield "unknown", f"{module}.{class_name}", f"module {module!r} outside Keras is imported on load"


_H5_LAMBDA = re.compile(rb'"class_name"\s*:\s*"(Lambda|TFOpLambda|SlicingOpLambda|__lambda__)"')
_JSON_OBJECT_START = re.compile(rb'\{\s*"')
MAX_HDF5_JSON_BYTES = 64 << 20  # one JSON attribute (a Keras model_config)
MAX_HDF5_JSON_CANDIDATES = 1_000_000


def hdf5_keras_findings(
    raw: IO[bytes], size: int, chunk_bytes: int = 8 << 20, deadline: float | None = None
) -> Iterator[tuple[str, str, str]]:
    r"""(severity, name, detail) for code-loading constructs in the Keras configs stored in an HDF5 file.

    h5py keeps a string attribute (Keras' `model_config`) as uncompressed bytes, so every JSON object in
    the file is found by its opening `{"` and parsed with json (escapes such as \u004cambda decode as a
    loader's json.loads would), then judged by `keras_config_findings`; a plain search for the layer names
    runs too. `raw` must be seekable. Reads the file once plus the JSON it finds; garbage fails in a few bytes.
    Past `deadline` (time.monotonic seconds) the search stops with an "error" finding.
    """
    decoder = json.JSONDecoder()
    names: dict[str, None] = {}
    candidates = 0
    position, carry = 0, b""
    resume = 0  # offset before which a JSON object was already parsed
    while position < size:
        if deadline is not None and time.monotonic() > deadline:
            yield "error", "", f"the scan's time budget was spent at byte {position} of {size}; the rest was not checked"
            break
        raw.seek(position)
        chunk = raw.read(chunk_bytes)
        if not chunk:
            break
        window = carry + chunk
        window_start = position - len(carry)
        for match in _H5_LAMBDA.finditer(window):
            names[match.group(1).decode()] = None
        for match in _JSON_OBJECT_START.finditer(window):
            start = window_start + match.start()
            if start < resume:
                continue
            candidates += 1
            if candidates > MAX_HDF5_JSON_CANDIDATES:
                yield "error", "", f"more than {MAX_HDF5_JSON_CANDIDATES} JSON candidates; not fully checked"
                return
            parsed = _json_at(raw, start, decoder)
            if parsed is not None:
                value, length = parsed
                resume = start + length
                yield from keras_config_findings(value)
        position += len(chunk)
        carry = window[-256:]
    for name in names:
        yield "dangerous", f"keras.{name}", f"a Keras {name} layer in the HDF5 model config holds code that loading runs"


def hdf5_lambda_names(raw: IO[bytes], chunk_bytes: int = 8 << 20, deadline: float | None = None) -> Iterator[tuple[str, str, str]]:
    """The byte search of `hdf5_keras_findings` alone, for a stream too large to hold (no JSON parse)."""
    names: dict[str, None] = {}
    carry = b""
    while chunk := raw.read(chunk_bytes):
        if deadline is not None and time.monotonic() > deadline:
            yield "error", "", "the scan's time budget was spent; the rest was not checked"
            break
        window = carry + chunk
        names.update(dict.fromkeys(match.group(1).decode() for match in _H5_LAMBDA.finditer(window)))
        carry = window[-256:]
    for name in names:
        yield "dangerous", f"keras.{name}", f"a Keras {name} layer in the HDF5 model config holds code that loading runs"


def _json_at(raw: IO[bytes], start: int, decoder: json.JSONDecoder) -> tuple[Any, int] | None:
    """The JSON object starting at byte `start` and its length in bytes, or None; reads a growing window."""
    window = 4096
    while window <= MAX_HDF5_JSON_BYTES:
        raw.seek(start)
        data = raw.read(window)
        text = data.decode("utf-8", "surrogateescape")
        try:
            value, end = decoder.raw_decode(text)
        except json.JSONDecodeError as exc:
            if exc.pos < len(text) - 64 or len(data) < window:
                return None  # garbage, or the file ends: not a JSON object
            window *= 4
            continue
        except RecursionError:
            return None
        if not isinstance(value, dict):
            return None
        return value, len(text[:end].encode("utf-8", "surrogateescape"))
    return None

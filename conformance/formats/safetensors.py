"""The safetensors format: a header read with two bounded plain reads, accepting exactly what the library accepts.

Why not `safetensors.safe_open` here: it memory-maps the whole file, and the first touch of the header page
makes the kernel read ahead around it (read_ahead_kb, MiBs of tensor data per shard) — 240 MiB for a
30-shard 70B checkpoint on the benchmark machine. Plain reads with POSIX_FADV_RANDOM read only the header's
pages and need no numpy.

The rules are those of the library's Rust reader (`safetensors/src/tensor.rs`: `SafeTensors::read_metadata`,
`HashMetadata`, `TensorInfo`, `Metadata::validate`) as serde and serde_json apply them:

- 8-byte little-endian header length n <= 100,000,000, and 8 + n <= the file's size;
- the header is strict UTF-8 and one JSON value with only JSON whitespace around it, nested at most 127 deep
  (serde_json's recursion limit of 128); no NaN/Infinity, no number out of f64 range, no lone surrogate;
- a top-level object; `__metadata__` at most once, null or an object of strings; every other key a tensor,
  a later duplicate replacing an earlier one (each must still be a well-formed entry);
- a tensor entry is an object with dtype, shape and data_offsets exactly once each (other fields ignored) or
  an array of exactly those three; dtype a known name (or serde's enum form `{"F32": null}`); shape a list
  and data_offsets a list of two of integers in 0..2**64-1 written without sign, fraction or exponent;
- sorted by offsets, each tensor starts where the previous ended, with numel * bits checked against 2**64
  at every step (`try_fold(checked_mul)`), a whole number of bytes equal to end - start;
- tensor data ends exactly at the end of the file.

`tests/test_header_fuzz.py` compares this reader with the library on generated and mutated files.

`SafetensorsFormat` claims `*.safetensors` at the folder's top level, reads the shards that
`model.safetensors.index.json` names (or every file without an index), gives the index's `weight_map` for
the weights probe to compare with the headers (`index_map`), and streams tensors for the finiteness probe
through the library's `safe_open` on the descriptor the caller checked.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..candidate import Candidate
from .base import WeightFormat, descriptor_path
from .dtypes import SAFETENSORS_DTYPES, element_bits
from .tensors import TensorInfo

MAX_HEADER_BYTES = 100_000_000  # the library's MAX_HEADER_SIZE
MAX_JSON_DEPTH = 127  # serde_json fails when the 128th nested array or object opens
_USIZE_MAX = 2**64 - 1  # usize on the 64-bit platforms the library ships for
_FIELDS = ("dtype", "shape", "data_offsets")


class _Pairs(list[Any]):
    """A JSON object as its (key, value) pairs in order, so duplicate keys stay visible."""


class _NotUsize:
    """A JSON number serde reads as i64 or f64 (sign, fraction, exponent, or over 2**64 - 1): never a usize."""


_NOT_USIZE = _NotUsize()


def _parse_int(text: str) -> Any:
    if text.startswith("-"):
        return _NOT_USIZE  # i64 (or f64 for "-0" and below -2**63): not a usize
    value = int(text)
    if value <= _USIZE_MAX:
        return value
    if not math.isfinite(float(text)):
        raise ValueError("number out of range")
    return _NOT_USIZE  # serde_json reads it as an f64


def _parse_float(text: str) -> Any:
    if not math.isfinite(float(text)):
        raise ValueError("number out of range")
    return _NOT_USIZE


def _parse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # the only way a string in valid UTF-8 can hold a surrogate


def _check_strings(value: Any) -> None:
    """No string (key or value) holds a lone surrogate, which serde_json refuses; walked without recursion."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("header holds a lone surrogate in a string") from None
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _check_depth(value: Any) -> None:
    """At most MAX_JSON_DEPTH nested arrays and objects, the top one counting 1; level by level, containers only."""
    level, depth = [value], 1
    while level:
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"header nests deeper than {MAX_JSON_DEPTH} levels")
        below: list[Any] = []
        for item in level:
            if type(item) is _Pairs:
                below += [child for _, child in item if isinstance(child, list)]
            else:
                below += [child for child in item if isinstance(child, list)]
        level, depth = below, depth + 1


def _parse_json(raw: bytes) -> _Pairs:
    collecting = gc.isenabled()
    gc.disable()  # millions of small containers would run the cyclic collector over and over
    try:
        text = raw.decode("utf-8")  # strict, as Rust's str::from_utf8; no BOM or UTF-16 sniffing
        header = json.loads(
            text, object_pairs_hook=_Pairs, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
        )
    except RecursionError:
        raise ValueError(f"header nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"header is not JSON: {exc}") from None
    finally:
        if collecting:
            gc.enable()
    if isinstance(header, list):  # a _Pairs (object) or an array
        _check_depth(header)
    if _SURROGATE_ESCAPE.search(raw):
        _check_strings(header)
    if not isinstance(header, _Pairs):
        raise ValueError("header is not a JSON object")
    return header


def _usize(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _USIZE_MAX


def _dtype(name: str, value: Any) -> str:
    if isinstance(value, _Pairs):  # serde's externally tagged enum form: {"F32": null}
        if len(value) != 1 or value[0][1] is not None:
            raise ValueError(f"{name}: dtype must be a name")
        value = value[0][0]
    if not isinstance(value, str) or value not in SAFETENSORS_DTYPES:
        raise ValueError(f"{name}: unknown dtype {value!r}")
    return value


def _entry(name: str, entry: Any) -> tuple[str, tuple[int, ...], tuple[int, int]]:
    if isinstance(entry, _Pairs):
        fields: dict[str, Any] = {}
        for key, value in entry:
            if key in _FIELDS:
                if key in fields:
                    raise ValueError(f"{name}: duplicate field {key}")
                fields[key] = value
        missing = [key for key in _FIELDS if key not in fields]
        if missing:
            raise ValueError(f"{name}: missing field {missing[0]}")
        dtype, shape, offsets = (fields[key] for key in _FIELDS)
    elif isinstance(entry, list) and len(entry) == 3:
        dtype, shape, offsets = entry
    else:
        raise ValueError(f"{name}: a tensor entry is an object with dtype, shape and data_offsets")
    dtype = _dtype(name, dtype)
    if not (type(shape) is list and all(_usize(d) for d in shape)):
        raise ValueError(f"{name}: shape must be a list of integers in 0..2**64-1")
    if not (type(offsets) is list and len(offsets) == 2 and all(_usize(o) for o in offsets)):
        raise ValueError(f"{name}: data_offsets must be two integers in 0..2**64-1")
    return dtype, tuple(shape), (offsets[0], offsets[1])


def _tensor_bytes(name: str, dtype: str, shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:  # checked at every step, as try_fold(1, usize::checked_mul)
        count *= dim
        if count > _USIZE_MAX:
            raise ValueError(f"{name}: element count of shape {list(shape)} overflows 64 bits")
    bits = count * element_bits(dtype)
    if bits > _USIZE_MAX:
        raise ValueError(f"{name}: bit count of shape {list(shape)} overflows 64 bits")
    if bits % 8:
        raise ValueError(f"{name}: {dtype} data of shape {list(shape)} is not a whole number of bytes")
    return bits // 8


def parse_header(raw: bytes, file_size: int, relative: str) -> list[TensorInfo]:
    """Tensors of a safetensors header `raw` (the n bytes after the length) in a file of `file_size` bytes.

    Raises ValueError naming the first rule broken; the tensors come sorted by name (safe_open's keys()).
    """
    header = _parse_json(raw)
    seen_metadata = False
    entries: dict[str, tuple[str, tuple[int, ...], tuple[int, int]]] = {}
    for key, value in header:
        if key == "__metadata__":
            if seen_metadata:
                raise ValueError("duplicate field __metadata__")
            seen_metadata = True
            if value is not None and not (isinstance(value, _Pairs) and all(isinstance(v, str) for _, v in value)):
                raise ValueError("__metadata__ must map strings to strings")
            continue
        entries[key] = _entry(key, value)  # a later duplicate replaces the earlier one, as a HashMap insert
    end_of_previous = 0
    tensors = []
    for name, (dtype, shape, (begin, end)) in sorted(entries.items(), key=lambda item: item[1][2]):
        if begin != end_of_previous or end < begin:
            raise ValueError(f"{name}: data_offsets {[begin, end]} overlap or leave a gap")
        if end - begin != _tensor_bytes(name, dtype, shape):
            raise ValueError(f"{name}: {end - begin} data bytes for shape {list(shape)} of {dtype}")
        end_of_previous = end
        tensors.append(TensorInfo(name, dtype, shape, relative))
    if 8 + len(raw) + end_of_previous != file_size:
        raise ValueError(f"tensor data ends at {8 + len(raw) + end_of_previous}, the file has {file_size} bytes")
    return sorted(tensors, key=lambda t: t.name)


def read_safetensors_header(handle: IO[bytes], relative: str) -> list[TensorInfo]:
    """Tensors of the safetensors file open as `handle` (binary, unbuffered or buffered); reads only the header.

    Two bounded reads: 8 bytes, then at most 100,000,000. Raises ValueError (bad header) or OSError.
    """
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_RANDOM)  # no readahead into tensor data
    size = os.fstat(handle.fileno()).st_size
    prefix = handle.read(8)
    if len(prefix) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES or 8 + length > size:
        raise ValueError(f"header length {length} is over the limit or past the end of the file ({size} bytes)")
    raw = handle.read(length)
    if len(raw) != length:
        raise ValueError("file shorter than its header length")
    return parse_header(raw, size, relative)


INDEX_NAME = "model.safetensors.index.json"
MAX_INDEX_BYTES = 64 * 1024 * 1024  # an index of a 400B-parameter checkpoint is ~2 MB


class SafetensorsFormat(WeightFormat):
    """`*.safetensors` files: headers read here, tensors streamed by the library (see the module doc)."""

    name = "safetensors"
    suffixes = (".safetensors",)
    load_names = ("model.safetensors", INDEX_NAME)
    reads_tensors = True
    streams_tensors = True

    def header_files(self, candidate: Candidate, claimed: list[str], present: set[str], errors: list[str]) -> tuple[str | None, list[str]]:
        """The index's shards that are present (each named shard checked to stay inside), else every claimed file."""
        if INDEX_NAME not in candidate.file_names():
            return None, sorted(claimed)
        try:
            return INDEX_NAME, _index_shards(candidate, present, errors)
        except Exception as exc:  # noqa: BLE001 - any failure of the index's bytes is the index's error
            errors.append(f"{INDEX_NAME}: {exc}")
            return INDEX_NAME, sorted(claimed)

    def index_map(self, candidate: Candidate, index: str) -> dict[str, str]:
        """The index's `weight_map` (tensor name -> shard file), string values only; ValueError when unreadable.

        `probes.weights.read_weights` compares it with the headers read: a tensor the index places in a shard
        that does not hold it, or a shard holding a tensor the index does not list, is an error of the
        tensor facts (a value that is not a file name was already reported by `header_files`).
        """
        return {name: shard for name, shard in _weight_map(candidate, index).items() if isinstance(shard, str)}

    def read_tensors(self, candidate: Candidate, relative: str) -> list[TensorInfo]:
        """The header's tensors, sorted by name; ValueError (bad header) or OSError (see `read_safetensors_header`)."""
        with candidate.open_regular(relative) as handle:
            return read_safetensors_header(handle, relative)

    def tensor_slices(self, handle: IO[bytes], resolved: Path, slice_bytes: int) -> Iterator[tuple[str, Iterator[Any]]]:
        """Every tensor through `safe_open` (torch tensors), in row slices of about `slice_bytes` at 4 bytes an element."""
        from safetensors import safe_open

        with safe_open(descriptor_path(handle, resolved), framework="pt") as reader:
            for name in reader.keys():
                yield name, _row_slices(reader, name, slice_bytes)


def _weight_map(candidate: Candidate, index_name: str) -> dict[str, Any]:
    """The index file's `weight_map` object as parsed (64 MiB, depth 64); ValueError when it is not an object."""
    index = candidate.read_json(index_name, max_bytes=MAX_INDEX_BYTES)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ValueError("weight_map is not an object")
    return weight_map


def _index_shards(candidate: Candidate, present: set[str], errors: list[str]) -> list[str]:
    weight_map = _weight_map(candidate, INDEX_NAME)
    shards = sorted({value for value in weight_map.values() if isinstance(value, str)})
    if len(shards) != len(set(map(str, weight_map.values()))):
        errors.append(f"{INDEX_NAME}: weight_map values must be file names")
    for shard in shards:
        candidate.resolve_inside(shard)
        if shard not in present:
            errors.append(f"{INDEX_NAME} names missing shard {shard}")
    return [s for s in shards if s in present]


def _row_slices(reader: Any, name: str, slice_bytes: int) -> Iterator[Any]:
    """Slices of whole rows (first dimension) of one tensor; a scalar as one piece."""
    view = reader.get_slice(name)
    shape = view.get_shape()
    if not shape:
        yield reader.get_tensor(name)
        return
    row_elements = 1
    for dim in shape[1:]:
        row_elements *= dim
    step = max(1, slice_bytes // (max(1, row_elements) * 4))
    for start in range(0, shape[0], step):
        yield view[start : start + step]

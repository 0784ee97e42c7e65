"""Static pickle analysis for the scan probe: an opcode walk, the allowlist, and the picklescan second opinion.

Nothing here unpickles: `pickletools.genops` only decodes opcodes and their arguments, and a small
symbolic stack machine follows them far enough to name every global a load would import and every
call it would make. No torch, no numpy: the scan must be safe to run on anything.
"""

from __future__ import annotations

import io
import logging
import pickletools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from picklescan import scanner as picklescan_scanner

_log = logging.getLogger(__name__)

# The legacy (pre-1.6, non-zip) torch.save format opens with a pickle holding this number.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# ...then protocol version, sys_info, the object, and the storage keys; raw storage bytes follow,
# which torch reads as bytes, never as pickles.
TORCH_LEGACY_PICKLES = 5


def _names(module: str, *names: str) -> set[tuple[str, str]]:
    return {(module, name) for name in names}


# A global is allowed only if a weights file genuinely needs it and importing/calling it cannot run
# code or touch the system: containers, tensor/storage rebuilders, dtypes, devices, shapes. This is a
# subset of torch's own weights_only allowlist (torch/_weights_only_unpickler.py) plus the numpy
# array reconstructors, kept tight on purpose: an untrusted model may only use these.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    # state_dict() returns an OrderedDict.
    _names("collections", "OrderedDict")
    # How torch.save writes tensors and nn.Parameters (v3 for dtypes without a typed storage class).
    | _names("torch._utils", "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter")
    # Storage types name the element type of a persistent-id storage record; they are never called on data.
    | _names(
        "torch",
        *(
            f"{kind}Storage"
            for kind in "Float Double Half BFloat16 Long Int Short Char Byte Bool ComplexFloat ComplexDouble"
            " QInt8 QUInt8 QInt32 QUInt4x2 QUInt2x4".split()
        ),
    )
    | _names("torch.storage", "UntypedStorage")
    | _names("torch", "UntypedStorage")
    # Plain values that appear in checkpoints and configs saved with torch.
    | _names("torch", "device", "Size")
    # dtype constants pickle as module attributes (torch.float16 -> GLOBAL 'torch float16'): pure data.
    | _names(
        "torch",
        *"float16 float32 float64 bfloat16 complex32 complex64 complex128 bool"
        " uint8 uint16 uint32 uint64 int8 int16 int32 int64"
        " float8_e4m3fn float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz float8_e8m0fnu float4_e2m1fn_x2"
        " qint8 quint8 qint32 quint4x2 quint2x4".split(),
    )
    # numpy arrays and scalars inside pickles (object .npy files, numpy values in checkpoints);
    # numpy 2 moved numpy.core to numpy._core, and files from both exist.
    | _names("numpy.core.multiarray", "_reconstruct", "scalar")
    | _names("numpy._core.multiarray", "_reconstruct", "scalar")
    | _names("numpy", "dtype", "ndarray")
    # Protocol 0-2 pickles spell bytes as _codecs.encode(str, 'latin1'); a pure conversion.
    | _names("_codecs", "encode")
    # Builtin value types with no side effects; protocols 0-2 spell builtins as __builtin__.
    | _names("builtins", "set", "frozenset", "slice", "complex")
    | _names("__builtin__", "set", "frozenset", "slice", "complex")
)


def format_global(module_and_name: tuple[str, str]) -> str:
    module, name = module_and_name
    return f"{module}.{name}" if name else module  # nameless: a placeholder such as "<copyreg extension 7>"


# ---------------------------------------------------------------------------------------------
# Bounded reading
# ---------------------------------------------------------------------------------------------


class LimitExceeded(Exception):
    """A stream needed more bytes than the scan is willing to read."""


class BoundedReader:
    """A forward-only reader that refuses to read past `cap` bytes.

    pickletools believes the length fields in the stream, so a ten-byte hostile pickle can ask
    for an 8 EiB read. Every read here is clamped to the cap and done in chunks, so memory follows
    the bytes that actually exist. `seek(-1, 1)` is the one seek supported: picklescan peeks one
    byte after each pickle and steps back.
    """

    _CHUNK_BYTES = 1 << 24

    def __init__(self, raw: IO[bytes], cap_bytes: int) -> None:
        self._raw = raw
        self._cap = cap_bytes
        self._pos = 0
        self._pushback = b""
        self._last_byte = b""

    def tell(self) -> int:
        return self._pos

    def _allowance(self, n: int | None) -> int:
        # One byte past the cap is requested so that reaching the cap is noticed, not mistaken for EOF.
        room = self._cap - self._pos + 1
        return room if n is None or n < 0 else min(n, room)

    def _account(self, data: bytes) -> bytes:
        self._pos += len(data)
        self._last_byte = data[-1:]
        if self._pos > self._cap:
            raise LimitExceeded(f"stream is larger than the scan limit of {self._cap} bytes")
        return data

    def read(self, n: int | None = -1) -> bytes:
        want = self._allowance(n)
        parts = []
        if self._pushback and want > 0:
            parts.append(self._pushback[:want])
            self._pushback = self._pushback[want:]
            want -= len(parts[0])
        while want > 0:
            chunk = self._raw.read(min(want, self._CHUNK_BYTES))
            if not chunk:
                break
            parts.append(chunk)
            want -= len(chunk)
        return self._account(b"".join(parts))

    def readline(self, limit: int | None = -1) -> bytes:
        want = self._allowance(limit)
        head = b""
        if self._pushback:
            newline = self._pushback.find(b"\n", 0, want)
            cut = want if newline < 0 else newline + 1
            head, self._pushback = self._pushback[:cut], self._pushback[cut:]
            if head.endswith(b"\n") or len(head) >= want:
                return self._account(head)
        return self._account(head + self._raw.readline(want - len(head)))

    def peek(self, n: int) -> bytes:
        data = self.read(n)
        self.unread(data)
        return data

    def unread(self, data: bytes) -> None:
        self._pushback = data + self._pushback
        self._pos -= len(data)

    def at_eof(self) -> bool:
        return self.peek(1) == b""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR and offset == 0:
            return self._pos
        if whence == io.SEEK_CUR and offset == -1:
            # After a read that hit EOF, picklescan's step back must not resurrect the previous byte.
            if self._last_byte:
                self.unread(self._last_byte)
                self._last_byte = b""
            return self._pos
        raise io.UnsupportedOperation("BoundedReader only steps back one byte")

    def seekable(self) -> bool:
        return False


# ---------------------------------------------------------------------------------------------
# The opcode walk
# ---------------------------------------------------------------------------------------------

_OPAQUE = object()  # any value the walk does not need to know


@dataclass(frozen=True)
class _Global:
    """A global (class or function) on the symbolic stack, so a later call can be attributed to it."""

    name: tuple[str, str]


class _Malformed(Exception):
    """The opcodes are well-formed bytes but no unpickler would accept them (stack underflow, bad memo)."""


_STRING_OPS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"})
_MEMO_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_INT_OPS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
_IGNORED_FOR_MAGIC = frozenset({"PROTO", "FRAME", "STOP"})


@dataclass
class DynamicCall:
    """A REDUCE/NEWOBJ/OBJ whose callable is not a global: nothing on the allowlist produces one."""

    opcode: str
    position: int | None


@dataclass
class PickleWalk:
    """What one stream of consecutive pickles would import and call."""

    pickles: int = 0
    globals: list[tuple[str, str]] = field(default_factory=list)
    dynamic_calls: list[DynamicCall] = field(default_factory=list)
    error: str | None = None
    limit_hit: bool = False  # stopped by a scan bound, not by bad bytes
    torch_legacy: bool = False
    opcodes: int = 0


class _PickleMachine:
    """Follows one pickle's stack effects symbolically, using pickletools' own opcode metadata.

    Tracking the stack and memo (not just the previous two opcodes) is what resolves STACK_GLOBAL
    operands that were memoized, copied or fetched back, and what ties each REDUCE to its callable.
    MARKs are kept as stack positions, as pickle's own metastack does, so every pop is O(items).
    """

    def __init__(self, walk: PickleWalk) -> None:
        self._walk = walk
        self._stack: list[Any] = []
        self._marks: list[int] = []
        self._memo: dict[Any, Any] = {}
        self.value_ops = 0
        self.first_value: Any = None

    def step(self, op: pickletools.OpcodeInfo, arg: Any, pos: int | None) -> None:
        name = op.name
        if name not in _IGNORED_FOR_MAGIC:
            self.value_ops += 1
            if self.value_ops == 1 and name in _INT_OPS:
                self.first_value = arg
        if name == "MEMOIZE" or name in _MEMO_PUT_OPS:
            if len(self._stack) <= self._frame_start():
                raise _Malformed(f"{name} with nothing to store")
            self._memo[len(self._memo) if name == "MEMOIZE" else arg] = self._stack[-1]
            return
        if name in _MEMO_GET_OPS:
            if arg not in self._memo:
                raise _Malformed(f"{name} reads memo key {arg!r} that was never written")
            self._stack.append(self._memo[arg])
            return
        if name == "MARK":
            self._marks.append(len(self._stack))
            return

        popped = self._pop(op)
        pushed: list[Any] = [_OPAQUE] * len(op.stack_after)
        if name in _STRING_OPS:
            pushed = [arg if isinstance(arg, str) else _OPAQUE]
        elif name == "DUP":
            pushed = [popped[0], popped[0]]
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            recorded = self._record((module, attr))
            pushed = [recorded] if name == "GLOBAL" else [_OPAQUE]  # INST imports and calls in one step
        elif name == "STACK_GLOBAL":
            module, attr = popped
            if isinstance(module, str) and isinstance(attr, str):
                pushed = [self._record((module, attr))]
            else:
                pushed = [self._record(("<STACK_GLOBAL with operands computed at load time>", ""))]
        elif name in ("EXT1", "EXT2", "EXT4"):
            # The copyreg extension registry maps a number to any global the loading process registered.
            pushed = [self._record((f"<copyreg extension {arg}>", ""))]
        elif name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ"):
            if not popped:
                raise _Malformed(f"{name} with no callable")
            if not isinstance(popped[0], _Global):
                self._walk.dynamic_calls.append(DynamicCall(name, pos))
        self._stack.extend(pushed)

    def _record(self, global_name: tuple[str, str]) -> _Global:
        self._walk.globals.append(global_name)
        return _Global(global_name)

    def _frame_start(self) -> int:
        return self._marks[-1] if self._marks else 0

    def _pop(self, op: pickletools.OpcodeInfo) -> list[Any]:
        before = op.stack_before
        if pickletools.markobject in before:
            if not self._marks:
                raise _Malformed(f"{op.name} without a MARK")
            mark = self._marks.pop()
            items = self._stack[mark:]
            del self._stack[mark:]
            return self._pop_n(before.index(pickletools.markobject), op.name) + items
        if op.name == "POP" and self._marks and len(self._stack) == self._marks[-1]:
            self._marks.pop()  # POP on an empty frame discards the MARK itself, as pickle does
            return []
        return self._pop_n(len(before), op.name)

    def _pop_n(self, count: int, opname: str) -> list[Any]:
        if count == 0:
            return []
        if len(self._stack) - count < self._frame_start():
            raise _Malformed(f"{opname} pops more items than the stack holds")
        items = self._stack[-count:]
        del self._stack[-count:]
        return items


def walk_pickles(reader: BoundedReader, *, max_pickles: int, max_opcodes: int, single: bool = False) -> PickleWalk:
    """Walk consecutive pickles until EOF, an error, or `max_pickles`.

    One file may hold several pickles back to back (legacy torch.save writes five, then raw storage
    bytes): genops stops at each STOP, so we loop. A legacy torch file is recognized by its magic
    number and walked for exactly its five pickles. `single` is for formats whose loader reads one
    pickle and ignores what follows (numpy's object arrays). `max_opcodes` bounds the time (a zip
    member of a few MB can inflate to a billion one-byte opcodes) and picklescan's memory (it lists
    every opcode of a pickle before looking at them).
    """
    walk = PickleWalk()
    limit = 1 if single else max_pickles
    while walk.pickles < limit and not reader.at_eof():
        machine = _PickleMachine(walk)
        try:
            for op, arg, pos in pickletools.genops(reader):
                walk.opcodes += 1
                if walk.opcodes > max_opcodes:
                    raise LimitExceeded("the file's opcode budget is spent; the rest was not scanned")
                machine.step(op, arg, pos)
        except LimitExceeded as exc:
            walk.error = str(exc)
            walk.limit_hit = True
            break
        except Exception as exc:  # genops raises ValueError and friends on garbage; all mean "not loadable"
            walk.error = f"pickle #{walk.pickles + 1} does not parse at byte {reader.tell()}: {exc}"
            break
        walk.pickles += 1
        if not single and walk.pickles == 1 and machine.value_ops == 1 and machine.first_value == TORCH_LEGACY_MAGIC:
            walk.torch_legacy = True
            limit = TORCH_LEGACY_PICKLES  # the raw storage bytes after these are never unpickled
    else:
        if walk.torch_legacy and walk.pickles < TORCH_LEGACY_PICKLES:
            walk.error = f"legacy torch checkpoint ends after {walk.pickles} of its {TORCH_LEGACY_PICKLES} pickles"
        elif not single and not walk.torch_legacy and walk.pickles >= limit and not reader.at_eof():
            walk.error = f"more than {max_pickles} consecutive pickles; the rest was not scanned"
    return walk


# ---------------------------------------------------------------------------------------------
# picklescan: the maintained denylist and an independent parse
# ---------------------------------------------------------------------------------------------


def picklescan_dangerous_globals(reader: BoundedReader, stream_id: str, pickles: int) -> tuple[set[tuple[str, str]], str | None]:
    """Run picklescan's own parser over the same pickles; return what it calls dangerous.

    It is a second opinion: anything it flags fails even if our walk named it differently.
    Returns (dangerous globals, error message if picklescan itself failed).
    """
    dangerous: set[tuple[str, str]] = set()
    try:
        for _ in range(pickles):
            result = picklescan_scanner.scan_pickle_bytes(reader, stream_id, multiple_pickles=False)
            dangerous.update((g.module, g.name) for g in result.globals if g.safety == picklescan_scanner.SafetyLevel.Dangerous)
    except Exception as exc:  # a crash in the second opinion must not pass silently
        return dangerous, f"picklescan could not scan {stream_id}: {exc}"
    return dangerous, None


# Code-execution and file-access names that picklescan's denylist (1.0.5) lacks. They fail the scan
# as "unknown" anyway; listing them here only labels them "dangerous", which is what they are.
# (`open` pickles as io.open on Python 3, so a denylist that lists only builtins.open misses it.)
EXTRA_DANGEROUS_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    _names("io", "open", "open_code", "FileIO")
    | _names("_io", "open", "open_code")
    | _names("builtins", "__import__", "setattr", "delattr", "globals", "locals", "vars", "input")
    | _names("__builtin__", "__import__", "setattr", "delattr", "globals", "locals", "vars", "input")
    | _names("importlib", "import_module")
)


def classify_with_picklescan(global_names: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of our walk's globals are known dangerous (the rest of the unlisted are 'unknown')."""
    names = set(global_names)
    if not names:
        return set()
    extra = names & EXTRA_DANGEROUS_GLOBALS
    try:
        # Private, but it is the one place picklescan applies its denylist (with parent-module wildcards);
        # if it ever moves, the globals are still reported, only as "unknown" instead of "dangerous".
        result = picklescan_scanner._build_scan_result_from_raw_globals(names, "conformance-scan")
    except Exception:  # pragma: no cover - depends on picklescan internals
        _log.debug("picklescan classification unavailable", exc_info=True)
        return extra
    return extra | {(g.module, g.name) for g in result.globals if g.safety == picklescan_scanner.SafetyLevel.Dangerous}


def global_severity(global_names: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Each (module, name) -> "safe" (on the weights-only allowlist), "dangerous" (code execution
    reachable: a denylisted name) or "unknown" (neither). The scan fails on dangerous, and on unknown
    unless the rule allows it.
    """
    names = set(global_names)
    unlisted = {g for g in names if g not in ALLOWED_GLOBALS}
    dangerous = classify_with_picklescan(unlisted)
    return {g: "safe" if g not in unlisted else "dangerous" if g in dangerous else "unknown" for g in names}

"""Static pickle analysis for the scan probe: an opcode walk, the safety tiers, and the picklescan second opinion.

Nothing here unpickles. A decoder of our own reads the opcodes and their arguments (it is checked against
`pickletools.genops` by a fuzz test), and a small symbolic stack machine follows them far enough to name every
global a load would import and every call it would make. No torch, no numpy: the scan must be safe to run on
anything. The safe tier comes from torch's weights_only allowlist, frozen into `weights_only_allowlist.py` by
`scripts/generate_weights_only_allowlist.py`.

Two unpicklers can read one stream differently. CPython's pure-Python unpickler (`pickle._Unframer`) refuses an
opcode that runs past the end of its FRAME; the C unpickler reading a file (not bytes) instead drops the rest
of the frame and serves the read from the bytes after it, so a stream whose frames do not line up with its
opcodes can hide a call from every linear reader (pickletools, picklescan, this walk). The walk checks every
opcode against its frame, reports any mismatch as a parser differential, and then replays the stream the way
the C unpickler reads a file so that the hidden globals are named too.
"""

from __future__ import annotations

import _compat_pickle
import io
import logging
import pickletools
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

from .weights_only_allowlist import IMPORT_MAPPING as _TORCH_IMPORT_MAPPING
from .weights_only_allowlist import NAME_MAPPING as _TORCH_NAME_MAPPING
from .weights_only_allowlist import TORCH_VERSION as WEIGHTS_ONLY_TORCH_VERSION
from .weights_only_allowlist import WEIGHTS_ONLY_GLOBALS

_log = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_GLOBALS",
    "BoundedReader",
    "DynamicCall",
    "LimitExceeded",
    "PickleWalk",
    "TORCH_LEGACY_MAGIC",
    "WEIGHTS_ONLY_TORCH_VERSION",
    "classify_with_picklescan",
    "format_global",
    "global_severity",
    "is_importable_global",
    "is_torchscript_type",
    "loader_would_act",
    "picklescan_dangerous_globals",
    "walk_pickles",
]

# The legacy (pre-1.6, non-zip) torch.save format opens with a pickle holding this number.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# ...then protocol version, sys_info, the object, and the storage keys; raw storage bytes follow,
# which torch reads as bytes, never as pickles.
TORCH_LEGACY_PICKLES = 5

# Bounds of one walk besides the caller's opcode and time budgets.
MAX_KEPT_STRING_CHARS = 4096  # longer strings are never module or attribute names; kept as opaque values
MAX_DECODED_PAYLOAD_BYTES = 1 << 20  # text payloads up to this size are decoded (validated) as genops does
MAX_LINE_BYTES = 64 << 20  # one protocol-0 argument line
MAX_SHORT_LINE_BYTES = 64 << 10  # one protocol-0 number or GLOBAL/INST name line
_SHORT_LINE_ARGS = frozenset({"decimalnl_short", "decimalnl_long", "floatnl", "stringnl_noescape", "stringnl_noescape_pair"})
MAX_MEMO_ENTRIES = 1_000_000  # memo slots remembered; later ones read back as opaque values
MAX_REPLAY_BYTES = 64 << 20  # bytes kept to replay a stream the C unpickler's way after a frame mismatch
_CHUNK_BYTES = 1 << 20
_CLOCK_EVERY_OPCODES = 4096  # how often the deadline is checked


def _names(module: str, *names: str) -> set[tuple[str, str]]:
    return {(module, name) for name in names}


# Harmless globals that torch's weights_only loader refuses but that benign files carry: numpy's array and
# scalar reconstructors (numpy object arrays, arrays pickled by plain pickle at protocol 5 through
# `_frombuffer`, which only wraps a bytes buffer) and pure builtins. torch 2.13 refuses `numpy.*`,
# `builtins.len` and `builtins.dict` (checked by tests/test_scan_pickle.py); none of them can run code.
EXTRA_SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    _names("numpy.core.multiarray", "_reconstruct", "scalar")
    | _names("numpy._core.multiarray", "_reconstruct", "scalar")
    | _names("numpy.core.numeric", "_frombuffer")
    | _names("numpy._core.numeric", "_frombuffer")
    | _names("numpy", "dtype", "ndarray")
    | _names("builtins", "len", "dict", "list", "tuple", "frozenset", "slice", "range")
)

# Every global a weights file may use: what torch's weights_only loader accepts, plus the harmless extras,
# also in the py2 spelling that protocol 0-2 pickles use and torch renames (__builtin__.set is builtins.set).
_PY2_MODULES = {py3: py2 for py2, py3 in _TORCH_IMPORT_MAPPING.items()}
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    pair
    for module, name in WEIGHTS_ONLY_GLOBALS | EXTRA_SAFE_GLOBALS
    for pair in ((module, name), (_PY2_MODULES.get(module, module), name))
)
# torch matches the joined "module.name" (after its py2 renames), so any split of an allowed path is allowed.
_ALLOWED_PATHS = frozenset(f"{module}.{name}" for module, name in ALLOWED_GLOBALS)


def format_global(module_and_name: tuple[str, str]) -> str:
    """'module.name' for display; a nameless placeholder such as '<copyreg extension 7>' stays as it is."""
    module, name = module_and_name
    return f"{module}.{name}" if name else module


def is_torchscript_type(module_and_name: tuple[str, str]) -> bool:
    """True for `__torch__.*` names: TorchScript class types that torch.jit.load resolves, not Python imports."""
    module = module_and_name[0]
    return module == "__torch__" or module.startswith("__torch__.")


def _dotted_identifier(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def is_importable_global(module_and_name: tuple[str, str]) -> bool:
    """Whether a loader could perform this import: module and name are dotted Python identifiers.

    `find_class` imports the module and walks the name's dotted attributes; text that happens to parse as
    a GLOBAL opcode ("#version: 0.2" is not one, but "c" followed by two lines is) names things like
    ("at dog", "x y"), which no interpreter can import. Placeholders for computed globals count as importable.
    """
    module, name = module_and_name
    if not name:
        return module.startswith("<")  # "<STACK_GLOBAL ...>", "<copyreg extension N>": real lookups
    return _dotted_identifier(module) and _dotted_identifier(name)


# ---------------------------------------------------------------------------------------------
# Bounded reading
# ---------------------------------------------------------------------------------------------


class LimitExceeded(Exception):
    """A stream needed more bytes, opcodes, memo slots or seconds than the scan is willing to spend."""


class BoundedReader:
    """A forward-only reader that refuses to read past `cap` bytes.

    pickletools believes the length fields in the stream, so a ten-byte hostile pickle can ask
    for an 8 EiB read. Every read here is clamped to the cap and done in chunks, so memory follows
    the bytes that actually exist. `seek(-1, 1)` is the one seek supported: picklescan peeks one
    byte after each pickle and steps back.
    """

    _CHUNK_BYTES = 1 << 24

    def __init__(self, raw: IO[bytes], cap_bytes: int) -> None:
        """Read from `raw` (from its current position) at most `cap_bytes` bytes in all."""
        self._raw = raw
        self._cap = cap_bytes
        self._pos = 0
        self._pushback = b""
        self._last_byte = b""

    def tell(self) -> int:
        """Bytes consumed so far (pushed-back bytes not counted)."""
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
        """Up to `n` bytes (all that is left for None or a negative `n`); fewer only at the end of the stream.

        Raises LimitExceeded once the bytes consumed pass the cap.
        """
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
        """One line, newline included, of at most `limit` bytes; LimitExceeded once the bytes consumed pass the cap."""
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
        """The next `n` bytes (fewer at the end) without consuming them."""
        data = self.read(n)
        self.unread(data)
        return data

    def unread(self, data: bytes) -> None:
        """Push `data` back: the next reads return it first, and `tell` steps back by its length."""
        self._pushback = data + self._pushback
        self._pos -= len(data)

    def at_eof(self) -> bool:
        """True when no byte is left to read."""
        return self.peek(1) == b""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Only `seek(0, SEEK_CUR)` (the position) and `seek(-1, SEEK_CUR)` (step back over the last byte read).

        Returns the position; raises io.UnsupportedOperation for any other seek.
        """
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
        """False: the reader goes forward only (the one step back of `seek` aside)."""
        return False


# ---------------------------------------------------------------------------------------------
# Byte streams for the decoder: linear (what pickletools and pickle.loads see), and the C file reading
# ---------------------------------------------------------------------------------------------


class _Truncated(Exception):
    """The stream ends inside an opcode."""


class _Stream:
    """Linear reading over a BoundedReader with a read-ahead buffer (given back at the end).

    `retained` keeps every byte read, up to `retain_cap`, so the stream can be replayed the C
    unpickler's way if its frames turn out not to line up.
    """

    c_file = False

    def __init__(self, reader: BoundedReader, retain_cap: int) -> None:
        self._reader = reader
        self.buf = b""
        self.i = 0
        self.base = reader.tell()  # absolute offset of buf[0]
        self.start = self.base
        self._retain_cap = retain_cap
        self.retained: bytearray | None = bytearray() if retain_cap > 0 else None

    def pos(self) -> int:
        return self.base + self.i

    def more(self, need: int) -> bool:
        """Make `need` bytes available at `i`; False if the stream ends first."""
        have = len(self.buf) - self.i
        data = self._reader.read(max(need - have, _CHUNK_BYTES))
        if self.retained is not None:
            if len(self.retained) + len(data) > self._retain_cap:
                self.retained = None
            else:
                self.retained += data
        self.base += self.i
        self.buf = self.buf[self.i :] + data
        self.i = 0
        return len(self.buf) >= need

    def take(self, n: int, into: bool = False) -> bytes:
        if self.i + n > len(self.buf) and not self.more(n):
            raise _Truncated(f"needs {n} bytes at byte {self.pos()}, only {len(self.buf) - self.i} remain")
        data = self.buf[self.i : self.i + n]
        self.i += n
        return data

    def skip(self, n: int, into: bool = False) -> None:
        """Consume n bytes without keeping them (a large payload): memory stays at one chunk."""
        while n > 0:
            if self.i >= len(self.buf) and not self.more(1):
                raise _Truncated(f"a payload runs {n} bytes past the end of the stream")
            step = min(n, len(self.buf) - self.i)
            self.i += step
            n -= step

    def readline(self, short: bool = False) -> bytes:
        """One protocol-0 argument line, newline included.

        `short` lines (numbers, module and global names) longer than MAX_SHORT_LINE_BYTES are malformed, as
        the loaders find them (int() refuses over 4,300 digits, no module has such a name): the bytes are
        not a pickle, e.g. a safetensors header length whose low byte reads as PUT over zero tensor data.
        Other lines (quoted strings, unicode, persistent ids) are data a loader reads whole: past
        MAX_LINE_BYTES the scan budget is spent (fail closed).
        """
        parts: list[bytes] = []
        size = 0
        while True:
            newline = self.buf.find(b"\n", self.i)
            if newline >= 0:
                parts.append(self.buf[self.i : newline + 1])
                self.i = newline + 1
                return b"".join(parts)
            parts.append(self.buf[self.i :])
            size += len(self.buf) - self.i
            self.i = len(self.buf)
            if short and size > MAX_SHORT_LINE_BYTES:
                raise _Malformed(f"a number or name line longer than {MAX_SHORT_LINE_BYTES} bytes")
            if size > MAX_LINE_BYTES:
                raise LimitExceeded(f"an argument line is longer than the scan limit of {MAX_LINE_BYTES} bytes")
            if not self.more(1):
                return b"".join(parts)

    def begin_pickle(self) -> None:
        """Called before each pickle's first opcode."""

    def frame(self, length: int) -> None:
        """FRAME: linear readers ignore it (the walk checks it against the opcodes instead)."""

    def at_eof(self) -> bool:
        return self.i >= len(self.buf) and not self.more(1)

    def give_back(self) -> None:
        """Return the read-ahead to the reader so its position is right after the last opcode walked."""
        if self.i < len(self.buf):
            self._reader.unread(self.buf[self.i :])
        self.buf, self.i = b"", 0


class _CFileStream(_Stream):
    """The stream as CPython's C unpickler reads it from a file object without `peek` (Modules/_pickle.c).

    FRAME reads the whole frame into the unpickler's buffer (`load_frame`: `_Unpickler_Read`, then a rewind).
    A later read that the buffer cannot satisfy goes back to the file (`_Unpickler_ReadImpl` ->
    `_Unpickler_ReadFromFile`), whose position is the frame's end: the unread rest of the frame is dropped.
    Byte payloads (`_Unpickler_ReadInto`, Python 3.8+) take the buffered part first, so they read on linearly.
    A FRAME that fits in the current buffer keeps the buffer's end. A frame longer than the data is an error
    before anything in it runs. After STOP, the next pickle starts at the end of the frame that was read.
    """

    c_file = True

    def __init__(self, data: bytes, base: int) -> None:
        self.buf = data
        self.i = 0
        self.base = base
        self.start = base
        self.retained = None
        self.window_end: int | None = None  # absolute end of the buffered frame, while one is buffered

    def more(self, need: int) -> bool:
        return len(self.buf) - self.i >= need

    def _before_read(self, n: int, into: bool) -> None:
        end = self.window_end
        if end is None:
            return
        here = self.pos()
        if here >= end:
            self.window_end = None
        elif here + n > end:
            self.window_end = None
            if not into:
                self.i = end - self.base  # the buffered rest is dropped; the read restarts at the frame's end

    def take(self, n: int, into: bool = False) -> bytes:
        self._before_read(n, into)
        return super().take(n)

    def skip(self, n: int, into: bool = False) -> None:
        self._before_read(n, into)
        super().skip(n)

    def readline(self, short: bool = False) -> bytes:
        end = self.window_end
        if end is not None:
            newline = self.buf.find(b"\n", self.i, end - self.base)
            self.window_end = None if newline < 0 or newline + 1 >= end - self.base else end
            if newline < 0:
                self.i = max(self.i, end - self.base)
        return super().readline(short)

    def frame(self, length: int) -> None:
        here = self.pos()
        if self.window_end is not None and here + length <= self.window_end:
            return  # the frame is already buffered: the buffer (and its end) stay as they are
        if self.window_end is not None and here < self.window_end:
            self.i = self.window_end - self.base
        if len(self.buf) - self.i < length:
            raise _Truncated(f"FRAME of {length} bytes is longer than the data left")
        self.window_end = self.pos() + length

    def begin_pickle(self) -> None:
        if self.window_end is not None:
            self.i = max(self.i, self.window_end - self.base)  # the whole frame was taken from the file
            self.window_end = None

    def give_back(self) -> None:
        pass


class _LineFile:
    """The file-like view pickletools' argument readers expect, on top of one of our streams."""

    def __init__(self, stream: _Stream, short: bool = False) -> None:
        self._stream = stream
        self._short = short

    def readline(self) -> bytes:
        return self._stream.readline(self._short)

    def read(self, n: int) -> bytes:
        return self._stream.take(n)


# ---------------------------------------------------------------------------------------------
# The opcode table
# ---------------------------------------------------------------------------------------------


class _Op(NamedTuple):
    name: str
    arg: str | None  # pickletools ArgumentDescriptor name
    reader: Callable[[Any], Any] | None
    pops: int  # items popped below the MARK (or in all, without a MARK)
    mark: bool  # pops a MARK and everything above it
    pushes: int
    fixed: int  # size of a fixed-width argument, 0 if none
    signed: bool  # the fixed-width argument is a signed int (int4)
    plain: bool  # no special meaning to the walk: pop `pops` (with the MARK if `mark`), push `pushes` opaque values


def _op_table() -> list[_Op | None]:
    table: list[_Op | None] = [None] * 256
    for info in pickletools.opcodes:
        before = info.stack_before
        mark = pickletools.markobject in before
        pops = before.index(pickletools.markobject) if mark else len(before)
        reader = info.arg.reader if info.arg is not None else None
        arg = info.arg.name if info.arg else None
        fixed = _FIXED.get(arg, 0) if arg != "float8" else 0
        plain = info.name not in _SPECIAL and not (arg in _COUNTED and _COUNTED[arg][2] in ("latin1", "utf8"))
        plain = plain and arg not in ("stringnl", "unicodestringnl")
        table[ord(info.code)] = _Op(info.name, arg, reader, pops, mark, len(info.stack_after), fixed, arg == "int4", plain)
    return table


_FIXED: dict[str | None, int] = {"uint1": 1, "uint2": 2, "int4": 4, "uint4": 4, "uint8": 8, "float8": 8}
_SPECIAL = frozenset({
    "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET", "MARK", "POP", "DUP", "GLOBAL", "INST",
    "STACK_GLOBAL", "EXT1", "EXT2", "EXT4", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "STOP", *("BUILD", "SETITEM", "SETITEMS",
    "APPEND", "APPENDS", "ADDITEMS"),
})
# Opcodes that set state on their target (the item below their arguments) and leave it on the stack.
_STATE_SETTERS = frozenset({"BUILD", "SETITEM", "SETITEMS", "APPEND", "APPENDS", "ADDITEMS"})
# Counted payloads: (length-field bytes, signed length, kind)
_COUNTED = {
    "string1": (1, False, "latin1"),
    "string4": (4, True, "latin1"),
    "unicodestring1": (1, False, "utf8"),
    "unicodestring4": (4, False, "utf8"),
    "unicodestring8": (8, False, "utf8"),
    "bytes1": (1, False, "bytes"),
    "bytes4": (4, False, "bytes"),
    "bytes8": (8, False, "bytes"),
    "bytearray8": (8, False, "bytes"),
    "long1": (1, False, "long"),
    "long4": (4, True, "long"),
}
_CALLS = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"})
_OPS = _op_table()
_NOT_VALUES = frozenset({"PROTO", "FRAME", "STOP"})  # opcodes that do not count toward "the first value"
# Runs of argument-less opcodes that push one opaque value, and of POPs, are walked in bulk (an opcode
# flood of millions of NONE/POP must not cost a Python loop iteration each).
_PUSH_BYTES = b"N\x88\x89])}\x8f"
_PAIR_RUN = re.compile(b"(?:[" + re.escape(_PUSH_BYTES) + b"]0)+", re.DOTALL)
_PUSH_RUN = re.compile(b"[" + re.escape(_PUSH_BYTES) + b"]+", re.DOTALL)
_POP_RUN = re.compile(b"0+")
_BULK_BYTES = frozenset(_PUSH_BYTES + b"0")
_MIN_RUN = 8  # shorter runs are cheaper through the ordinary loop
# Other flood shapes walked in bulk: BINGET+POP pairs, BINPUT runs, DUP runs and empty MARK+POP_MARK pairs.
_GET_POP_RUN = re.compile(b"(?:h.0)+", re.DOTALL)
_BINPUT_RUN = re.compile(b"(?:q.)+", re.DOTALL)
_DUP_RUN = re.compile(b"2+")
_MARK_POP_RUN = re.compile(b"(?:\\(1)+")
# Fixed-width APPEND/SETITEM units (a value pushed, then stored into the object below): with that object
# built by the pickle, a run of them leaves the stack as it was. (pattern, bytes per unit, opcodes per unit)
_FILL_RUNS: dict[int, tuple[tuple[re.Pattern[bytes], int, int], ...]] = {
    0x4E: ((re.compile(b"(?:Na)+"), 2, 2),),
    0x4B: ((re.compile(b"(?:K.a)+", re.DOTALL), 3, 2), (re.compile(b"(?:K.Ns)+", re.DOTALL), 4, 3),
           (re.compile(b"(?:K.K.s)+", re.DOTALL), 5, 3)),
}  # fmt: skip
# A FRAME of two bytes holding one push and its POP, repeated: every frame lines up and the stack is unchanged.
_TINY_FRAME_RUN = re.compile(b"(?:\\x95\\x02\\x00{7}[" + re.escape(_PUSH_BYTES) + b"]0)+", re.DOTALL)
# opcode -> offsets where a run's next unit starts (a cheap test before trying a run)
_BULK2_NEXT = {0x68: (3,), 0x71: (2,), 0x32: (1,), 0x28: (2,), 0x4E: (2,), 0x4B: (3, 4, 5), 0x95: (11,)}


# ---------------------------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------------------------

_OPAQUE = object()  # any value the walk does not need to know


@dataclass(frozen=True)
class _Global:
    """A global (class or function) on the symbolic stack, so a later call can be attributed to it."""

    name: tuple[str, str]


class _Malformed(Exception):
    """The opcodes are well-formed bytes but no unpickler would accept them (stack underflow, bad memo)."""


@dataclass
class DynamicCall:
    """A REDUCE/NEWOBJ/OBJ whose callable is not a global: nothing on the allowlist produces one."""

    opcode: str
    position: int | None


@dataclass
class PickleWalk:
    """What one stream of consecutive pickles would import and call.

    `globals` lists every import in stream order (repeats included), including those that only the C
    unpickler's reading of a mis-framed stream performs; `differential_globals` names the latter.
    `frame_differential` describes the first opcode that does not line up with its FRAME (None if all do):
    pickletools, picklescan and pickle.py read such a stream one way, the C unpickler another.
    `budget` names the bound that stopped the walk ("opcodes", "seconds", "bytes", "line"), with
    `limit_hit` set and `error` saying so.
    """

    pickles: int = 0
    globals: list[tuple[str, str]] = field(default_factory=list)
    dynamic_calls: list[DynamicCall] = field(default_factory=list)
    error: str | None = None
    limit_hit: bool = False  # stopped by a scan bound, not by bad bytes
    torch_legacy: bool = False
    opcodes: int = 0
    called_globals: list[tuple[str, str]] = field(default_factory=list)  # globals a REDUCE/NEWOBJ/OBJ/INST calls
    frame_differential: str | None = None
    differential_globals: list[tuple[str, str]] = field(default_factory=list)
    budget: str | None = None
    protocol: int | None = None  # the first PROTO seen (None: protocol 0/1, no PROTO opcode)


class _Budget:
    """The opcode and time budgets shared by every pickle of one walk."""

    def __init__(self, max_opcodes: int, deadline: float | None, clock: Callable[[], float]) -> None:
        self.max_opcodes = max_opcodes
        self.deadline = deadline
        self.clock = clock
        self.used = 0
        self._next_clock = _CLOCK_EVERY_OPCODES
        # The opcode count at which `check` has work to do; the walk's loop compares against it inline.
        self.checkpoint = min(max_opcodes + 1, self._next_clock if deadline is not None else max_opcodes + 1)

    def spend(self, count: int) -> None:
        self.used += count
        if self.used >= self.checkpoint:
            self.check()

    def check(self) -> None:
        if self.used > self.max_opcodes:
            raise _OverBudget("opcodes", f"the opcode budget of {self.max_opcodes} is spent; the rest was not scanned")
        if self.deadline is not None and self.used >= self._next_clock:
            self._next_clock = self.used + _CLOCK_EVERY_OPCODES
            self.checkpoint = min(self.max_opcodes + 1, self._next_clock)
            if self.clock() > self.deadline:
                raise _OverBudget("seconds", "the time budget of the scan is spent; the rest was not scanned")


class _OverBudget(Exception):
    def __init__(self, budget: str, message: str) -> None:
        super().__init__(message)
        self.budget = budget


class _Machine:
    """Decodes one pickle and follows its stack effects symbolically.

    Tracking the stack and memo (not just the previous two opcodes) is what resolves STACK_GLOBAL
    operands that were memoized, copied or fetched back, and what ties each REDUCE to its callable.
    MARKs are kept as stack positions, as pickle's own metastack does, so every pop is O(items).
    """

    def __init__(self, stream: _Stream, walk: PickleWalk, budget: _Budget) -> None:
        self.s = stream
        self.walk = walk
        self.budget = budget
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[Any, Any] = {}
        self.memo_writes = 0  # len(memo) as the unpickler counts it (MEMOIZE's key), forgotten slots included
        self.memo_overflow = False
        self.value_ops = 0
        self.first_value: Any = None
        self.frame_end: int | None = None  # linear reading: absolute end of the current FRAME
        self.violation: str | None = None
        self.mutations: set[tuple[str, str]] = set()  # state-setting opcodes on globals already recorded

    # -- arguments -------------------------------------------------------------------------------

    def _uint(self, size: int, signed: bool = False) -> int:
        return int.from_bytes(self.s.take(size), "little", signed=signed)

    def _counted(self, arg: str) -> Any:
        size, signed, kind = _COUNTED[arg]
        length = self._uint(size, signed)
        if length < 0:
            raise _Malformed(f"negative byte count {length}")
        into = kind == "bytes"  # _Unpickler_ReadInto: byte payloads read on through a frame's end
        if kind == "long":
            if length <= 64:
                return int.from_bytes(self.s.take(length), "little", signed=True)
            self.s.skip(length)
            return _OPAQUE
        if kind == "bytes" or length > MAX_DECODED_PAYLOAD_BYTES:
            self.s.skip(length, into)
            return _OPAQUE
        data = self.s.take(length)
        text = data.decode("latin-1") if kind == "latin1" else data.decode("utf-8", "surrogatepass")
        return text if len(text) <= MAX_KEPT_STRING_CHARS else _OPAQUE

    def _name_line(self) -> str:
        line = self.s.readline(short=True)
        if not line.endswith(b"\n"):
            raise _Truncated("no newline after a GLOBAL/INST name")
        # What find_class receives: the raw line as UTF-8 (both CPython unpicklers and torch's).
        return line[:-1].decode("utf-8")

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> bool:
        """Walk one pickle to its STOP; True if it got there."""
        s = self.s
        ops = _OPS
        budget = self.budget
        stack = self.stack
        linear = not s.c_file
        while True:
            budget.used += 1
            if budget.used >= budget.checkpoint:
                budget.check()
            i = s.i
            buf = s.buf
            if i >= len(buf):
                if not s.more(1):
                    raise _Truncated("pickle exhausted before seeing STOP")
                i, buf = s.i, s.buf
            start = s.base + i
            code = buf[i]
            if linear and code in _BULK_BYTES and i + 1 < len(buf) and buf[i + 1] in _BULK_BYTES:
                if self._bulk(code):
                    continue
                i, buf = s.i, s.buf  # the run check may have refilled the buffer
            elif linear and code in _BULK2_NEXT and i + 11 < len(buf) and code in (buf[i + o] for o in _BULK2_NEXT[code]):
                if self._bulk_more(code):
                    continue
                i, buf = s.i, s.buf
            op = ops[code]
            if op is None:
                raise _Malformed(f"opcode {bytes([code])!r} unknown")
            name = op.name
            arg: Any = None
            size = op.fixed
            if linear and i + 1 + size <= len(buf):
                s.i = i + 1 + size  # the opcode and a fixed-width argument, straight from the buffer
                if size:
                    arg = int.from_bytes(buf[i + 1 : i + 1 + size], "little", signed=op.signed)
            else:
                s.take(1)
                if size:
                    arg = self._uint(size, op.signed)
            if op.arg is not None and not size:
                if op.arg == "float8":
                    arg = s.take(8)
                elif op.arg in _COUNTED:
                    arg = self._counted(op.arg)
                elif name in ("GLOBAL", "INST"):
                    arg = (self._name_line(), self._name_line())
                else:
                    assert op.reader is not None  # every opcode with an argument has pickletools' reader for it
                    with warnings.catch_warnings():  # untrusted text: an invalid escape is data, not our warning
                        warnings.simplefilter("ignore", DeprecationWarning)
                        arg = op.reader(_LineFile(s, op.arg in _SHORT_LINE_ARGS))  # protocol-0 text, parsed as genops does
            if linear:
                frame_end = self.frame_end
                if frame_end is None:
                    if name == "FRAME":
                        self._check_frame(name, start, arg)
                elif start >= frame_end or s.base + s.i > frame_end or name == "FRAME" or name == "STOP":
                    self._check_frame(name, start, arg)  # leaving the frame, crossing it, or a FRAME/STOP in it
            elif name == "FRAME":
                s.frame(arg)
            if name not in _NOT_VALUES:
                if self.value_ops < 2:  # only "is the first value the only one" matters (torch's legacy magic)
                    self.first_value = arg if not self.value_ops else self.first_value
                    self.value_ops += 1
            elif name == "STOP":
                self._pop_n(1, name)  # pickle returns the top of the stack; leftovers below do not stop a load
                return True
            elif name == "PROTO" and self.walk.protocol is None:
                self.walk.protocol = arg
            if op.plain and not op.mark:  # most opcodes: fixed pops and pushes (inline: the hot path)
                pops = op.pops
                if pops:
                    if len(stack) - pops < (self.marks[-1] if self.marks else 0):
                        raise _Malformed(f"{name} pops more items than the stack holds")
                    del stack[-pops:]
                if op.pushes:
                    stack.append(_OPAQUE)
                continue
            if name == "BINGET" and arg in self.memo:  # memo reads are the next most common opcode
                stack.append(self.memo[arg])
                continue
            if name in _STATE_SETTERS and not op.mark:  # SETITEM/APPEND/BUILD on a built object: keep the target
                pops = op.pops
                if len(stack) - pops >= (self.marks[-1] if self.marks else 0) and type(stack[-pops]) is not _Global:
                    del stack[1 - pops :]
                    continue
            self._apply(op, arg, start)

    def _bulk(self, code: int) -> bool:
        """Walk a run of push/pop opcodes at once; False if there is no run worth it here."""
        s = self.s
        if len(s.buf) - s.i < _MIN_RUN * 4:
            s.more(_CHUNK_BYTES)
        # One byte per opcode: the run may not walk past the opcode budget (the loop already counted one).
        limit = min(len(s.buf), s.i + self.budget.max_opcodes - self.budget.used + 1)
        if self.frame_end is not None:
            limit = min(limit, self.frame_end - s.base)
        stack = self.stack
        floor = self.marks[-1] if self.marks else 0
        if code == 0x30:  # POP
            run = _POP_RUN.match(s.buf, s.i, limit)
            count = run.end() - s.i if run else 0
            if count < _MIN_RUN or len(stack) - count < floor:
                return False  # short, or it would pop a MARK: the ordinary loop handles that exactly
            del stack[-count:]
            self.value_ops += count
        else:
            run = _PAIR_RUN.match(s.buf, s.i, limit)
            count = run.end() - s.i if run else 0
            if count >= _MIN_RUN:
                pass  # push-pop pairs leave the stack as it was
            else:
                run = _PUSH_RUN.match(s.buf, s.i, limit)
                count = run.end() - s.i if run else 0
                if count < _MIN_RUN:
                    return False
                stack.extend([_OPAQUE] * count)
            self.value_ops += count
        self.budget.spend(count - 1)  # the loop already counted one
        s.i += count
        if self.frame_end is not None and s.pos() >= self.frame_end:
            self.frame_end = None
        return True

    def _bulk_more(self, code: int) -> bool:
        """Walk a run of BINGET+POP pairs, BINPUTs, DUPs or empty MARK+POP_MARK pairs at once; False if none here.

        Each run is taken only when the ordinary loop would do exactly the same (every key read was written,
        a value to store or copy exists above the MARK); otherwise it walks them one by one and reports.
        """
        s = self.s
        if len(s.buf) - s.i < _MIN_RUN * 4:
            s.more(_CHUNK_BYTES)
        allowed = self.budget.max_opcodes - self.budget.used + 1  # opcodes this run may take
        end = len(s.buf)
        if self.frame_end is not None:
            end = min(end, self.frame_end - s.base)
        stack, memo, buf, i = self.stack, self.memo, s.buf, s.i
        floor = self.marks[-1] if self.marks else 0
        if code == 0x68:  # BINGET key, POP: pushes and pops, reads only
            run = _GET_POP_RUN.match(buf, i, min(end, i + 3 * (allowed // 2)))
            size = run.end() - i if run else 0
            count = 2 * (size // 3)
            if count < _MIN_RUN or not (self.memo_overflow or all(key in memo for key in set(buf[i + 1 : i + size : 3]))):
                return False
        elif code == 0x71:  # BINPUT key: stores the top of the stack under each key
            run = _BINPUT_RUN.match(buf, i, min(end, i + 2 * allowed))
            size = run.end() - i if run else 0
            count = size // 2
            keys = set(buf[i + 1 : i + size : 2])
            if count < _MIN_RUN or len(stack) <= floor or len(memo) + len(keys) > MAX_MEMO_ENTRIES:
                return False
            top = stack[-1]
            for key in keys:
                self.memo_writes += key not in memo
                memo[key] = top
        elif code == 0x32:  # DUP: copies of the top
            run = _DUP_RUN.match(buf, i, min(end, i + allowed))
            count = size = run.end() - i if run else 0
            if count < _MIN_RUN or len(stack) <= floor:
                return False
            stack.extend([stack[-1]] * count)
        elif code == 0x95:  # FRAME(2) push POP, repeated
            if self.frame_end is not None and s.pos() < self.frame_end:
                return False  # a FRAME inside a frame: the ordinary loop reports the mismatch
            run = _TINY_FRAME_RUN.match(buf, i, min(len(buf), i + 11 * (allowed // 3)))
            units = (run.end() - i) // 11 if run else 0
            count, size = 3 * units, 11 * units
            if count < _MIN_RUN:
                return False
            self.frame_end = None  # the last frame ends where the run does
        elif code in _FILL_RUNS:  # APPEND/SETITEM of constants into an object the pickle built
            if len(stack) <= floor or type(stack[-1]) is _Global:
                return False  # no target, or a global: the ordinary loop reports it
            for pattern, unit, per_unit in _FILL_RUNS[code]:
                run = pattern.match(buf, i, min(end, i + unit * (allowed // per_unit)))
                if run:
                    break
            units = (run.end() - i) // unit if run else 0
            count, size = units * per_unit, units * unit
            if count < _MIN_RUN:
                return False
        else:  # MARK then POP_MARK: nothing in between, so the pair changes nothing
            run = _MARK_POP_RUN.match(buf, i, min(end, i + 2 * (allowed // 2)))
            count = size = run.end() - i if run else 0
            if count < _MIN_RUN:
                return False
        self.value_ops += count
        self.budget.spend(count - 1)  # the loop already counted one
        s.i += size
        if self.frame_end is not None and s.pos() >= self.frame_end:
            self.frame_end = None
        return True

    def _check_frame(self, name: str, start: int, arg: Any) -> None:
        """Does this opcode (start .. now) line up with the FRAME it is in? Records the first mismatch."""
        end = self.s.pos()
        frame_end = self.frame_end
        if frame_end is not None:
            if start >= frame_end:
                self.frame_end = frame_end = None
            elif end > frame_end:
                self._violation(f"{name} at byte {start} runs {end - frame_end} bytes past the end of its FRAME at byte {frame_end}")
            elif name == "STOP" and end < frame_end:
                self._violation(f"the FRAME ending at byte {frame_end} extends past STOP at byte {start}")
        if name == "FRAME":
            if frame_end is not None and start < frame_end:
                self._violation(f"FRAME at byte {start} opens before the previous frame ends at byte {frame_end}")
            self.frame_end = end + arg

    def _violation(self, text: str) -> None:
        if self.walk.frame_differential is None:
            self.walk.frame_differential = text

    def _apply(self, op: _Op, arg: Any, pos: int) -> None:
        name = op.name
        stack = self.stack
        if op.plain and not op.mark:  # most opcodes: fixed pops and pushes
            pops = op.pops
            if pops:
                if len(stack) - pops < (self.marks[-1] if self.marks else 0):
                    raise _Malformed(f"{name} pops more items than the stack holds")
                del stack[-pops:]
            if op.pushes:
                stack.append(_OPAQUE)
            return
        if name == "MEMOIZE" or name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if len(stack) <= (self.marks[-1] if self.marks else 0):
                raise _Malformed(f"{name} with nothing to store")
            key = self.memo_writes if name == "MEMOIZE" else arg
            self.memo_writes += name == "MEMOIZE" or key not in self.memo
            if len(self.memo) < MAX_MEMO_ENTRIES or key in self.memo:
                self.memo[key] = stack[-1]
            else:
                self.memo_overflow = True  # later slots are forgotten; reads give opaque values
            return
        if name in ("GET", "BINGET", "LONG_BINGET"):
            if arg in self.memo:
                stack.append(self.memo[arg])
            elif self.memo_overflow:
                stack.append(_OPAQUE)
            else:
                raise _Malformed(f"{name} reads memo key {arg!r} that was never written")
            return
        if name == "MARK":
            self.marks.append(len(stack))
            return
        if name == "POP" and self.marks and len(stack) == self.marks[-1]:
            self.marks.pop()  # POP on an empty frame discards the MARK itself, as pickle does
            return
        popped = self._pop(op)
        if isinstance(arg, str) and op.pushes == 1 and name not in ("PERSID", "GET"):
            stack.append(arg)  # a string value, a candidate STACK_GLOBAL operand
        elif name == "DUP":
            stack.extend((popped[0], popped[0]))
        elif name in ("GLOBAL", "INST"):
            recorded = self._record(arg)
            if name == "INST":
                self.walk.called_globals.append(arg)  # INST imports and calls in one step
                stack.append(_OPAQUE)
            else:
                stack.append(recorded)
        elif name == "STACK_GLOBAL":
            module, attr = popped
            if isinstance(module, str) and isinstance(attr, str):
                stack.append(self._record((module, attr)))
            else:
                stack.append(self._record(("<STACK_GLOBAL with operands computed at load time>", "")))
        elif name in ("EXT1", "EXT2", "EXT4"):
            # The copyreg extension registry maps a number to any global the loading process registered.
            stack.append(self._record((f"<copyreg extension {arg}>", "")))
        elif name in _STATE_SETTERS:
            if not popped:
                raise _Malformed(f"{name} with no target")
            target = popped[0]
            if isinstance(target, _Global):
                # BUILD on a function sets its __defaults__/__code__/__dict__; SETITEM/APPEND on a class or
                # module mutates the interpreter. No object built by the pickle is involved: never weights.
                mutation = (f"{GLOBAL_MUTATION_PREFIX}: {name} on {format_global(target.name)}>", "")
                if mutation not in self.mutations:  # once per pickle: a flood of them must not grow the list
                    self.mutations.add(mutation)
                    self._record(mutation)
            stack.append(target)  # the target itself stays on the stack
        else:
            if name in _CALLS:
                if not popped:
                    raise _Malformed(f"{name} with no callable")
                if isinstance(popped[0], _Global):
                    self.walk.called_globals.append(popped[0].name)
                else:
                    self.walk.dynamic_calls.append(DynamicCall(name, pos))
            if op.pushes:
                stack.extend([_OPAQUE] * op.pushes)

    def _record(self, global_name: tuple[str, str]) -> _Global:
        self.walk.globals.append(global_name)
        return _Global(global_name)

    def _pop(self, op: _Op) -> list[Any]:
        stack = self.stack
        if op.mark:
            if not self.marks:
                raise _Malformed(f"{op.name} without a MARK")
            mark = self.marks.pop()
            items = stack[mark:]
            del stack[mark:]
            return self._pop_n(op.pops, op.name) + items
        return self._pop_n(op.pops, op.name)

    def _pop_n(self, count: int, opname: str) -> list[Any]:
        if count == 0:
            return []
        stack = self.stack
        if len(stack) - count < (self.marks[-1] if self.marks else 0):
            raise _Malformed(f"{opname} pops more items than the stack holds")
        items = stack[-count:]
        del stack[-count:]
        return items


def _walk_stream(
    stream: _Stream, walk: PickleWalk, budget: _Budget, *, max_pickles: int, single: bool, legacy_check: bool
) -> None:
    """Walk consecutive pickles on `stream` into `walk` (errors and budgets land in `walk`)."""
    limit = 1 if single else max_pickles
    while walk.pickles < limit and not stream.at_eof():
        stream.begin_pickle()
        if stream.at_eof():
            break
        machine = _Machine(stream, walk, budget)
        try:
            machine.run()
        except _OverBudget as exc:
            walk.error, walk.limit_hit, walk.budget = str(exc), True, exc.budget
            return
        except LimitExceeded as exc:
            walk.error, walk.limit_hit, walk.budget = str(exc), True, "bytes"
            return
        except (_Truncated, _Malformed, ValueError, UnicodeDecodeError, OverflowError) as exc:
            # pickletools' readers raise ValueError and friends on garbage; all mean "not loadable"
            walk.error = f"pickle #{walk.pickles + 1} does not parse at byte {stream.pos()}: {exc}"
            return
        except (RecursionError, MemoryError, ArithmeticError, LookupError, TypeError) as exc:
            # Untrusted bytes: a failure of the walk itself fails this stream closed; the scan goes on.
            walk.error = f"pickle #{walk.pickles + 1} could not be walked at byte {stream.pos()}: {type(exc).__name__}: {exc}"
            return
        walk.pickles += 1
        if legacy_check and walk.pickles == 1 and machine.value_ops == 1 and machine.first_value == TORCH_LEGACY_MAGIC:
            walk.torch_legacy = True
            limit = TORCH_LEGACY_PICKLES  # the raw storage bytes after these are never unpickled
    if walk.torch_legacy and walk.pickles < TORCH_LEGACY_PICKLES:
        walk.error = f"legacy torch checkpoint ends after {walk.pickles} of its {TORCH_LEGACY_PICKLES} pickles"
    elif not single and not walk.torch_legacy and walk.pickles >= limit and not stream.at_eof():
        walk.error = f"more than {max_pickles} consecutive pickles; the rest was not scanned"


def walk_pickles(
    reader: BoundedReader,
    *,
    max_pickles: int,
    max_opcodes: int,
    single: bool = False,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PickleWalk:
    """Walk consecutive pickles from `reader` until EOF, an error, a budget, or `max_pickles`.

    One file may hold several pickles back to back (legacy torch.save writes five, then raw storage
    bytes): a legacy torch file is recognized by its magic number and walked for exactly its five pickles.
    `single` is for formats whose loader reads one pickle and ignores what follows (numpy's object arrays).

    Budgets: `max_opcodes` opcodes in all, and, if `deadline` is given, until `clock()` passes it (same
    units as `clock`, seconds of `time.monotonic` by default; checked every 4,096 opcodes). An exceeded
    budget stops the walk with `limit_hit`, `budget` naming it and `error` saying so: a verdict must then
    be an error, never a pass. Never raises for bad bytes; `LimitExceeded` from the reader is caught too.

    The reader is left right after the last byte walked (read-ahead is given back). If the stream's
    FRAMEs do not line up with its opcodes, `frame_differential` says where, and the stream is replayed
    as CPython's C unpickler reads a file: the globals only that reading imports are added to `globals`
    and listed in `differential_globals` (the replay keeps up to 64 MiB; beyond that only the mismatch
    is reported).
    """
    walk = PickleWalk()
    budget = _Budget(max_opcodes, deadline, clock)
    stream = _Stream(reader, MAX_REPLAY_BYTES)
    try:
        _walk_stream(stream, walk, budget, max_pickles=max_pickles, single=single, legacy_check=not single)
    except LimitExceeded as exc:  # the reader's byte cap, hit while checking for EOF
        walk.error, walk.limit_hit, walk.budget = str(exc), True, "bytes"
    stream.give_back()
    if walk.frame_differential is not None:
        _replay_c_file(stream, walk, budget, max_pickles=1 if single else walk.pickles + 1)
    walk.opcodes = budget.used
    return walk


def _replay_c_file(stream: _Stream, walk: PickleWalk, budget: _Budget, *, max_pickles: int) -> None:
    """Walk the retained bytes as the C unpickler reads a file; add the globals only it imports."""
    assert walk.frame_differential is not None  # replayed only for a walk whose frames diverged
    if stream.retained is None:
        walk.frame_differential += f" (stream over {MAX_REPLAY_BYTES} bytes: the C unpickler's reading was not replayed)"
        return
    shadow = PickleWalk()
    replay = _CFileStream(bytes(stream.retained), stream.start)
    try:
        _walk_stream(replay, shadow, budget, max_pickles=max_pickles, single=False, legacy_check=False)
    except LimitExceeded:  # pragma: no cover - the replay reads memory only
        pass
    if shadow.limit_hit and not walk.limit_hit:
        walk.error, walk.limit_hit, walk.budget = shadow.error, True, shadow.budget
    seen = set(walk.globals)
    extra = [g for g in shadow.globals if g not in seen]
    walk.differential_globals = list(dict.fromkeys(extra))
    walk.globals.extend(extra)
    walk.called_globals.extend(g for g in shadow.called_globals if g not in seen)
    walk.dynamic_calls.extend(shadow.dynamic_calls)


def loader_would_act(walk: PickleWalk) -> bool:
    r"""Whether a loader would do something with this stream: a pickle, whatever the file is named.

    True if the stream imports a global that an interpreter could import (`is_importable_global`) and
    then either calls it, finishes a pickle (STOP), or the global is dangerous on import alone; or if it
    calls a non-global (a dynamic call). A loader runs every opcode before the one that breaks, so a
    protocol-0 stream without PROTO or STOP that reaches a REDUCE is a pickle. Text that merely begins
    with an opcode byte ("N.B.", "cat\ndog\n", JSON) imports nothing importable and calls nothing.
    The globals of every reading count (a mis-framed stream's C reading included); a frame mismatch
    alone, in bytes that import and call nothing in any reading, does not make them a pickle.
    """
    if walk.dynamic_calls:
        return True
    importable = [g for g in dict.fromkeys(walk.globals) if is_importable_global(g)]
    if not importable:
        return False
    called = set(walk.called_globals)
    if walk.pickles > 0 or any(g in called for g in importable):
        return True
    return any(severity == "dangerous" for severity in global_severity(importable).values())


# ---------------------------------------------------------------------------------------------
# Severity: picklescan's denylist, ours for what it lacks, torch's allowlist for the safe tier
# ---------------------------------------------------------------------------------------------


def _picklescan() -> Any:
    """picklescan's scanner module, imported on first use.

    It imports http.client, ssl, tarfile and tempfile (~35 ms); a process that reads stored results or
    loads a spec imports this module through the probe catalogue and never scans a pickle.
    """
    from picklescan import scanner

    return scanner


def picklescan_dangerous_globals(reader: BoundedReader, stream_id: str, pickles: int) -> tuple[set[tuple[str, str]], str | None]:
    """Run picklescan's own parser over the same pickles; return what it calls dangerous.

    It is a second opinion: anything it flags fails even if our walk named it differently.
    Returns (dangerous globals, error message if picklescan itself failed). Its parser lists every
    opcode of a pickle before looking at them: about 3x the time of our walk, and memory per opcode.
    """
    dangerous: set[tuple[str, str]] = set()
    picklescan_scanner = _picklescan()
    try:
        for _ in range(pickles):
            result = picklescan_scanner.scan_pickle_bytes(reader, stream_id, multiple_pickles=False)
            dangerous.update((g.module, g.name) for g in result.globals if g.safety == picklescan_scanner.SafetyLevel.Dangerous)
    except Exception as exc:  # a crash in the second opinion must not pass silently
        return dangerous, f"picklescan could not scan {stream_id}: {exc}"
    return dangerous, None


# Code execution, file and network access, and import machinery that picklescan's denylist (1.0.5) lacks.
# "*" means every name in the module and its submodules. Sources: the globals used by published pickle
# exploits and scanner bypasses (picklescan, modelscan and fickling test suites and advisories).
EXTRA_DANGEROUS: dict[str, frozenset[str] | str] = {
    "io": frozenset({"open", "open_code", "FileIO"}),
    "_io": frozenset({"open", "open_code", "FileIO"}),
    "codecs": frozenset({"open", "EncodedFile"}),
    "builtins": frozenset({
        "__import__", "setattr", "delattr", "globals", "locals", "vars", "input", "__loader__", "__spec__",
        "open", "eval", "exec", "compile", "getattr", "breakpoint", "__build_class__",  # calls its function argument
    }),
    "importlib": "*",
    "imp": "*",
    "zipimport": "*",
    "pkgutil": "*",
    "runpy": "*",
    "multiprocessing": "*",
    "_posixsubprocess": "*",
    "pty": "*",
    "ctypes": "*",
    "_ctypes": "*",
    "cffi": "*",
    "socket": "*",
    "_socket": "*",
    "shutil": "*",
    "tempfile": "*",
    "glob": "*",
    "pathlib": "*",
    "marshal": "*",
    "_pickle": "*",
    "pickle": "*",
    "dill": "*",
    "cloudpickle": "*",
    "joblib": "*",
    "shelve": "*",
    "code": "*",
    "codeop": "*",
    "platform": "*",
    "webbrowser": "*",
    "antigravity": "*",  # importing it opens a browser
    "this": "*",  # importing it prints
    "http": "*",
    "urllib": "*",
    "ftplib": "*",
    "smtplib": "*",
    "telnetlib": "*",
    "xmlrpc": "*",
    "asyncio": "*",
    "threading": "*",
    "_thread": "*",
    "signal": "*",
    "site": "*",
    "sysconfig": "*",
    "operator": frozenset({"attrgetter", "itemgetter", "methodcaller", "call"}),
    "_operator": frozenset({"attrgetter", "itemgetter", "methodcaller", "call"}),
    "functools": frozenset({"partial", "reduce", "partialmethod", "singledispatch"}),
    "_functools": frozenset({"partial", "reduce"}),
    "types": frozenset({"FunctionType", "CodeType", "MethodType", "LambdaType", "ModuleType", "SimpleNamespace"}),
    "torch": frozenset({"load", "jit", "hub", "_C", "ops", "classes", "compile"}),
    "torch.serialization": frozenset({"load", "_load", "_legacy_load"}),
    "torch.storage": frozenset({"_load_from_bytes"}),  # torch.load(weights_only=False) of inner bytes
    "torch.utils.cpp_extension": "*",  # compiles and loads native code
    "torch.fx.graph_module": "*",  # rebuilds modules by exec'ing source
    "torch.package": "*",
    "torch.distributed.rpc": "*",
    "torch._inductor": "*",
    "torch.jit": "*",
    "torch.hub": "*",
    "torch.ops": "*",
    "torch._ops": "*",
    "numpy": frozenset({"load", "loads", "fromfile", "memmap", "save", "savez", "tofile"}),
    "numpy.lib": "*",
    "numpy.ctypeslib": "*",
    "numpy.distutils": "*",
    "numpy.testing": "*",
    # Packages whose members evaluate strings, call names given as data, patch the interpreter, start
    # processes, compile or load native code, or touch files (each reached by a published pickle payload or
    # by reading their source): sympy constructors sympify strings (parse_expr evals them); logging.config's
    # dictConfig calls any '()' factory; unittest.mock patches any attribute; trace/pdb/bdb/profile/timeit/
    # doctest run code strings; torch's compiler, JIT, distributed and packaging stacks run or spawn code.
    "sympy": "*",
    "logging.config": "*",
    "unittest.mock": "*",
    "trace": "*",
    "pdb": "*",
    "bdb": "*",
    "profile": "*",
    "cProfile": "*",
    "timeit": "*",
    "doctest": "*",
    "pydoc": "*",
    "imaplib": "*",
    "mailcap": "*",
    "venv": "*",
    "ensurepip": "*",
    "_osx_support": "*",
    "uuid": frozenset({"_get_command_stdout", "_popen", "_ifconfig_getnode", "_ip_getnode", "_arp_getnode",
                       "_lanscan_getnode", "_netstat_getnode", "_find_mac", "_find_mac_near_keyword"}),
    "tarfile": "*",
    "zipfile": "*",
    "zipapp": "*",
    "compileall": "*",
    "py_compile": "*",
    "fileinput": "*",
    "mmap": "*",
    "distutils": "*",
    "setuptools": "*",
    "pip": "*",
    "cgi": "*",
    "cgitb": "*",
    "idlelib": "*",
    "tkinter": "*",
    "turtle": "*",
    "sqlite3": "*",
    "dbm": "*",
    "ssl": "*",
    "inspect": "*",
    "gc": "*",
    "yaml": frozenset({"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all", "UnsafeLoader"}),
    "torch._dynamo": "*",
    "torch.library": "*",  # registers operators into the dispatcher
    "torch.autograd.graph": "*",  # registers hooks that later call what they were given
    "torch.fx": "*",
    "torch._C": "*",
    "torch.distributed": "*",
    "torch.multiprocessing": "*",
    "torch.testing": "*",
    "torch._export": "*",
    "torch.export": "*",
    "torch.compiler": "*",
    "torch.utils.collect_env": "*",
    "torch.utils.data": "*",  # DataLoader workers are processes
    "numpy.f2py": "*",
    # Evaluate strings or build functions from source: typing's forward references are eval'd
    # (typing._eval_type(ForwardRef(src)) runs src), dataclasses._create_fn exec's a function body.
    "typing": frozenset({"_eval_type", "get_type_hints", "ForwardRef", "_type_check", "evaluate_forward_ref"}),
    "typing_extensions": frozenset({"get_type_hints", "ForwardRef", "evaluate_forward_ref"}),
    "dataclasses": frozenset({"_create_fn", "_exec", "make_dataclass"}),
    "annotationlib": "*",
    # The import machinery under its private names (importlib's public spellings are denied above).
    "_frozen_importlib": "*",
    "_frozen_importlib_external": "*",
    "_imp": "*",
    "_bootstrap": "*",
    "_bootstrap_external": "*",
    # Other writers of files and nested unpicklers, siblings of io.open / pickle.load.
    "_pyio": "*",
    "gzip": frozenset({"open", "GzipFile"}),
    "bz2": frozenset({"open", "BZ2File"}),
    "lzma": frozenset({"open", "LZMAFile"}),
    "logging.handlers": "*",
    "logging": frozenset({"FileHandler", "basicConfig", "config"}),
    "pandas": frozenset({"read_pickle", "eval", "read_csv", "read_json", "read_parquet", "read_hdf", "to_pickle"}),
    "pandas.io": "*",
    "pandas.core.computation": "*",
    "numexpr": "*",
    # Fetching and importing code: transformers' remote-code loader does it with no trust check of its own.
    "transformers.dynamic_module_utils": "*",
    "transformers.utils.hub": "*",
    "huggingface_hub": "*",
    "accelerate.commands": "*",
    "torch.utils.benchmark": "*",
    "keras.utils": frozenset({"get_file"}),
}
# Allowlisted names inside a denied prefix (torch.distributed.tensor.DTensor, torch._dynamo.decorators._DimRange)
# stay safe: torch's weights_only loader accepts them, and our prefix lists only approximate whole packages.
# Attribute names that walk from any object to the interpreter's internals (the classic sandbox escape).
_DUNDER_ESCAPES = frozenset({
    "__globals__", "__builtins__", "__subclasses__", "__getattribute__", "__class__", "__bases__", "__mro__",
    "__dict__", "__code__", "__closure__", "__func__", "__self__", "__reduce__", "__reduce_ex__", "__import__",
    "__loader__", "__spec__", "__init__", "__new__", "__call__",
})
# Top-level modules whose every name is a code-execution or system-access name (for dotted-name walks).
# The module part of the placeholder global recorded for BUILD/SETITEM(S)/APPEND(S)/ADDITEMS whose target is a
# global (a function, class or module): it mutates the loading interpreter, and torch's weights_only loader
# refuses it. Always dangerous.
GLOBAL_MUTATION_PREFIX = "<state set on a global"
_DANGEROUS_ROOTS = frozenset({"os", "posix", "nt", "sys", "subprocess", "builtins", "__builtin__", "importlib", "runpy"})


def _extra_dangerous(module: str, name: str) -> bool:
    """Whether our denylist names this global, judged on the whole dotted path a loader resolves.

    find_class imports `module` and walks `name` attribute by attribute, so ("torch._C", "_jit_x") and
    ("torch", "_C._jit_x") are one object: every prefix of the joined path is looked up, a "*" entry
    covering all below it and a set entry covering the listed attribute right below it.
    """
    parts = f"{module}.{name}".split(".") if name else module.split(".")
    for depth in range(len(parts), 0, -1):
        listed = EXTRA_DANGEROUS.get(".".join(parts[:depth]))
        if listed == "*":
            return True
        if isinstance(listed, frozenset) and depth < len(parts) and parts[depth] in listed:
            return True
    return False


def _dotted_escape(module: str, name: str) -> bool:
    """A dotted name (find_class walks it attribute by attribute at protocol 4+) that reaches code.

    ("torch", "serialization.os.system") is os.system; ("collections", "OrderedDict.__init__.__globals__")
    reaches a module's globals. Any dunder component, or any component naming a dangerous root module
    followed by more attributes, is treated as dangerous.
    """
    components = module.split(".") + name.split(".")
    if any(part in _DUNDER_ESCAPES for part in components):
        return True
    return "." in name and any(part in _DANGEROUS_ROOTS for part in components[1:-1])


def _stdlib_name(module: str, name: str) -> tuple[str, str]:
    """The import CPython performs for a protocol 0-2 GLOBAL (fix_imports: py2 names -> py3)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _torch_name(module: str, name: str) -> tuple[str, str]:
    """The (module, name) torch's weights_only unpickler looks up (its own py2 renames)."""
    if (module, name) in _TORCH_NAME_MAPPING:
        return _TORCH_NAME_MAPPING[(module, name)]
    return _TORCH_IMPORT_MAPPING.get(module, module), name


def _spellings(global_name: tuple[str, str]) -> set[tuple[str, str]]:
    """Every (module, name) spelling of a global that a loader would resolve to the same object.

    The global as written, as CPython and torch rename py2 names, and each split of the joined dotted
    path into (module, name) (("torch", "serialization.load") is torch.serialization.load at protocol 4+,
    and ("torch._C", "_jit_x") is ("torch", "_C._jit_x")); bounded by the 4,096-character name cap.
    """
    module, name = global_name
    forms = {global_name}
    for m, n in (global_name, _stdlib_name(module, name), _torch_name(module, name)):
        parts = f"{m}.{n}".split(".") if n else [m]
        for cut in range(1, len(parts)):
            forms.add((".".join(parts[:cut]), ".".join(parts[cut:])))
        forms.add((m, n))
    return forms


def _dotted_walk(module: str, name: str) -> bool:
    """A name that find_class walks attribute by attribute (protocol 4+), unless torch allows the whole path.

    Weights never need it (every allowlisted global is a module attribute), and a walk through any module
    reaches whatever that module imported: ("torch.serialization", "pickle.loads") is pickle.loads.
    """
    return "." in name and not _is_allowed(module, name)


def _on_global(module: str) -> bool:
    """Placeholders the walk records for a state-setting opcode (BUILD, SETITEM, APPEND...) on a global."""
    return module.startswith(GLOBAL_MUTATION_PREFIX)


def classify_with_picklescan(global_names: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which globals are known dangerous: picklescan's denylist (one source), then ours for what it lacks.

    Each global is judged in every spelling a loader resolves (as written, CPython's and torch's py2 renames,
    every split of the joined dotted path), the most severe winning: ours (`EXTRA_DANGEROUS`, by path prefix,
    unless torch's allowlist names the exact path), dotted attribute walks (`_dotted_walk`), dunder escapes,
    state set on a global by BUILD/SETITEM/APPEND (the walk's placeholder), and picklescan's denylist.
    """
    names = set(global_names)
    if not names:
        return set()
    spellings = {g: _spellings(g) for g in names}
    dangerous = {
        g for g, forms in spellings.items()
        if _on_global(g[0]) or _dotted_walk(*g) or any(_dotted_escape(*f) for f in forms)
        or (any(_extra_dangerous(*f) for f in forms) and not _is_allowed(*g))
    }  # fmt: skip
    try:
        # Private, but it is the one place picklescan applies its denylist (with parent-module wildcards);
        # if it ever moves, our own list still answers.
        raw = set().union(*spellings.values())
        picklescan_scanner = _picklescan()
        result = picklescan_scanner._build_scan_result_from_raw_globals(raw, "conformance-scan")
    except Exception:  # pragma: no cover - depends on picklescan internals
        _log.debug("picklescan classification unavailable", exc_info=True)
        return dangerous
    flagged = {(g.module, g.name) for g in result.globals if g.safety == _picklescan().SafetyLevel.Dangerous}
    return dangerous | {g for g, forms in spellings.items() if forms & flagged}


def _is_allowed(module: str, name: str) -> bool:
    for m, n in {(module, name), _torch_name(module, name), _stdlib_name(module, name)}:
        if f"{m}.{n}" in _ALLOWED_PATHS:
            return True
    return False


def global_severity(global_names: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Each (module, name) -> "dangerous", "safe" or "unknown".

    dangerous: code execution or system access reachable (picklescan's denylist, ours, dotted-name escapes);
    safe: accepted by torch's weights_only loader (`weights_only_allowlist.py`, after torch's py2 renames,
    matched on the joined path as torch does) or a harmless numpy/builtin reconstructor (`EXTRA_SAFE_GLOBALS`);
    unknown: neither (a class torch refuses, such as argparse.Namespace; `__torch__.*` TorchScript types,
    which `is_torchscript_type` tells apart). The scan fails on dangerous, and on unknown unless allowed.
    """
    names = set(global_names)
    dangerous = classify_with_picklescan(names)
    return {g: "dangerous" if g in dangerous else "safe" if _is_allowed(*g) else "unknown" for g in names}

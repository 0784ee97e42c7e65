"""The scan probe: a static serialization-safety scan of every file in an untrusted model folder.

A file is read in every way a loader could read it, and every interpretation is scanned, so a polyglot
cannot hide one reading behind another: a safetensors header, a raw pickle from byte 0 (pickle.load,
torch's legacy format), a zip (found by its start magic and by a central directory at the end, as
zipfile does: torch checkpoints, TorchScript archives, npz, Keras v3), a legacy torch tar, an npy header
(through numpy's own reader), a compressed stream (joblib's zlib, gzip, bz2, lzma, xz and lz4), GGUF
metadata, ONNX external data and HDF5 Keras configs. Every pickle is judged without being loaded: our
opcode walk against an allowlist derived from torch's weights_only loader, and picklescan's parser as a
second opinion (`scan_pickle`). Findings carry a severity: "dangerous" (code execution reachable),
"unknown" (not on the weights-only allowlist) or "error" (could not be scanned, or a budget was spent:
fail closed, never a pass).

Files are opened only through `safe_files.open_regular` (regular files inside the folder). Nothing is
unpickled, nothing is copied to disk, and torch is never imported; numpy only when an npy header is read.
"""

from __future__ import annotations

import io
import os
import pickletools
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from picklescan.relaxed_zipfile import RelaxedZipFile

from .. import safe_files
from ..digests import sha256_stream
from ..probe_registry import ProbeContext, probe
from . import scan_archives, scan_formats, scan_pickle, scan_templates
from .scan_archives import MAX_SECONDS_PER_FILE, Source, ZipFacts
from .scan_formats import FormatError
from .scan_pickle import BoundedReader, PickleWalk, format_global, global_severity, picklescan_dangerous_globals, walk_pickles

# Bounds: an untrusted folder must not be able to make the scan use unbounded memory, disk or time.
MAX_STREAM_BYTES = 2 << 30  # bytes read from one pickle stream
MAX_PICKLES_PER_STREAM = 10_000
# Opcodes walked per top-level file, all members and interpretations together. A 5,000-tensor state dict
# is ~100k; the bound keeps a hostile file to seconds of CPU and picklescan (which lists every opcode) to ~1 GB.
MAX_OPCODES_PER_FILE = 5_000_000
# Budgets of one scan_folder call, all files together: a folder of many flood files must not add up to an
# unbounded scan. 20M opcodes is four hostile files at the per-file bound and ~200 real checkpoints of 100k
# opcodes; 120 s is four files at the per-file time bound, and far above a real model folder (a 538 MB
# checkpoint scans in under 2 s). Exceeding either is an error finding of kind "scan-budget", never a pass.
MAX_OPCODES_PER_SCAN = 20_000_000
MAX_SECONDS_PER_SCAN = 120.0
# Files up to this size are fingerprinted (size + SHA-256) so that identical copies are scanned once; larger
# ones are matched by device and inode only (hashing many gigabytes of tensors would cost more than it saves).
MAX_DEDUPE_HASH_BYTES = 256 << 20
MAX_NPY_HEADER_BYTES = 1 << 20
# Streams up to this many opcodes also get picklescan's own parse (a state dict of 5,000 tensors is ~100k).
MAX_OPCODES_SECOND_OPINION = 200_000
# ...and at most this many bytes: picklescan reads each bytes argument into memory (a 1 GiB BINBYTES8 in a sparse
# 8 KB file cost 2.1 GB and 13 s); our walk skips payloads it does not need.
MAX_BYTES_SECOND_OPINION = 64 << 20
MAX_CONFIG_JSON_BYTES = 64 << 20  # a Keras config.json
MAX_ONNX_IN_MEMORY_BYTES = 256 << 20  # an .onnx or HDF5 member of an archive is parsed in memory up to this size
MAX_LEGACY_STORAGES = 1_000_000
_HEAD_BYTES = 512  # enough for every magic we test, including a whole tar header
_TAIL_BYTES = 65_557  # the end-of-central-directory record (22 bytes) plus the longest zip comment

# Names that loaders (torch.load, pickle.load, joblib.load) open as pickles: for these a parse failure
# is an error, not a sign that the file is something else.
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib", ".dat", ".pck", ".sav"})
_PICKLE_OPCODE_BYTES = frozenset(op.code.encode("latin-1")[0] for op in pickletools.opcodes)
_CALL_OPCODES = frozenset({"REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})
# The order in which a file's interpretations name its `format` (the first that applies); code-carrying first.
_FORMAT_ORDER = (
    "torchscript", "keras", "torch-legacy-tar", "zip", "torch-legacy", "pickle", "numpy", "gguf", "onnx", "hdf5",
    "tar", "safetensors",
)  # fmt: skip
# torch.jit._pickle helpers that TorchScript's C++ unpickler maps to its own builtins (never a Python import).
_TORCHSCRIPT_BUILTINS = frozenset(
    ("torch.jit._pickle", name)
    for name in (
        "build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "build_tensor_from_id",
        "restore_type_tag",
    )
)  # fmt: skip
# Element sizes of the legacy storage classes (torch/_utils.py _element_size), to skip their raw bytes.
_STORAGE_ELEMENT_BYTES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8, "IntStorage": 4,
    "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1, "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}  # fmt: skip


@dataclass(frozen=True)
class ScanFinding:
    """One problem the scan found in one file (or one archive member of it), in the fields the reports show.

    `severity` is "dangerous" (a global that runs code), "unknown" (a global off the allowlist) or "error"
    (the file or member could not be judged: unreadable, malformed or over a budget); each fails the scan
    unless the user allows unknown globals.
    """

    file: str  # path relative to the model folder, posix
    member: str | None  # zip member name ("outer.zip!inner/data.pkl" inside nested zips), None for a raw file
    global_name: str  # "module.name", or "" for parse and access errors
    severity: str  # "dangerous" | "unknown" | "error"
    detail: str  # one line
    # What was found, for report rule ids: "template-injection", "external-data-escape", "code-in-config",
    # "parser-differential", "scan-budget"; "" lets reports derive it from severity and global.
    kind: str = ""


@dataclass
class ScannedFile:
    """One file the scan judged: its interpretations, the pickles it walked and the globals they import."""

    file: str
    # The main interpretation: "torchscript" | "keras" | "zip" | "torch-legacy" | "torch-legacy-tar" | "pickle" |
    # "numpy" | "gguf" | "onnx" | "hdf5" | "tar" | "safetensors" | "other"
    format: str
    pickles_scanned: int  # pickles parsed to their STOP opcode in this file, zip members included
    globals: list[str]  # sorted unique globals seen, allowed ones included
    formats: list[str] = field(default_factory=list)  # every interpretation that applied (a polyglot has several)


@dataclass
class ScanEvidence:
    """The scan of a model folder: the scanner's description, every file scanned and every finding."""

    scanner: str
    files: list[ScannedFile]
    findings: list[ScanFinding]

    def to_dict(self) -> dict[str, Any]:
        """The evidence as it is recorded in a result document: scanner, files, findings and flagged_files."""
        return {
            "scanner": self.scanner,
            "files": [asdict(scanned) for scanned in self.files],
            "findings": [asdict(finding) for finding in self.findings],
            "flagged_files": self.flagged_files,
        }

    @property
    def flagged_files(self) -> list[str]:
        """The sorted unique paths (relative, posix) of the files with at least one finding."""
        return sorted({finding.file for finding in self.findings})


def scanner_description() -> str:
    """The scanner as recorded in reports: `picklescan <version> + conformance opcode allowlist`."""
    from importlib.metadata import PackageNotFoundError, version  # lazy: 50 ms of start-up for one string

    try:
        picklescan_version = version("picklescan")
    except PackageNotFoundError:  # pragma: no cover - picklescan is a dependency
        picklescan_version = "unknown"
    return f"picklescan {picklescan_version} + conformance opcode allowlist"


def scan_folder(folder: Path, relative_files: list[str] | None = None, *, link_roots: Sequence[Path] = ()) -> ScanEvidence:
    """Scan the named files, or every file under `folder`; symlinks leading outside it are reported, never read.

    `link_roots` (resolved) are the places besides `folder` its links may lead (a hub cache snapshot's
    `blobs/`, as `Candidate.link_roots` gives them); a link anywhere else is an error finding, unread.

    All files share a scan-wide budget of `MAX_OPCODES_PER_SCAN` pickle opcodes and `MAX_SECONDS_PER_SCAN`
    seconds (monotonic clock) on top of each file's own bounds: once one is spent, every file left is an
    "error" finding of kind "scan-budget" naming it, never a pass. A file whose bytes, size and suffixes match
    one already scanned in this call (same inode, or same size and SHA-256 up to `MAX_DEDUPE_HASH_BYTES`) is
    not walked again: it gets the same findings under its own name.
    """
    folder = Path(folder)
    names = relative_files if relative_files is not None else _list_files(folder.resolve())
    files: list[ScannedFile] = []
    findings: list[ScanFinding] = []
    budget = ScanBudget.start()
    for name in names:
        scanned, file_findings = scan_file(folder, name, budget=budget, link_roots=link_roots)
        files.append(scanned)
        findings.extend(file_findings)
    return ScanEvidence(scanner=scanner_description(), files=files, findings=findings)


@dataclass
class ScanBudget:
    """What one scan of many files has left, and the results of files already scanned (for duplicates).

    Make one with `ScanBudget.start()` per scan and pass it to every `scan_file` call of that scan.
    """

    opcodes_left: int
    deadline: float  # time.monotonic() seconds
    seen: dict[tuple[Any, ...], tuple[ScannedFile, list[ScanFinding]]] = field(default_factory=dict)

    @classmethod
    def start(cls) -> ScanBudget:
        """A fresh budget: `MAX_OPCODES_PER_SCAN` opcodes and `MAX_SECONDS_PER_SCAN` seconds from now."""
        return cls(opcodes_left=MAX_OPCODES_PER_SCAN, deadline=time.monotonic() + MAX_SECONDS_PER_SCAN)

    def spent(self) -> str | None:
        """Which scan-wide budget is spent (opcodes or seconds), as a phrase for a finding; None while both last."""
        if self.opcodes_left <= 0:
            return f"the scan-wide opcode budget of {MAX_OPCODES_PER_SCAN} opcodes is spent"
        if time.monotonic() > self.deadline:
            return f"the scan-wide time budget of {MAX_SECONDS_PER_SCAN:g} seconds is spent"
        return None


def scan_file(
    folder: Path, relative_file: str, *, budget: ScanBudget | None = None, link_roots: Sequence[Path] = ()
) -> tuple[ScannedFile, list[ScanFinding]]:
    """Scan one file of the folder in every interpretation; never raises on hostile content.

    A file that is not a regular file inside the folder or `link_roots` (a symlink out, a FIFO, a device)
    is one "error" finding, reported without reading it. With a `budget` shared by the calls of one scan, the file is
    walked within what is left of it (a spent one is a "scan-budget" error finding, the file unread), and a
    file identical to one already scanned under that budget gets that file's results under its own name.
    """
    root = Path(folder).resolve()
    acc = _FileScan(PurePosixPath(relative_file.replace(os.sep, "/")).as_posix(), root, tuple(link_roots))
    try:
        handle = safe_files.open_regular(root, acc.file, acc.link_roots)
    except FileNotFoundError:
        acc.add(None, "", "error", "missing or a dangling symlink")
        return acc.result()
    except (OSError, ValueError) as exc:  # UnsafeFileError is a ValueError
        acc.add(None, "", "error", str(exc) if isinstance(exc, ValueError) else f"cannot open: {exc.strerror}")
        return acc.result()
    with handle:
        stat = os.fstat(handle.fileno())
        size = stat.st_size
        key: tuple[Any, ...] | None = None
        if budget is not None:
            spent = budget.spent()
            if spent:
                acc.add(None, "", "error", f"not scanned: {spent}", kind="scan-budget")
                return acc.result()
            key = _identity(handle, stat, root, acc.file, budget)
            if key is not None and key in budget.seen:
                return _as_duplicate(acc.file, *budget.seen[key])
            acc.opcodes_left = min(acc.opcodes_left, budget.opcodes_left)
            acc.deadline = min(acc.deadline, budget.deadline)
        source = Source(member=None, name=PurePosixPath(acc.file).name, size=size, open=lambda: cast(IO[bytes], _Borrowed(handle)), seekable=True)
        try:
            acc.formats = _interpret(acc, source)
        except Exception as exc:  # untrusted bytes: any failure fails this file closed and the scan goes on
            acc.add(None, "", "error", f"scan failed: {type(exc).__name__}: {exc}")
    result = acc.result()
    if budget is not None:
        budget.opcodes_left -= acc.opcodes_used
        spent = budget.spent()
        if spent and any(f.kind == "scan-budget" for f in result[1]):
            # The file ran into what was left of the scan-wide budget: say which budget, not only the file's.
            acc.add(None, "", "error", f"scan stopped: {spent}", kind="scan-budget")
            result = acc.result()
        if key is not None:
            budget.seen[key] = result
    return result


def _identity(handle: IO[bytes], stat: os.stat_result, root: Path, file: str, budget: ScanBudget) -> tuple[Any, ...] | None:
    """An exact identity of the file's content for this scan, or None (too large to hash in time).

    The suffixes, root and parent folder are part of it: they change how a file is read (a `.pkl` is a strict
    pickle, an ONNX file's external data is resolved from its folder), so only copies that would be read
    the same way share results. The hash reads the handle from the start, bounded by the scan deadline.
    """
    path = PurePosixPath(file)
    # A chat-template source (tokenizer_config.json, *.jinja...) is judged by its name too.
    naming = (tuple(path.suffixes), str(root), path.parent.as_posix(), scan_templates.is_template_file(file) and path.name)
    if stat.st_size > MAX_DEDUPE_HASH_BYTES:
        return ("inode", stat.st_dev, stat.st_ino, stat.st_size, *naming)
    handle.seek(0)
    streamed = sha256_stream(handle, 1 << 20, max_bytes=stat.st_size, on_chunk=lambda _: time.monotonic() <= budget.deadline)
    if streamed.stopped:
        return None
    handle.seek(0)
    return ("sha256", streamed.bytes_read, streamed.hexdigest, *naming)


def _as_duplicate(file: str, scanned: ScannedFile, findings: list[ScanFinding]) -> tuple[ScannedFile, list[ScanFinding]]:
    copy = ScannedFile(file, scanned.format, scanned.pickles_scanned, list(scanned.globals), list(scanned.formats))
    return copy, [replace(finding, file=file) for finding in findings]


# ---------------------------------------------------------------------------------------------
# Paths and handles
# ---------------------------------------------------------------------------------------------


def _list_files(root: Path) -> list[str]:
    """Every non-directory under root, and every symlink (in-folder ones are scanned, others reported)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            full = here / name
            if full.is_symlink() and full.is_dir() and _inside(root, full.resolve()):
                continue  # the folder it points to is walked on its own; following it could loop
            found.append(full.relative_to(root).as_posix())
    return sorted(found)


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


class _Borrowed(io.RawIOBase):
    """The one open handle of a file, rewound for each interpretation; closing it leaves the handle open."""

    def __init__(self, handle: IO[bytes]) -> None:
        super().__init__()
        self._handle = handle
        handle.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        return self._handle.read(-1 if size is None else size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._handle.readline(-1 if size is None else size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


# ---------------------------------------------------------------------------------------------
# Per-file state
# ---------------------------------------------------------------------------------------------


@dataclass
class _FileScan:
    """Findings and facts for one top-level file, accumulated over its interpretations and members."""

    file: str
    root: Path
    link_roots: tuple[Path, ...] = ()  # where links may lead besides root (safe_files.resolve_inside)
    formats: list[str] = field(default_factory=list)
    pickles: int = 0
    opcodes_left: int = field(default_factory=lambda: MAX_OPCODES_PER_FILE)
    opcodes_used: int = 0  # every opcode walked for this file, its members and interpretations together
    inflated_left: int = field(default_factory=lambda: scan_archives.MAX_FILE_INFLATED_BYTES)
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS_PER_FILE)
    torchscript: bool = False  # inside a TorchScript archive: __torch__.* names are its compiled types
    globals: set[str] = field(default_factory=set)
    findings: dict[tuple[str | None, str, str, str], ScanFinding] = field(default_factory=dict)

    def add(self, member: str | None, global_name: str, severity: str, detail: str, kind: str = "") -> None:
        # One finding per global per member: a name used a thousand times is one problem.
        key = (member, global_name, severity, detail if not global_name else "")
        if not kind and severity == "error" and "budget" in detail:
            kind = "scan-budget"
        self.findings.setdefault(key, ScanFinding(self.file, member, global_name, severity, detail, kind))

    def result(self) -> tuple[ScannedFile, list[ScanFinding]]:
        formats = sorted(dict.fromkeys(self.formats), key=lambda f: _FORMAT_ORDER.index(f) if f in _FORMAT_ORDER else 99)
        main = formats[0] if formats else "other"
        scanned = ScannedFile(self.file, main, self.pickles, sorted(self.globals), formats or ["other"])
        return scanned, list(self.findings.values())


# ---------------------------------------------------------------------------------------------
# Interpretations
# ---------------------------------------------------------------------------------------------


def _interpret(acc: _FileScan, source: Source) -> list[str]:
    """Every interpretation of one stream that applies, each scanned; returns their format names."""
    if source.storage_blob:
        # A torch zip's tensor records: torch.load reads them as raw bytes and no other loader opens them,
        # so tensor values that happen to spell a pickle are data, not a payload.
        return ["storage"]
    with source.open() as raw:
        head = raw.read(_HEAD_BYTES)
        tail = head
        if source.seekable and source.size > _HEAD_BYTES:
            raw.seek(max(0, source.size - _TAIL_BYTES))
            tail = raw.read(_TAIL_BYTES)
    formats: list[str] = []
    structured = False  # a format that a loader would read instead of a pickle: then a pickle parse failure is no error

    zip_start = head.startswith(scan_formats.ZIP_START_MAGICS)
    if zip_start or (source.seekable and scan_formats.ZIP_END_MAGIC in tail):
        kinds: list[str] = []
        previous = acc.torchscript
        try:
            if scan_archives.scan_zip(acc, source, _interpret, lambda a, facts, archive: _on_zip(a, facts, archive, source, kinds), zip_start):
                formats.extend(kinds or ["zip"])
                structured = True
        finally:
            acc.torchscript = previous
    if head.startswith(scan_formats.NPY_MAGIC):
        structured = True
        formats.append("numpy")
        _scan_npy(acc, source)
    if scan_formats.looks_like_safetensors(head, source.size):
        structured = True
        formats.append("safetensors")
    if scan_archives.is_tar(head):
        structured = True
        formats.append(_scan_tar(acc, source))
    compression = scan_formats.compression_of(head)
    if compression and source.depth < scan_archives.MAX_ZIP_DEPTH:
        inner = _scan_compressed(acc, source, compression, report_failure=not structured)
        if inner is not None:
            structured = True
            formats.extend(inner)
    if head.startswith(scan_formats.GGUF_MAGIC):
        structured = True
        formats.append("gguf")
        _scan_gguf(acc, source)
    if source.member is None and scan_templates.is_template_file(acc.file):  # tokenizer/processor configs, *.jinja
        formats.extend(scan_templates.scan_template_file(acc, source, acc.file))
    if head.startswith(scan_formats.HDF5_MAGIC):
        structured = True
        formats.append("hdf5")
        _scan_hdf5(acc, source)
    if source.suffix == ".onnx":
        structured = True
        formats.append("onnx")
        _scan_onnx(acc, source)
    if head and head[0] in _PICKLE_OPCODE_BYTES:
        proto_magic = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
        strict = not structured and (source.suffix in PICKLE_SUFFIXES or proto_magic)
        kind = _scan_pickles(acc, source, start=0, strict=strict)
        if kind:
            formats.append(kind)
    return formats


def _on_zip(acc: _FileScan, facts: ZipFacts, archive: RelaxedZipFile, source: Source, kinds: list[str]) -> None:
    if facts.torchscript:
        acc.torchscript = True
        kinds.append("torchscript")
    if facts.keras:
        kinds.append("keras")
        _scan_keras_config(acc, archive, source)


def _scan_keras_config(acc: _FileScan, archive: RelaxedZipFile, source: Source) -> None:
    label = "config.json" if source.member is None else f"{source.member}!config.json"
    try:
        info = archive.getinfo("config.json")
        if info.file_size > MAX_CONFIG_JSON_BYTES:
            raise FormatError(f"config.json of {info.file_size} bytes is over the {MAX_CONFIG_JSON_BYTES}-byte bound")
        with archive.open(info) as member:
            data = member.read(MAX_CONFIG_JSON_BYTES + 1)
        config = safe_files.loads_json(data[:MAX_CONFIG_JSON_BYTES], label)
    except Exception as exc:
        acc.add(label, "", "error", f"Keras config not readable: {type(exc).__name__}: {exc}")
        return
    for severity, name, detail in scan_formats.keras_config_findings(config):
        acc.add(label, name, severity, detail, kind="code-in-config" if severity != "error" else "")


def _scan_npy(acc: _FileScan, source: Source) -> None:
    with source.open() as raw:
        reader = BoundedReader(raw, MAX_NPY_HEADER_BYTES + 64)
        try:
            has_object = scan_formats.npy_has_objects(cast(IO[bytes], reader), MAX_NPY_HEADER_BYTES)  # read/seek/tell suffice
        except FormatError as exc:
            acc.add(source.member, "", "error", str(exc))
            return
        start = reader.tell()
    if has_object:  # np.save pickles object arrays right after the header; np.load reads that one pickle
        _scan_pickles(acc, source, start=start, strict=True, single=True)


def _scan_tar(acc: _FileScan, source: Source) -> str:
    kinds: list[str] = []

    def dispatch(acc_: _FileScan, member: Source) -> list[str]:
        base = member.name.rsplit("/", 1)[-1]
        if base in ("storages", "tensors"):
            kinds.append("torch-legacy-tar")
            _scan_legacy_records(acc_, member, base)
            return ["torch-legacy-tar"]
        if base in ("pickle", "sys_info"):
            _scan_pickles(acc_, member, start=0, strict=True)
            return ["pickle"]
        return _interpret(acc_, member)

    scan_archives.scan_tar(acc, source, dispatch)
    return "torch-legacy-tar" if kinds else "tar"


def _scan_legacy_records(acc: _FileScan, source: Source, kind: str) -> None:
    """The legacy tar's `storages` and `tensors` members: a count, then pickles with raw bytes between them.

    Layout from torch/serialization.py (legacy_load): storages = count, then per storage a pickle
    (key, location, storage type), an int64 element count and the raw elements; then a pickle of views.
    tensors = count, then per tensor a pickle (key, storage id, type) and 4+4+16*ndim+8 bytes of shape.
    Each pickle is scanned; raw bytes are skipped by their declared lengths.
    """
    starts: list[int] = []
    with source.open() as raw:
        reader = BoundedReader(raw, MAX_STREAM_BYTES)
        try:
            count = _small_int_pickle(reader)
            if count is None or not 0 <= count <= MAX_LEGACY_STORAGES:
                raise FormatError(f"{kind} does not start with a record count")
            for _ in range(count):
                starts.append(reader.tell())
                walk = _walk(reader, acc, single=True)
                if walk.error or walk.pickles != 1:
                    break  # the scan of this start reports it
                if kind == "storages":
                    element = next((_STORAGE_ELEMENT_BYTES.get(name) for module, name in walk.globals if module == "torch"), None)
                    if element is None:
                        raise FormatError("a storage record without a known storage type")
                    elements = int.from_bytes(_exact(reader, 8), "little", signed=True)
                    _skip(reader, elements * element)
                else:
                    ndim = int.from_bytes(_exact(reader, 4), "little", signed=True)
                    if not 0 <= ndim <= 64:
                        raise FormatError(f"a tensor record with {ndim} dimensions")
                    _skip(reader, 4 + 16 * ndim + 8)
            else:
                if kind == "storages":
                    starts.append(reader.tell())  # the storage views pickle
        except (FormatError, scan_pickle.LimitExceeded, ValueError) as exc:
            acc.add(source.member, "", "error", f"legacy torch {kind} member: {exc}")
    for start in starts:
        _scan_pickles(acc, source, start=start, strict=True, single=True)


def _small_int_pickle(reader: BoundedReader) -> int | None:
    """The value of a pickle holding one int (torch's record counts), decoded from its opcodes, never loaded."""
    value = None
    for opcode, arg, _pos in pickletools.genops(cast(IO[bytes], reader)):  # genops only reads
        if opcode.name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4") and isinstance(arg, int):
            value = arg
        elif opcode.name not in ("PROTO", "FRAME", "STOP"):
            return None
    return value


def _exact(reader: BoundedReader, n: int) -> bytes:
    data = reader.read(n)
    if len(data) != n:
        raise FormatError("truncated record")
    return data


def _skip(reader: BoundedReader, n: int) -> None:
    if n < 0:
        raise FormatError("a negative record length")
    while n > 0:
        chunk = reader.read(min(n, 1 << 20))
        if not chunk:
            raise FormatError("truncated raw data")
        n -= len(chunk)


def _scan_compressed(acc: _FileScan, source: Source, kind: str, report_failure: bool) -> list[str] | None:
    """A stream compressed the way joblib writes it: decompress (streamed, budgeted) and interpret what is inside.

    Returns the inner formats (with "compressed-<kind>" first), or None if the bytes do not decompress;
    that is an error only for a pickle-named file that no other reading explains (`report_failure`).
    """

    def opener() -> IO[bytes]:
        return scan_formats.decompressing_stream(
            source.open(),
            kind,
            max_bytes=scan_archives.MAX_MEMBER_BYTES,
            max_ratio=scan_archives.MAX_RATIO,
            ratio_floor=scan_archives.RATIO_FLOOR_BYTES,
        )

    try:
        with opener() as probe:
            probe.read(_HEAD_BYTES)
    except Exception as exc:  # not really this compressor
        if report_failure and source.suffix in PICKLE_SUFFIXES:
            acc.add(source.member, "", "error", f"{kind}-compressed stream does not decompress: {type(exc).__name__}")
            return []
        return None
    label = f"{source.member or ''}[{kind}]"
    inner = Source(label, PurePosixPath(source.name).stem or source.name, scan_archives.MAX_MEMBER_BYTES, opener, seekable=False, depth=source.depth + 1)
    inner_formats = _interpret(acc, inner)
    if not inner_formats and source.suffix in PICKLE_SUFFIXES:
        # joblib.load reads a pickle from any compressed file it recognizes.
        _scan_pickles(acc, inner, start=0, strict=True)
    return [f"compressed-{kind}", *inner_formats]


def _scan_gguf(acc: _FileScan, source: Source) -> None:
    try:
        with source.open() as raw:
            facts = scan_formats.read_gguf(io.BufferedReader(raw) if isinstance(raw, io.RawIOBase) else raw)
    except FormatError as exc:
        acc.add(source.member, "", "error", f"malformed GGUF: {exc}")
        return
    for key, template in facts.chat_templates.items():
        scan_templates.report_template(acc, source.member, key, template)


def _scan_hdf5(acc: _FileScan, source: Source) -> None:
    if source.seekable:
        with source.open() as raw:
            findings = list(scan_formats.hdf5_keras_findings(raw, source.size, deadline=acc.deadline))
    else:
        with source.open() as raw:
            data = raw.read(MAX_ONNX_IN_MEMORY_BYTES + 1)
        if len(data) > MAX_ONNX_IN_MEMORY_BYTES:
            # Too large to hold (a Keras archive's weights): the byte search alone, streamed.
            del data
            with source.open() as raw:
                findings = list(scan_formats.hdf5_lambda_names(raw, deadline=acc.deadline))
        else:
            findings = list(scan_formats.hdf5_keras_findings(io.BytesIO(data), len(data), deadline=acc.deadline))
    for severity, name, detail in findings:
        acc.add(source.member, name, severity, detail, kind="code-in-config" if severity != "error" else "")


def _scan_onnx(acc: _FileScan, source: Source) -> None:
    try:
        if source.seekable:
            with source.open() as raw:
                locations = scan_formats.onnx_external_locations(raw, source.size)
        else:
            with source.open() as raw:
                data = raw.read(MAX_ONNX_IN_MEMORY_BYTES + 1)
            if len(data) > MAX_ONNX_IN_MEMORY_BYTES:
                raise FormatError(f"an ONNX member over the {MAX_ONNX_IN_MEMORY_BYTES}-byte in-memory bound")
            locations = scan_formats.onnx_external_locations(io.BytesIO(data), len(data))
    except FormatError as exc:
        acc.add(source.member, "", "error", f"malformed ONNX: {exc}")
        return
    folder = PurePosixPath(acc.file).parent
    for location in dict.fromkeys(locations):
        problem = scan_formats.unsafe_location(location)
        if problem is None and source.member is None:
            try:  # a relative location may still leave the folder through a symlink
                safe_files.resolve_inside(acc.root, (folder / location).as_posix(), acc.link_roots)
            except ValueError as exc:
                problem = str(exc)
        if problem:
            acc.add(
                source.member, f"external_data:{location}"[:200], "dangerous",
                f"ONNX external data reads outside the model folder: {problem}", kind="external-data-escape",
            )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Pickles
# ---------------------------------------------------------------------------------------------


def _is_torchscript_type(name: tuple[str, str]) -> bool:
    checker = getattr(scan_pickle, "is_torchscript_type", None)
    if checker is not None:
        return bool(checker(name))
    module = name[0]
    return module == "__torch__" or module.startswith("__torch__.")


def _torchscript_safe(name: tuple[str, str]) -> bool:
    """Names that torch.jit.load's own (C++) unpickler resolves without importing Python.

    Compiled class types and its list/tensor builders (torch/csrc/jit/serialization/unpickler.cpp). Only
    inside TorchScript archives.
    """
    return _is_torchscript_type(name) or name in _TORCHSCRIPT_BUILTINS


def _scan_pickles(acc: _FileScan, source: Source, start: int, strict: bool, single: bool = False) -> str | None:
    """Walk the pickles from byte `start`, get picklescan's opinion on the same bytes, record findings.

    `strict` is for streams that a loader would open as pickles (by name or by protocol header):
    any parse failure is an error. Other streams merely begin with an opcode byte (text often does),
    so they count as pickles only if a whole pickle parses, a scan bound was hit, a known dangerous
    global is imported, or a global is called before the stream breaks (a loader runs that call).
    Returns "pickle" or "torch-legacy" if the stream counts as a pickle, else None.
    """
    if acc.opcodes_left <= 0 and not strict and any(f.severity == "error" for f in acc.findings.values()):
        return None  # the budget is spent and already reported; a speculative reading adds nothing
    with source.open() as raw:
        reader = BoundedReader(raw, MAX_STREAM_BYTES)
        _skip_to(reader, start)
        walk = _walk(reader, acc, single=single)
        stream_bytes = reader.tell() - start
    severity = global_severity(walk.globals)
    if acc.torchscript:
        severity.update({g: "safe" for g in severity if _torchscript_safe(g)})
    dangerous = {g for g, level in severity.items() if level == "dangerous"}
    if not strict and not _counts_as_pickle(walk, dangerous, source, start):
        return None
    if strict and walk.pickles == 0 and walk.error is None:
        walk.error = "named like a pickle but empty"

    stream_id = acc.file if source.member is None else f"{acc.file}:{source.member}"
    # The pickle that broke is included (picklescan reads what precedes the break) unless a scan bound
    # stopped us: then it is exactly the input that must not be walked again.
    scanned = walk.pickles + (1 if walk.error and not walk.limit_hit else 0)
    theirs_dangerous: set[tuple[str, str]] = set()
    picklescan_error = None
    # picklescan reads the same linear stream as our walk (a fuzz test compares the two decoders) and its
    # denylist is already applied to every global we name, so its own parse is a second opinion kept for
    # the streams where it is cheap: it lists every opcode in memory (34 s and ~480 MiB for 5M opcodes).
    if scanned and not walk.limit_hit and walk.opcodes <= MAX_OPCODES_SECOND_OPINION and stream_bytes <= MAX_BYTES_SECOND_OPINION:
        with source.open() as raw:
            second = BoundedReader(raw, MAX_STREAM_BYTES)
            _skip_to(second, start)
            theirs_dangerous, picklescan_error = picklescan_dangerous_globals(second, stream_id, scanned)

    acc.pickles += walk.pickles
    acc.globals.update(format_global(g) for g in walk.globals)
    for global_name in dict.fromkeys(walk.globals):
        level = severity.get(global_name, "unknown")
        if level == "safe" and (global_name not in theirs_dangerous or acc.torchscript and _torchscript_safe(global_name)):
            continue
        name = format_global(global_name)
        if level == "dangerous" or global_name in theirs_dangerous:
            acc.add(source.member, name, "dangerous", f"{name} is a code-execution global (denylist)")
        else:
            acc.add(source.member, name, "unknown", f"{name} is not on the weights-only allowlist")
    for global_name in sorted(theirs_dangerous - set(walk.globals)):
        name = format_global(global_name)
        acc.add(source.member, name, "dangerous", f"picklescan flags {name} (its parser's reading of the stream)")
    for call in walk.dynamic_calls:
        acc.add(
            source.member,
            f"<{call.opcode} on a non-global>",
            "unknown",
            f"{call.opcode} at byte {call.position} calls a value that is not an allowlisted global",
        )
    for problem in (walk.error, picklescan_error):
        if problem:
            where = f" (pickle from byte {start})" if start else ""
            acc.add(source.member, "", "error", problem + where)
    _report_differential(acc, source, walk)
    return "torch-legacy" if walk.torch_legacy else "pickle"


def _report_differential(acc: _FileScan, source: Source, walk: PickleWalk) -> None:
    """A stream whose FRAMEs split an opcode: pickle.py and picklescan read it one way, the C unpickler another."""
    differential = walk.frame_differential
    if differential:
        hidden = ", ".join(format_global(g) for g in walk.differential_globals[:5])
        acc.add(
            source.member,
            "<frame boundary differential>",
            "dangerous",
            f"{differential}; unpicklers disagree on this stream" + (f" (only the C unpickler imports {hidden})" if hidden else ""),
            kind="parser-differential",
        )


def _walk(reader: BoundedReader, acc: _FileScan, single: bool) -> PickleWalk:
    """walk_pickles under the file's opcode budget and deadline."""
    limit = 1 if single else MAX_PICKLES_PER_STREAM
    walk = walk_pickles(reader, max_pickles=limit, max_opcodes=acc.opcodes_left, single=single, deadline=acc.deadline)
    acc.opcodes_left = max(0, acc.opcodes_left - walk.opcodes)
    acc.opcodes_used += walk.opcodes
    return walk


def _skip_to(reader: BoundedReader, start: int) -> None:
    while reader.tell() < start and reader.read(min(start - reader.tell(), 1 << 20)):
        pass


def _counts_as_pickle(walk: PickleWalk, dangerous: set[tuple[str, str]], source: Source, start: int) -> bool:
    # "N.B. ..." parses as NONE, STOP and then fails: harmless text. A pickle that parses cleanly, a
    # stream that spent a scan bound (it must not pass unscanned), or one a loader would act on (it
    # imports and calls, or imports a denylisted global, before it breaks) is treated as the pickle it is.
    if dangerous or walk.limit_hit or (walk.pickles > 0 and walk.error is None):
        return True
    would_act = getattr(scan_pickle, "loader_would_act", None)
    if would_act is not None:
        importable = getattr(scan_pickle, "is_importable_global", lambda g: True)
        if walk.frame_differential and not walk.pickles and not any(importable(g) for g in walk.globals):
            return False  # binary that happens to start with FRAME: no unpickler would get anywhere with it
        return bool(would_act(walk))
    if walk.pickles > 0 and (bool(walk.globals) or bool(walk.dynamic_calls)):
        return True
    if walk.globals or walk.dynamic_calls:
        # Protocol 0 without PROTO or STOP: pickle.load runs each REDUCE as it reads it, before failing
        # at the garbage. Text rarely makes a GLOBAL followed by a call; look for that order.
        return _calls_before_break(source, start)
    return False


def _calls_before_break(source: Source, start: int, max_ops: int = 100_000) -> bool:
    with source.open() as raw:
        reader = BoundedReader(raw, MAX_STREAM_BYTES)
        _skip_to(reader, start)
        seen_global = False
        try:
            for count, (opcode, _arg, _pos) in enumerate(pickletools.genops(cast(IO[bytes], reader))):
                if count > max_ops:
                    return True
                if opcode.name in ("GLOBAL", "STACK_GLOBAL", "INST"):
                    seen_global = True
                if opcode.name in _CALL_OPCODES and seen_global:
                    return True
        except Exception:  # the break itself: what came before is what counts
            pass
    return False


@probe("scan", evidence=ScanEvidence)
def scan_probe(context: ProbeContext) -> ScanEvidence:
    """The pickle, archive and template scan of every file in the candidate's folder (links followed into its link roots only)."""
    return scan_folder(context.candidate.path, link_roots=context.candidate.link_roots)

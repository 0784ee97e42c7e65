"""The scan probe: a static serialization-safety scan of every file in an untrusted model folder.

Files are recognized by content, not by name: raw pickles, legacy torch checkpoints (five pickles
then raw storage bytes), zip archives such as torch's checkpoint format (every member that is a
pickle, zips within zips), and numpy .npy files with object dtype (a pickle after the header).
Every pickle is judged twice without being loaded: picklescan (the scanner the Hugging Face Hub
runs) and our own opcode walk against an allowlist, as torch's weights_only loader does. A global
that is not on the allowlist fails the scan: "dangerous" when picklescan's denylist knows it,
"unknown" otherwise. A file that claims to be a pickle but does not parse is an "error".

Never unpickles, never imports torch or numpy.
"""

from __future__ import annotations

import ast
import io
import os
import pickletools
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import IO, Any

from picklescan.relaxed_zipfile import RelaxedZipFile

from .scan_pickle import (
    ALLOWED_GLOBALS,
    BoundedReader,
    PickleWalk,
    classify_with_picklescan,
    format_global,
    picklescan_dangerous_globals,
    walk_pickles,
)

# Bounds: an untrusted folder must not be able to make the scan use unbounded memory, disk or time.
MAX_STREAM_BYTES = 2 << 30  # bytes read from one pickle stream or one decompressed zip member
MAX_ZIP_MEMBERS = 100_000
MAX_ZIP_DEPTH = 3  # zips inside zips inside zips, no deeper
MAX_PICKLES_PER_STREAM = 10_000
# Opcodes walked per top-level file, all members together. A 5,000-tensor state dict is ~100k;
# the bound keeps a hostile file to seconds of CPU and picklescan (which lists every opcode) to ~1 GB.
MAX_OPCODES_PER_FILE = 5_000_000
MAX_NPY_HEADER_BYTES = 1 << 20
SPOOL_MEMORY_BYTES = 64 << 20  # a nested zip is copied to memory up to this size, then to a temporary file
_HEAD_BYTES = 264  # enough for every magic we test, including tar's "ustar" at offset 257

# Names that loaders (torch.load, pickle.load, joblib.load) open as pickles: for these a parse failure
# is an error, not a sign that the file is something else.
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib"})
_PICKLE_OPCODE_BYTES = frozenset(op.code.encode("latin-1")[0] for op in pickletools.opcodes)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class ScanFinding:
    file: str  # path relative to the model folder, posix
    member: str | None  # zip member name ("outer.zip!inner/data.pkl" inside nested zips), None for a raw file
    global_name: str  # "module.name", or "" for parse and access errors
    severity: str  # "dangerous" | "unknown" | "error"
    detail: str  # one line


@dataclass
class ScannedFile:
    file: str
    format: str  # "pickle" | "zip" | "torch-legacy" | "numpy" | "safetensors" | "other"
    pickles_scanned: int  # pickles parsed to their STOP opcode in this file, zip members included
    globals: list[str]  # sorted unique globals seen, allowed ones included


@dataclass
class ScanEvidence:
    scanner: str
    files: list[ScannedFile]
    findings: list[ScanFinding]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanner": self.scanner,
            "files": [asdict(scanned) for scanned in self.files],
            "findings": [asdict(finding) for finding in self.findings],
            "flagged_files": self.flagged_files,
        }

    @property
    def flagged_files(self) -> list[str]:
        return sorted({finding.file for finding in self.findings})


def scanner_description() -> str:
    try:
        picklescan_version = version("picklescan")
    except PackageNotFoundError:  # pragma: no cover - picklescan is a dependency
        picklescan_version = "unknown"
    return f"picklescan {picklescan_version} + conformance opcode allowlist"


def scan_folder(folder: Path, relative_files: list[str] | None = None) -> ScanEvidence:
    """Scan the named files, or every file under `folder`; symlinks leading outside it are reported, never read."""
    folder = Path(folder)
    names = relative_files if relative_files is not None else _list_files(folder.resolve())
    files: list[ScannedFile] = []
    findings: list[ScanFinding] = []
    for name in names:
        scanned, file_findings = scan_file(folder, name)
        files.append(scanned)
        findings.extend(file_findings)
    return ScanEvidence(scanner=scanner_description(), files=files, findings=findings)


def scan_file(folder: Path, relative_file: str) -> tuple[ScannedFile, list[ScanFinding]]:
    root = Path(folder).resolve()
    acc = _FileScan(PurePosixPath(relative_file.replace(os.sep, "/")).as_posix())
    path, problem = _checked_path(root, acc.file)
    if problem is not None or path is None:
        acc.add(None, "", "error", problem or "unreadable path")
        return acc.result()
    source = _Source(
        member=None,
        name=path.name,
        size=path.stat().st_size,
        open=lambda: open(path, "rb"),
        is_real_file=True,
    )
    try:
        acc.format = _scan_source(acc, source, zip_depth=0)
    except Exception as exc:  # untrusted bytes: any failure fails this file closed and the scan goes on
        acc.add(None, "", "error", f"scan failed: {type(exc).__name__}: {exc}")
    return acc.result()


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


def _list_files(root: Path) -> list[str]:
    """Every regular file under root, and every symlink (in-folder ones are scanned, others reported)."""
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


def _checked_path(root: Path, relative: str) -> tuple[Path | None, str | None]:
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts:
        return None, "path is not inside the model folder"
    path = root / pure
    resolved = Path(os.path.realpath(path))  # reads link targets without opening anything
    if not _inside(root, resolved):
        return None, f"symlink resolves outside the model folder ({resolved}); not followed"
    try:
        mode = resolved.stat().st_mode
    except OSError as exc:
        return None, f"cannot stat: {exc.strerror}"
    if not stat.S_ISREG(mode):
        return None, "not a regular file (a pipe or device is never opened)"
    return resolved, None


# ---------------------------------------------------------------------------------------------
# Content dispatch
# ---------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """One byte stream to classify: a file on disk or a zip member."""

    member: str | None
    name: str
    size: int
    open: Callable[[], IO[bytes]]
    is_real_file: bool
    storage_blob: bool = False  # a torch zip's raw tensor bytes: torch never unpickles these

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix.lower()


@dataclass
class _FileScan:
    """Findings and facts for one top-level file, accumulated over its members."""

    file: str
    format: str = "other"
    pickles: int = 0
    opcodes_left: int = field(default_factory=lambda: MAX_OPCODES_PER_FILE)
    globals: set[str] = field(default_factory=set)
    findings: dict[tuple[str | None, str, str, str], ScanFinding] = field(default_factory=dict)

    def add(self, member: str | None, global_name: str, severity: str, detail: str) -> None:
        # One finding per global per member: a name used a thousand times is one problem.
        key = (member, global_name, severity, detail if not global_name else "")
        self.findings.setdefault(key, ScanFinding(self.file, member, global_name, severity, detail))

    def result(self) -> tuple[ScannedFile, list[ScanFinding]]:
        scanned = ScannedFile(self.file, self.format, self.pickles, sorted(self.globals))
        return scanned, list(self.findings.values())


def _scan_source(acc: _FileScan, source: _Source, zip_depth: int) -> str:
    with source.open() as raw:
        reader = BoundedReader(raw, MAX_STREAM_BYTES)
        head = reader.peek(_HEAD_BYTES)
        if head.startswith(_ZIP_MAGICS):
            return _scan_zip(acc, source, zip_depth)
        if head.startswith(_NPY_MAGIC):
            return _scan_npy(acc, source, reader)
        if _looks_like_safetensors(head, source.size):
            return "safetensors"
        if head[257:262] == b"ustar":
            # torch.load still accepts the pre-2018 tar checkpoint format; we do not unpack tars.
            acc.add(source.member, "", "error", "tar archive (legacy torch tar checkpoint?) cannot be scanned")
            return "other"
        proto_magic = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
        strict = source.suffix in PICKLE_SUFFIXES or (proto_magic and not source.storage_blob)
        if not strict and not (head and head[0] in _PICKLE_OPCODE_BYTES):
            return "other"
        return _scan_pickles(acc, source, reader, start=0, strict=strict)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # 8-byte little-endian header length, then a JSON object; the static probe validates the rest.
    if len(head) < 9:
        return False
    header_bytes = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 8 + header_bytes <= size


def _scan_pickles(acc: _FileScan, source: _Source, reader: BoundedReader, start: int, strict: bool, single: bool = False) -> str:
    """Walk the pickles from `start`, get picklescan's opinion on the same bytes, and record findings.

    `strict` is for streams that a loader would open as pickles (by name or by protocol header):
    any parse failure is an error. Other streams merely begin with an opcode byte (text often does),
    so they count as pickles only if a whole pickle parses, or if what parsed imports a known
    dangerous global.
    """
    walk = walk_pickles(reader, max_pickles=MAX_PICKLES_PER_STREAM, max_opcodes=acc.opcodes_left, single=single)
    acc.opcodes_left = max(0, acc.opcodes_left - walk.opcodes)
    ours_dangerous = classify_with_picklescan(g for g in walk.globals if g not in ALLOWED_GLOBALS)
    if not strict and not _counts_as_pickle(walk, ours_dangerous):
        return "other"
    if strict and walk.pickles == 0 and walk.error is None:
        walk.error = "named like a pickle but empty"

    stream_id = acc.file if source.member is None else f"{acc.file}:{source.member}"
    with source.open() as raw:
        second = BoundedReader(raw, MAX_STREAM_BYTES)
        while second.tell() < start and second.read(min(start - second.tell(), 1 << 20)):
            pass
        # The pickle that broke is included (picklescan reads what precedes the break) unless a scan
        # bound stopped us: then it is exactly the input that must not be walked again.
        scanned = walk.pickles + (1 if walk.error and not walk.limit_hit else 0)
        theirs_dangerous, picklescan_error = picklescan_dangerous_globals(second, stream_id, scanned)

    acc.pickles += walk.pickles
    acc.globals.update(format_global(g) for g in walk.globals)
    for global_name in dict.fromkeys(walk.globals):
        if global_name in ALLOWED_GLOBALS:
            continue
        name = format_global(global_name)
        if global_name in ours_dangerous or global_name in theirs_dangerous:
            acc.add(source.member, name, "dangerous", f"{name} is a code-execution global (picklescan denylist)")
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
            acc.add(source.member, "", "error", problem)
    return "torch-legacy" if walk.torch_legacy else "pickle"


def _counts_as_pickle(walk: PickleWalk, dangerous: set[tuple[str, str]]) -> bool:
    # "N.B. ..." parses as NONE, STOP and then fails: harmless text. A pickle that parses cleanly,
    # or anything importing a denylisted global before it breaks, is treated as the pickle it is.
    if dangerous:
        return True
    return walk.pickles > 0 and (walk.error is None or bool(walk.globals) or bool(walk.dynamic_calls))


def _scan_npy(acc: _FileScan, source: _Source, reader: BoundedReader) -> str:
    try:
        has_object = _read_npy_header(reader)
    except ValueError as exc:
        acc.add(source.member, "", "error", f"bad .npy header: {exc}")
        return "numpy"
    if has_object:  # np.save pickles object arrays right after the header; np.load reads that one pickle
        _scan_pickles(acc, source, reader, start=reader.tell(), strict=True, single=True)
    return "numpy"


def _read_npy_header(reader: BoundedReader) -> bool:
    """Parse an .npy header without numpy; True if its dtype holds Python objects."""
    preamble = reader.read(8)
    major = preamble[6] if len(preamble) == 8 else 0
    if major not in (1, 2, 3):
        raise ValueError(f"unsupported format version {major}")
    length_field = reader.read(2 if major == 1 else 4)
    header_bytes = int.from_bytes(length_field, "little")
    if header_bytes > MAX_NPY_HEADER_BYTES:
        raise ValueError(f"header of {header_bytes} bytes is over the {MAX_NPY_HEADER_BYTES}-byte limit")
    raw = reader.read(header_bytes)
    if len(raw) != header_bytes:
        raise ValueError("truncated header")
    try:
        # literal_eval builds literals only; it never runs code (numpy's own loader does the same).
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        # Python 2 writers spelled shapes with long literals, (2L,); numpy's loader drops the L too.
        header = ast.literal_eval(re.sub(r"\b(\d+)L\b", r"\1", text))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"header is not a Python literal: {type(exc).__name__}") from exc
    if not isinstance(header, dict) or "descr" not in header:
        raise ValueError("header has no 'descr'")
    return _descr_has_object(header["descr"])


def _descr_has_object(descr: Any) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list):  # structured dtype: [(name, descr[, shape]), ...]
        return any(not isinstance(f, tuple) or len(f) < 2 or _descr_has_object(f[1]) for f in descr)
    return True  # a descr we cannot read is assumed to hold objects: the pickle parse then decides


# ---------------------------------------------------------------------------------------------
# Zip archives
# ---------------------------------------------------------------------------------------------


def _scan_zip(acc: _FileScan, source: _Source, zip_depth: int) -> str:
    if zip_depth >= MAX_ZIP_DEPTH:
        acc.add(source.member, "", "error", f"zip nested more than {MAX_ZIP_DEPTH} deep; not scanned")
        return "zip"
    # zipfile needs to seek; a member of a zip is copied out (bounded) rather than re-inflated on every seek.
    seekable = source.open() if source.is_real_file else _spooled_copy(source)
    with seekable as raw:
        try:
            # picklescan's relaxed reader skips the CRC and name checks that torch's own reader also skips,
            # so we see the same members torch.load would.
            archive = RelaxedZipFile(raw)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            acc.add(source.member, "", "error", f"unreadable zip archive: {exc}")
            return "zip"
        with archive:
            infos = archive.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                acc.add(source.member, "", "error", f"{len(infos)} zip members; only the first {MAX_ZIP_MEMBERS} scanned")
                infos = infos[:MAX_ZIP_MEMBERS]
            # torch zip checkpoints keep raw tensor bytes in <prefix>/data/<key> beside <prefix>/data.pkl.
            blob_prefixes = tuple(i.filename[: -len("data.pkl")] + "data/" for i in infos if i.filename.endswith("/data.pkl"))
            for info in infos:
                if info.is_dir():
                    continue
                label = info.filename if source.member is None else f"{source.member}!{info.filename}"
                member = _Source(
                    member=label,
                    name=info.filename,
                    size=info.file_size,
                    open=lambda info=info: archive.open(info),  # by ZipInfo: duplicate names are each scanned
                    is_real_file=False,
                    storage_blob=bool(blob_prefixes) and info.filename.startswith(blob_prefixes),
                )
                try:
                    _scan_source(acc, member, zip_depth + 1)
                except Exception as exc:  # encrypted, corrupt or oversized member: fail it, scan the rest
                    acc.add(label, "", "error", f"cannot read member: {type(exc).__name__}: {exc}")
    return "zip"


def _spooled_copy(source: _Source) -> IO[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
    try:
        with source.open() as raw:
            reader = BoundedReader(raw, MAX_STREAM_BYTES)
            while chunk := reader.read(1 << 20):
                spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0, io.SEEK_SET)
    return spool

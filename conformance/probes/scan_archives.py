"""Archives for the scan probe: zip members streamed under budgets, nested zips in memory, legacy torch tars.

Nothing is copied to disk. A zip member is read through zipfile's own streaming decompressor, wrapped in
a counter that enforces the budgets: bytes per member, bytes per top-level file (all members and nesting
levels together) and the compression ratio (past a floor, so small members are never refused). A member's
declared sizes are checked before it is opened, so a zip bomb is refused without inflating it. A zip
inside a zip is read into memory only up to MAX_NESTED_ZIP_BYTES.
"""

from __future__ import annotations

import io
import struct
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any, Protocol

from picklescan.relaxed_zipfile import RelaxedZipFile

from .scan_pickle import LimitExceeded

MAX_ZIP_MEMBERS = 100_000
MAX_ZIP_DEPTH = 3  # zips inside zips inside zips, no deeper
MAX_MEMBER_BYTES = 2 << 30  # decompressed bytes the scan reads from one compressed member
MAX_FILE_INFLATED_BYTES = 4 << 30  # decompressed bytes read from all compressed members of one top-level file
MAX_RATIO = 100  # decompressed:compressed; deflate reaches ~1032:1 only on degenerate (bomb-like) input
RATIO_FLOOR_BYTES = 8 << 20  # members that inflate to less than this are never refused for their ratio
MAX_NESTED_ZIP_BYTES = 64 << 20  # a zip inside a zip is held in memory up to this size, else not scanned
MAX_TAR_MEMBERS = 10_000
MAX_SECONDS_PER_FILE = 120.0  # wall time for one top-level file, checked between members


@dataclass
class Source:
    """One byte stream to interpret: a file on disk, a member of an archive, or a decompressed stream.

    `open()` returns a fresh stream from byte 0 each time (the file is re-read, a member re-inflated),
    so each interpretation reads independently. `seekable` streams can be read from the end too.
    """

    member: str | None
    name: str
    size: int
    open: Callable[[], IO[bytes]]
    seekable: bool
    storage_blob: bool = False  # a torch zip's raw tensor bytes: torch never unpickles these
    depth: int = 0  # archive nesting level

    @property
    def suffix(self) -> str:
        """The stream name's last suffix, lowercased (`.pkl`, `.bin`), or "" when it has none."""
        return PurePosixPath(self.name).suffix.lower()


class Accumulator(Protocol):
    """What the archive walkers need from the per-file scan state (scan._FileScan)."""

    inflated_left: int
    deadline: float

    def add(self, member: str | None, global_name: str, severity: str, detail: str, kind: str = "") -> None:
        """Record one finding (see scan.ScanFinding) against the member, or the file itself when `member` is None."""
        ...


Dispatch = Callable[[Any, Source], list[str]]


class BudgetedStream(io.RawIOBase):
    """Counts the bytes read through it and raises LimitExceeded, naming the budget, when one is spent."""

    def __init__(self, raw: IO[bytes], acc: Accumulator, label: str, compressed_size: int | None) -> None:
        """Wrap the member stream `raw` (named `label` in messages); `compressed_size` None for a stored member."""
        super().__init__()
        self._raw, self._acc, self._label = raw, acc, label
        self._compressed = compressed_size  # None: stored, no ratio and no per-file inflation budget
        self.count = 0

    def readable(self) -> bool:
        """Always True: a member stream is read, never written."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Read up to len(buffer) bytes into it; returns the count (0 at the end).

        Raises LimitExceeded when a compressed member passes the per-member bytes, the file's inflation
        budget or the compression-ratio budget.
        """
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        if self._compressed is not None:
            self._acc.inflated_left -= n
            if self.count > MAX_MEMBER_BYTES:
                raise LimitExceeded(f"{self._label} inflates past the {MAX_MEMBER_BYTES}-byte per-member budget")
            if self._acc.inflated_left < 0:
                raise LimitExceeded(f"the file's decompression budget of {MAX_FILE_INFLATED_BYTES} bytes is spent")
            if self.count > RATIO_FLOOR_BYTES and self.count > MAX_RATIO * max(1, self._compressed):
                raise LimitExceeded(f"{self._label} inflates past the {MAX_RATIO}:1 compression-ratio budget")
        return n

    def close(self) -> None:
        """Close the member stream underneath, then this one."""
        try:
            self._raw.close()
        finally:
            super().close()


def _budgeted(raw: IO[bytes], acc: Accumulator, label: str, compressed_size: int | None) -> IO[bytes]:
    return io.BufferedReader(BudgetedStream(raw, acc, label, compressed_size), buffer_size=1 << 16)


def declared_over_budget(info: zipfile.ZipInfo) -> str | None:
    """Why a member's declared sizes alone refuse it (a zip bomb), or None."""
    if info.compress_type == zipfile.ZIP_STORED:
        return None
    if info.file_size > MAX_MEMBER_BYTES:
        return f"declares {info.file_size} bytes inflated: over the {MAX_MEMBER_BYTES}-byte per-member budget"
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(1, info.compress_size):
        return (
            f"declares {info.file_size} bytes from {info.compress_size} compressed: over the {MAX_RATIO}:1 "
            "compression-ratio budget"
        )
    return None


@dataclass
class ZipFacts:
    """What a zip's member names say it is: its names, and whether it is a TorchScript or a Keras v3 archive."""

    names: list[str] = field(default_factory=list)
    torchscript: bool = False
    keras: bool = False


def zip_facts(infos: list[zipfile.ZipInfo], container_name: str) -> ZipFacts:
    """What kind of zip this is, from member names: TorchScript (code/ and constants.pkl), Keras v3."""
    names = [info.filename for info in infos]
    torchscript = any("/code/__torch__" in f"/{n}" for n in names) or any(n.split("/")[-1] == "constants.pkl" for n in names)
    keras = "config.json" in names and (container_name.lower().endswith(".keras") or "metadata.json" in names)
    return ZipFacts(names, torchscript, keras)


def scan_zip(
    acc: Any, source: Source, dispatch: Dispatch, on_archive: Callable[[Any, ZipFacts, RelaxedZipFile], None], claimed: bool
) -> bool:
    """Scan every member of a zip by content; False if it is not a readable zip.

    `claimed`: the stream starts with a zip magic, so an unreadable archive is an error finding (a central
    directory merely found near the end of some other file is not).

    `dispatch(acc, member_source)` interprets a member; `on_archive(acc, facts, archive)` lets the caller
    look at archive-level facts (TorchScript, Keras) before the members are scanned.
    """
    if source.depth >= MAX_ZIP_DEPTH:
        acc.add(source.member, "", "error", f"zip nested more than {MAX_ZIP_DEPTH} deep; not scanned")
        return True
    if source.seekable:
        seekable = source.open()
    else:
        # `source.size` of a stream is only what its container declares, or a cap (a decompressed stream's
        # size is unknown until it is read): hold the bytes up to the bound and measure what is there.
        data, over = _read_nested(source, acc)
        if over:
            acc.add(source.member, "", "error", f"nested zip of {over} is over the {MAX_NESTED_ZIP_BYTES}-byte in-memory bound")
            return True
        seekable = io.BytesIO(data)
    with seekable as raw:
        try:
            # picklescan's relaxed reader skips the CRC and name checks that torch's own reader also skips,
            # so we see the same members torch.load would. Like zipfile, it finds the central directory
            # from the end of the file, wherever the zip starts.
            archive = RelaxedZipFile(raw)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            if claimed:
                acc.add(source.member, "", "error", f"unreadable zip archive: {exc}")
            return False
        with archive:
            shift = _concat_shift(archive, raw)
            if claimed and shift:
                # zipfile adds this shift to every offset (it assumes bytes were prepended); readers that take
                # the offsets as written (torch's miniz) then read other bytes as the same members.
                acc.add(
                    source.member, "", "error",
                    f"zip central directory offset is {shift} bytes off its position: readers disagree on the members",
                    kind="parser-differential",
                )  # fmt: skip
            infos = archive.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                acc.add(source.member, "", "error", f"{len(infos)} zip members; only the first {MAX_ZIP_MEMBERS} scanned")
                infos = infos[:MAX_ZIP_MEMBERS]
            facts = zip_facts(infos, source.name)
            on_archive(acc, facts, archive)
            # torch zip checkpoints keep raw tensor bytes in <prefix>/data/<key> beside <prefix>/data.pkl.
            blob_prefixes = tuple(i.filename[: -len("data.pkl")] + "data/" for i in infos if i.filename.endswith("/data.pkl"))
            for info in infos:
                if info.is_dir() and info.file_size == 0:
                    continue  # a folder entry; one whose name ends in "/" but holds bytes is scanned
                label = info.filename if source.member is None else f"{source.member}!{info.filename}"
                if time.monotonic() > acc.deadline:
                    acc.add(label, "", "error", f"the {MAX_SECONDS_PER_FILE:.0f}-second scan budget for the file is spent; rest not scanned")
                    break
                refused = declared_over_budget(info)
                if refused:
                    acc.add(label, "", "error", f"zip member {refused}; not scanned")
                    continue
                compressed = None if info.compress_type == zipfile.ZIP_STORED else info.compress_size
                member = Source(
                    member=label,
                    name=info.filename,
                    size=info.file_size,
                    # By ZipInfo: duplicate names are each scanned.
                    open=lambda info=info, label=label, compressed=compressed: _budgeted(archive.open(info), acc, label, compressed),  # type: ignore[misc]
                    seekable=False,
                    storage_blob=bool(blob_prefixes) and info.filename.startswith(blob_prefixes),
                    depth=source.depth + 1,
                )
                try:
                    dispatch(acc, member)
                except Exception as exc:  # encrypted, corrupt or oversized member: fail it, scan the rest
                    acc.add(label, "", "error", f"cannot read member: {type(exc).__name__}: {exc}")
    return True


def _read_nested(source: Source, acc: Any) -> tuple[bytes, str]:
    """A nested stream's bytes if it fits MAX_NESTED_ZIP_BYTES, else (b"", its size in words).

    The size of a stream over the bound is counted by reading on (the stream's own decompression budgets
    and the file's deadline stop the count: then it is "more than N bytes").
    """
    chunks: list[bytes] = []
    total = 0
    with source.open() as raw:
        while chunk := raw.read(1 << 20):
            total += len(chunk)
            if total <= MAX_NESTED_ZIP_BYTES:
                chunks.append(chunk)
                continue
            chunks.clear()  # over the bound: count the rest without holding it
            try:
                while more := raw.read(1 << 20):
                    total += len(more)
                    if time.monotonic() > acc.deadline:
                        return b"", f"more than {total} bytes (counting stopped at the file's time budget)"
            except LimitExceeded as exc:
                return b"", f"more than {total} bytes ({exc})"
            return b"", f"{total} bytes"
    return b"".join(chunks), ""


def _concat_shift(archive: zipfile.ZipFile, raw: IO[bytes]) -> int:
    """How far zipfile moved the offsets from what the archive states (0 for an archive that starts at byte 0)."""
    try:
        end = zipfile._EndRecData(raw)  # type: ignore[attr-defined]  # zipfile's own end-record reader
    except (OSError, ValueError, struct.error):
        return 0
    if not end:
        return 0
    return int(getattr(archive, "start_dir", 0)) - int(end[zipfile._ECD_OFFSET])  # type: ignore[attr-defined]


def is_tar(head: bytes) -> bool:
    """Whether the first 512 bytes are a tar header by tarfile's own test (its checksum).

    torch's legacy loader tries tarfile first, and old v7 tars have no "ustar" magic.
    """
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head[: tarfile.BLOCKSIZE], tarfile.ENCODING, "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def scan_tar(acc: Any, source: Source, dispatch: Dispatch) -> None:
    """Scan every regular member of a tar (the legacy torch.save format: sys_info, pickle, storages, tensors).

    A seekable file is read in place; members are streamed by tarfile, never extracted.
    """
    with source.open() as raw:
        try:
            archive = tarfile.open(fileobj=raw, mode="r:" if source.seekable else "r|")
        except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
            acc.add(source.member, "", "error", f"unreadable tar archive: {exc}")
            return
        with archive:
            for count, info in enumerate(archive):
                label = info.name if source.member is None else f"{source.member}!{info.name}"
                if count >= MAX_TAR_MEMBERS or time.monotonic() > acc.deadline:
                    acc.add(label, "", "error", f"tar member count ({MAX_TAR_MEMBERS}) or time budget spent; rest not scanned")
                    break
                if not info.isfile():
                    continue
                if not source.seekable:
                    # A stream cannot be re-read: hold the member in memory if it is small enough.
                    if info.size > MAX_NESTED_ZIP_BYTES:
                        acc.add(label, "", "error", f"tar member of {info.size} bytes in a stream is over the in-memory bound")
                        continue
                    extracted = archive.extractfile(info)
                    data = extracted.read() if extracted else b""
                    opener: Callable[[], IO[bytes]] = lambda data=data: io.BytesIO(data)  # type: ignore[misc]  # noqa: E731
                else:
                    opener = lambda info=info: archive.extractfile(info) or io.BytesIO()  # type: ignore[misc]  # noqa: E731
                member = Source(label, info.name, info.size, opener, seekable=False, depth=source.depth + 1)
                try:
                    dispatch(acc, member)
                except Exception as exc:
                    acc.add(label, "", "error", f"cannot read member: {type(exc).__name__}: {exc}")

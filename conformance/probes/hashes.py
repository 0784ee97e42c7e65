"""The hashes probe: sha256 of every weight file, streamed in bounded memory, within budgets of seconds and bytes.

Files are opened through safe_files (regular files inside the folder only: a FIFO or a device errors at
once). A weights file that declares far more bytes than the disk holds for it (a sparse file: a 40 GB
tensor made with `truncate` costs no disk but would take minutes to hash) is refused before reading, and
reading stops when the seconds or bytes budget is spent. Each of these is a HashBudgetError naming the
budget: the rules that need the hashes error, never pass, and nothing is remembered for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ClassVar

from .. import safe_files
from ..candidate import Candidate
from ..digests import sha256_stream, sha256_text
from ..errors import CheckError
from ..probe_registry import ProbeContext, probe

CHUNK_BYTES = 8 * 1024 * 1024
# sha256 runs at 0.5-2 GB/s on one core and disks read 0.2-7 GB/s: the weights of a 400B-parameter model in
# bf16 (800 GB) hash in 7-30 minutes. Past these budgets hashing stops with an error.
HASH_MAX_SECONDS = 3600.0
HASH_MAX_BYTES = 4 * 1024**4  # 4 TiB: over any published checkpoint; bounds a file that keeps growing
# A file is sparse when the disk holds under this fraction of its declared size. Real weights are dense
# (st_blocks covers st_size); a compressing filesystem can lower the ratio, so the bar is low.
SPARSE_MIN_ALLOCATED_FRACTION = 1 / 8
SPARSE_MIN_BYTES = 64 * 1024 * 1024  # smaller files are hashed whatever their allocation: cheap either way
ST_BLOCK_BYTES = 512  # st_blocks counts 512-byte units on Linux and macOS (POSIX leaves it to the system)


class HashBudgetError(CheckError):
    """Reading stopped: a budget (seconds, bytes) was spent or the file is sparse. The message names which."""


@dataclass
class HashBudget:
    """Seconds and bytes left for hashing; one budget spans every file of a probe run.

    `clock` returns seconds (time.monotonic by default); tests inject a fake one.
    """

    max_seconds: float = field(default_factory=lambda: HASH_MAX_SECONDS)  # read when made, so tests may lower it
    max_bytes: int = field(default_factory=lambda: HASH_MAX_BYTES)
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)
    bytes_read: int = 0

    def __post_init__(self) -> None:
        """Start the clock when the budget is made, unless `started` was given."""
        if self.started < 0:
            self.started = self.clock()

    # What the budget bounds and the constants that set it, for the error message (subclasses rename them).
    activity: ClassVar[str] = "hashing"
    seconds_constant: ClassVar[str] = "HASH_MAX_SECONDS"
    bytes_constant: ClassVar[str] = "HASH_MAX_BYTES"

    def spend(self, name: str, count: int) -> None:
        """Count `count` bytes read from `name`; HashBudgetError if either budget is now spent."""
        self.bytes_read += count
        if self.bytes_read > self.max_bytes:
            raise HashBudgetError(f"{self.activity} budget exceeded: over {self.max_bytes} bytes read (at {name}; {self.bytes_constant})")
        elapsed = self.clock() - self.started
        if elapsed > self.max_seconds:
            raise HashBudgetError(
                f"{self.activity} budget exceeded: {elapsed:.1f} s, over the {self.max_seconds:g}-second limit (at {name}; {self.seconds_constant})"
            )


def refuse_sparse(handle: IO[bytes], name: str) -> None:
    """HashBudgetError if the open file declares far more bytes than the disk holds for it (see module doc)."""
    status = os.fstat(handle.fileno())
    allocated = getattr(status, "st_blocks", None)
    if allocated is None or status.st_size < SPARSE_MIN_BYTES:
        return
    allocated_bytes = allocated * ST_BLOCK_BYTES
    if allocated_bytes < status.st_size * SPARSE_MIN_ALLOCATED_FRACTION:
        raise HashBudgetError(
            f"{name} is sparse: {status.st_size} bytes declared, {allocated_bytes} on disk "
            f"(under {SPARSE_MIN_ALLOCATED_FRACTION:.1%} allocated); not read"
        )


def sha256_open(handle: IO[bytes], name: str, budget: HashBudget | None = None) -> str:
    """sha256 hex digest of an open regular file, read in CHUNK_BYTES pieces within `budget`.

    Raises HashBudgetError (sparse file, seconds or bytes budget spent).
    """
    budget = budget or HashBudget()
    refuse_sparse(handle, name)
    spend = budget.spend  # raises HashBudgetError when a budget is spent, which ends the reading
    return sha256_stream(handle, CHUNK_BYTES, on_chunk=lambda count: spend(name, count)).hexdigest


def sha256_file(path: Path, budget: HashBudget | None = None) -> str:
    """sha256 hex digest of the regular file at `path`, within `budget` (default: the HASH_MAX_* budgets).

    A link at `path` is followed only to a file in the same folder. Raises UnsafeFileError (a FIFO, a
    device, a link leading elsewhere: nothing is read), FileNotFoundError, HashBudgetError.
    """
    real = Path(os.path.realpath(path.parent)) / path.name
    with safe_files.open_regular(real.parent, real.name) as handle:
        return sha256_open(handle, str(path.name), budget)


def probe_hashes(
    candidate: Candidate,
    weight_files: list[str],
    sha256: Callable[[Path], str] | None = None,
    budget: HashBudget | None = None,
) -> dict[str, str]:
    """Weight file (relative) -> sha256 hex digest; `sha256` may remember digests (the cache's HashCache).

    Every file is first opened through safe_files and checked (regular, inside the folder, not sparse),
    whichever digest function then reads it. Raises CheckError naming the file for a file that is
    unsafe or missing, HashBudgetError when `budget` (default: HASH_MAX_SECONDS and HASH_MAX_BYTES for
    the whole set) is spent.
    """
    budget = budget or HashBudget()
    digests: dict[str, str] = {}
    for name in sorted(weight_files):
        try:
            with candidate.open_regular(name) as handle:
                if sha256 is None:
                    digests[name] = sha256_open(handle, name, budget)
                    continue
                refuse_sparse(handle, name)
            digests[name] = sha256(candidate.resolve_inside(name))  # reads through sha256_file, with its own budget
            budget.spend(name, 0)  # a remembered digest reads nothing, but the clock still runs
        except safe_files.UnsafeFileError as exc:
            raise CheckError(f"not hashed: {exc}") from None
        except FileNotFoundError:
            raise CheckError(f"not hashed: {name} is missing") from None
    return digests


def weights_sha256(file_hashes: dict[str, str]) -> str:
    """One digest for the whole set of weight files: sha256 over sorted "name  sha256" lines."""
    manifest = "".join(f"{name}  {digest}\n" for name, digest in sorted(file_hashes.items()))
    return sha256_text(manifest)


@probe("hashes", evidence=dict, depends=("static",))
def hashes_probe(context: ProbeContext) -> dict[str, str]:
    """sha256 of every weight file, by relative path; remembered in the run's cache folder when it has one."""
    files = list(context.evidence.get("static").weights.files)
    return probe_hashes(context.candidate, files, context.file_sha256)

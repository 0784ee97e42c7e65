"""The hashes probe: sha256 of every weight file, streamed in bounded memory."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from ..candidate import Candidate

CHUNK_BYTES = 8 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def probe_hashes(candidate: Candidate, weight_files: list[str], sha256: Callable[[Path], str] | None = None) -> dict[str, str]:
    """Weight file (relative) -> sha256 hex digest; `sha256` may remember digests (the cache's HashCache)."""
    digest = sha256 or sha256_file
    return {name: digest(candidate.resolve_inside(name)) for name in sorted(weight_files)}


def weights_sha256(file_hashes: dict[str, str]) -> str:
    """One digest for the whole set of weight files: sha256 over sorted "name  sha256" lines."""
    manifest = "".join(f"{name}  {digest}\n" for name, digest in sorted(file_hashes.items()))
    return hashlib.sha256(manifest.encode()).hexdigest()

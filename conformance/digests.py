"""The one sha256 of the suite: digests of text (keys, fingerprints, manifests) and of streamed files.

Every digest the suite writes (result documents' `model.sha256` and `spec.sha256`, cache keys, evidence
keys of long parameters, SARIF fingerprints, CycloneDX hashes, the scan's duplicate-file key) is made here,
so they all agree on the encoding of text and on how a stream is read. Nothing here opens files: callers
open them (through `safe_files` for model files) and hand over the handle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO


def sha256_text(text: str, errors: str = "strict") -> str:
    """Hex sha256 of `text` encoded as UTF-8; `errors` as for `str.encode` ("surrogatepass" keeps lone surrogates).

    Raises UnicodeEncodeError for a lone surrogate under the default "strict".
    """
    return hashlib.sha256(text.encode("utf-8", errors)).hexdigest()


@dataclass(frozen=True)
class StreamDigest:
    """The digest of the bytes read, how many were read, and whether `on_chunk` stopped the reading early."""

    hexdigest: str
    bytes_read: int
    stopped: bool


def sha256_stream(
    handle: IO[bytes],
    chunk_bytes: int,
    max_bytes: int | None = None,
    on_chunk: Callable[[int], bool | None] | None = None,
) -> StreamDigest:
    """sha256 of `handle` read from where it stands in pieces of at most `chunk_bytes` bytes.

    Reading ends at the end of the stream or after `max_bytes` bytes (None: no limit), whichever comes
    first; a short stream is not an error (compare `bytes_read` with what was expected). `on_chunk(count)`
    runs after each piece: it may raise (a spent budget) or return False to stop (`stopped` is then True
    and the digest covers what was read). Memory: one piece at a time.
    """
    digest = hashlib.sha256()
    read = 0
    while max_bytes is None or read < max_bytes:
        chunk = handle.read(chunk_bytes if max_bytes is None else min(chunk_bytes, max_bytes - read))
        if not chunk:
            break
        digest.update(chunk)
        read += len(chunk)
        if on_chunk is not None and on_chunk(len(chunk)) is False:
            return StreamDigest(digest.hexdigest(), read, True)
    return StreamDigest(digest.hexdigest(), read, False)

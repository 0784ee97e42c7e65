"""Writing a file so that readers never see half of it, with the permissions the user's umask gives.

One place for every file the project writes (result documents, reports, plots, `conformance scan -o`):
a temporary file beside the target, flushed and synced, then renamed over it. `tempfile.mkstemp` creates
the temporary file 0600, so the mode is set to 0666 less the umask before the rename: reports and result
documents can be shared and served like any file the user writes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process umask as an int (such as 0o022).

    Read without changing it where Linux shows it in /proc/self/status; elsewhere it is set and restored at
    once (not thread-safe there).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_atomic(path: Path, data: str | bytes, before_replace: Callable[[], None] | None = None) -> None:
    """Write `data` (text as UTF-8, or bytes) to `path` atomically, mode 0666 less the umask.

    The parent folder is created if missing. `before_replace` runs after the data is on disk and just
    before the rename (a last check of the target); whatever it raises aborts the write. On any error the
    temporary file is removed and the exception propagates (OSError from the filesystem).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~current_umask())
        if before_replace is not None:
            before_replace()
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

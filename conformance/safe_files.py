"""Opening files of an untrusted model folder: regular files inside the folder only, bounded reads, no hangs.

Every probe that reads a model's bytes goes through here. A file named by the model (its own path, an
index entry, a symlink) is resolved without opening anything (`os.path.realpath` only reads link
targets), refused if it leaves the folder (and the candidate's explicit `link_roots`, such as a hub
cache snapshot's `blobs/` folder), then opened with O_NONBLOCK (opening a FIFO never blocks)
and O_NOFOLLOW (a link swapped in after the check is not followed), and judged on the open file
descriptor: only a regular file is read. A FIFO, a socket or a device such as /dev/zero is refused at
once, so it errors the rules that need that file and nothing hangs.

The user's own JSON documents (result documents for report, diff and a resumed leaderboard; a
regression rule's baseline) are read by `read_json_document`: links followed, regular files only,
DOCUMENT_MAX_BYTES and DOCUMENT_MAX_DEPTH, every failure a one-line reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

MAX_JSON_DEPTH = 64  # deeper than any config, tokenizer or header JSON a real model ships (they nest < 10)
# A result document is written at most results.MAX_DOCUMENT_DEPTH (100) levels deep (`json_safe`); a few
# levels more are accepted from a hand-edited one. 64 MiB is far above a real document (tens of KiB).
DOCUMENT_MAX_DEPTH = 108
DOCUMENT_MAX_BYTES = 64 * 2**20


class UnsafeFileError(ValueError):
    """A model file that must not be read: outside the folder, not a regular file, over a size limit."""


class JSONTooDeepError(ValueError):
    """JSON nested deeper than its reader's depth limit; the message is the reason alone (`nests deeper ...`)."""


def is_inside(root: Path, path: Path) -> bool:
    """True if the resolved `path` is `root` or below it (a path comparison; nothing is read)."""
    return path == root or root in path.parents


def resolve_inside(root: Path, relative: str, link_roots: Sequence[Path] = ()) -> Path:
    """The real path of `relative` under `root`, following links only to read where they point.

    Raises UnsafeFileError if the name is absolute, climbs with '..' or resolves (through any link)
    outside `root` and outside every one of `link_roots` (folders, or single files, a model's links may
    lead into: a hub cache snapshot's `blobs/`); `root` and `link_roots` must already be resolved.
    """
    pure = PurePosixPath(str(relative).replace(os.sep, "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise UnsafeFileError(f"{relative!r} leads outside the model folder (absolute or climbing with '..')")
    resolved = Path(os.path.realpath(root / pure))
    if not is_inside(root, resolved) and not any(is_inside(allowed, resolved) for allowed in link_roots):
        raise UnsafeFileError(f"{relative!r} resolves outside the model folder ({resolved}); not followed")
    return resolved


def open_regular(root: Path, relative: str, link_roots: Sequence[Path] = ()) -> IO[bytes]:
    """Open a model file for reading, binary, only if it is a regular file inside `root` (or `link_roots`).

    Raises UnsafeFileError (outside the folder, a FIFO, socket or device, a symlink loop) or
    FileNotFoundError. The caller closes the returned file.
    """
    resolved = resolve_inside(root, relative, link_roots)
    try:
        descriptor = _open_nonblocking(resolved, follow_links=False)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a link loop, or a link swapped in after the check
        raise UnsafeFileError(f"{relative!r} cannot be opened: {exc.strerror}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
            raise UnsafeFileError(f"{relative!r} is {kind}; only regular files are read")
        return _blocking_file(descriptor)
    except BaseException:
        os.close(descriptor)
        raise


def _open_nonblocking(path: Path, follow_links: bool) -> int:
    """A read-only descriptor opened with O_NONBLOCK, so opening a FIFO returns at once (OSError as os.open)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    return os.open(path, flags)


def _blocking_file(descriptor: int) -> IO[bytes]:
    """The descriptor of a file judged regular as a binary file object, blocking again for plain reads."""
    flags_now = fcntl.fcntl(descriptor, fcntl.F_GETFL)
    fcntl.fcntl(descriptor, fcntl.F_SETFL, flags_now & ~os.O_NONBLOCK)
    return os.fdopen(descriptor, "rb")


def is_regular_inside(root: Path, relative: str, link_roots: Sequence[Path] = ()) -> bool:
    """True if `relative` resolves inside `root` (or `link_roots`) to a regular file (stat only, nothing opened)."""
    try:
        return stat.S_ISREG(os.stat(resolve_inside(root, relative, link_roots)).st_mode)
    except (OSError, ValueError):
        return False


def read_bytes(root: Path, relative: str, max_bytes: int, link_roots: Sequence[Path] = ()) -> bytes:
    """All bytes of a regular model file of at most `max_bytes`; UnsafeFileError if it is larger."""
    with open_regular(root, relative, link_roots) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise UnsafeFileError(f"{relative} is {size} bytes, over the {max_bytes}-byte limit")
        data = handle.read(max_bytes + 1)  # a file that grows while read is still bounded
    if len(data) > max_bytes:
        raise UnsafeFileError(f"{relative} is over the {max_bytes}-byte limit")
    return data


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar or an empty container is 0), walked without recursion.

    Walked level by level, keeping only the containers: a result document is mostly scalars, and pushing
    each of them on a stack cost more than parsing the text.
    """
    containers = (dict, list)
    if type(value) not in containers:
        return 0
    deepest, level = 0, [value]
    while True:
        found, below = False, []
        for item in level:
            children = item.values() if type(item) is dict else item
            if children:
                found = True
                below.extend([child for child in children if type(child) in containers])
        if not found:
            return deepest
        deepest += 1
        level = below


def loads_json(data: bytes | str, name: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON; ValueError with a one-line reason on bad syntax or nesting over `max_depth`.

    NaN and Infinity are kept as floats, as Python's json reads them; the result writer records them
    as strings (results.py), so they never break a result document.
    """
    try:
        return parse_json(data, max_depth)
    except JSONTooDeepError as exc:
        raise ValueError(f"{name} {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from None


def parse_json(data: bytes | str, max_depth: int) -> Any:
    """Parse JSON nested at most `max_depth` levels (a scalar is 0), never ending in a RecursionError.

    Raises JSONTooDeepError (a ValueError) past the limit, json.JSONDecodeError or UnicodeDecodeError
    on bad text. Python's parser gives up near 1,000 levels with a RecursionError; that is reported
    as too deep as well.
    """
    try:
        value = json.loads(data)
    except RecursionError:
        raise JSONTooDeepError(f"nests deeper than the {max_depth}-level limit") from None
    if json_depth(value) > max_depth:
        raise JSONTooDeepError(f"nests deeper than the {max_depth}-level limit")
    return value


def read_json(root: Path, relative: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH, link_roots: Sequence[Path] = ()) -> Any:
    """Read and parse a small JSON file of the model; ValueError (UnsafeFileError included) with the reason."""
    try:
        data = read_bytes(root, relative, max_bytes, link_roots)
    except FileNotFoundError:
        raise ValueError(f"{relative} is missing") from None
    except OSError as exc:
        raise ValueError(f"{relative} cannot be read: {exc.strerror}") from None
    return loads_json(data, relative, max_depth)


def _kind(mode: int) -> str:
    """What a file that is not regular is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a regular file"


def read_document_bytes(path: Path, max_bytes: int) -> bytes:
    """All bytes of a document the user names (a result document, a regression baseline), bounded.

    Unlike a model's files, the user's own documents may be links anywhere: links are followed, and
    the opened descriptor is judged, so a directory, FIFO, socket or device is refused without a read
    or a hang. Raises FileNotFoundError; UnsafeFileError whose message is the reason alone (`a FIFO,
    not a regular file`, `N bytes, over the M-byte (64 MiB) limit`, `cannot be opened: ...`); OSError
    when the read itself fails.
    """
    try:
        descriptor = _open_nonblocking(path, follow_links=True)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a link loop, no permission
        raise UnsafeFileError(f"cannot be opened: {exc.strerror}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeFileError(f"{_kind(mode)}, not a regular file")
        handle = _blocking_file(descriptor)
    except BaseException:
        os.close(descriptor)
        raise
    limit = f"over the {max_bytes}-byte ({max_bytes / 2**20:g} MiB) limit"
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise UnsafeFileError(f"{size} bytes, {limit}")
        data = handle.read(max_bytes + 1)  # a file that grows while read is still bounded
    if len(data) > max_bytes:
        raise UnsafeFileError(limit)
    return data


def read_json_document(path: Path, max_bytes: int, max_depth: int) -> Any:
    """Parse a document the user names: `read_document_bytes`, strict UTF-8, then `parse_json`.

    Raises FileNotFoundError, UnsafeFileError (not a regular file, over `max_bytes`, cannot be opened),
    OSError, UnicodeDecodeError, json.JSONDecodeError and JSONTooDeepError, so each caller words its
    own message; UnsafeFileError and JSONTooDeepError messages are the reason alone.
    """
    return parse_json(read_document_bytes(path, max_bytes).decode("utf-8"), max_depth)

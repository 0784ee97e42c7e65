"""The terminal's two streams: third-party output kept off them, and a reader that went away (`| head`).

A leaf module (standard library only): the CLI, the scan command and the runner use it.

lm-eval, transformers, tqdm, Python's `warnings` and the `git` subprocess lm-eval starts all write to file
descriptor 2, each through its own object (`logging.lastResort`, a StreamHandler bound to the `sys.stderr`
of its configure time, tqdm bars that pass `disable=False` explicitly, an inherited descriptor). No logger
setting reaches all of them; redirecting the descriptor itself does, without reconfiguring anyone's logging.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path


def silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null after EPIPE, so the interpreter's final flush prints no traceback.

    A stdout without a descriptor (captured in tests) is left alone: nothing of it flushes to a pipe.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


LOG_FLAGS = (
    os.O_WRONLY | os.O_APPEND | os.O_CREAT
    | getattr(os, "O_NOFOLLOW", 0)  # a link in the log's place is refused, never written through
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO with no reader fails at once instead of blocking the run
)
LOG_MODE = 0o644  # less the umask (os.open applies it)


def _refusal(error: OSError) -> str:
    """Why the log could not be opened, in words (`ELOOP` from O_NOFOLLOW means a link is in its place)."""
    if error.errno == errno.ELOOP:
        return "is a symlink"
    if error.errno == errno.EISDIR:
        return "is a directory"
    if error.errno == errno.ENXIO:
        return "is a FIFO with no reader"
    return f"cannot be opened ({error.strerror or type(error).__name__})"


def open_log(log_file: Path) -> tuple[int, str | None]:
    """A descriptor to append other libraries' output to, and why the log was refused (None when it was not).

    The log is used only when it is, or is created as, a regular file; never through a link, never a FIFO
    or a device, never a directory. Anything else (or a folder not on this machine, a Ray worker's) gets
    /dev/null, so the output is dropped rather than written somewhere unnamed. The caller closes the descriptor.
    """
    try:
        descriptor = os.open(log_file, LOG_FLAGS, LOG_MODE)
    except OSError as exc:
        return os.open(os.devnull, os.O_WRONLY), _refusal(exc)
    try:
        regular = stat.S_ISREG(os.fstat(descriptor).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(descriptor)
        return os.open(os.devnull, os.O_WRONLY), "is not a regular file"
    return descriptor, None


def log_refusal(log_file: Path) -> str | None:
    """None when `log_file` can take other libraries' output, else one line saying why it is dropped.

    Opening it creates an empty log where none was (`remove_if_empty` tidies that at the end).
    """
    descriptor, reason = open_log(log_file)
    os.close(descriptor)
    return None if reason is None else f"{log_file.name} {reason}: other libraries' output is dropped"


def remove_if_empty(log_file: Path, existed_before: bool) -> None:
    """Remove `log_file` when this run created it and nothing was written to it (a regular file, never a link)."""
    if existed_before:
        return
    with contextlib.suppress(OSError):
        info = os.lstat(log_file)
        if stat.S_ISREG(info.st_mode) and info.st_size == 0:
            os.unlink(log_file)


def _flush_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()  # type: ignore[union-attr]


@contextlib.contextmanager
def third_party_output(log_file: Path | None) -> Iterator[None]:
    """While inside, everything written to file descriptor 2 or `sys.stderr` is appended to `log_file` instead.

    That covers other libraries' logging and warnings, progress bars and subprocesses' stderr. `None`
    changes nothing (library callers keep today's behaviour). Nested uses and pytest's fd capture are
    safe: each level saves and restores the descriptor it found. A log that is not a regular file (a link,
    a FIFO, a directory) is never opened: the output goes to /dev/null (`open_log`).
    """
    if log_file is None:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon): nothing reaches a terminal anyway
        yield
        return
    _flush_stderr()
    try:
        descriptor, _ = open_log(log_file)  # the reason was said once, by the caller (log_refusal)
        with os.fdopen(descriptor, "ab") as log:
            text = io.TextIOWrapper(log, encoding="utf-8", errors="backslashreplace", write_through=True)
            os.dup2(log.fileno(), 2)
            try:
                # sys.stderr too: a caller (a test's capture, an embedding program) may have pointed it elsewhere
                with contextlib.redirect_stderr(text):
                    yield
            finally:
                _flush_stderr()  # what Python buffered for fd 2 belongs in the log, not on the terminal
                os.dup2(saved, 2)
                text.detach()  # the log itself is closed once, by its own context
    finally:
        os.close(saved)

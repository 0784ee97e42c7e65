"""The terminal's two streams: third-party output kept off them, and a reader that went away (`| head`).

A leaf module (standard library only): the CLI, the scan command and the runner use it.

lm-eval, transformers, tqdm, Python's `warnings` and the `git` subprocess lm-eval starts all write to file
descriptor 2, each through its own object (`logging.lastResort`, a StreamHandler bound to the `sys.stderr`
of its configure time, tqdm bars that pass `disable=False` explicitly, an inherited descriptor). No logger
setting reaches all of them; redirecting the descriptor itself does, without reconfiguring anyone's logging.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


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


def _open_log(log_file: Path) -> IO[bytes]:
    """The log opened for appending; a temporary file when its folder is not on this machine (a Ray worker's)."""
    try:
        return open(log_file, "ab")  # noqa: SIM115 - closed by the caller's context
    except OSError:
        handle, _ = tempfile.mkstemp(prefix="conformance-", suffix=".log")
        return os.fdopen(handle, "ab")


def _flush_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()  # type: ignore[union-attr]


@contextlib.contextmanager
def third_party_output(log_file: Path | None) -> Iterator[None]:
    """While inside, everything written to file descriptor 2 or `sys.stderr` is appended to `log_file` instead.

    That covers other libraries' logging and warnings, progress bars and subprocesses' stderr. `None`
    changes nothing (library callers keep today's behaviour). Nested uses and pytest's fd capture are
    safe: each level saves and restores the descriptor it found.
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
        with _open_log(log_file) as log:
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

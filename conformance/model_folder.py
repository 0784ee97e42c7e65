"""Is there a model in this folder? Names only, before anything is measured.

A folder with nothing a model is made of (an empty folder, a README alone) would otherwise be "checked":
rules that look at no file pass on it. The entry points (the CLI, the pytest plugin) refuse it with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from .candidate import SINGLE_FILE_SUFFIXES
from .errors import RequestError
from .formats.registry import format_claiming

# The top-level entries (at most this many, in listing order) looked at for a sign of a model: a folder of
# millions of files is not listed whole just to say it holds no model.
MAX_MARKER_ENTRIES = 100_000


def model_marker(folder: Path) -> str | None:
    """The first top-level name in `folder` that says a model is there, or None.

    `config.json`, a weight file name a registered format claims, or a `.gguf` file. Names only: nothing
    is opened, stat'ed or followed, so a FIFO or a link named like a model file still counts and a
    hostile folder reaches the probes that report it. At most MAX_MARKER_ENTRIES entries are looked at;
    an unreadable folder has no marker.
    """
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_MARKER_ENTRIES:
                    return None
                name = entry.name
                if name == "config.json" or name.lower().endswith(SINGLE_FILE_SUFFIXES) or format_claiming(name) is not None:
                    return name
    except OSError:
        return None
    return None


def require_model_folder(path: Path, shown: str | None = None) -> None:
    """Return quietly for a file (`Candidate` judges it) or a folder with a `model_marker`.

    Raises:
        RequestError: `path` is a folder with no model in it; the message names it as `shown` (default `path`).
    """
    if path.is_dir() and model_marker(path) is None:
        raise RequestError(f"{shown or path}: not a model folder (no config.json, weight files or .gguf file)")

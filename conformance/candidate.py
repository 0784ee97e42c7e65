"""A candidate model: a local folder in Hugging Face layout, read without trusting anything in it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from . import safe_files
from .errors import RequestError

MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    """One file of a model folder as listed, never opened.

    `path` is posix and relative to the folder; `size_bytes` the file's size (the link's own for a symlink,
    0 when it cannot be stat'ed); `symlink` whether the entry is a symbolic link.
    """

    path: str  # relative to the model folder, posix
    size_bytes: int
    symlink: bool = False


_GENERIC_FOLDER_NAMES = frozenset({"model", "models", "weights", "checkpoint", "snapshot", "final", "hf"})


def default_name(folder: Path) -> str:
    """The folder's name, or its parent's when the folder has a generic name such as `model`."""
    if folder.name.lower() in _GENERIC_FOLDER_NAMES and folder.parent.name:
        return folder.parent.name
    return folder.name


class Candidate:
    """Identity and file list of one model folder; static facts are read lazily by probes."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        """Take the model folder `path` (resolved) and its display name (default: `default_name(path)`).

        Raises:
            RequestError: `path` does not exist or is not a folder.
        """
        folder = Path(path)
        if not folder.exists():
            raise RequestError(f"{path}: model folder not found")
        if not folder.is_dir():
            raise RequestError(f"{path}: a model must be a folder in Hugging Face layout, not a file")
        self.path = folder.resolve()
        self.name = name or default_name(self.path)

    def __repr__(self) -> str:
        """`Candidate('/resolved/folder')`."""
        return f"Candidate({str(self.path)!r})"

    @cached_property
    def files(self) -> list[FileEntry]:
        """Every file under the folder; symlinks are listed but never followed when walking."""
        entries: list[FileEntry] = []
        for root, dirs, names in os.walk(self.path, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d not in {".git", "__pycache__"})
            for name in sorted(names):
                full = Path(root) / name
                relative = full.relative_to(self.path).as_posix()
                is_link = full.is_symlink()
                try:
                    size = full.lstat().st_size if is_link else full.stat().st_size
                except OSError:
                    size = 0
                entries.append(FileEntry(relative, size, is_link))
        return entries

    def file_names(self) -> list[str]:
        """The posix paths, relative to the folder, of every entry in `files` (sorted per folder, symlinks included)."""
        return [entry.path for entry in self.files]

    def resolve_inside(self, relative: str) -> Path:
        """The real path of a file named by the model itself (an index, a card); UnsafeFileError (a ValueError) if it leaves the folder."""
        return safe_files.resolve_inside(self.path, relative)

    def open_regular(self, relative: str) -> IO[bytes]:
        """Open a model file only if it is a regular file inside the folder (see safe_files.open_regular)."""
        return safe_files.open_regular(self.path, relative)

    def read_bytes(self, relative: str, max_bytes: int) -> bytes:
        """All bytes of a regular model file of at most `max_bytes`; ValueError with the reason otherwise."""
        try:
            return safe_files.read_bytes(self.path, relative, max_bytes)
        except FileNotFoundError:
            raise ValueError(f"{relative} is missing") from None
        except OSError as exc:
            raise ValueError(f"{relative} cannot be read: {exc.strerror}") from None

    def read_json(self, relative: str, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
        """Read a small JSON file of the model; raise ValueError with a one-line reason (depth bounded)."""
        return safe_files.read_json(self.path, relative, max_bytes)

    @cached_property
    def config(self) -> dict[str, Any]:
        """The model's config.json as a dict, read once (at most MAX_CONFIG_BYTES, depth bounded).

        Raises:
            ValueError: config.json is missing, unreadable, unsafe (outside the folder, not a regular file),
                over the size or depth budget, not JSON, or not a JSON object; the message is one line.
        """
        data = self.read_json("config.json")
        if not isinstance(data, dict):
            raise ValueError(f"config.json must hold a JSON object, found {type(data).__name__}")
        return data

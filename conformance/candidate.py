"""A candidate model: a local folder in Hugging Face layout, a `.gguf` file, or a repo id in the hub cache.

Nothing in it is trusted. Files are opened through `safe_files` with the candidate's `link_roots`: the
only places besides its folder that its links may lead (a hub cache snapshot's `blobs/`; a single file's
own real path). `open_candidate` turns what a user typed into a Candidate (a local path wins over a repo
id of the same spelling).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import weakref
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from . import hub, safe_files
from .errors import RequestError

MAX_CONFIG_BYTES = 4 * 1024 * 1024
SINGLE_FILE_SUFFIXES = (".gguf",)  # a model that is one file (llama.cpp, Ollama, LM Studio)


@dataclass(frozen=True)
class FileEntry:
    """One file of a model folder as listed, never opened.

    `path` is posix and relative to the folder; `symlink` whether the entry is a symbolic link;
    `in_link_root` whether it is a link resolving to a regular file in one of the candidate's link roots
    (a hub cache blob, a single `.gguf` file): such a file's content is the model's and lives only there.
    `size_bytes` is the file's size: the target's for a link in a link root, the link's own for any other
    link, 0 when it cannot be stat'ed.
    """

    path: str  # relative to the model folder, posix
    size_bytes: int
    symlink: bool = False
    in_link_root: bool = False


_GENERIC_FOLDER_NAMES = frozenset({"model", "models", "weights", "checkpoint", "snapshot", "final", "hf"})


def default_name(folder: Path) -> str:
    """The model's display name from its (resolved) location.

    A hub cache snapshot folder is named by its repo id (`ORG/NAME`, with `@<commit>` when it is not the
    revision `refs/main` names); a `.gguf` file by its stem; a folder by its name, or its parent's when
    the folder has a generic name such as `model`.
    """
    snapshot = hub.snapshot_at(folder)
    if snapshot is not None:
        return snapshot.display_name()
    if folder.suffix.lower() in SINGLE_FILE_SUFFIXES and folder.is_file():
        return folder.stem
    if folder.name.lower() in _GENERIC_FOLDER_NAMES and folder.parent.name:
        return folder.parent.name
    return folder.name


def locate_model(text: str, revision: str | None = None, base: Path | None = None) -> tuple[Path, str | None]:
    """Where the model a user named is, and its display name when the location alone does not give it.

    `text` is a model folder, a `.gguf` file, or a repo id (`ORG/NAME`, `ORG/NAME@REV`). A path that exists
    (relative to `base`, default the working folder) always wins over a repo id of the same spelling, and
    comes back as given with no name. A repo id is resolved in the hub cache (`hub.resolve`: offline
    unless HF_HUB_OFFLINE=0) at `revision` (or the `@REV` written in `text`): its snapshot folder and the
    name `ORG/NAME` (with `@REV` when one was asked).

    Raises:
        RequestError: a repo id or revision not in the cache (the message names the folder searched and
            how to download), `revision` given with a local path, or two different revisions asked.
    """
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    reference = hub.split_reference(text)
    if os.path.lexists(path) or reference is None:
        if revision:
            raise RequestError(f"{text}: --revision applies to a repo id (ORG/NAME), and this is a local path")
        return path, None
    repo_id, written = reference
    if revision and written and revision != written:
        raise RequestError(f"{text}: names revision {written!r} and --revision {revision!r}; give one")
    asked = revision or written
    snapshot = hub.resolve(repo_id, asked)
    return snapshot.folder, snapshot.display_name(asked)


def open_candidate(text: str, revision: str | None = None, base: Path | None = None) -> Candidate:
    """The Candidate a user named (see `locate_model`); RequestError when there is none by that name."""
    location, name = locate_model(text, revision, base)
    return Candidate(location, name=name)


class Candidate:
    """Identity and file list of one model; static facts are read lazily by probes.

    Attributes:
        location: what the model is, resolved: its folder, or its `.gguf` file.
        path: the folder its files are named from (for a single file, a private folder holding only a
            link to it, removed with the Candidate).
        link_roots: where links of `path` may lead besides `path` (resolved): a hub cache snapshot's
            `blobs/`, a single file's real path; nothing else is followed.
        name: the display name (default `default_name(location)`).
    """

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        """Take the model folder or `.gguf` file `path` and its display name (default: `default_name`).

        Raises:
            RequestError: `path` does not exist, or is a file other than a regular `.gguf` file.
        """
        given = Path(path)
        if not given.exists():
            raise RequestError(f"{path}: model folder not found")
        if given.is_dir():
            self.location = self.path = given.resolve()
            self.link_roots: tuple[Path, ...] = hub.link_roots(self.path)
        elif given.suffix.lower() in SINGLE_FILE_SUFFIXES and stat.S_ISREG(os.stat(given).st_mode):
            # The location keeps the name the user gave (absolute, links not resolved): a link into a hub
            # cache's blobs/ resolves to a name without a suffix, which would no longer say the format.
            self.location = Path(os.path.abspath(given))
            real = given.resolve()
            self.path = _single_file_folder(self, real, given.name)
            self.link_roots = (real,)
        else:
            raise RequestError(f"{path}: a model must be a folder in Hugging Face layout or a .gguf file, not this file")
        self.name = name or (given.stem if self.location != self.path else default_name(self.path))

    def __repr__(self) -> str:
        """`Candidate('/resolved/location')`."""
        return f"Candidate({str(self.location)!r})"

    @cached_property
    def files(self) -> list[FileEntry]:
        """Every file under the folder; symlinks are listed but never followed when walking."""
        entries: list[FileEntry] = []
        for root, dirs, names in os.walk(self.path, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d not in {".git", "__pycache__"})
            for name in sorted(names):
                full = Path(root) / name
                relative = full.relative_to(self.path).as_posix()
                entries.append(self._entry(full, relative))
        return entries

    def _entry(self, full: Path, relative: str) -> FileEntry:
        """The listing of one walked name (stat only): a link into a link root is sized by its target."""
        try:
            if not full.is_symlink():
                return FileEntry(relative, full.stat().st_size)
            size = full.lstat().st_size
        except OSError:
            return FileEntry(relative, 0, full.is_symlink())
        if self.link_roots:
            try:
                target = safe_files.resolve_inside(self.path, relative, self.link_roots)
                status = os.stat(target)
            except (OSError, ValueError):
                return FileEntry(relative, size, True)
            if stat.S_ISREG(status.st_mode) and not safe_files.is_inside(self.path, target):
                return FileEntry(relative, status.st_size, True, in_link_root=True)
        return FileEntry(relative, size, True)

    def file_names(self) -> list[str]:
        """The posix paths, relative to the folder, of every entry in `files` (sorted per folder, symlinks included)."""
        return [entry.path for entry in self.files]

    def resolve_inside(self, relative: str) -> Path:
        """The real path of a file named by the model itself (an index, a card); UnsafeFileError (a ValueError) if it leaves the folder and its link roots."""
        return safe_files.resolve_inside(self.path, relative, self.link_roots)

    def open_regular(self, relative: str) -> IO[bytes]:
        """Open a model file only if it is a regular file inside the folder or its link roots (see safe_files.open_regular)."""
        return safe_files.open_regular(self.path, relative, self.link_roots)

    def read_bytes(self, relative: str, max_bytes: int) -> bytes:
        """All bytes of a regular model file of at most `max_bytes`; ValueError with the reason otherwise."""
        try:
            return safe_files.read_bytes(self.path, relative, max_bytes, self.link_roots)
        except FileNotFoundError:
            raise ValueError(f"{relative} is missing") from None
        except OSError as exc:
            raise ValueError(f"{relative} cannot be read: {exc.strerror}") from None

    def read_json(self, relative: str, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
        """Read a small JSON file of the model; raise ValueError with a one-line reason (depth bounded)."""
        return safe_files.read_json(self.path, relative, max_bytes, link_roots=self.link_roots)

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


def _single_file_folder(owner: Candidate, real: Path, name: str) -> Path:
    """A private folder holding one link, `name`, to the model file `real`; removed when `owner` is collected.

    The suite's probes and the load read a folder; this one lists the file alone, so nothing beside it in
    its own folder (another model, a stray config.json) is part of the model. The link keeps the name the
    user gave (a hub blob has no suffix; the name says the format).
    """
    folder = Path(tempfile.mkdtemp(prefix="conformance-file-")).resolve()
    os.symlink(real, folder / name)
    weakref.finalize(owner, shutil.rmtree, folder, True)
    return folder

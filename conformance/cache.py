"""The result cache: expensive probe evidence keyed by model content, probe parameters and environment.

A rerun with unchanged models only re-judges: the load, runtime, speed, task and generation probes are read
back from the cache instead of measured. Evidence is stored as JSON with an explicit allowlist of our own
dataclasses (never pickle: the cache folder is a file system anyone may have written to). Hashing large
weight files is itself cached by (path, size, mtime).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .cache_types import SkippedProbe
from .digests import sha256_text
from .paths import default_cache_dir  # noqa: F401 (re-exported: the cache's public API)
from .results import write_atomic

CACHE_FORMAT = 2  # 2: speed evidence decided from intervals (stopping reason, model/process memory)


def encode(value: Any) -> Any:
    """Dataclasses and tuples with type tags; floats that JSON cannot hold as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, "fields": fields}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(item) for item in value]}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot cache a {type(value).__name__}")


def decode(value: Any, types: dict[str, type]) -> Any:
    """The inverse of `encode`: rebuild dataclasses (only those named in `types`), tuples, dicts and floats.

    Raises ValueError for a type name missing from `types` or an unknown tagged shape, and TypeError when
    a stored dataclass's fields do not match its class.
    """
    if isinstance(value, list):
        return [decode(item, types) for item in value]
    if not isinstance(value, dict):
        return value
    if "__type__" in value:
        cls = types.get(value["__type__"])
        if cls is None:
            raise ValueError(f"type {value['__type__']!r} is not cacheable")
        return cls(**{name: decode(item, types) for name, item in value["fields"].items()})
    if "__tuple__" in value:
        return tuple(decode(item, types) for item in value["__tuple__"])
    if "__dict__" in value:
        return {decode(k, types): decode(v, types) for k, v in value["__dict__"]}
    if "__float__" in value:
        return float(value["__float__"])
    raise ValueError("unknown cache entry shape")


class HashCache:
    """sha256 of files, remembered by (real path, size, mtime_ns) so unchanged files are not read again."""

    def __init__(self, folder: Path) -> None:
        """Read the digests kept in `folder/file-hashes.json`; a missing or unreadable file starts empty."""
        self.path = folder / "file-hashes.json"
        try:
            self._entries: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._entries = {}
        self._dirty = False

    def sha256(self, path: Path) -> str:
        """The file's sha256 as 64 hex digits, read from memory when its size and mtime are unchanged.

        Raises OSError (FileNotFoundError among them) when the file cannot be stat'ed or read, and, as
        `sha256_file` does, UnsafeFileError for a FIFO, a device or a link leading elsewhere and
        HashBudgetError for a file over the hashing budget.
        """
        from .probes.hashes import sha256_file

        real = str(path.resolve())
        stat = path.stat()
        entry = self._entries.get(real)
        if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return str(entry["sha256"])
        digest = sha256_file(path)
        self._entries[real] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        self._dirty = True
        return digest

    def save(self) -> None:
        """Write the remembered digests to `path` (atomically), only if a new one was computed since the last save."""
        if self._dirty:
            write_atomic(self.path, json.dumps(self._entries, sort_keys=True))
            self._dirty = False


@functools.lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str | None], ...]:
    # Read once a process: each metadata lookup scans sys.path (~3 ms), and a leaderboard asked five
    # times per model; an installed version cannot change under a running process that imported it.
    versions: list[tuple[str, str | None]] = []  # None: not installed
    for name in ("torch", "transformers", "lm_eval", "accelerate", "tokenizers"):
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, None))
    return tuple(versions)


# The package's own files that decide what a probe measures: its code, the family table, task data.
_CODE_SUFFIXES = (".py", ".json", ".yaml", ".jsonl")


def code_digest(root: Path) -> str:
    """sha256 over the relative path and bytes of every `_CODE_SUFFIXES` file under `root` (sorted; `__pycache__` left out).

    Why: the version number stays the same between releases while the code changes; evidence measured by
    other code (a T5 loaded as the bare encoder, a tokenizer size counted differently) must not be served
    to this code. Reads about 3 MB for the installed package, once a process (`_package_code_digest`).
    """
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in _CODE_SUFFIXES and "__pycache__" not in path.parts and path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _package_code_digest() -> str:
    return code_digest(Path(__file__).resolve().parent)


def environment_fingerprint(load_options: Any) -> dict[str, Any]:
    """What makes a measurement valid only here: versions, this machine, how the model is loaded."""
    packages = dict(_package_versions())
    return {
        "conformance": __version__,
        "code": _package_code_digest(),
        "format": CACHE_FORMAT,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "packages": packages,
        "load": dataclasses.asdict(load_options),
    }


class EvidenceCache:
    """Probe evidence as JSON files under `folder`, decoded only into the `types` given (by class name).

    The runner passes the probe catalogue's `cacheable_types()`: every cacheable probe's evidence type and
    the dataclasses reachable through its fields; a value of any other type is refused on reading (a miss).
    `SkippedProbe` is always allowed.
    """

    def __init__(self, folder: Path, types: dict[str, type]) -> None:
        """Open the cache (nothing is read yet).

        Args:
            folder: the cache folder; entries lie under `folder/evidence/<2 hex digits>/<key>.json`, file
                digests in `folder/file-hashes.json`.
            types: class name -> class of every dataclass an entry may be decoded into.
        """
        self.folder = folder
        self.hashes = HashCache(folder)
        self._types = {**types, SkippedProbe.__name__: SkippedProbe}

    def key(self, probe_key: str, model_identity: str, environment: dict[str, Any]) -> str:
        """The entry's key: sha256 (64 hex digits) of the probe key, the model's content identity and the environment."""
        text = json.dumps({"probe": probe_key, "model": model_identity, "environment": environment}, sort_keys=True)
        return sha256_text(text)

    def _file(self, key: str) -> Path:
        return self.folder / "evidence" / key[:2] / f"{key}.json"

    def get(self, key: str) -> tuple[bool, Any]:
        """(True, the decoded evidence) on a hit; (False, None) when the entry is absent, unreadable or of a refused type."""
        try:
            return True, decode(json.loads(self._file(key).read_text(encoding="utf-8")), self._types)
        except (OSError, ValueError, TypeError, KeyError, RecursionError):
            return False, None  # absent, unreadable or nested past the parser's depth: measure again

    def put(self, key: str, value: Any) -> None:
        """Store `value` under `key`, atomically; a value the cache could not read back is not cached (measured every time).

        A value `encode` refuses, or one holding a dataclass outside the allowlist (a field typed `Any` that
        holds one), is never written: written, it would be refused at every read and silently never served.

        Raises OSError when the entry cannot be written.
        """
        try:
            encoded = encode(value)
            decode(encoded, self._types)  # the same allowlist a read applies
            text = json.dumps(encoded, allow_nan=False)
        except (TypeError, ValueError):
            return  # not cacheable: measured every time
        write_atomic(self._file(key), text)


def model_identity(candidate: Any, hashes: HashCache) -> str:
    """sha256 over every file's content hash: any change to weights, config, tokenizer or card invalidates."""
    lines = [f"{entry.path}  {hashes.sha256(candidate.path / entry.path)}\n" for entry in candidate.files if not entry.symlink]
    hashes.save()
    return sha256_text("".join(lines))

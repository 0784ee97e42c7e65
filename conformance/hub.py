"""Models in the Hugging Face hub cache: repo ids resolved to snapshot folders, offline unless asked.

The cache is huggingface_hub's (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`, read
when a name is resolved): a repository `ORG/NAME` lives in `models--ORG--NAME/`, each revision in
`snapshots/<commit>/`, whose files are symbolic links into the repository's `blobs/` folder, and a ref
such as `main` is a file `refs/main` holding a commit hash.

Offline by default: when `HF_HUB_OFFLINE` is unset the suite never reaches the network (it resolves from
the cache alone, as huggingface_hub's `snapshot_download(local_files_only=True)` does); only with
`HF_HUB_OFFLINE=0` (or `false`, `no`, `off`) explicitly does `snapshot_download` fetch a missing
revision. Before huggingface_hub reads the cache, its ref file is checked here (a regular file inside the
repository folder, at most `MAX_REF_BYTES`), and the folder it answers must be `snapshots/<40 hex>/`
of the same repository: a cache is read with the same care as a model folder.

A snapshot folder's links may lead into the same repository's `blobs/` and nowhere else: that folder is
the candidate's one extra link root (`link_roots`), which `safe_files` then allows. A `blobs/` that is
itself a link is not trusted (everything reached through it could be anywhere).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import safe_files
from .errors import RequestError

OFFLINE_FALSE_VALUES = frozenset({"0", "false", "no", "off"})
MAX_REF_BYTES = 256  # a ref file holds one 40-character commit hash
# huggingface_hub (2.4+) reads a commit's file listing, trees/<commit>.json, whole; a listing of 100,000 files
# is about 20 MiB.
MAX_TREE_LISTING_BYTES = 64 * 2**20
COMMIT_PATTERN = re.compile(r"[0-9a-f]{40}")  # huggingface_hub's REGEX_COMMIT_HASH
# A branch or tag name as a ref file under refs/ (refs/pr/N included): no empty, '.' or '..' part.
REVISION_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}")
# `ORG/NAME` as huggingface_hub's validate_repo_id allows it (1-96 characters each side, no '--' or '..').
REPO_ID_PATTERN = re.compile(r"(?!.*(?:--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
SHORT_COMMIT_CHARS = 12  # a commit named in a display name, as `git log --abbrev=12`
CACHE_FOLDER_PREFIX = "models--"


def is_offline() -> bool:
    """True unless `HF_HUB_OFFLINE` is set to 0, false, no or off: this suite downloads only when asked."""
    value = os.environ.get("HF_HUB_OFFLINE")
    return value is None or value.strip().lower() not in OFFLINE_FALSE_VALUES


def cache_folder() -> Path:
    """The hub cache folder, from the environment now: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME.

    huggingface_hub reads the same variables in the same order, once at import; they are read again here
    so a variable set after huggingface_hub was imported (a test, a notebook) is honoured.
    """
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(os.path.expanduser(explicit)))
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def split_reference(text: str) -> tuple[str, str | None] | None:
    """(`ORG/NAME`, revision or None) when `text` is written like a repo id (`ORG/NAME` or `ORG/NAME@REV`), else None."""
    repo_id, at, revision = text.partition("@")
    if not REPO_ID_PATTERN.fullmatch(repo_id) or repo_id.endswith(".git") or (at and not revision):
        return None
    return repo_id, (revision or None)


def repo_folder_name(repo_id: str) -> str:
    """`models--ORG--NAME`: the repository's folder in the cache, as huggingface_hub names it."""
    return CACHE_FOLDER_PREFIX + repo_id.replace("/", "--")


def check_revision(revision: str) -> str:
    """`revision` if it is a commit hash or a plain ref name (`main`, `v1.0`, `refs/pr/3`); RequestError otherwise.

    A ref name becomes a path under `refs/`, so names that climb ('..'), are absolute or have empty parts
    are refused before any file is looked at.
    """
    parts = PurePosixPath(revision).parts
    if not REVISION_PATTERN.fullmatch(revision) or any(part in {".", ".."} for part in parts) or "//" in revision or revision.endswith("/"):
        raise RequestError(f"{revision!r} is not a revision (a branch, a tag or a 40-character commit hash)")
    return revision


@dataclass(frozen=True)
class Snapshot:
    """One cached revision of a repository.

    `folder` is `<cache>/models--ORG--NAME/snapshots/<commit>` (resolved); `blobs` the repository's blob
    folder its links lead into, or None when that folder is missing or is itself a link (then no link is
    followed); `main_commit` what `refs/main` holds (None if unreadable).
    """

    repo_id: str
    commit: str
    folder: Path
    blobs: Path | None
    main_commit: str | None

    def display_name(self, revision: str | None = None) -> str:
        """`ORG/NAME`, with `@revision` when one was asked, or `@<commit>` (12 characters) when not the ref main's."""
        if revision:
            shown = revision[:SHORT_COMMIT_CHARS] if COMMIT_PATTERN.fullmatch(revision) else revision
            return f"{self.repo_id}@{shown}"
        if self.main_commit == self.commit:
            return self.repo_id
        return f"{self.repo_id}@{self.commit[:SHORT_COMMIT_CHARS]}"


def _repo_id_of(folder_name: str) -> str | None:
    """`ORG/NAME` (or a legacy `NAME`) from `models--ORG--NAME`; None for any other name."""
    if not folder_name.startswith(CACHE_FOLDER_PREFIX):
        return None
    parts = folder_name[len(CACHE_FOLDER_PREFIX):].split("--")
    repo_id = "/".join(parts)
    if len(parts) == 1 and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", repo_id):
        return repo_id
    return repo_id if len(parts) == 2 and REPO_ID_PATTERN.fullmatch(repo_id) else None


def _real_folder(path: Path) -> bool:
    """True for a folder that is not a link (lstat only)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_ref(repo: Path, ref: str) -> str | None:
    """The commit hash `refs/<ref>` holds (a small regular file inside the repository folder), else None."""
    try:
        text = safe_files.read_bytes(repo, f"refs/{ref}", MAX_REF_BYTES).decode("ascii").strip()
    except (OSError, ValueError):
        return None
    return text if COMMIT_PATTERN.fullmatch(text) else None


def snapshot_at(folder: Path) -> Snapshot | None:
    """The cached revision `folder` (resolved) is, when it sits in a hub cache layout, else None.

    Layout: `<anything>/models--ORG--NAME/snapshots/<40 hex>/`. Nothing is opened but `refs/main`.
    """
    snapshots = folder.parent
    repo = snapshots.parent
    repo_id = _repo_id_of(repo.name)
    if snapshots.name != "snapshots" or repo_id is None or not COMMIT_PATTERN.fullmatch(folder.name):
        return None
    blobs = repo / "blobs"
    return Snapshot(
        repo_id=repo_id, commit=folder.name, folder=folder,
        blobs=blobs if _real_folder(blobs) else None, main_commit=_read_ref(repo, "main"),
    )  # fmt: skip


def link_roots(folder: Path) -> tuple[Path, ...]:
    """Where links of the model folder `folder` (resolved) may lead besides the folder itself: a snapshot's `blobs/`."""
    snapshot = snapshot_at(folder)
    return (snapshot.blobs,) if snapshot is not None and snapshot.blobs is not None else ()


def _check_listing(repo: Path, commit: str) -> None:
    """RequestError unless `trees/<commit>.json`, when present, is a regular file in the repository of at most MAX_TREE_LISTING_BYTES.

    huggingface_hub opens and parses it whole and unbounded (a FIFO there would block it); it is judged here
    by stat alone first.
    """
    relative = f"trees/{commit}.json"
    if not os.path.lexists(repo / relative):
        return
    try:
        status = os.stat(safe_files.resolve_inside(repo, relative))
    except (OSError, ValueError) as exc:
        raise RequestError(f"{repo / relative}: not used ({exc}); the cache folder is not in huggingface_hub's layout") from None
    if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_TREE_LISTING_BYTES:
        raise RequestError(
            f"{repo / relative}: not a regular file of at most {MAX_TREE_LISTING_BYTES} bytes; "
            "the cache folder is not in huggingface_hub's layout"
        )


def _not_cached(repo_id: str, revision: str, repo: Path, why: str) -> RequestError:
    return RequestError(
        f"{repo_id}: {why} in the Hugging Face cache (searched {repo}); this suite is offline unless "
        f"HF_HUB_OFFLINE=0: run it with HF_HUB_OFFLINE=0 to download {repo_id}"
        + (f" at revision {revision}" if revision != "main" else "")
        + f", or fetch it first (`hf download {repo_id}" + (f" --revision {revision}" if revision != "main" else "") + "`)"
    )


def resolve(repo_id: str, revision: str | None = None) -> Snapshot:
    """The snapshot folder of `repo_id` at `revision` (default `main`) in the hub cache; downloads only when online.

    Offline (`is_offline()`): the ref file is checked here, then huggingface_hub's
    `snapshot_download(local_files_only=True)` answers from the cache. Online (`HF_HUB_OFFLINE=0`):
    `snapshot_download` fetches what is missing. Either way the answer must be `snapshots/<commit>/` of
    this repository in the cache folder searched. Raises RequestError naming that folder and how to
    download, for a repo id or revision that is not cached (or cannot be fetched), or a bad revision.
    """
    if not REPO_ID_PATTERN.fullmatch(repo_id):
        raise RequestError(f"{repo_id!r} is not a repo id (ORG/NAME)")
    revision = check_revision(revision or "main")
    cache = cache_folder()
    repo = Path(os.path.realpath(cache / repo_folder_name(repo_id)))  # safe_files judges against resolved folders
    if os.path.lexists(cache / repo_folder_name(repo_id)) and repo.name != repo_folder_name(repo_id):
        # The cache may sit behind a link, but a repository folder that leads to another repository's would
        # check (and name the result after) a model the user did not ask for.
        raise RequestError(f"{repo_id}: {cache / repo_folder_name(repo_id)} leads to {repo}, another repository; not used")
    offline = is_offline()
    if offline:
        if not _real_folder(repo):
            raise _not_cached(repo_id, revision, repo, "not found")
        commit = revision if COMMIT_PATTERN.fullmatch(revision) else _read_ref(repo, revision)
        if commit is None:
            raise _not_cached(repo_id, revision, repo, f"revision {revision!r} not found (no readable refs/{revision})")
        _check_listing(repo, commit)
    from huggingface_hub import snapshot_download

    try:
        answered = snapshot_download(repo_id, revision=revision, cache_dir=str(cache), local_files_only=offline)
    except Exception as exc:  # noqa: BLE001 (huggingface_hub raises its own errors, OSError and ValueError alike)
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        if offline:
            raise _not_cached(repo_id, revision, repo, f"revision {revision!r} not usable ({reason})") from None
        raise RequestError(f"{repo_id}: could not be downloaded into {cache} (HF_HUB_OFFLINE=0): {reason}") from None
    folder = Path(os.path.realpath(answered))
    snapshot = snapshot_at(folder)
    if snapshot is None or folder.parent.parent != repo:
        raise RequestError(f"{repo_id}: the cache answered {answered}, not a snapshot folder of {repo}; not used")
    return snapshot

"""Before a load: prove every file the loader may open is a regular file inside the model folder, then stage them.

transformers and tokenizers open files by name: `config.json`, the weights or the shards an index names,
the tokenizer's vocabulary files, `generation_config.json`, chat templates. A name can climb out of the
folder (`../../outside/shard.safetensors` in an index), be absolute (`/etc/passwd`), or be a symlink to a
file elsewhere, a FIFO or a device. Checking names and then handing the loader the model folder would
still let it open anything it looks up that we did not think of. So the load reads from a *staging
folder*: a fresh temporary folder that holds only

- the files of the load set, each verified (resolves inside the folder, is a regular file) and staged as a
  symlink to its resolved real path, which lies inside the model folder;
- the weight index re-written from the entries we verified (the loader never reads the model's own copy),
  and tokenizer_config.json re-written without file-path arguments (see `_tokenizer_config`).

Anything not staged does not exist for the loader: the other weight format, adapter configs (which name a
base model elsewhere), Python files, files that are unsafe but no loader needs (a README linked outside).
A name the loader does need that fails the check refuses the load with the reason.

What this cannot cover: a file swapped inside the model folder between the check and the load (the staged
symlink then follows the swapped-in link); the folder must not be written while it is checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .. import safe_files
from ..formats.registry import format_named, weight_suffixes

# Names transformers (config, model, generation config) and tokenizers (AutoTokenizer, every tokenizer
# class's vocab_files_names among the families we load, chat templates) open from a local folder by
# default. One of them that is present must pass the check, or the load is refused.
LOADER_FILE_NAMES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "spiece.model",
        "sentencepiece.bpe.model",
        "spm.model",
        "source.spm",
        "target.spm",
        "tokenizer.tiktoken",
        "chat_template.jinja",
        "chat_template.json",
        "preprocessor_config.json",
        "processor_config.json",
        "video_preprocessor_config.json",
    }
)
CHAT_TEMPLATES_FOLDER = "additional_chat_templates"  # transformers reads every *.jinja in it
# Other files are staged only if they are safe and are neither weights nor code nor adapters: a loader
# never needs them from here, and an adapter config would make transformers load a base model elsewhere.
# Weights are every registered format's files (`formats.registry.weight_suffixes`) plus these.
UNSTAGED_SUFFIXES = (".npy", ".py", ".pyc")
UNSTAGED_PREFIXES = ("adapter_",)
MAX_INDEX_BYTES = 64 * 1024 * 1024  # an index of a 400B-parameter checkpoint is ~2 MB
MAX_INDEX_ENTRIES = 1_000_000  # tensors named in one index
MAX_SHARDS = 100_000
MAX_FOLDER_ENTRIES = 100_000  # top-level entries looked at; a folder with more is refused
MAX_CHAT_TEMPLATES = 1_000
MAX_FAST_TOKENIZER_FILES = 100


class LoadRefused(ValueError):
    """A file the load would open is outside the folder, not a regular file, or named unsafely."""


@dataclass
class LoadPlan:
    """What the loader may see: relative name -> resolved real path inside the folder, plus rewritten indexes."""

    files: dict[str, Path] = field(default_factory=dict)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)  # index name -> the JSON we write
    rewritten: dict[str, dict[str, Any]] = field(default_factory=dict)  # other JSON files we write ourselves
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it is not staged (not needed, unsafe)


def _describe(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def verify_file(root: Path, relative: str, why: str, link_roots: Sequence[Path] = ()) -> Path:
    """The resolved path of a file the loader will open; LoadRefused unless it is a regular file inside `root`.

    Nothing is opened: links are read by realpath and the target judged by stat (which never blocks on a
    FIFO). `why` says which loader step needs the file, for the message. A link may also lead into one of
    `link_roots` (the candidate's: a hub cache snapshot's `blobs/`), nowhere else.
    """
    try:
        resolved = safe_files.resolve_inside(root, relative, link_roots)
    except safe_files.UnsafeFileError as exc:
        raise LoadRefused(f"{why}: {exc}") from None
    try:
        mode = os.stat(resolved).st_mode
    except FileNotFoundError:
        raise LoadRefused(f"{why}: {relative!r} is missing") from None
    except OSError as exc:  # ELOOP, EACCES
        raise LoadRefused(f"{why}: {relative!r} cannot be checked: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise LoadRefused(f"{why}: {relative!r} is {_describe(mode)}; only regular files are loaded")
    return resolved


def _plain_name(value: Any, where: str) -> str:
    """A relative name a loader joins to the folder: a string with no absolute root, '..', or empty part."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise LoadRefused(f"{where}: {value!r} is not a file name")
    pure = PurePosixPath(value.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or value.startswith("~"):
        raise LoadRefused(f"{where}: {value!r} is not a path inside the model folder")
    return pure.as_posix()


def _index_shards(root: Path, index_name: str, link_roots: Sequence[Path] = ()) -> tuple[dict[str, Any], list[str]]:
    """The index as we will write it, and its shard names, every one checked."""
    try:
        index = safe_files.read_json(root, index_name, MAX_INDEX_BYTES, link_roots=link_roots)
    except ValueError as exc:
        raise LoadRefused(f"{index_name}: {exc}") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise LoadRefused(f"{index_name} has no weight_map object")
    if len(weight_map) > MAX_INDEX_ENTRIES:
        raise LoadRefused(f"{index_name} names {len(weight_map)} tensors, over the {MAX_INDEX_ENTRIES} limit")
    clean: dict[str, str] = {}
    for tensor, shard in weight_map.items():
        clean[str(tensor)] = _plain_name(shard, f"{index_name} maps {str(tensor)[:80]!r} to a shard")
    shards = sorted(set(clean.values()))
    if len(shards) > MAX_SHARDS:
        raise LoadRefused(f"{index_name} names {len(shards)} shards, over the {MAX_SHARDS} limit")
    metadata = index.get("metadata") if isinstance(index.get("metadata"), dict) else {}
    # Only the fields a loader reads: numbers and strings of the metadata, and the verified map.
    kept = {key: value for key, value in metadata.items() if isinstance(value, (int, float, str)) and not isinstance(value, bool)}
    return {"metadata": kept, "weight_map": clean}, shards


def _tokenizer_config(root: Path, present: set[str], link_roots: Sequence[Path] = ()) -> dict[str, Any] | None:
    """tokenizer_config.json as the staging folder holds it: without file-path arguments (`vocab_file`, ...).

    A tokenizer's keyword arguments come from this file, and a path in `vocab_file`, `merges_file` or
    `tokenizer_file` would be opened verbatim (absolute, or relative to the working directory). Some
    transformers versions let the folder's own files take precedence; dropping the keys makes that hold
    whatever the version, and the tokenizer then opens the staged files by their standard names.
    """
    if "tokenizer_config.json" not in present:
        return None
    try:
        config = safe_files.read_json(root, "tokenizer_config.json", MAX_INDEX_BYTES, link_roots=link_roots)
    except ValueError as exc:
        raise LoadRefused(f"tokenizer_config.json: {exc}") from None
    if not isinstance(config, dict):
        raise LoadRefused("tokenizer_config.json must hold a JSON object")
    return {key: value for key, value in config.items() if not (str(key).endswith("_file") and isinstance(value, str))}


def _fast_tokenizer_files(config: dict[str, Any] | None) -> list[str]:
    """Versioned tokenizer files that tokenizer_config.json's `fast_tokenizer_files` makes the tokenizer open."""
    names = config.get("fast_tokenizer_files") if config is not None else None
    if names is None:
        return []
    if not isinstance(names, list) or len(names) > MAX_FAST_TOKENIZER_FILES:
        raise LoadRefused("tokenizer_config.json: fast_tokenizer_files must be a short list of file names")
    return [_plain_name(name, "tokenizer_config.json fast_tokenizer_files") for name in names]


def _top_level(root: Path) -> list[str]:
    names: list[str] = []
    with os.scandir(root) as entries:
        for entry in entries:
            names.append(entry.name)
            if len(names) > MAX_FOLDER_ENTRIES:
                raise LoadRefused(f"the model folder holds over {MAX_FOLDER_ENTRIES} entries")
    return sorted(names)


def _chat_templates(root: Path) -> list[str]:
    """Every entry of additional_chat_templates/ (transformers opens each *.jinja there)."""
    folder = root / CHAT_TEMPLATES_FOLDER
    if not folder.is_dir() or folder.is_symlink():
        if os.path.lexists(folder) and not (folder.is_dir() and not folder.is_symlink()):
            raise LoadRefused(f"{CHAT_TEMPLATES_FOLDER} is not a folder inside the model folder")
        return []
    names = sorted(entry.name for entry in os.scandir(folder))
    if len(names) > MAX_CHAT_TEMPLATES:
        raise LoadRefused(f"{CHAT_TEMPLATES_FOLDER} holds over {MAX_CHAT_TEMPLATES} files")
    return [f"{CHAT_TEMPLATES_FOLDER}/{name}" for name in names]


def _load_names(weights_format: str) -> tuple[str, str]:
    """(single file, index) the loader opens for a registered format; LoadRefused for one the suite does not load."""
    try:
        names = format_named(weights_format).load_names
    except KeyError as exc:
        raise LoadRefused(str(exc)) from None
    if names is None:
        raise LoadRefused(f"{weights_format} weights are not loaded")
    return names


def plan_load(root: Path, weights_format: str, link_roots: Sequence[Path] = (), *, weights_file: str | None = None) -> LoadPlan:
    """Check every file a load of `root` (resolved) in `weights_format` (a format with `load_names`: "safetensors", "pickle") may open.

    `link_roots` are where links may lead besides `root` (`Candidate.link_roots`). With `weights_file`,
    the format is one whose single file the loader is handed by name (GGUF's `gguf_file=`): that
    top-level file is the only weights staged, whatever the format's `load_names`.
    Raises LoadRefused naming the first file that is outside the folder, not a regular file, missing
    (a shard an index names), or named unsafely by an index or tokenizer config. Bounded: index size
    and entries, folder entries, shards (the MAX_* constants above).
    """
    plan = LoadPlan()
    present = set(_top_level(root))
    if weights_file is not None:
        single, index_name = _plain_name(weights_file, f"{weights_format} weights"), ""
        if "/" in single or single not in present:
            raise LoadRefused(f"{weights_format} weights: {weights_file!r} is not a file at the top of the model folder")
    else:
        single, index_name = _load_names(weights_format)
    unstaged = weight_suffixes() + UNSTAGED_SUFFIXES
    if single in present:  # transformers takes the single file over an index, as here
        plan.files[single] = verify_file(root, single, "weights", link_roots)
    elif index_name in present:
        plan.files[index_name] = verify_file(root, index_name, "weights index", link_roots)
        plan.indexes[index_name], shards = _index_shards(root, index_name, link_roots)
        for shard in shards:
            plan.files[shard] = verify_file(root, shard, f"{index_name} names shard {shard!r}", link_roots)
    for name in sorted(present & LOADER_FILE_NAMES):
        plan.files[name] = verify_file(root, name, "the loader reads it", link_roots)
    tokenizer_config = _tokenizer_config(root, present, link_roots)
    if tokenizer_config is not None:
        plan.rewritten["tokenizer_config.json"] = tokenizer_config
    for name in _fast_tokenizer_files(tokenizer_config):
        if os.path.lexists(root / name):
            plan.files[name] = verify_file(root, name, "tokenizer_config.json fast_tokenizer_files", link_roots)
    for name in _chat_templates(root):
        plan.files[name] = verify_file(root, name, "chat template", link_roots)
    for name in present - set(plan.files) - LOADER_FILE_NAMES:
        if name in (single, index_name) or name.lower().endswith(unstaged) or name.startswith(UNSTAGED_PREFIXES):
            plan.skipped[name] = "not part of the load"
            continue
        try:
            plan.files[name] = verify_file(root, name, "extra file", link_roots)
        except LoadRefused as exc:  # no loader needs it: left out of the staging folder, not an error
            plan.skipped[name] = str(exc)
    return plan


def _stage(plan: LoadPlan, staging: Path) -> None:
    for name, real in plan.files.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name in plan.indexes:
            target.write_text(json.dumps(plan.indexes[name], allow_nan=False), encoding="utf-8")
        elif name in plan.rewritten:  # NaN kept as the model wrote it: transformers reads it with json.load
            target.write_text(json.dumps(plan.rewritten[name]), encoding="utf-8")
        else:
            os.symlink(real, target)


@contextlib.contextmanager
def staged_folder(root: Path, weights_format: str, link_roots: Sequence[Path] = (), *, weights_file: str | None = None) -> Iterator[Path]:
    """A temporary folder holding only the verified load set of `root`; removed on exit.

    Raises LoadRefused before anything is staged (see `plan_load`, which takes the same arguments).
    Removal deletes the links, never their targets.
    """
    plan = plan_load(root, weights_format, link_roots, weights_file=weights_file)
    staging = Path(tempfile.mkdtemp(prefix="conformance-load-"))
    try:
        _stage(plan, staging)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)

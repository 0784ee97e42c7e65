"""`conformance validate`: spec files, model cards and model folders, every problem on its own line.

A spec is loaded as `check` loads it (every schema problem listed by `spec.load_spec`). A card is read
by `card.read_card`, as the card rules read it, and must carry YAML front matter. A model folder (or a
repo id's snapshot in the hub cache, found as `check` finds it) is read through its Candidate, so a
snapshot's links into `blobs/` are followed as the probes follow them: config.json,
generation_config.json and README.md by the same bounded static readers the probes use, or, in a folder
with no config.json, the .gguf model's header. Nothing is loaded, no torch; something is always said.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .candidate import SINGLE_FILE_SUFFIXES
from .errors import RequestError

if TYPE_CHECKING:
    from .candidate import Candidate
    from .card import CardFacts

# The normalized architecture fields (probes.architecture) that must be positive integers for a model to load.
SIZE_FIELDS = (
    "num_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "vocab_size", "context_length",
    "intermediate_size", "head_dim",
)
SPEC_SUFFIXES = (".yaml", ".yml", ".json")  # a name ending so is a spec file, never a repo id
NO_FRONT_MATTER = (
    "no YAML front matter (the Hub reads license, language, tags and model-index from a --- block at the top)"
)


@dataclass
class Validation:
    """What validating one named file or folder found: `ok` lines for stdout, `problems` for stderr.

    Each problem is one line, already naming its file (`path: problem`).
    """

    ok: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def card_problems(path: Path, shown: str) -> tuple[str | None, list[str]]:
    """The card at `path`: its `ok:` line, or None and every problem (front matter errors, schema errors).

    Raises:
        RequestError: `path` does not exist.
    """
    from .card import read_card

    facts = read_card(path, relative=shown)
    if not facts.present:
        raise RequestError(f"{shown}: file not found")
    return card_facts_problems(facts, shown)


def card_facts_problems(facts: CardFacts, shown: str) -> tuple[str | None, list[str]]:
    """A card's `ok:` line, or None and every problem, from the facts `card.read_card` gave; `shown` names the file."""
    prefix = f"{shown}: "
    # read_card names the file in some messages already: the path is said once.
    problems = [problem if problem.startswith(prefix) else prefix + problem for problem in facts.errors + facts.schema_errors]
    if not facts.errors and not facts.metadata:
        problems.insert(0, prefix + NO_FRONT_MATTER)
    if problems:
        return None, problems
    return f"ok: {shown} (model card, {len(facts.metadata)} metadata keys, {len(facts.sections)} sections)", []


def validate_card(path: Path) -> Validation:
    """Validate one model card file; see `card_problems`."""
    line, problems = card_problems(path, str(path))
    return Validation(ok=[line] if line else [], problems=problems)


def validate_spec(path: Path) -> Validation:
    """Load a spec (a path or a shipped standard's name); its `ok:` line, or each problem of a SpecError."""
    from .spec import load_spec

    try:
        spec = load_spec(path)
    except RequestError as exc:
        return Validation(problems=str(exc).splitlines())
    return Validation(ok=[f"ok: {path} (spec {spec.id} {spec.version}, {len(spec.rules)} rules)"])


def _config(candidate: Candidate, folder: Path, found: Validation) -> int | None:
    """Validate config.json (bounded JSON, architecture fields, repeated keys); the context length when known."""
    from .probes.architecture import normalize_architecture
    from .probes.static import ambiguous_architecture

    shown = folder / "config.json"
    try:
        architecture = normalize_architecture(candidate.config)
        ambiguous = ambiguous_architecture(candidate)
    except (ValueError, TypeError, KeyError) as exc:
        found.problems.append(f"{shown}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return None
    if ambiguous:
        found.problems.append(f"{shown}: {ambiguous}")
        return None
    malformed = [
        f"{shown}: {key} {str(architecture[key])[:40]!r} is not a positive integer"
        for key in SIZE_FIELDS
        if architecture.get(key) is not None and not (type(architecture[key]) is int and architecture[key] > 0)
    ]
    if malformed:
        found.problems.extend(malformed)
        return None
    described = [str(architecture.get("model_type") or "unknown type")]
    for key, label in (("num_layers", "layers"), ("hidden_size", "hidden"), ("context_length", "context")):
        if architecture.get(key) is not None:
            described.append(f"{architecture[key]} {label}" if key == "num_layers" else f"{label} {architecture[key]}")
    found.ok.append(f"ok: {shown} ({', '.join(described)})")
    context = architecture.get("context_length")
    return context if isinstance(context, int) else None


def _generation_config(candidate: Candidate, folder: Path, context_length: int | None, found: Validation) -> None:
    """Validate generation_config.json as transformers would at load (`validate_generation_settings`)."""
    from .probes.generation_settings import GENERATION_CONFIG_FILE, read_generation_settings, validate_generation_settings
    from .probes.json_keys import duplicate_keys

    shown = folder / GENERATION_CONFIG_FILE
    settings = read_generation_settings(candidate)
    if not settings.present:
        return
    if settings.data is None:
        found.problems.append(f"{shown}: {settings.error}")
        return
    problems = [f"{shown}: {error}" for error in validate_generation_settings(settings.data, context_length).errors]
    try:
        repeated, _ = duplicate_keys(candidate.read_bytes(GENERATION_CONFIG_FILE, 4 * 1024 * 1024), GENERATION_CONFIG_FILE)
    except (ValueError, RecursionError):
        repeated = []
    problems += [f"{shown}: repeated key {key.describe()}" for key in repeated if key.conflicting]
    found.problems.extend(problems)
    if not problems:
        found.ok.append(f"ok: {shown} ({len(settings.data)} keys)")


def _gguf(candidate: Candidate, folder: Path, found: Validation) -> None:
    """Validate the header of the folder's GGUF model (its first shard): one `ok:` line naming the architecture, or the problem."""
    from .formats.gguf import gguf_model_files, read_gguf

    try:
        names = gguf_model_files(candidate.file_names())
    except ValueError as exc:
        found.problems.append(f"{folder}: {exc}")
        return
    shown = folder / names[0]
    try:
        header = read_gguf(candidate, names[0])
    except ValueError as exc:  # a malformed header, and safe_files' refusals (a FIFO, a link out)
        found.problems.append(f"{shown}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return
    except OSError as exc:
        found.problems.append(f"{shown}: cannot be read: {exc.strerror}")
        return
    architecture = header.string("general.architecture")
    if header.tensors_error:
        found.problems.append(f"{shown}: {header.tensors_error}")
    elif not architecture:
        found.problems.append(f"{shown}: no general.architecture in the GGUF header (what the model is cannot be told)")
    else:
        shards = f", {len(names)} shards" if len(names) > 1 else ""
        found.ok.append(f"ok: {shown} (GGUF v{header.version}, architecture {architecture}, {len(header.tensors or [])} tensors{shards})")


def _present(candidate: Candidate, relative: str) -> bool:
    """Whether the folder has an entry `relative` (a link or a FIFO too: its reader reports it); not walked."""
    return os.path.lexists(candidate.path / relative)


def _has_gguf(folder: Path) -> bool:
    """Whether a top-level name in `folder` ends in .gguf (names only; at most MAX_MARKER_ENTRIES looked at)."""
    from .model_folder import MAX_MARKER_ENTRIES

    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_MARKER_ENTRIES:
                    return False
                if entry.name.lower().endswith(SINGLE_FILE_SUFFIXES):
                    return True
    except OSError:
        return False
    return False


def validate_model_folder(folder: Path, name: str | None = None) -> Validation:
    """Validate a model folder's config.json, generation_config.json and README.md, each problem on a line.

    Files are read through the folder's Candidate, so a hub cache snapshot's links into its `blobs/`
    are followed as `check` follows them. A folder with no config.json but a .gguf model has its GGUF
    header read instead. Something is always said: a folder with none of these files gets an `ok:` line
    saying what was not there to validate. `name` is the model's display name (a repo id), when known.

    Raises:
        RequestError: the folder holds no model (`model_folder.require_model_folder`).
    """
    from .candidate import Candidate
    from .model_folder import require_model_folder
    from .probes.card_probe import CARD_FILE, probe_card

    require_model_folder(folder, name)
    candidate = Candidate(folder, name=name)
    found = Validation()
    context_length = _config(candidate, folder, found) if _present(candidate, "config.json") else None
    _generation_config(candidate, folder, context_length, found)
    if _present(candidate, CARD_FILE):
        shown = str(folder / CARD_FILE)
        facts = probe_card(candidate)  # read where the link really leads, named as in the folder
        line, problems = card_facts_problems(facts, shown)
        found.ok.extend([line] if line else [])
        found.problems.extend(problems)
    if not _present(candidate, "config.json") and _has_gguf(candidate.path):
        _gguf(candidate, folder, found)
    if not found.ok and not found.problems:
        found.ok.append(f"ok: {folder} (no config.json, generation_config.json or README.md to validate; `check` reads the weights)")
    return found


def validate_path(name: str) -> Validation:
    """Validate what `name` is: a model folder, a card (`.md`), a repo id in the hub cache, else a spec.

    A repo id (`ORG/NAME`, `ORG/NAME@REV`) is a name that is no local path, reads as one, and does not
    end like a spec file (.yaml, .yml, .json); it is found as `check` finds it (`candidate.locate_model`:
    the hub cache, offline unless HF_HUB_OFFLINE=0) and its snapshot folder is validated.

    Raises:
        RequestError: a model folder with no model in it, a card that does not exist, a `.gguf` file, or
            a repo id not in the cache.
    """
    from . import hub

    path = Path(name)
    if path.is_dir():
        return validate_model_folder(path)
    if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        raise RequestError(f"{name}: a .gguf file carries its own metadata; `check` reads it (validate takes specs, cards and model folders)")
    if path.suffix.lower() == ".md":
        return validate_card(path)
    if not os.path.lexists(path) and path.suffix.lower() not in SPEC_SUFFIXES and hub.split_reference(name) is not None:
        from .candidate import locate_model

        folder, shown = locate_model(name)
        if not folder.is_dir():  # a cached single .gguf file
            raise RequestError(f"{name}: a .gguf file carries its own metadata; `check` reads it (validate takes specs, cards and model folders)")
        return validate_model_folder(folder, shown or name)
    return validate_spec(path)

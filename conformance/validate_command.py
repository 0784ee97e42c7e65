"""`conformance validate`: spec files, model cards and model folders, every problem on its own line.

A spec is loaded as `check` loads it (every schema problem listed by `spec.load_spec`). A card is read
by `card.read_card`, as the card rules read it, and must carry YAML front matter. A model folder's
config.json, generation_config.json and README.md are read through the same bounded static readers the
probes use: nothing is loaded, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .candidate import SINGLE_FILE_SUFFIXES
from .errors import RequestError

# The normalized architecture fields (probes.architecture) that must be positive integers for a model to load.
SIZE_FIELDS = (
    "num_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "vocab_size", "context_length",
    "intermediate_size", "head_dim",
)
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


def _config(folder: Path, found: Validation) -> int | None:
    """Validate config.json (bounded JSON, architecture fields, repeated keys); the context length when known."""
    from .candidate import Candidate
    from .probes.architecture import normalize_architecture
    from .probes.static import ambiguous_architecture

    shown = folder / "config.json"
    candidate = Candidate(folder)
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


def _generation_config(folder: Path, context_length: int | None, found: Validation) -> None:
    """Validate generation_config.json as transformers would at load (`validate_generation_settings`)."""
    from .candidate import Candidate
    from .probes.generation_settings import GENERATION_CONFIG_FILE, read_generation_settings, validate_generation_settings
    from .probes.json_keys import duplicate_keys

    shown = folder / GENERATION_CONFIG_FILE
    candidate = Candidate(folder)
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


def validate_model_folder(folder: Path) -> Validation:
    """Validate a model folder's config.json, generation_config.json and README.md, each problem on a line.

    Raises:
        RequestError: the folder holds no model (`model_folder.require_model_folder`).
    """
    from .model_folder import require_model_folder

    require_model_folder(folder)
    found = Validation()
    context_length = _config(folder, found) if (folder / "config.json").exists() or (folder / "config.json").is_symlink() else None
    _generation_config(folder, context_length, found)
    card = folder / "README.md"
    if card.exists() or card.is_symlink():
        line, problems = card_problems(card, str(card))
        found.ok.extend([line] if line else [])
        found.problems.extend(problems)
    return found


def validate_path(name: str) -> Validation:
    """Validate what `name` is: a model folder, a card (`.md`), else a spec file or a shipped standard's name.

    Raises:
        RequestError: a model folder with no model in it, a card that does not exist, or a `.gguf` file.
    """
    path = Path(name)
    if path.is_dir():
        return validate_model_folder(path)
    if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        raise RequestError(f"{name}: a .gguf file carries its own metadata; `check` reads it (validate takes specs, cards and model folders)")
    if path.suffix.lower() == ".md":
        return validate_card(path)
    return validate_spec(path)

"""Results are data first: RunResult (typed identity, rules and summary), its schema'd JSON document, and writes.

Views never read these dicts themselves: `result_document.ResultDocument` reads a document back.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .evidence import to_plain
from .paths import schema_path
from .verdict import Level, Status, breaks_conformance, is_warning

SCHEMA_VERSION = "1.0"
# Values copied into a result document (card metadata, config values, observed values) are bounded in
# depth: inputs are already held to 64 levels (YAML and JSON budgets), the document wraps them in a few
# more, and 100 keeps every reader's recursion (json, jsonschema, templates) far from Python's limit.
MAX_DOCUMENT_DEPTH = 100
TRUNCATED_MARKER = f"[truncated: nested deeper than {MAX_DOCUMENT_DEPTH} levels, the result document depth budget]"
# Strict JSON has no NaN or infinities; a model's config or card may hold them, so they are recorded
# as these strings (JavaScript's spellings, which Python's json also reads back as floats on request).
NON_FINITE_STRINGS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_REPORTED_PACKAGES = ("torch", "transformers", "safetensors", "huggingface_hub", "jsonschema", "picklescan", "lm_eval")


@dataclass
class RuleResult:
    """One rule judged on one model: a row of the document's `rules`.

    `level` and `status` are enums (plain strings are converted; ValueError outside them), written to the
    document as their plain strings. `seconds` is the time the check took to judge.
    """

    id: str
    check: str
    level: Level
    status: Status
    observed: Any = None
    expected: Any = None
    message: str = ""
    seconds: float = 0.0
    interval: dict[str, Any] | None = None  # {"low", "high", "level"} of a measured figure (speed rules)

    def __post_init__(self) -> None:
        """Convert the plain strings checks and specs hand over ("pass", "must"); ValueError outside the enums."""
        self.level = Level(self.level)
        self.status = Status(self.status)

    @property
    def breaks_conformance(self) -> bool:
        """A must rule that failed or errored (see `verdict.breaks_conformance`)."""
        return breaks_conformance(self.level, self.status)

    @property
    def is_warning(self) -> bool:
        """A should or may rule that failed (see `verdict.is_warning`)."""
        return is_warning(self.level, self.status)

    def to_dict(self) -> dict[str, Any]:
        """The document's rule row: plain data (`to_plain`), enums as their strings, keys in the schema's order."""
        return to_plain({**asdict(self), "level": self.level.value, "status": self.status.value})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleResult:
        """A rule row of a result document (ValueError for a level or status outside the enums)."""
        return cls(**data)


@dataclass(frozen=True)
class SpecIdentity:
    """The document's `spec` block: which spec judged the model, down to the hash of its resolved rules."""

    id: str
    version: str
    sha256: str
    title: str = ""
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The document's block: id, version, title, path, sha256 (always all five)."""
        return {"id": self.id, "version": self.version, "title": self.title, "path": self.path, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpecIdentity:
        """Read a document's block (KeyError without id, version or sha256; title and path may be absent)."""
        return cls(id=data["id"], version=data["version"], sha256=data["sha256"], title=data.get("title", ""), path=data.get("path"))

    @property
    def label(self) -> str:
        """`id version`, as every view names a spec."""
        return f"{self.id} {self.version}"


@dataclass(frozen=True)
class ModelIdentity:
    """The document's `model` block: name, folder and, when the weights were hashed, their sha256.

    `sha256` is taken over the per-file digests in `weight_files` (relative path -> hex digest); both are
    None when the weights were not hashed.
    """

    name: str
    path: str
    sha256: str | None = None
    weight_files: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The document's block: name, path, sha256, and weight_files only when the weights were hashed."""
        plain: dict[str, Any] = {"name": self.name, "path": self.path, "sha256": self.sha256}
        if self.weight_files is not None:
            plain["weight_files"] = dict(self.weight_files)
        return plain

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelIdentity:
        """Read a document's block (KeyError without name or path)."""
        files = data.get("weight_files")
        return cls(name=data["name"], path=data["path"], sha256=data.get("sha256"), weight_files=dict(files) if isinstance(files, Mapping) else None)


@dataclass(frozen=True)
class Summary:
    """Rule counts and the verdict of one document.

    `warnings` counts should rules that failed (may shortfalls are not counted: the field has always meant
    "should"); None when a document does not record it. `conformant`: no rule broke conformance.
    """

    passed: int
    failed: int
    skipped: int
    errors: int
    warnings: int | None
    conformant: bool

    @classmethod
    def of_rules(cls, rules: Iterable[RuleResult]) -> Summary:
        """Count judged rules (the summary `RunResult` writes)."""
        rules = list(rules)
        counts = {status: sum(rule.status is status for rule in rules) for status in Status}
        return cls(
            passed=counts[Status.PASS],
            failed=counts[Status.FAIL],
            skipped=counts[Status.SKIP],
            errors=counts[Status.ERROR],
            warnings=sum(rule.is_warning and rule.level is Level.SHOULD for rule in rules),
            conformant=not any(rule.breaks_conformance for rule in rules),
        )

    def to_dict(self) -> dict[str, Any]:
        """The document's block: passed, failed, skipped, errors, warnings (when known), conformant."""
        plain: dict[str, Any] = {"passed": self.passed, "failed": self.failed, "skipped": self.skipped, "errors": self.errors}
        if self.warnings is not None:
            plain["warnings"] = self.warnings
        plain["conformant"] = self.conformant
        return plain

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """Read a document's block (KeyError without a count or the verdict)."""
        return cls(passed=data["passed"], failed=data["failed"], skipped=data["skipped"], errors=data["errors"],
                   warnings=data.get("warnings"), conformant=bool(data["conformant"]))


@dataclass
class RunResult:
    """One model judged against one spec; `to_document()` is its result document."""

    spec: SpecIdentity
    model: ModelIdentity
    rules: list[RuleResult]
    evidence: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> Summary:
        """Counted from `rules` each time (rules may be added after construction)."""
        return Summary.of_rules(self.rules)

    @property
    def conformant(self) -> bool:
        """No rule broke conformance."""
        return self.summary.conformant

    def to_document(self) -> dict[str, Any]:
        """The result document (result.schema.json): strict JSON data, see `json_safe`."""
        return json_safe({
            "schema_version": SCHEMA_VERSION,
            "spec": self.spec.to_dict(),
            "model": self.model.to_dict(),
            "environment": self.environment,
            "summary": self.summary.to_dict(),
            "rules": [rule.to_dict() for rule in self.rules],
            "evidence": to_plain(self.evidence),
        })


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of plain data that strict JSON (`allow_nan=False`) can always write.

    Non-finite floats become NON_FINITE_STRINGS ("NaN", "Infinity", "-Infinity"); a container nested
    deeper than MAX_DOCUMENT_DEPTH becomes TRUNCATED_MARKER; mapping keys become strings, tuples lists,
    and any other object its `str`. Recursion is bounded by MAX_DOCUMENT_DEPTH.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else NON_FINITE_STRINGS[repr(value)]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_DOCUMENT_DEPTH:
            return TRUNCATED_MARKER
        if isinstance(value, dict):
            return {str(key): json_safe(item, depth + 1) for key, item in value.items()}
        return [json_safe(item, depth + 1) for item in value]
    return str(value)


def environment() -> dict[str, Any]:
    """Versions that matter for reproducing a result, read without importing the packages.

    Returns conformance's and Python's versions, the platform, the machine and `packages` (name -> version
    of each installed package in `_REPORTED_PACKAGES`).
    """
    packages = {}
    for name in _REPORTED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "conformance": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": packages,
    }


@lru_cache(maxsize=1)
def _result_validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(schema_path("result").read_text(encoding="utf-8")))


def validate_document(document: dict[str, Any]) -> list[str]:
    """Where `document` breaks result.schema.json: one `path: message` line per problem (empty when valid)."""
    from .sourcefile import format_path

    return [f"{format_path(list(e.absolute_path))}: {e.message}" for e in _result_validator().iter_errors(document)]


def write_atomic(path: Path, text: str) -> None:
    """Write `text` as UTF-8 through `atomic_write.write_atomic`.

    A temporary file beside the target, then a rename: readers never see half a file, and the file gets
    the mode the user's umask gives (0644 under 022), not mkstemp's 0600.
    """
    from .atomic_write import write_atomic as write

    write(path, text)


def write_result(document: dict[str, Any], path: Path) -> None:
    """Validate and write a result document atomically (indented JSON, one trailing newline).

    Non-finite numbers and over-deep values are recorded as `json_safe` says, so a hostile model never
    stops its result from being written. ValueError when the document still breaks the schema (a bug).
    """
    document = json_safe(document)
    problems = validate_document(document)
    if problems:  # a bug of ours, never the user's: refuse to write an invalid document
        raise ValueError("result document breaks result.schema.json: " + "; ".join(problems[:3]))
    write_atomic(path, json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n")


def load_result(path: Path) -> dict[str, Any]:
    """Read and validate a result document through `safe_files.read_json_document`.

    Raises `SpecError` (`path: reason`, exit status 2 on the command line) when the file is missing, not a
    regular file (a directory, a FIFO: refused at once, never waited on), over DOCUMENT_MAX_BYTES, not
    UTF-8 JSON, nested past DOCUMENT_MAX_DEPTH, or breaking the schema.
    """
    from .errors import SpecError
    from .safe_files import DOCUMENT_MAX_BYTES, DOCUMENT_MAX_DEPTH, read_json_document

    try:
        document = read_json_document(path, DOCUMENT_MAX_BYTES, DOCUMENT_MAX_DEPTH)
    except FileNotFoundError:
        raise SpecError(str(path), "result file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), f"not a JSON result document: {exc}") from None
    except ValueError as exc:  # UnsafeFileError, JSONTooDeepError: the message is the reason alone
        raise SpecError(str(path), f"not a readable result document: {exc}") from None
    except OSError as exc:
        raise SpecError(str(path), f"not a readable result document: {exc.strerror or exc}") from None
    try:
        problems = validate_document(document) if isinstance(document, dict) else ["not an object"]
    except RecursionError:  # not expected within DOCUMENT_MAX_DEPTH; never a traceback if it happens
        problems = [f"nests too deep to validate (limit {DOCUMENT_MAX_DEPTH} levels)"]
    if problems:
        raise SpecError(str(path), f"not a valid result document: {problems[0]}")
    return document

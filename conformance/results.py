"""Results are data first: RunResult, its schema'd JSON document, and atomic writes."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .evidence import to_plain
from .paths import schema_path

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
    id: str
    check: str
    level: str
    status: str
    observed: Any = None
    expected: Any = None
    message: str = ""
    seconds: float = 0.0
    interval: dict[str, Any] | None = None  # {"low", "high", "level"} of a measured figure (speed rules)


@dataclass
class RunResult:
    spec: dict[str, Any]
    model: dict[str, Any]
    rules: list[RuleResult]
    evidence: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        counts = {status: sum(r.status == status for r in self.rules) for status in ("pass", "fail", "skip", "error")}
        must_broken = any(r.level == "must" and r.status in ("fail", "error") for r in self.rules)
        return {
            "passed": counts["pass"],
            "failed": counts["fail"],
            "skipped": counts["skip"],
            "errors": counts["error"],
            "warnings": sum(r.level == "should" and r.status == "fail" for r in self.rules),
            "conformant": not must_broken,
        }

    @property
    def conformant(self) -> bool:
        return bool(self.summary["conformant"])

    def to_document(self) -> dict[str, Any]:
        """The result document (result.schema.json): strict JSON data, see `json_safe`."""
        return json_safe({
            "schema_version": SCHEMA_VERSION,
            "spec": self.spec,
            "model": self.model,
            "environment": self.environment,
            "summary": self.summary,
            "rules": [to_plain(rule) for rule in self.rules],
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
    """Versions that matter for reproducing a result, read without importing the packages."""
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
    from .sourcefile import format_path

    return [f"{format_path(list(e.absolute_path))}: {e.message}" for e in _result_validator().iter_errors(document)]


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside the target, then rename (see atomic_write): readers never see half a
    file, and the file gets the mode the user's umask gives (0644 under 022), not mkstemp's 0600."""
    from .atomic_write import write_atomic as write

    write(path, text)


def write_result(document: dict[str, Any], path: Path) -> None:
    """Validate and write a result document atomically; non-finite numbers and over-deep values are
    recorded as `json_safe` says, so a hostile model never stops its result from being written."""
    document = json_safe(document)
    problems = validate_document(document)
    if problems:  # a bug of ours, never the user's: refuse to write an invalid document
        raise ValueError("result document breaks result.schema.json: " + "; ".join(problems[:3]))
    write_atomic(path, json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n")


def load_result(path: Path) -> dict[str, Any]:
    from .errors import SpecError

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(str(path), "result file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), f"not a JSON result document: {exc}") from None
    problems = validate_document(document) if isinstance(document, dict) else ["not an object"]
    if problems:
        raise SpecError(str(path), f"not a valid result document: {problems[0]}")
    return document

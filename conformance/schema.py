"""The spec's JSON Schema, generated from the check registry so the two cannot drift.

`specs/schema/spec.schema.json` is this output, committed; a test keeps the file equal to it.
Regenerate with `python -m conformance.schema --write`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .catalogue import all_checks
from .paths import schema_path
from .registry import CheckDef
from .rule import COMPARISON_KEYS, LEVELS

SPEC_SCHEMA_ID = "https://conformance.dev/schema/spec.schema.json"

COMPARISON_SCHEMAS: dict[str, dict[str, Any]] = {
    "min": {"type": "number", "description": "observed value must be at least this"},
    "max": {"type": "number", "description": "observed value must be at most this"},
    "equals": {"description": "observed value must equal this (numbers within `tolerance`)"},
    "in": {"type": "array", "minItems": 1, "description": "observed value must be one of these"},
    "not_in": {"type": "array", "minItems": 1, "description": "observed value must be none of these"},
    "pattern": {"type": "string", "format": "regex", "description": "observed value must match this regex (search)"},
    "tolerance": {
        "type": "number",
        "minimum": 0,
        "description": "relative tolerance for numeric comparisons (0.01 = 1%)",
    },
}


def _check_schema(params: dict[str, dict[str, Any]], required: tuple[str, ...], comparisons: tuple[str, ...], needs_comparison: bool, summary: str) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "description": summary,
        "properties": {**{key: COMPARISON_SCHEMAS[key] for key in comparisons}, **params},
    }
    if required:
        schema["required"] = list(required)
    if needs_comparison:
        schema["anyOf"] = [{"required": [key]} for key in comparisons if key != "tolerance"]
    return schema


def spec_schema() -> dict[str, Any]:
    """The spec's JSON Schema (draft 2020-12): one `$defs/checks` entry per registered check."""
    checks = all_checks()
    rule: dict[str, Any] = {
        "type": "object",
        "required": ["id", "level", "check"],
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
            "level": {"enum": list(LEVELS)},
            "check": {"enum": [c.name for c in checks]},
            "description": {"type": "string"},
        },
        "allOf": [
            {
                "if": {"properties": {"check": {"const": c.name}}, "required": ["check"]},
                "then": {"$ref": f"#/$defs/checks/{c.name}"},
            }
            for c in checks
        ],
        "unevaluatedProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SPEC_SCHEMA_ID,
        "title": "conformance spec",
        "type": "object",
        "required": ["id", "version", "rules"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
            "version": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "extends": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
        },
        "$defs": {
            "rule": rule,
            "checks": {
                c.name: _check_schema(c.params, c.required, c.comparisons, c.needs_comparison, c.summary)
                for c in checks
            },
        },
    }


def render() -> str:
    """The schema as committed in `specs/schema/spec.schema.json` (two-space indent, final newline)."""
    return json.dumps(spec_schema(), indent=2, sort_keys=False) + "\n"


def catalogue_markdown_params(definition: CheckDef) -> str:
    """`path* [min, max]*`: parameters (* required), then the comparison keys (* at least one needed)."""
    parts = [f"{key}{'*' if key in definition.required else ''}" for key in definition.params]
    if definition.comparisons:
        parts.append("[" + ", ".join(definition.comparisons) + "]" + ("*" if definition.needs_comparison else ""))
    return " ".join(parts)


def catalogue_markdown() -> str:
    """The README's check table."""
    lines = ["| check | parameters | probes | what it checks |", "|---|---|---|---|"]
    for c in all_checks():
        lines.append(f"| `{c.name}` | {catalogue_markdown_params(c) or '-'} | {', '.join(c.probes)} | {c.summary} |")
    return "\n".join(lines)


def _write_readme_catalogue(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    start = text.index(_CATALOGUE_START)
    start = text.index("\n", start) + 1
    end = text.index(_CATALOGUE_END)
    readme.write_text(text[:start] + catalogue_markdown() + "\n" + text[end:], encoding="utf-8")


_CATALOGUE_START = "<!-- catalogue:start"
_CATALOGUE_END = "<!-- catalogue:end -->"


def main(argv: list[str]) -> int:
    """`python -m conformance.schema [--write]`: print the schema, or write it and the README's check table."""
    text = render()
    if "--write" in argv:
        schema_path("spec").write_text(text, encoding="utf-8")
        readme = Path(__file__).resolve().parent.parent / "README.md"
        if readme.is_file():
            _write_readme_catalogue(readme)
    else:
        sys.stdout.write(text)
    return 0


assert set(COMPARISON_SCHEMAS) == set(COMPARISON_KEYS)

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Markdown view of one result document (for pull requests and CI summaries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..result_document import ResultDocument
from .text import interval_text, short, status_text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(document: ResultDocument | Mapping[str, Any]) -> str:
    """A heading, the verdict with its counts, the identity hashes and one table row per rule."""
    document = ResultDocument.of(document)
    model, spec, summary = document.model, document.spec, document.summary
    verdict = "✅ conformant" if summary.conformant else "❌ not conformant"
    lines = [
        f"# {model.name}: {spec.label}",
        "",
        f"**{verdict}**: {summary.passed} passed, {summary.failed} failed, "
        f"{summary.skipped} skipped, {summary.errors} errors.",
        "",
        f"- weights sha256: `{model.sha256 or 'not hashed'}`",
        f"- spec sha256: `{spec.sha256}`",
        "",
        "| rule | check | level | status | observed | interval | expected | message |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in document.rules:
        cells = (
            rule.id, rule.check, rule.level.value, status_text(rule),
            short(rule.observed, 60), interval_text(rule) or "-", short(rule.expected, 40), short(rule.message, 120),
        )
        lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    return "\n".join(lines) + "\n"

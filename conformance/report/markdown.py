"""Markdown view of one result document (for pull requests and CI summaries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..result_document import ResultDocument
from .text import interval_text, markdown_code, markdown_text, short, status_text


def render_markdown(document: ResultDocument | Mapping[str, Any]) -> str:
    """A heading, the verdict with its counts, the identity hashes and one table row per rule.

    Every text from the document goes through `report.text.markdown_text` (cells, heading) or
    `markdown_code`: a model's value shows as its text, never as HTML, a link, a new line or a new column.
    """
    document = ResultDocument.of(document)
    model, spec, summary = document.model, document.spec, document.summary
    verdict = "✅ conformant" if summary.conformant else "❌ not conformant"
    lines = [
        f"# {markdown_text(model.name, 500)}: {markdown_text(spec.label, 500)}",
        "",
        f"**{verdict}**: {summary.passed} passed, {summary.failed} failed, "
        f"{summary.skipped} skipped, {summary.errors} errors.",
        "",
        f"- weights sha256: {markdown_code(model.sha256 or 'not hashed', 100)}",
        f"- spec sha256: {markdown_code(spec.sha256, 100)}",
        "",
        "| rule | check | level | status | observed | interval | expected | message |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in document.rules:
        cells = (
            rule.id, rule.check, rule.level.value, status_text(rule),
            short(rule.observed, 60), interval_text(rule) or "-", short(rule.expected, 40), short(rule.message, 120),
        )
        lines.append("| " + " | ".join(markdown_text(short(c, 200)) for c in cells) + " |")
    return "\n".join(lines) + "\n"

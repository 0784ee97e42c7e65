"""The table `conformance check` prints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..result_document import ResultDocument
from ..verdict import Status
from .text import interval_text, short, status_text


def render_table(document: ResultDocument | Mapping[str, Any]) -> str:
    """The rule table; an `interval` column appears when a rule was decided from a confidence interval."""
    document = ResultDocument.of(document)
    rules = document.rules
    with_interval = any(interval_text(r) for r in rules)
    headers: tuple[str, ...] = ("rule", "level", "status", "observed", "expected", *(("interval",) if with_interval else ()))
    rows = [
        (r.id, r.level.value, status_text(r), short(r.observed, 40), short(r.expected, 32), *((interval_text(r),) if with_interval else ()))
        for r in rules
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for rule in rules:
        if rule.message and rule.status is not Status.PASS:
            lines.append(f"  {rule.id}: {rule.message}")
    summary = document.summary
    verdict = "CONFORMANT" if summary.conformant else "NOT CONFORMANT"
    lines.insert(0, f"{document.model.name} against {document.spec.label}")
    lines.append(
        f"{verdict}: {summary.passed} passed, {summary.failed} failed "
        f"({summary.warnings or 0} should), {summary.skipped} skipped, {summary.errors} errors"
    )
    return "\n".join(lines)

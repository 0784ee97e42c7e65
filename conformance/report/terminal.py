"""The table `conformance check` prints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..result_document import ResultDocument
from ..verdict import Status
from .text import interval_text, plain_text, short, status_text

RULE_ID_WIDTH = 64  # a stored document's rule id may be any text: cut so it cannot widen every row


def render_table(document: ResultDocument | Mapping[str, Any]) -> str:
    """The rule table; an `interval` column appears when a rule was decided from a confidence interval.

    Every text from the document (names, ids, values, messages) is printed through `report.text`
    (`short`, `plain_text`): a model's license or architecture cannot write lines of its own.
    """
    document = ResultDocument.of(document)
    rules = document.rules
    with_interval = any(interval_text(r) for r in rules)
    headers: tuple[str, ...] = ("rule", "level", "status", "observed", "expected", *(("interval",) if with_interval else ()))
    rows = [
        (short(r.id, RULE_ID_WIDTH), r.level.value, status_text(r), short(r.observed, 40), short(r.expected, 32),
         *((interval_text(r),) if with_interval else ()))
        for r in rules
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for rule in rules:
        if rule.message and rule.status is not Status.PASS:
            lines.append(f"  {short(rule.id, RULE_ID_WIDTH)}: {plain_text(rule.message)}")
    summary = document.summary
    verdict = "CONFORMANT" if summary.conformant else "NOT CONFORMANT"
    lines.insert(0, f"{plain_text(document.model.name, 500)} against {plain_text(document.spec.label, 500)}")
    lines.append(
        f"{verdict}: {summary.passed} passed, {summary.failed} failed "
        f"({summary.warnings or 0} should), {summary.skipped} skipped, {summary.errors} errors"
    )
    return "\n".join(lines)

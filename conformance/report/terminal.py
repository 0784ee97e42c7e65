"""The table `conformance check` prints."""

from __future__ import annotations

from typing import Any

from .text import interval_text, short, status_text


def render_table(document: dict[str, Any]) -> str:
    """The rule table; an `interval` column appears when a rule was decided from a confidence interval."""
    with_interval = any(interval_text(r) for r in document["rules"])
    headers: tuple[str, ...] = ("rule", "level", "status", "observed", "expected", *(("interval",) if with_interval else ()))
    rows = [
        (r["id"], r["level"], status_text(r), short(r["observed"], 40), short(r["expected"], 32), *((interval_text(r),) if with_interval else ()))
        for r in document["rules"]
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for rule in document["rules"]:
        if rule["message"] and rule["status"] != "pass":
            lines.append(f"  {rule['id']}: {rule['message']}")
    summary = document["summary"]
    verdict = "CONFORMANT" if summary["conformant"] else "NOT CONFORMANT"
    model, spec = document["model"], document["spec"]
    lines.insert(0, f"{model['name']} against {spec['id']} {spec['version']}")
    lines.append(
        f"{verdict}: {summary['passed']} passed, {summary['failed']} failed "
        f"({summary.get('warnings', 0)} should), {summary['skipped']} skipped, {summary['errors']} errors"
    )
    return "\n".join(lines)

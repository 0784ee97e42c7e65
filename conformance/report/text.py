"""Short, readable forms of observed/expected values, shared by the terminal table and Markdown."""

from __future__ import annotations

import json
from typing import Any

STATUS_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "error": "ERROR"}


def short(value: Any, width: int = 48) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 100_000:
        text = f"{value:,}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def interval_text(rule: dict[str, Any]) -> str:
    """`95% [850.9, 1098]` for a rule decided from a confidence interval; "" for others."""
    interval = rule.get("interval")
    if not isinstance(interval, dict):
        return ""

    def end(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)

    from ..probes.intervals import level_text  # a level spent over looks must never read as 100%

    return f"{level_text(float(interval.get('level', 0)))} [{end(interval.get('low'))}, {end(interval.get('high'))}]"


def status_text(rule: dict[str, Any]) -> str:
    status = STATUS_MARK[rule["status"]]
    if rule["status"] == "fail" and rule["level"] != "must":
        status += " (warn)"  # only must rules decide conformance
    return status

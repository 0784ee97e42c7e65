"""Short, readable forms of observed/expected values and rule outcomes.

Shared by the terminal table, Markdown, the page and the pytest plugin.
"""

from __future__ import annotations

import json
from typing import Any

from ..results import RuleResult
from ..verdict import Status, is_warning

STATUS_MARK = {Status.PASS: "PASS", Status.FAIL: "FAIL", Status.SKIP: "SKIP", Status.ERROR: "ERROR"}
WARNING_CSS = "warn"  # a should/may failure: shown apart from must failures (badge, heatmap, page)


def short(value: Any, width: int = 48) -> str:
    """One line of at most `width` characters.

    Floats to 4 significant digits, large ints with commas, other data as sorted JSON; whitespace runs
    collapsed and an ellipsis where cut.
    """
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


def interval_text(rule: RuleResult) -> str:
    """`95% [850.9, 1098]` for a rule decided from a confidence interval; "" for others."""
    interval = rule.interval
    if not isinstance(interval, dict):
        return ""

    def end(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)

    from ..probes.intervals import level_text  # a level spent over looks must never read as 100%

    return f"{level_text(float(interval.get('level', 0)))} [{end(interval.get('low'))}, {end(interval.get('high'))}]"


def status_text(rule: RuleResult) -> str:
    """`PASS`, `FAIL`, `FAIL (warn)` (a should/may failure: only must rules decide conformance), ..."""
    status = STATUS_MARK[rule.status]
    if is_warning(rule.level, rule.status):
        status += " (warn)"
    return status


def status_css(rule: RuleResult) -> str:
    """The class a rule's status is drawn with: its status, or `warn` for a should/may failure."""
    return WARNING_CSS if is_warning(rule.level, rule.status) else rule.status.value

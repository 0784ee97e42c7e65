r"""Short, readable forms of observed/expected values and rule outcomes, and the escaping of every text view.

Shared by the terminal table, Markdown, the page and the pytest plugin.

Result documents carry text from a model's files (a GGUF `general.license`, a config.json `model_type`, a
tensor name in an error) and, for `report` and `diff`, from whoever wrote the document. Every text view
writes such text through this module, so a value cannot start a line of its own, recolour the terminal,
reverse the text around it or turn into HTML, a link or a table column:

- `plain_text`: control and format characters and line separators as visible escapes (`\n`, `\x1b`,
  `\u202e`; `scan_rules.clean_text`, which the scan's reports use too), at most `limit` characters;
- `short`: a cell of the terminal table, the Markdown report, the page and the pytest plugin (one line);
- `markdown_text`: `plain_text` with HTML (`&`, `<`, `>` as entities) and Markdown's table pipes, links,
  code and emphasis (`|`, `[`, `]`, `` ` ``, `*`, backslash) neutralized; `markdown_code`: a code span;
- `csv_text`: `plain_text` of a whole cell, with a leading `=`, `+`, `-` or `@` quoted (no spreadsheet formula).

JSON result documents keep the exact values (JSON escapes them); the HTML page is escaped by jinja2.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..results import RuleResult
from ..verdict import Status, is_warning
from .scan_rules import clean_text

STATUS_MARK = {Status.PASS: "PASS", Status.FAIL: "FAIL", Status.SKIP: "SKIP", Status.ERROR: "ERROR"}
WARNING_CSS = "warn"  # a should/may failure: shown apart from must failures (badge, heatmap, page)
TEXT_LIMIT = 4096  # characters of one text (a message) a view shows before the cut's marker
# Markdown, in one pass: a backslash doubled (so a value's own backslash cannot turn the escaped pipe after
# it back into a column break), what makes tables (|), links and images ([ ]), code (`), emphasis (*) and HTML.
_MARKDOWN_ESCAPES = str.maketrans({
    "\\": "\\\\", "|": "\\|", "[": "\\[", "]": "\\]", "`": "\\`", "*": "\\*",
    "&": "&amp;", "<": "&lt;", ">": "&gt;",
})
_FORMULA_STARTS = ("=", "+", "-", "@")  # a spreadsheet reads a cell starting so as a formula (OWASP: CSV injection)
_BACKTICK_RUN = re.compile(r"`+")


def plain_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """`value` as text that prints as itself: control and format characters escaped visibly, at most `limit` characters."""
    return clean_text(value, limit, for_terminal=True)


def short(value: Any, width: int = 48) -> str:
    """One line of at most `width` characters, safe to print.

    Floats to 4 significant digits, large ints with commas, other data as sorted JSON; control characters
    escaped (`plain_text`), whitespace runs collapsed and an ellipsis where cut.
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
    # Escaping only lengthens and collapsing shortens by little: a generous first cut keeps a 16 MiB string cheap.
    keep = max(8 * width, 1024)
    cut = len(text) > keep
    text = " ".join(plain_text(text[:keep], keep).split())
    return text if len(text) <= width and not cut else text[: width - 1] + "…"


def markdown_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """`value` as Markdown that shows as its text: `plain_text`, then HTML, pipes, links, code and emphasis neutralized."""
    return plain_text(value, limit).translate(_MARKDOWN_ESCAPES)


def markdown_code(value: Any, limit: int = TEXT_LIMIT) -> str:
    """`value` as a Markdown code span: fenced by more backticks than any run inside it (CommonMark), so it cannot close early."""
    text = plain_text(value, limit)
    longest = max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def csv_text(value: str) -> str:
    """A CSV cell's text: `plain_text` (no length cut), and a leading formula character quoted with `'`."""
    text = plain_text(value, len(value))
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def interval_text(rule: RuleResult) -> str:
    """`95% [850.9, 1098]` for a rule decided from a confidence interval; "" for others."""
    interval = rule.interval
    if not isinstance(interval, dict):
        return ""

    def end(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)

    from ..probes.intervals import level_text  # a level spent over looks must never read as 100%

    text = f"{level_text(float(interval.get('level', 0)))} [{end(interval.get('low'))}, {end(interval.get('high'))}]"
    return plain_text(text, 200)  # a stored document's interval ends may be any text


def status_text(rule: RuleResult) -> str:
    """`PASS`, `FAIL`, `FAIL (warn)` (a should/may failure: only must rules decide conformance), ..."""
    status = STATUS_MARK[rule.status]
    if is_warning(rule.level, rule.status):
        status += " (warn)"
    return status


def status_css(rule: RuleResult) -> str:
    """The class a rule's status is drawn with: its status, or `warn` for a should/may failure."""
    return WARNING_CSS if is_warning(rule.level, rule.status) else rule.status.value

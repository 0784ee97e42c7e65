"""Judging an observed value against a rule's comparison keys (min, max, equals, in, not_in, pattern)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import regex

from .errors import CheckError
from .verdict import Verdict

# Budgets for `pattern` comparisons. Patterns come from spec files and subjects from model cards, both
# untrusted; Python's `re` backtracks without limit (`^(a|aa)+$` against 60 "a"s and "!" never ends), so
# patterns run on the `regex` engine with a timeout. A license id or model type is under 100 characters:
# a subject of 10,000 is already hostile, and a 1,000-character pattern is far beyond any real spec's.
PATTERN_TIMEOUT_S = 0.25  # seconds per match: a linear match of 10,000 characters takes microseconds
MAX_PATTERN_SUBJECT_CHARS = 10_000
MAX_PATTERN_CHARS = 1_000


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def values_equal(observed: Any, expected: Any, tolerance: float = 0.0) -> bool:
    """Equality, with a relative tolerance for numbers (|observed - expected| <= tolerance * |expected|)."""
    a, b = _number(observed), _number(expected)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=0.0) or a == b
    return observed == expected


def describe_expected(comparison: dict[str, Any]) -> str:
    """The rule's bar as shown beside the observed value, such as `>= 1e+09, <= 8e+09` or `in ['llama']`.

    One part per comparison key present (min, max, equals with its tolerance in percent, in, not_in,
    pattern), joined by ", "; the empty string for a comparison without any.
    """
    parts = []
    tolerance = comparison.get("tolerance")
    for key, symbol in (("min", ">="), ("max", "<=")):
        if key in comparison:
            parts.append(f"{symbol} {comparison[key]:g}" if _number(comparison[key]) is not None else f"{symbol} {comparison[key]}")
    if "equals" in comparison:
        parts.append(f"== {comparison['equals']}" + (f" (±{tolerance:.0%})" if tolerance else ""))
    if "in" in comparison:
        parts.append(f"in {comparison['in']}")
    if "not_in" in comparison:
        parts.append(f"not in {comparison['not_in']}")
    if "pattern" in comparison:
        parts.append(f"matches /{comparison['pattern']}/")
    return ", ".join(parts)


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """A spec's `pattern` compiled by the `regex` engine (re-compatible syntax, VERSION0).

    Raises ValueError naming the problem: not a string, longer than MAX_PATTERN_CHARS, or bad syntax.
    """
    if not isinstance(pattern, str):
        raise ValueError(f"pattern must be a string, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"pattern is {len(pattern)} characters, over the {MAX_PATTERN_CHARS}-character pattern budget")
    try:
        return regex.compile(pattern)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"pattern is not a valid regular expression: {exc}") from None


def pattern_matches(pattern: str, subject: str) -> bool:
    """True if `pattern` is found in `subject` (a search, as `re.search`), within the budgets.

    Raises CheckError (an `error` verdict, never a pass) when the subject is longer than
    MAX_PATTERN_SUBJECT_CHARS or the match runs past PATTERN_TIMEOUT_S seconds, and for a bad pattern.
    """
    if len(subject) > MAX_PATTERN_SUBJECT_CHARS:
        raise CheckError(f"the value to match is {len(subject)} characters, over the {MAX_PATTERN_SUBJECT_CHARS}-character pattern subject budget")
    try:
        compiled = compile_pattern(pattern)
    except ValueError as exc:
        raise CheckError(str(exc)) from None
    try:
        return compiled.search(subject, timeout=PATTERN_TIMEOUT_S) is not None
    except TimeoutError:
        raise CheckError(f"matching /{pattern}/ ran past the {PATTERN_TIMEOUT_S} s pattern time budget") from None


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def judge(observed: Any, comparison: dict[str, Any], unit: str = "") -> Verdict:
    """Pass when the observed value meets every comparison key given; fail with the first that it misses.

    A missing value or a non-finite number (NaN, infinity) is an `error` verdict. Raises CheckError when a
    `pattern` match is over its budgets (see `pattern_matches`).
    """
    expected = describe_expected(comparison)
    shown = f"{observed}{unit}"
    if observed is None:
        return Verdict("error", None, expected, "no value was observed")
    if _not_finite(observed):  # NaN compares false with everything, so min/max would pass it
        return Verdict("error", observed, expected, f"observed {observed} is not a finite number")
    tolerance = float(comparison.get("tolerance", 0.0))
    number = _number(observed)
    for key in ("min", "max"):
        if key not in comparison:
            continue
        if number is None:
            return Verdict("error", observed, expected, f"{key} needs a number, observed {observed!r}")
        limit = float(comparison[key])
        slack = abs(limit) * tolerance
        if (key == "min" and number < limit - slack) or (key == "max" and number > limit + slack):
            word = "below the minimum" if key == "min" else "above the maximum"
            return Verdict("fail", observed, expected, f"{shown} is {word} {comparison[key]:g}")
    if "equals" in comparison and not values_equal(observed, comparison["equals"], tolerance):
        return Verdict("fail", observed, expected, f"{shown} is not {comparison['equals']}")
    if "in" in comparison and not any(values_equal(observed, item, tolerance) for item in comparison["in"]):
        return Verdict("fail", observed, expected, f"{shown} is not one of {comparison['in']}")
    if "not_in" in comparison and any(values_equal(observed, item, tolerance) for item in comparison["not_in"]):
        return Verdict("fail", observed, expected, f"{shown} is excluded")
    if "pattern" in comparison and not pattern_matches(comparison["pattern"], str(observed)):
        return Verdict("fail", observed, expected, f"{shown} does not match /{comparison['pattern']}/")
    return Verdict("pass", observed, expected, "")

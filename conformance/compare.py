"""Judging an observed value against a rule's comparison keys (min, max, equals, in, not_in, pattern)."""

from __future__ import annotations

import math
import re
from typing import Any

from .verdict import Verdict


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


def judge(observed: Any, comparison: dict[str, Any], unit: str = "") -> Verdict:
    """Pass when the observed value meets every comparison key given; fail with the first that it misses."""
    expected = describe_expected(comparison)
    shown = f"{observed}{unit}"
    if observed is None:
        return Verdict("error", None, expected, "no value was observed")
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
    if "pattern" in comparison and not re.search(comparison["pattern"], str(observed)):
        return Verdict("fail", observed, expected, f"{shown} does not match /{comparison['pattern']}/")
    return Verdict("pass", observed, expected, "")

"""Helpers shared by check modules."""

from __future__ import annotations

from typing import Any

from ..compare import describe_expected
from ..errors import CheckError
from ..evidence import Evidence
from ..probes.static import StaticFacts
from ..verdict import Verdict


def static_facts(evidence: Evidence) -> StaticFacts:
    facts: StaticFacts = evidence.get("static")
    return facts


def require_config(facts: StaticFacts) -> dict[str, Any]:
    if facts.config is None:
        raise CheckError(facts.config_error or "config.json unavailable")
    return facts.config


def require_tensors(facts: StaticFacts) -> None:
    if facts.weights.errors:
        raise CheckError("; ".join(facts.weights.errors))
    if not facts.weights.tensors:
        formats = facts.weights.formats
        raise CheckError(
            "no safetensors weights to read headers from"
            + (f" (weights present as {', '.join(formats)})" if formats else " (no weight files)")
        )


def judge_set(observed: list[Any], comparison: dict[str, Any], noun: str) -> Verdict:
    """Set-valued observations: `in` is an allowlist for every item, `not_in` a denylist, `equals` the exact set."""
    expected = describe_expected(comparison)
    if "in" in comparison:
        outside = [item for item in observed if item not in comparison["in"]]
        if outside:
            return Verdict("fail", observed, expected, f"{noun} not allowed: {', '.join(map(str, outside))}")
    if "not_in" in comparison:
        banned = [item for item in observed if item in comparison["not_in"]]
        if banned:
            return Verdict("fail", observed, expected, f"{noun} excluded: {', '.join(map(str, banned))}")
    if "equals" in comparison:
        wanted = comparison["equals"] if isinstance(comparison["equals"], list) else [comparison["equals"]]
        if sorted(map(str, observed)) != sorted(map(str, wanted)):
            return Verdict("fail", observed, expected, f"{noun} differ from {wanted}")
    return Verdict("pass", observed, expected)

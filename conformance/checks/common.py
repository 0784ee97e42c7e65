"""Helpers shared by check modules."""

from __future__ import annotations

import math
from typing import Any

from ..card import CardFacts
from ..compare import describe_expected
from ..errors import CheckError
from ..evidence import Evidence
from ..probes.static import StaticFacts
from ..verdict import Verdict


def static_facts(evidence: Evidence) -> StaticFacts:
    """The static probe's facts from the evidence (config, architecture, weights, tokenizer, remote code)."""
    facts: StaticFacts = evidence.get("static")
    return facts


def card_facts(evidence: Evidence) -> CardFacts:
    """The card probe's facts; CheckError when the model has no card or its front matter is unreadable."""
    card: CardFacts = evidence.get("card")
    if not card.present:
        raise CheckError("the model has no card (README.md)")
    if card.errors:
        raise CheckError("; ".join(card.errors))
    return card


def require_config(facts: StaticFacts) -> dict[str, Any]:
    """The parsed config.json; CheckError with the reason it could not be read."""
    if facts.config is None:
        raise CheckError(facts.config_error or "config.json unavailable")
    return facts.config


def require_architecture(facts: StaticFacts) -> dict[str, Any]:
    """The normalized architecture fields; CheckError if config.json or the fields could not be read."""
    require_config(facts)
    if facts.architecture_error:
        raise CheckError(facts.architecture_error)
    return facts.architecture


def require_finite(value: Any, name: str) -> Any:
    """`value` unless it is a float NaN or infinity (config.json may hold them); CheckError naming `name` then."""
    if isinstance(value, float) and not math.isfinite(value):
        raise CheckError(f"{name} is not a finite number ({value})")
    return value


def require_tensors(facts: StaticFacts, counted: bool = True) -> None:
    """CheckError unless every weight header was read (the reasons listed) and there is at least one tensor.

    `counted` (the default) also requires the parameter count: a check of stored bytes or dtypes passes
    False, since what is on disk needs no fold of a quantized layout.
    """
    if facts.weights.errors:
        raise CheckError("; ".join(facts.weights.errors))
    if counted and facts.parameters_error:
        raise CheckError(facts.parameters_error)
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

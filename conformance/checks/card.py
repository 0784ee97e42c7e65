"""card.*: the model card is present, complete, and its claims match what is measured."""

from __future__ import annotations

import math
import re
from typing import Any

from ..compare import values_equal
from ..evidence import Evidence
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict
from .common import card_facts, static_facts


@check("card.present", summary="a model card (README.md) with readable front matter", probes=("card",), comparisons=())
def present(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when README.md exists and its front matter parses; fail naming what is missing or broken."""
    card = evidence.get("card")
    if not card.present:
        return Verdict("fail", "no README.md", "README.md", "the model has no card")
    if card.errors:
        return Verdict("fail", card.errors, "readable card", "; ".join(card.errors))
    return Verdict("pass", card.file, "README.md")


@check(
    "card.fields",
    summary="required front-matter keys are present and the front matter fits card.schema.json",
    probes=("card",),
    params={"required": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "metadata keys"}},
    required=("required",),
    comparisons=(),
)
def fields(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when every `required` front-matter key has a non-empty value and the front matter fits card.schema.json.

    Raises CheckError when the card is missing or unreadable.
    """
    card = card_facts(evidence)
    missing = [key for key in rule.params["required"] if card.metadata.get(key) in (None, "", [], {})]
    problems = [f"missing {key}" for key in missing] + card.schema_errors
    observed = sorted(card.metadata)
    if problems:
        return Verdict("fail", observed, rule.params["required"], "; ".join(problems))
    return Verdict("pass", observed, rule.params["required"])


def _normalize_heading(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@check(
    "card.sections",
    summary="required Markdown headings (case-insensitive; a heading may extend the name, e.g. 'Limitations and bias')",
    probes=("card",),
    params={"required": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "heading names"}},
    required=("required",),
    comparisons=(),
)
def sections(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when every `required` heading is in the card (case-insensitive; a heading may extend the name).

    Raises CheckError when the card is missing or unreadable.
    """
    card = card_facts(evidence)
    headings = [_normalize_heading(h) for h in card.sections]
    missing = [
        name for name in rule.params["required"]
        if not any(h == _normalize_heading(name) or h.startswith(_normalize_heading(name) + " ") for h in headings)
    ]
    if missing:
        return Verdict("fail", card.sections, rule.params["required"], "missing sections: " + ", ".join(missing))
    return Verdict("pass", card.sections, rule.params["required"])


def _measured_claims(evidence: Evidence) -> dict[str, Any]:
    facts = static_facts(evidence)
    measured: dict[str, Any] = {}
    if facts.parameters:
        measured["parameters"] = facts.parameters["parameters"]
        measured["non_embedding_parameters"] = facts.parameters["non_embedding_parameters"]
        measured["weight_bytes"] = facts.weight_bytes
    if facts.architecture:
        measured["context_length"] = facts.architecture.get("context_length")
        for key, value in facts.architecture.items():
            measured[f"architecture.{key}"] = value
    return measured


def non_finite_claims(claims: dict[str, Any]) -> list[str]:
    """`key (value)` for each claim holding a NaN or infinite number, at any depth (walked iteratively)."""
    found: list[str] = []
    for key, value in sorted(claims.items()):
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, float) and not math.isfinite(item):
                found.append(f"{key} ({item})")
                break
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, (list, tuple)):
                stack.extend(item)
    return found


@check(
    "card.claims",
    summary="each fact claimed in the card's conformance block equals the measured one (numbers within tolerance)",
    probes=("card", "static"),
    comparisons=("tolerance",),
)
def claims(evidence: Evidence, rule: Rule) -> Verdict:
    """Each fact the card's `conformance` block claims (parameters, architecture fields, ...) against the measured one.

    Numbers are equal within the rule's `tolerance`; a claim that cannot be measured fails, and so does a card
    with no measurable claims; a non-finite claimed number is an error. Raises CheckError when the card is
    missing or unreadable.
    """
    card = card_facts(evidence)
    flat: dict[str, Any] = {}
    for key, value in card.claims.items():
        if key == "architecture" and isinstance(value, dict):
            flat.update({f"architecture.{k}": v for k, v in value.items()})
        elif key not in {"checksums", "intended_use", "limitations"}:  # prose; checksums: safety.checksums
            flat[key] = value
    if not flat:
        return Verdict("fail", {}, "claims to verify", "the card makes no measurable conformance claims")
    broken = non_finite_claims(flat)
    if broken:  # NaN equals nothing and infinity is no size: such a claim can be neither verified nor refuted
        return Verdict("error", None, flat, "claims that are not finite numbers: " + ", ".join(broken))
    measured = _measured_claims(evidence)
    tolerance = float(rule.comparison.get("tolerance", 0.0))
    observed, problems = {}, []
    for key, claimed in sorted(flat.items()):
        actual = measured.get(key)
        observed[key] = actual
        if actual is None:
            problems.append(f"{key}: claimed {claimed} but not measurable")
        elif not values_equal(actual, claimed, tolerance):
            problems.append(f"{key}: claimed {claimed}, measured {actual}")
    if problems:
        return Verdict("fail", observed, flat, "; ".join(problems))
    return Verdict("pass", observed, flat)

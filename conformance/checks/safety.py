"""safety.*: serialization format and scan, remote code, license, weight checksums."""

from __future__ import annotations

from typing import Any

from ..card import CardFacts
from ..compare import describe_expected, judge
from ..errors import CheckError
from ..evidence import Evidence
from ..registry import check
from ..spec import Rule
from ..verdict import Verdict
from .common import judge_set, static_facts


@check(
    "safety.weights_format",
    summary="formats of the weight files (default: safetensors only)",
    probes=("static",),
    comparisons=("in", "not_in", "equals"),
)
def weights_format(evidence: Evidence, rule: Rule) -> Verdict:
    facts = static_facts(evidence)
    formats = facts.weights.formats
    if not formats:
        return Verdict("fail", [], describe_expected(rule.comparison) or "in ['safetensors']", "no weight files found")
    comparison = rule.comparison or {"in": ["safetensors"]}
    return judge_set(formats, comparison, "weight formats")


@check(
    "safety.serialization_scan",
    summary="no file holds a pickle (raw, zipped, in any file name) that imports non-allowlisted globals",
    probes=("scan",),
    comparisons=(),
)
def serialization_scan(evidence: Evidence, rule: Rule) -> Verdict:
    scan = evidence.get("scan")
    pickled = sum(f.pickles_scanned for f in scan.files)
    if not scan.findings:
        return Verdict("pass", f"{len(scan.files)} files, {pickled} pickles, nothing flagged", "no unsafe globals")
    shown = [
        f"{f.file}{':' + f.member if f.member else ''}: {f.global_name or f.severity} ({f.detail})" for f in scan.findings
    ]
    return Verdict("fail", shown, "no unsafe globals", "; ".join(shown[:3]) + (f"; and {len(shown) - 3} more" if len(shown) > 3 else ""))


@check(
    "safety.remote_code",
    summary="no custom code: no auto_map in config.json and no Python files shipped with the model",
    probes=("static",),
    comparisons=(),
)
def remote_code(evidence: Evidence, rule: Rule) -> Verdict:
    facts = static_facts(evidence)
    reasons: list[str] = []
    if facts.config is not None and facts.config.get("auto_map"):
        reasons.append(f"config.json auto_map {sorted(facts.config['auto_map'])}")
    python_files = [entry.path for entry in facts.files if entry.path.endswith((".py", ".pyc", ".pyx", ".so"))]
    if python_files:
        reasons.append("code files " + ", ".join(python_files))
    if reasons:
        return Verdict("fail", reasons, "no custom code", "; ".join(reasons))
    return Verdict("pass", "no custom code", "no custom code")


def card_facts(evidence: Evidence) -> CardFacts:
    card: CardFacts = evidence.get("card")
    if not card.present:
        raise CheckError("the model has no card (README.md)")
    if card.errors:
        raise CheckError("; ".join(card.errors))
    return card


@check(
    "safety.license",
    summary="the card's license is allowed (`in` an allowlist, `not_in`, `pattern`)",
    probes=("card",),
    comparisons=("in", "not_in", "equals", "pattern"),
    needs_comparison=True,
)
def license_allowed(evidence: Evidence, rule: Rule) -> Verdict:
    card = evidence.get("card")
    expected = describe_expected(rule.comparison)
    if not card.present:
        return Verdict("fail", None, expected, "no model card (README.md), so no license")
    if card.errors:
        raise CheckError("; ".join(card.errors))
    license_id = card.metadata.get("license")
    if not license_id:
        return Verdict("fail", None, expected, "the card names no license")
    verdict = judge(license_id, rule.comparison)
    if license_id == "other" and card.metadata.get("license_name"):
        return Verdict(verdict.status, license_id, expected, f"license 'other': {card.metadata['license_name']}. {verdict.message}".strip())
    return verdict


@check(
    "safety.checksums",
    summary="sha256 of each weight file equals the card's conformance.checksums",
    probes=("card", "static", "hashes"),
    params={"require_all": {"type": "boolean", "description": "every weight file must have a checksum (default true)"}},
    comparisons=(),
)
def checksums(evidence: Evidence, rule: Rule) -> Verdict:
    card = card_facts(evidence)
    claimed: dict[str, Any] = card.claims.get("checksums") or {}
    measured: dict[str, str] = evidence.get("hashes")
    if not claimed:
        return Verdict("fail", measured, "card checksums", "the card claims no checksums (conformance.checksums)")
    problems = []
    for name, digest in sorted(claimed.items()):
        if name not in measured:
            problems.append(f"{name}: claimed but not a weight file of the model")
        elif measured[name] != digest:
            problems.append(f"{name}: sha256 {measured[name][:12]}… differs from the card's {str(digest)[:12]}…")
    if rule.params.get("require_all", True):
        problems += [f"{name}: no checksum in the card" for name in sorted(set(measured) - set(claimed))]
    if problems:
        return Verdict("fail", measured, claimed, "; ".join(problems))
    return Verdict("pass", measured, claimed)

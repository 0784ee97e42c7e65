"""plan -> probes -> checks -> RunResult. Probes run once per model; checks are pure and cheap."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .candidate import Candidate
from .errors import CheckError, CheckSkipped
from .evidence import Evidence
from .probes.hashes import weights_sha256
from .registry import get_check
from .results import RuleResult, RunResult, environment
from .spec import Rule, Spec
from .verdict import STATUSES, Verdict

# Weight sets up to this size are hashed for the result's identity even when no rule needs it.
AUTO_HASH_MAX_BYTES = 2 * 1024**3


@dataclass
class RunOptions:
    only: list[str] | None = None
    hash_weights: str = "auto"  # auto | always | never
    log: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))


def _probe_static(candidate: Candidate, evidence: Evidence) -> Any:
    from .probes.static import probe_static

    return probe_static(candidate)


def _probe_card(candidate: Candidate, evidence: Evidence) -> Any:
    from .probes.card_probe import probe_card

    return probe_card(candidate)


def _probe_scan(candidate: Candidate, evidence: Evidence) -> Any:
    from .probes.scan import scan_folder

    return scan_folder(candidate.path)


def _probe_hashes(candidate: Candidate, evidence: Evidence) -> Any:
    from .probes.hashes import probe_hashes

    return probe_hashes(candidate, list(evidence.get("static").weights.files))


# Probe name -> (the probes it needs first, the function that measures).
PROBES: dict[str, tuple[tuple[str, ...], Callable[[Candidate, Evidence], Any]]] = {
    "static": ((), _probe_static),
    "card": ((), _probe_card),
    "scan": ((), _probe_scan),
    "hashes": (("static",), _probe_hashes),
}


def plan(rules: list[Rule]) -> list[str]:
    """The probes these rules need, dependencies first, each once."""
    ordered: list[str] = []

    def add(name: str) -> None:
        if name in ordered:
            return
        for dependency in PROBES[name][0]:
            add(dependency)
        ordered.append(name)

    for rule in rules:
        for name in get_check(rule.check).probes:
            add(name)
    return ordered


def _run_probe(name: str, candidate: Candidate, evidence: Evidence, log: Callable[[str], None]) -> None:
    if evidence.has(name):
        return
    dependencies, function = PROBES[name]
    for dependency in dependencies:
        _run_probe(dependency, candidate, evidence, log)
    started = time.perf_counter()
    try:
        evidence.put(name, function(candidate, evidence))
    except CheckError as exc:
        evidence.fail(name, str(exc))
    except Exception as exc:  # a broken model must not stop the run: every rule needing this probe errors
        evidence.fail(name, f"{type(exc).__name__}: {exc}")
    log(f"  {candidate.name}: {name} probe {time.perf_counter() - started:.2f} s")


def judge_rule(rule: Rule, evidence: Evidence) -> RuleResult:
    started = time.perf_counter()
    try:
        verdict = get_check(rule.check).function(evidence, rule)
        if not isinstance(verdict, Verdict) or verdict.status not in STATUSES:
            raise TypeError(f"check returned {verdict!r}, not a Verdict")
    except CheckError as exc:
        verdict = Verdict("error", None, None, str(exc))
    except CheckSkipped as exc:
        verdict = Verdict("skip", None, None, str(exc))
    except Exception as exc:  # a crashing check errors its own rule; the run goes on
        verdict = Verdict("error", None, None, f"check crashed: {type(exc).__name__}: {exc}")
    return RuleResult(
        id=rule.id,
        check=rule.check,
        level=rule.level,
        status=verdict.status,
        observed=verdict.observed,
        expected=verdict.expected,
        message=verdict.message,
        seconds=round(time.perf_counter() - started, 6),
    )


def _model_identity(candidate: Candidate, evidence: Evidence, options: RunOptions) -> dict[str, Any]:
    identity: dict[str, Any] = {"name": candidate.name, "path": str(candidate.path), "sha256": None}
    if options.hash_weights != "never" and not evidence.has("hashes") and evidence.has("static"):
        try:
            total = sum(entry.size_bytes for entry in candidate.files if entry.path in evidence.get("static").weights.files)
        except CheckError:
            total = AUTO_HASH_MAX_BYTES + 1
        if options.hash_weights == "always" or total <= AUTO_HASH_MAX_BYTES:
            _run_probe("hashes", candidate, evidence, options.log)
    try:
        hashes = evidence.get("hashes") if evidence.has("hashes") else None
    except CheckError:
        hashes = None
    if hashes:
        identity["sha256"] = weights_sha256(hashes)
        identity["weight_files"] = hashes
    return identity


def run(candidate: Candidate, spec: Spec, options: RunOptions | None = None) -> RunResult:
    options = options or RunOptions()
    rules = spec.select(options.only)
    evidence = Evidence()
    options.log(f"{candidate.name}: {len(rules)} rules of {spec.id} {spec.version}")
    for name in plan(rules):
        _run_probe(name, candidate, evidence, options.log)
    results = [judge_rule(rule, evidence) for rule in rules]
    if options.hash_weights != "never":
        _run_probe("static", candidate, evidence, options.log)
    return RunResult(
        spec={
            "id": spec.id,
            "version": spec.version,
            "title": spec.title,
            "path": str(spec.path) if spec.path else None,
            "sha256": spec.sha256,
        },
        model=_model_identity(candidate, evidence, options),
        rules=results,
        evidence=evidence.to_dict(),
        environment=environment(),
    )

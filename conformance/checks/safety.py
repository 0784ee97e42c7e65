"""safety.*: serialization format and scan, remote code, license, weight checksums."""

from __future__ import annotations

from typing import Any

from ..compare import describe_expected, judge
from ..errors import CheckError
from ..evidence import Evidence
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict
from .common import card_facts, judge_set, static_facts

# Formats whose loaders read data only (no pickle, no code): safetensors, and GGUF (a header of typed metadata
# and tensor infos, then raw tensor bytes). A GGUF chat template is text a runtime may render; the scan
# (`safety.serialization_scan`) judges templates, as it does tokenizer_config.json's.
SAFE_FORMATS = ("safetensors", "gguf")


@check(
    "safety.weights_format",
    summary="formats of the weight files (default: safetensors or gguf, which hold no code); a TorchScript archive counts as 'torchscript'",
    probes=("static",),
    comparisons=("in", "not_in", "equals"),
)
def weights_format(evidence: Evidence, rule: Rule) -> Verdict:
    """The formats of the weight files (`safetensors`, `gguf`, `pytorch`, `torchscript`, ...) judged as a set.

    Without comparison keys only `SAFE_FORMATS` pass; no weight files fail. Raises CheckError when a file's
    kind could not be read (an archive could be TorchScript; a `.gguf` without the magic could be anything).
    """
    weights = static_facts(evidence).weights
    formats = weights.formats
    if not formats and weights.format_errors:
        raise CheckError("; ".join(weights.format_errors))
    if not formats:
        return Verdict("fail", [], describe_expected(rule.comparison) or f"in {list(SAFE_FORMATS)}", "no weight files found")
    comparison = rule.comparison or {"in": list(SAFE_FORMATS)}
    verdict = judge_set(formats, comparison, "weight formats")
    if verdict.status == "fail":
        torchscript = sorted(name for name, fmt in weights.files.items() if fmt == "torchscript")
        if torchscript:
            note = f" (TorchScript archives, which hold code: {', '.join(torchscript)})"
            return Verdict("fail", verdict.observed, verdict.expected, verdict.message + note)
        return verdict
    if weights.format_errors:  # an archive of unknown kind could be TorchScript: no pass on a guess
        raise CheckError("; ".join(weights.format_errors))
    return verdict


def _finding_text(finding: Any) -> str:
    where = finding.file + (":" + finding.member if finding.member else "")
    return f"{where}: {finding.severity} {finding.global_name or ''} ({finding.detail})".replace("  ", " ")


def _listed(shown: list[str], limit: int = 3) -> str:
    return "; ".join(shown[:limit]) + (f"; and {len(shown) - limit} more" if len(shown) > limit else "")


_SEVERITY_ORDER = {"dangerous": 0, "unknown": 1, "error": 2}


@check(
    "safety.serialization_scan",
    summary="no pickle (raw, zipped, compressed, in any file name) imports a dangerous global, or an unknown one "
    "unless allow_unknown; a file that could not be scanned is an error, never a pass",
    probes=("scan",),
    params={
        "allow_unknown": {
            "type": "boolean",
            "description": "pass pickles whose globals are only unknown (not on the safe list, not known dangerous); default false",
        }
    },
    comparisons=(),
)
def serialization_scan(evidence: Evidence, rule: Rule) -> Verdict:
    """Fail on a dangerous global in any pickle, and on an unknown one unless `allow_unknown`.

    Raises CheckError when a file could not be scanned and nothing else failed: unscanned is never a pass.
    """
    scan = evidence.get("scan")
    pickled = sum(f.pickles_scanned for f in scan.files)
    allow_unknown = bool(rule.params.get("allow_unknown", False))
    expected = "no dangerous globals" + ("" if allow_unknown else ", no unknown globals") + ", every file scanned"
    findings = sorted(scan.findings, key=lambda f: _SEVERITY_ORDER.get(f.severity, 0))  # unknown severities count as dangerous
    failing = [f for f in findings if f.severity not in ("unknown", "error") or (f.severity == "unknown" and not allow_unknown)]
    errors = [f for f in findings if f.severity == "error"]
    if failing:
        shown = [_finding_text(f) for f in failing + errors]
        return Verdict("fail", shown, expected, _listed(shown))
    if errors:
        raise CheckError("not every file could be scanned: " + _listed([_finding_text(f) for f in errors]))
    observed = f"{len(scan.files)} files, {pickled} pickles, nothing flagged"
    unknown = [f for f in findings if f.severity == "unknown"]
    if unknown:
        observed = f"{len(scan.files)} files, {pickled} pickles, {len(unknown)} unknown globals allowed: " + _listed(
            [_finding_text(f) for f in unknown]
        )
    return Verdict("pass", observed, expected)


@check(
    "safety.remote_code",
    summary="no custom code: no auto_map (config, tokenizer, processor configs), no custom_pipelines, no code files",
    probes=("static",),
    comparisons=(),
)
def remote_code(evidence: Evidence, rule: Rule) -> Verdict:
    """Fail when the folder carries custom code (auto_map, custom_pipelines, code files), naming each reason.

    Raises CheckError when a config could not be read (it could hold an auto_map).
    """
    remote = static_facts(evidence).remote_code
    if remote.reasons:
        return Verdict("fail", remote.reasons, "no custom code", "; ".join(remote.reasons))
    if remote.errors:  # an unreadable config could hold an auto_map: no pass on a guess
        raise CheckError("could not check for custom code: " + "; ".join(remote.errors))
    return Verdict("pass", "no custom code", "no custom code")


def _gguf_license(evidence: Evidence) -> tuple[str, str | None, str] | None:
    """(license, license name, file) from the GGUF metadata the architecture came from, or None.

    Only when the folder has no config.json (then the GGUF file is the architecture source, see
    `formats/registry.py`). GGUF's `general.license` is an SPDX expression ("Apache-2.0"); it is lower-cased,
    as Hugging Face cards write license ids ("apache-2.0").
    """
    facts = static_facts(evidence)
    gguf = (facts.config or {}).get("gguf")
    if not isinstance(gguf, dict) or any(entry.path == "config.json" for entry in facts.files):
        return None
    license_id = gguf.get("license")
    if not isinstance(license_id, str) or not license_id.strip():
        return None
    name = gguf.get("license_name")
    return license_id.strip().lower(), name if isinstance(name, str) else None, str(gguf.get("file"))


@check(
    "safety.license",
    summary="the card's license (else a GGUF file's general.license) is allowed (`in` an allowlist, `not_in`, `pattern`)",
    probes=("card", "static"),
    comparisons=("in", "not_in", "equals", "pattern"),
    needs_comparison=True,
)
def license_allowed(evidence: Evidence, rule: Rule) -> Verdict:
    """The card's `license` judged by the rule's `in`, `not_in`, `equals` or `pattern`; no license fails.

    A card without a license (or no card) falls back on the GGUF file's `general.license` where the model
    is a GGUF file (`_gguf_license`); the message says so.
    """
    card = evidence.get("card")
    expected = describe_expected(rule.comparison)
    if card.present and card.errors:
        raise CheckError("; ".join(card.errors))
    license_id = card.metadata.get("license") if card.present else None
    license_name = card.metadata.get("license_name")
    source = ""
    if not license_id:
        from_gguf = _gguf_license(evidence)
        if from_gguf is None:
            return Verdict("fail", None, expected, "the card names no license" if card.present else "no model card (README.md), so no license")
        license_id, license_name, file = from_gguf
        source = f"license from {file} (general.license)" + ("; the card names none" if card.present else "; no model card")
    verdict = judge(license_id, rule.comparison)
    if license_id == "other" and license_name:
        source = f"{source}. " if source else ""
        return Verdict(verdict.status, license_id, expected, f"{source}license 'other': {license_name}. {verdict.message}".strip())
    if source:
        return Verdict(verdict.status, verdict.observed, verdict.expected, f"{source}. {verdict.message}".strip())
    return verdict


@check(
    "safety.checksums",
    summary="sha256 of each weight file equals the card's conformance.checksums",
    probes=("card", "static", "hashes"),
    params={"require_all": {"type": "boolean", "description": "every weight file must have a checksum (default true)"}},
    comparisons=(),
)
def checksums(evidence: Evidence, rule: Rule) -> Verdict:
    """Each weight file's sha256 against the card's `conformance.checksums`.

    Every weight file needs a checksum unless `require_all: false`; a card without checksums fails. Raises
    CheckError when the card is missing or unreadable.
    """
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

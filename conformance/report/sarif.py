"""The scan report as SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format), for code-scanning pages.

Follows the OASIS standard, sarif-v2.1.0 errata01 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/), and
what GitHub code scanning reads: one run, `tool.driver` with a rule per finding kind (their
`security-severity` property ranks alerts), results with `ruleId`, `level`, `message`, a physical
location whose artifact URI is relative to the scanned root (`%SRCROOT%`), logical locations naming
the zip member and the global, and `partialFingerprints` so an alert keeps its identity across runs
(binary files have no line to hash).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, metadata, version
from typing import Any
from urllib.parse import quote

from ..digests import sha256_text
from .scan_rules import RULES, ScanRule, clean_text, counts_as_finding, rule_for, rule_id

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "conformanceFinding/v1"
# SARIF levels by scan severity; a severity the scanner adds later fails closed as an error.
LEVELS = {"dangerous": "error", "unknown": "warning", "error": "error"}


def tool_version() -> str:
    """The installed distribution's version (package metadata of `DISTRIBUTION`), else the source tree's."""
    from .. import DISTRIBUTION, __version__

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return __version__


def information_uri() -> str | None:
    """The project's first URL from package metadata (Project-URL or Home-page), None when it declares none."""
    from .. import DISTRIBUTION

    try:
        meta = metadata(DISTRIBUTION)
    except PackageNotFoundError:
        return None
    for entry in meta.get_all("Project-URL") or []:
        url = entry.split(",", 1)[-1].strip()
        if url.startswith(("https://", "http://")):
            return url
    home = (meta.get_all("Home-page") or [None])[0]
    return home if home and home.startswith(("https://", "http://")) else None


def artifact_uri(path: str) -> str:
    """A report path (posix, relative) as a relative URI reference: UTF-8, percent-encoded, '/' kept.

    Bytes that were not UTF-8 in the file name (surrogate escapes) are encoded as the raw bytes they were.
    """
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that was never a file-name byte
        raw = path.encode("utf-8", "backslashreplace")
    return quote(raw, safe="/") or "."


def _rule_descriptor(rule: ScanRule) -> dict[str, Any]:
    properties: dict[str, Any] = {"tags": ["security", "serialization"], "security-severity": rule.security_severity,
                                  "precision": "high", "problem.severity": rule.level}
    if rule.cwe is not None:
        properties["tags"].append(f"external/cwe/cwe-{rule.cwe}")
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.help},
        "help": {"text": rule.help, "markdown": rule.help},
        "defaultConfiguration": {"level": rule.level},
        "properties": properties,
    }


def _fingerprint(rule: str, finding: Any) -> str:
    parts = (rule, finding.file, finding.member or "", finding.global_name or "", "" if finding.global_name else finding.detail)
    return sha256_text("\x00".join(parts), errors="surrogatepass")


def _message(finding: Any) -> str:
    text = clean_text(finding.detail, 2000)
    where = [f"member {clean_text(finding.member, 500)}" if finding.member else "",
             f"global {clean_text(finding.global_name, 500)}" if finding.global_name else ""]
    where = [part for part in where if part]
    return f"{text} ({', '.join(where)})" if where else text


def _result(finding: Any, rule: str, rule_index: int, artifact_index: int | None, allow_unknown: bool) -> dict[str, Any]:
    artifact: dict[str, Any] = {"uri": artifact_uri(finding.file), "uriBaseId": SRCROOT}
    if artifact_index is not None:
        artifact["index"] = artifact_index
    # A model file has no lines, but GitHub code scanning places an alert only with region.startLine:
    # line 1 stands for "the file"; the member and global are in the logical locations.
    location: dict[str, Any] = {"physicalLocation": {"artifactLocation": artifact, "region": {"startLine": 1}}}
    logical = []
    if finding.member:
        logical.append({"name": clean_text(finding.member, 1000), "fullyQualifiedName": clean_text(f"{finding.file}!{finding.member}", 2000),
                        "kind": "resource"})
    if finding.global_name:
        logical.append({"name": clean_text(finding.global_name, 1000), "fullyQualifiedName": clean_text(finding.global_name, 1000),
                        "kind": "function"})
    if logical:
        location["logicalLocations"] = logical
    return {
        "ruleId": rule,
        "ruleIndex": rule_index,
        "level": LEVELS.get(finding.severity, "error"),
        "message": {"text": _message(finding)},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(rule, finding)},
        "properties": {"severity": clean_text(finding.severity, 100), "failsScan": counts_as_finding(finding.severity, allow_unknown)},
    }


def render_sarif(report: Any) -> dict[str, Any]:
    """The scan report (scan_command.ScanReport) as a SARIF 2.1.0 log: one run, every catalogue rule, one result per finding."""
    rules: dict[str, ScanRule] = dict(RULES)
    finding_rules = [rule_id(finding) for finding in report.findings]
    for identifier, finding in zip(finding_rules, report.findings, strict=True):
        rules.setdefault(identifier, rule_for(identifier, finding.severity))
    rule_index = {identifier: index for index, identifier in enumerate(rules)}

    artifacts: list[dict[str, Any]] = []
    artifact_index: dict[str, int] = {}
    for scanned in report.files:
        artifact_index[scanned.file] = len(artifacts)
        artifacts.append({
            "location": {"uri": artifact_uri(scanned.file), "uriBaseId": SRCROOT},
            "roles": ["analysisTarget"],
            "properties": {"format": clean_text(getattr(scanned, "format", "other"), 100),
                           "picklesScanned": int(getattr(scanned, "pickles_scanned", 0) or 0)},
        })

    driver: dict[str, Any] = {"name": "conformance", "version": tool_version(), "semanticVersion": tool_version(),
                              "rules": [_rule_descriptor(rule) for rule in rules.values()]}
    uri = information_uri()
    if uri:
        driver["informationUri"] = uri
    ended = report.started.timestamp() + report.seconds
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "originalUriBaseIds": {SRCROOT: {"uri": report.base.as_uri().rstrip("/") + "/",
                                         "description": {"text": "The folder scanned paths are relative to."}}},
        "invocations": [{
            "executionSuccessful": True,
            "exitCode": report.exit_code,
            "startTimeUtc": _utc(report.started.timestamp()),
            "endTimeUtc": _utc(ended),
        }],
        "artifacts": artifacts,
        "results": [
            _result(finding, identifier, rule_index[identifier], artifact_index.get(finding.file), report.allow_unknown)
            for identifier, finding in zip(finding_rules, report.findings, strict=True)
        ],
        "columnKind": "unicodeCodePoints",
        "properties": {"scanner": clean_text(report.scanner, 500), "allowUnknown": report.allow_unknown},
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def _utc(timestamp: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

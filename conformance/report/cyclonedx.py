"""The scan report as a CycloneDX 1.6 JSON ML-BOM: scanned files as components, findings as vulnerabilities.

Follows the CycloneDX 1.6 JSON schema (https://cyclonedx.org/docs/1.6/json/): `bomFormat`, `specVersion`
"1.6", a `urn:uuid` serial number, the tool in `metadata.tools.components`, one component per scanned
file (type "machine-learning-model" for serialized weights or objects, "data" for anything else) with
its SHA-256, and one vulnerability per finding with a rating, its CWE and an `affects` reference to
the file's component.

Hashes are computed here with a streamed read of each regular file through `safe_files.open_regular`,
bounded in bytes per file and in seconds for the whole report; a sparse file (far more bytes declared
than the disk holds, judged by the hashes probe's `refuse_sparse`) is never read. A file over a bound,
or sparse, gets no hash and a property saying why (never a made-up or partial digest).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import hub
from ..digests import sha256_stream
from ..probes.hashes import HashBudgetError, refuse_sparse
from ..safe_files import UnsafeFileError, open_regular
from .sarif import information_uri, tool_version
from .scan_rules import clean_text, counts_as_finding, rule_for, rule_id

SPEC_VERSION = "1.6"
CHUNK_BYTES = 8 << 20
MAX_HASH_BYTES = 64 << 30  # per file: larger than any single weight shard published today
# For all files of one report: sha256 runs at 0.5-2 GB/s on one core, so 60-240 GB, which is most single
# models; past it the remaining files get no hash (the report still comes out) rather than a CI job stalling.
HASH_SECONDS = 120.0
# Formats a loader turns into weights or Python objects; anything else (configs, text) is data.
DATA_FORMATS = frozenset({"other", "text", "json"})


@dataclass
class HashBudget:
    """Bytes per file and seconds in all for hashing; `clock` is injectable for tests (seconds, monotonic)."""

    max_bytes: int = MAX_HASH_BYTES
    seconds: float = HASH_SECONDS
    clock: Callable[[], float] = time.monotonic
    deadline: float | None = None

    def start(self) -> None:
        """Start the seconds budget on the first call (`deadline` = now + `seconds`); later calls keep it."""
        if self.deadline is None:
            self.deadline = self.clock() + self.seconds

    def expired(self) -> bool:
        """True once the started budget's deadline has passed; False before `start`."""
        return self.deadline is not None and self.clock() > self.deadline


def sha256_bounded(root: Path, relative: str, budget: HashBudget) -> tuple[str | None, str | None]:
    """(hex sha256, None) of a regular file inside `root`, or (None, reason) when it is over a bound or unreadable.

    Reads through `open_regular` (no links out of the folder, no FIFO or device), 8 MiB at a time, at
    most the size the file had when opened, so a growing file cannot run on; a sparse file (see
    `conformance.probes.hashes.refuse_sparse`) is not read at all. Raises nothing.
    """
    budget.start()
    if budget.expired():
        return None, f"hashing time budget of {budget.seconds:g} s spent"
    try:
        real_root = Path(os.path.realpath(root))
        handle = open_regular(real_root, relative, hub.link_roots(real_root))  # a snapshot's links into its blobs/
    except (UnsafeFileError, OSError) as exc:
        return None, f"not hashed: {exc}"
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size > budget.max_bytes:
            return None, f"not hashed: {size} bytes, over the {budget.max_bytes}-byte limit"
        try:
            refuse_sparse(handle, relative)
        except HashBudgetError as exc:
            return None, f"not hashed: {exc}"
        streamed = sha256_stream(handle, CHUNK_BYTES, max_bytes=size, on_chunk=lambda _: not budget.expired())
    if streamed.stopped:
        return None, f"hashing time budget of {budget.seconds:g} s spent"
    if streamed.bytes_read < size:
        return None, "not hashed: the file shrank while it was read"
    return streamed.hexdigest, None


def _property(name: str, value: Any) -> dict[str, str]:
    return {"name": f"conformance:{name}", "value": clean_text(value, 4000)}


def _component(path: str, scanned: Any, report: Any, budget: HashBudget | None) -> dict[str, Any]:
    form = str(getattr(scanned, "format", "other")) if scanned is not None else "other"
    component: dict[str, Any] = {
        "type": "data" if form in DATA_FORMATS else "machine-learning-model",
        "bom-ref": _file_ref(path),
        "name": clean_text(path, 4000),
    }
    properties = [_property("format", form)]
    if scanned is None:
        properties.append(_property("scanned", "false"))
    else:
        properties.append(_property("pickles_scanned", int(getattr(scanned, "pickles_scanned", 0) or 0)))
        globals_seen = list(getattr(scanned, "globals", []) or [])
        if globals_seen:
            properties.append(_property("globals", ", ".join(clean_text(g, 300) for g in globals_seen[:200])))
    source = report.sources.get(path)
    if budget is not None and source is not None:
        digest, reason = sha256_bounded(source[0], source[1], budget)
        if digest is not None:
            component["hashes"] = [{"alg": "SHA-256", "content": digest}]
        else:
            properties.append(_property("sha256", reason))
    component["properties"] = properties
    return component


def _file_ref(path: str) -> str:
    return "file:" + clean_text(path, 4000)


def _vulnerability(index: int, finding: Any, report: Any, source: dict[str, Any]) -> dict[str, Any]:
    identifier = rule_id(finding)
    rule = rule_for(identifier, finding.severity)
    detail = clean_text(finding.detail, 2000)
    properties = [_property("severity", finding.severity), _property("fails_scan", str(counts_as_finding(
        finding.severity, report.allow_unknown)).lower())]
    if finding.member:
        properties.append(_property("member", finding.member))
    if finding.global_name:
        properties.append(_property("global", finding.global_name))
    vulnerability: dict[str, Any] = {
        "bom-ref": f"finding-{index}",
        "id": identifier,
        "source": source,
        "ratings": [{"source": source, "score": float(rule.security_severity), "severity": rule.severity, "method": "other"}],
        "description": rule.summary,
        "detail": detail,
        "recommendation": rule.help,
        "affects": [{"ref": _file_ref(finding.file)}],
        "properties": properties,
    }
    if rule.cwe is not None:
        vulnerability["cwes"] = [rule.cwe]
    return vulnerability


def render_cyclonedx(report: Any, budget: HashBudget | None = None, with_hashes: bool = True) -> dict[str, Any]:
    """The scan report (scan_command.ScanReport) as a CycloneDX 1.6 BOM dict, file hashes included unless `with_hashes` is False."""
    budget = (budget or HashBudget()) if with_hashes else None
    by_path = {scanned.file: scanned for scanned in report.files}
    paths = list(by_path) + [f.file for f in report.findings if f.file not in by_path]
    components = [_component(path, by_path.get(path), report, budget) for path in dict.fromkeys(paths)]
    source: dict[str, Any] = {"name": "conformance"}
    uri = information_uri()
    if uri:
        source["url"] = uri
    tool = {"type": "application", "bom-ref": "tool:conformance", "name": "conformance", "version": tool_version()}
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": report.started.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "tools": {"components": [tool]},
            "component": {"type": "machine-learning-model", "bom-ref": "scan-root",
                          "name": clean_text(report.base.name or str(report.base), 4000)},
            "properties": [_property("scanner", report.scanner), _property("allow_unknown", str(report.allow_unknown).lower())],
        },
        "components": components,
        "vulnerabilities": [_vulnerability(i, f, report, source) for i, f in enumerate(report.findings)],
    }

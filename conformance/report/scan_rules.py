"""The finding kinds of the serialization scan as report rules, and cleaning of untrusted text for output.

Every report format (text, JSON, SARIF, CycloneDX) names a finding by the same rule id. The scan's
findings carry a severity ("dangerous", "unknown", "error") and, once the scanner sets one, a `kind`;
without a kind the rule is derived from the severity and the global's name. Unrecognised severities
are treated as failing (fail closed).

Globals and file names come from untrusted files: they may hold control characters, terminal escape
sequences, bidirectional overrides, invalid UTF-8 (surrogate escapes from the file system) and
megabytes of text. `clean_text` makes them safe to print and to encode as strict UTF-8 JSON.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScanRule:
    """One kind of scan finding as the SARIF and CycloneDX reports describe it.

    `id` is the stable rule id (`dangerous-global`); `summary` one sentence and `help` what to do; the
    remaining fields rank it in each format (see their comments).
    """

    id: str
    name: str  # PascalCase, as SARIF's reportingDescriptor.name
    summary: str
    help: str
    level: str  # SARIF level: "error" | "warning" | "note"
    severity: str  # CycloneDX rating severity: "critical" | "high" | "medium" | "low" | "info"
    security_severity: str  # GitHub code scanning's 0.0-10.0 score (CVSS-like bands: 9.0+ critical, 7.0+ high, 4.0+ medium)
    cwe: int | None  # MITRE CWE id


RULES: dict[str, ScanRule] = {
    rule.id: rule
    for rule in (
        ScanRule(
            "dangerous-global", "DangerousGlobal",
            "A pickle imports a global that can execute code when the file is loaded.",
            "Loading this file with pickle.load, torch.load(weights_only=False), joblib.load or np.load(allow_pickle=True) "
            "runs code chosen by whoever wrote it. Do not load it; ask for the weights as safetensors.",
            "error", "critical", "9.8", 502,
        ),
        ScanRule(
            "unknown-global", "UnknownGlobal",
            "A pickle imports a global that is not on the weights-only allowlist.",
            "torch.load(weights_only=True) refuses this global. It may be harmless (a training argument object) or not; "
            "loading the file in full trusts its author. Convert the file to safetensors, or accept it with --allow-unknown.",
            "warning", "medium", "5.0", 502,
        ),
        ScanRule(
            "dynamic-call", "DynamicCall",
            "A pickle calls a value that is not a named global (a call through the stack or the memo).",
            "A REDUCE, BUILD or object-creation opcode applies to a value built at load time rather than to an imported "
            "global; a static scan cannot prove what it calls.",
            "warning", "medium", "5.0", 502,
        ),
        ScanRule(
            "parser-differential", "ParserDifferential",
            "Two unpicklers (or two format readers) would read this stream differently.",
            "A stream that loaders read in different ways can hide a payload from a scanner that reads it one way. "
            "Treat the file as malicious.",
            "error", "critical", "9.0", 436,
        ),
        ScanRule(
            "unsafe-path", "UnsafePath",
            "A file is a link that leaves the scanned folder, or not a regular file; it was not read.",
            "Symbolic links out of the folder and special files (pipes, devices) are never followed or opened; "
            "a loader would open them. Replace them with the regular files they stand for.",
            "error", "high", "7.5", 59,
        ),
        ScanRule(
            "template-injection", "TemplateInjection",
            "A chat template can reach Python internals when it is rendered.",
            "The template looks up underscore attributes, builds lookup keys from strings or walks from Jinja's helpers "
            "to Python objects: rendered outside a sandbox it can run code. Render only in jinja2's sandbox, or remove it.",
            "error", "critical", "9.8", 1336,
        ),
        ScanRule(
            "scan-budget", "ScanBudget",
            "A scan budget (opcodes, seconds, inflated bytes) ran out before the file was read completely.",
            "What was not read cannot be shown to be safe: the file fails closed. A real model file stays far inside "
            "every budget; re-export it, or remove it from the model.",
            "error", "high", "7.0", 400,
        ),
        ScanRule(
            "scan-error", "ScanError",
            "The file could not be scanned completely (corrupt, truncated, over a scan bound or unreadable).",
            "A file that cannot be scanned cannot be shown to be safe. Re-export it, or remove it from the model.",
            "error", "high", "7.0", None,
        ),
    )
}

# Severities that do not fail a scan when --allow-unknown is given; everything else always counts.
ALLOWABLE_SEVERITIES = frozenset({"unknown"})

_DIFFERENTIAL = re.compile(r"differential|read (?:it |them )?differently|disagree", re.IGNORECASE)
_UNSAFE_PATH = re.compile(r"symlink|outside the model folder|not a regular file|a FIFO|a device|not followed", re.IGNORECASE)
_RULE_ID = re.compile(r"[^a-z0-9-]+")


def rule_id(finding: Any) -> str:
    """The rule id of a scan finding: its `kind` when the scanner set a known one, else derived from severity and text."""
    kind = getattr(finding, "kind", None)
    if isinstance(kind, str) and kind:
        cleaned = _RULE_ID.sub("-", kind.lower()).strip("-")[:64]
        if cleaned:
            return cleaned
    severity = getattr(finding, "severity", "error")
    global_name = getattr(finding, "global_name", "") or ""
    detail = getattr(finding, "detail", "") or ""
    if _DIFFERENTIAL.search(detail):
        return "parser-differential"
    if severity == "dangerous":
        return "dangerous-global"
    if severity == "unknown":
        return "dynamic-call" if global_name.startswith("<") else "unknown-global"
    if not global_name and _UNSAFE_PATH.search(detail):
        return "unsafe-path"
    return "scan-error"


def rule_for(identifier: str, severity: str) -> ScanRule:
    """The catalogue rule, or a generic one for a kind the scanner added after this catalogue was written."""
    known = RULES.get(identifier)
    if known is not None:
        return known
    level, rating, score = ("warning", "medium", "5.0") if severity in ALLOWABLE_SEVERITIES else ("error", "high", "7.0")
    name = "".join(part.capitalize() for part in identifier.split("-")) or "Finding"
    return ScanRule(identifier, name, f"Serialization scan finding: {identifier}.", "See the finding's message.", level, rating, score, None)


def counts_as_finding(severity: str, allow_unknown: bool) -> bool:
    """Whether a finding of this severity fails the scan (exit code 1); unknown severities always do."""
    return not (allow_unknown and severity in ALLOWABLE_SEVERITIES)


# Cc: C0/C1 controls and DEL (terminal escapes start with ESC, a newline fakes a line); Cf: format characters
# such as RLO (U+202E) and the isolates (U+2066-2069) that reorder what a reader sees; Zl, Zp: U+2028 and
# U+2029, which editors and browsers break lines at; Cs: lone surrogates, which cannot be encoded; Co, Cn:
# private and unassigned code points, whose look no reader can know.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}  # read as people write them, not as \x0a


def _printable(char: str) -> bool:
    return unicodedata.category(char) not in _UNPRINTABLE_CATEGORIES


def clean_text(value: Any, limit: int = 4096, for_terminal: bool = False) -> str:
    r"""`value` as text safe to print (for_terminal) or to encode as UTF-8 JSON; at most `limit` characters plus a marker.

    Bytes that were not UTF-8 in a file name (surrogate escapes) become \xNN escapes; with `for_terminal`,
    control and format characters and line separators become visible escapes too (`\n`, `\t`, `\x1b`,
    `\u202e`, `\u2028`), so text from a model's files cannot move the cursor, recolour the terminal, start a
    line of its own or reverse the text around it. Every text view of the suite (terminal, Markdown,
    CSV, diff: `report.text`) escapes through here.
    """
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + f"...[{len(text) - limit} more characters]"
    if for_terminal:
        return "".join(char if _printable(char) else _escape(char) for char in text)
    return "".join(_escape(char) if 0xD800 <= ord(char) <= 0xDFFF else char for char in text)


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 in a file name (os.fsdecode's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

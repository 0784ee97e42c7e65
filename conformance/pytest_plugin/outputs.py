"""What the plugin reports: item texts, JUnit properties, the summary line, result documents and summary.md."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..report.names import file_stem, unique_name
from ..report.text import plain_text, short
from ..result_document import ResultDocument
from ..results import RuleResult, RunResult
from ..verdict import Level, Status, breaks_conformance, falls_short, is_warning

if TYPE_CHECKING:
    from .store import Store


def as_json(value: Any) -> str:
    """Sorted, unescaped JSON of an observed or expected value (anything else as its str)."""
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def result_properties(result: RuleResult) -> list[tuple[str, str]]:
    """JUnit <property> pairs: the figures CI dashboards show next to the test case."""
    return [
        ("status", result.status.value),  # a plain str: xdist sends properties over execnet
        ("observed", as_json(result.observed)),
        ("expected", as_json(result.expected)),
        ("message", result.message),
    ]


def failure_text(result: RuleResult, model: str) -> str:
    """The failure report of a must rule: what was observed, what was expected, and why."""
    return "\n".join([
        f"{result.id} ({result.level}, {result.check}) failed on {plain_text(model)}",
        f"observed: {short(result.observed, 500)}",
        f"expected: {short(result.expected, 500)}",
        f"message: {plain_text(result.message) or '-'}",
    ])


def shortfall_text(result: RuleResult) -> str:
    """One line for the xfail reason of a should or may rule."""
    text = f"{result.level} rule falls short: observed {short(result.observed, 120)}, expected {short(result.expected, 80)}"
    return text + (f": {plain_text(result.message)}" if result.message else "")


def error_text(result: RuleResult, model: str) -> str:
    """The error report of a rule that could not be judged."""
    return f"{result.id} ({result.level}, {result.check}) could not be judged on {plain_text(model)}: {plain_text(result.message)}"


# --- the terminal summary line --------------------------------------------------------------------


def note_outcome(store: Store, report: Any) -> None:
    """Remember each rule item's verdict from its setup report (on the xdist controller too)."""
    if report.when != "setup" or "conformance" not in report.keywords:
        return
    properties = {str(pair[0]): str(pair[1]) for pair in report.user_properties}
    if "rule" not in properties or "check" not in properties:
        return  # a hand-written test that carries the marker, not a rule item
    status = properties.get("status") or ("error" if report.failed else None)
    if status is not None:
        store.outcomes[report.nodeid] = {"status": status, "level": properties.get("level", ""), "model": properties.get("model", "")}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def summary_line(outcomes: list[dict[str, str]]) -> str:
    """The terminal summary line: `conformance: 3 passed, 1 must failure, 2 should shortfalls, ...`.

    Counted over the rule items' outcomes (`status`, `level`, `model` per item); may shortfalls are named
    only when there are some.
    """
    def count(status: Status, level: Level | None = None) -> int:
        return sum(o["status"] == status and (level is None or o["level"] == level) for o in outcomes)

    def shortfalls(level: Level) -> int:
        return sum(is_warning(o["level"], o["status"]) and o["level"] == level for o in outcomes)

    parts = [
        f"{count(Status.PASS)} passed",
        _count(sum(breaks_conformance(o["level"], o["status"]) and o["status"] == Status.FAIL for o in outcomes), "must failure"),
        _count(shortfalls(Level.SHOULD), "should shortfall"),
    ]
    if shortfalls(Level.MAY):
        parts.append(_count(shortfalls(Level.MAY), "may shortfall"))
    parts += [f"{count(Status.SKIP)} skipped", _count(count(Status.ERROR), "error")]
    models = len({o["model"] for o in outcomes})
    return f"conformance: {', '.join(parts)} across {_count(models, 'model')}"


def summary_colour(outcomes: list[dict[str, str]]) -> str:
    """The summary line's colour: red, yellow or green.

    Red when a rule errored (at any level) or broke conformance, yellow when only should/may rules fell
    short, else green.
    """
    if any(o["status"] == Status.ERROR or breaks_conformance(o["level"], o["status"]) for o in outcomes):
        return "red"
    return "yellow" if any(falls_short(o["status"]) for o in outcomes) else "green"


# --- result documents -----------------------------------------------------------------------------


def local_payloads(store: Store) -> list[dict[str, Any]]:
    """One partial result document per (model, spec) judged in this process: the rules that ran here."""
    from ..runner import result_document

    payloads = []
    for (model_path, spec_path), run in store.runs.items():
        state = run.state
        result = result_document(state.candidate, run.spec, [], state.evidence, state.options)  # identity, hashes
        result.rules = [run.results[rule.id] for rule in run.spec.rules if rule.id in run.results]
        result.evidence = state.plain_evidence()
        payloads.append({
            "model_path": str(model_path),
            "spec_path": str(spec_path),
            "order": [rule.id for rule in run.spec.rules],
            "document": result.to_document(),
        })
    return payloads


def merge_payloads(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One document per (model, spec), its rules gathered from every xdist worker that judged some.

    Each payload is `{"model_path", "spec_path", "order": [rule ids], "document": partial result document}`;
    the first payload of a group gives the spec and environment, the first with hashed weights the model.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for payload in payloads:
        groups.setdefault((payload["model_path"], payload["spec_path"]), []).append(payload)
    documents = []
    for group in groups.values():
        order = group[0]["order"]
        first = ResultDocument(group[0]["document"])
        model = first.model
        rules: dict[str, RuleResult] = {}
        evidence: dict[str, Any] = {}
        for payload in group:
            document = ResultDocument(payload["document"])
            for rule in document.rules:
                rules.setdefault(rule.id, rule)
            for key, value in document.evidence.items():
                evidence.setdefault(key, value)
            if not model.sha256 and document.model.sha256:
                model = document.model
        position = {rule_id: index for index, rule_id in enumerate(order)}
        ordered = sorted(rules.values(), key=lambda rule: position.get(rule.id, len(order)))
        merged = RunResult(spec=first.spec, model=model, rules=ordered, evidence=evidence, environment=dict(first.environment))
        documents.append(merged.to_document())
    return documents


def write_outputs(documents: Sequence[ResultDocument | dict[str, Any]], out: Path) -> list[Path]:
    """<out>/<model>.<spec id>.json per document (schema-validated, atomic) and <out>/summary.md."""
    from ..report.markdown import render_markdown
    from ..results import write_atomic, write_result

    written: list[Path] = []
    stems: set[str] = set()
    readers = sorted((ResultDocument.of(document) for document in documents),
                     key=lambda d: (d.model.name, d.spec.id, d.model.path))
    table = [
        "# Conformance summary",
        "",
        "| model | spec | verdict | passed | failed | skipped | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    sections = []
    for document in readers:
        stem = unique_name(f"{file_stem(document.model.name)}.{file_stem(document.spec.id)}", stems)
        stems.add(stem)
        path = out / f"{stem}.json"
        write_result(dict(document.data), path)
        written.append(path)
        summary = document.summary
        verdict = "conformant" if summary.conformant else "**not conformant**"
        table.append(
            f"| {document.model.name} | {document.spec.label} | {verdict} "
            f"| {summary.passed} | {summary.failed} | {summary.skipped} | {summary.errors} |"
        )
        sections.append(re.sub(r"^# ", "## ", render_markdown(document), count=1))
    summary_path = out / "summary.md"
    note = ["", "Each document holds the rules that ran in this pytest session (selection, -x and --lf apply).", ""]
    write_atomic(summary_path, "\n".join(table + note) + "\n" + "\n".join(sections))
    written.append(summary_path)
    return written

"""`conformance diff BASE NEW`: what changed between two result documents, rule by rule and figure by figure.

A must rule *newly fails* when it fails or errors in NEW and was not a failing must rule in BASE: it passed
or was skipped, it was absent, or it was a should/may rule that has become must. That list decides the exit
code (1 when it is not empty): a pull request may keep an old failure, but must not add one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..metrics import lower_is_better
from ..result_document import SPEED_FIGURES, ResultDocument
from ..results import RuleResult
from ..verdict import Status, breaks_conformance, falls_short
from .text import markdown_code, markdown_text, plain_text, short

# Relative changes below this are shown as unchanged figures: timing noise is not a change.
RELATIVE_EPSILON = 1e-12


@dataclass(frozen=True)
class RuleChange:
    """A rule whose status or level differs between BASE and NEW, or that one of them lacks."""

    id: str
    check: str
    level: str  # in NEW, or in BASE for a removed rule
    before: str | None  # status in BASE; None when the rule is new
    after: str | None  # status in NEW; None when the rule was removed
    message: str = ""  # NEW's message (BASE's for a removed rule)

    @property
    def kind(self) -> str:
        """One of added, removed, newly failing, fixed, changed."""
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        if falls_short(self.after) and not falls_short(self.before):
            return "newly failing"
        if falls_short(self.before) and self.after == Status.PASS:
            return "fixed"
        return "changed"


@dataclass(frozen=True)
class MetricDelta:
    """One figure in BASE and NEW, and which way is better (from the metric table)."""

    name: str  # "conformance_sentiment.acc", "parameters", "decode_tokens_per_second", ...
    before: float | None
    after: float | None
    lower_is_better: bool | None = False  # None: neither way is better (a size), shown as up/down

    @property
    def delta(self) -> float | None:
        """NEW − BASE; None without both values."""
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def relative(self) -> float | None:
        """Change as a fraction of BASE (None without both values or with BASE at 0)."""
        if self.delta is None or not self.before:
            return None
        return self.delta / abs(self.before)

    @property
    def direction(self) -> str:
        """One of better, worse, up, down (figures with no better side), same, new, gone."""
        if self.before is None:
            return "new"
        if self.after is None:
            return "gone"
        delta = self.delta or 0.0
        if abs(delta) <= RELATIVE_EPSILON * max(abs(self.before), 1.0):
            return "same"
        if self.lower_is_better is None:
            return "up" if delta > 0 else "down"
        return "better" if (delta < 0) == self.lower_is_better else "worse"


@dataclass
class Diff:
    """What changed from BASE to NEW; `newly_failing_must` decides `conformance diff`'s exit code."""

    base_model: str
    new_model: str
    notes: list[str] = field(default_factory=list)  # identity changes: other spec, other weights
    rule_changes: list[RuleChange] = field(default_factory=list)
    metric_deltas: list[MetricDelta] = field(default_factory=list)
    newly_failing_must: list[str] = field(default_factory=list)  # rule ids
    conformant_before: bool = True
    conformant_after: bool = True

    @property
    def changed_metrics(self) -> list[MetricDelta]:
        """The figures that moved (not `same`), in the diff's order."""
        return [metric for metric in self.metric_deltas if metric.direction != "same"]

    def render_text(self) -> str:
        """The terminal form: notes, verdicts, rule changes, metric changes, newly failing must rules."""
        lines = [f"diff {plain_text(self.base_model, 500)} -> {plain_text(self.new_model, 500)}"]
        lines += [f"  note: {plain_text(note, 2000)}" for note in self.notes]
        lines.append(f"conformant: {_yes_no(self.conformant_before)} -> {_yes_no(self.conformant_after)}")
        if self.rule_changes:
            lines.append("rules:")
            ids = [short(change.id, 64) for change in self.rule_changes]
            width = max(len(rule_id) for rule_id in ids)
            for rule_id, change in zip(ids, self.rule_changes, strict=True):
                lines.append(f"  {rule_id.ljust(width)}  {change.level:<6}  {change.before or '-':>5} -> {change.after or '-':<5}  "
                             f"{change.kind}" + (f": {short(change.message, 100)}" if change.message else ""))
        else:
            lines.append("rules: no status changes")
        changed = self.changed_metrics
        if changed:
            lines.append("metrics:")
            names = [short(metric.name, 120) for metric in changed]
            width = max(len(name) for name in names)
            for name, metric in zip(names, changed, strict=True):
                lines.append(f"  {name.ljust(width)}  {_number(metric.before)} -> {_number(metric.after)}  {_delta_text(metric)}")
        else:
            lines.append("metrics: no changes")
        if self.newly_failing_must:
            lines.append(f"NEWLY FAILING MUST RULES: {', '.join(short(rule_id, 64) for rule_id in self.newly_failing_must)}")
        return "\n".join(lines) + "\n"

    def render_markdown(self) -> str:
        """The pull-request form of `render_text`: the same content as Markdown tables."""
        lines = [f"## Diff: {markdown_code(self.base_model, 500)} → {markdown_code(self.new_model, 500)}", ""]
        lines += [f"> {markdown_text(note, 2000)}" for note in self.notes] + ([""] if self.notes else [])
        lines += [f"Conformant: {_yes_no(self.conformant_before)} → {_yes_no(self.conformant_after)}", ""]
        if self.newly_failing_must:
            lines += [f"**❌ newly failing must rules: {', '.join(_cell(rule_id, 64) for rule_id in self.newly_failing_must)}**", ""]
        if self.rule_changes:
            lines += ["| rule | level | before | after | change | message |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {_cell(c.id, 64)} | {c.level} | {c.before or '–'} | {c.after or '–'} | {c.kind} | {_cell(c.message, 100)} |"
                for c in self.rule_changes
            ]
        else:
            lines.append("No rule status changes.")
        lines.append("")
        changed = self.changed_metrics
        if changed:
            lines += ["| metric | before | after | change |", "|---|---|---|---|"]
            lines += [f"| {_cell(m.name, 120)} | {_number(m.before)} | {_number(m.after)} | {_delta_text(m)} |" for m in changed]
        else:
            lines.append("No metric changes.")
        return "\n".join(lines) + "\n"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _cell(text: str, width: int) -> str:
    """A Markdown table cell of a document's text: one line of at most `width` characters, escaped (`report.text`)."""
    return markdown_text(short(text, width))


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1e5 and float(value).is_integer() else f"{value:.4g}"


def _delta_text(metric: MetricDelta) -> str:
    if metric.delta is None:
        return metric.direction
    relative = f" ({metric.relative:+.1%})" if metric.relative is not None else ""
    return f"{metric.delta:+.4g}{relative} {metric.direction}"


def _figures(document: ResultDocument, speed_key: str | None) -> dict[str, tuple[float | None, bool | None]]:
    """Name -> (value, lower is better; None: neither way), direction from the metric table.

    Every task metric (`task.metric`), the static size figures and the speed figures.
    """
    figures: dict[str, tuple[float | None, bool | None]] = {}
    for task, metrics in sorted(document.task_scores().items()):
        for metric, value in sorted(metrics.items()):
            figures[f"{task}.{metric}"] = (value, lower_is_better(metric))
    facts = document.static_facts()
    figures["parameters"] = (float(facts.parameters) if facts.parameters else None, lower_is_better("parameters"))
    figures["weight_bytes"] = (float(facts.weight_bytes) if facts.weight_bytes else None, lower_is_better("weight_bytes"))
    speed = document.speed_figures(speed_key)
    for name in SPEED_FIGURES:
        figure = speed.get(name)
        figures[name] = (float(figure) if isinstance(figure, (int, float)) else None, lower_is_better(name))
    return figures


def _shared_speed_key(base: ResultDocument, new: ResultDocument) -> tuple[str | None, str | None]:
    """Speed workloads to compare: the first one both measured, else each one's own first (with a note)."""
    base_keys, new_keys = base.speed_keys(), new.speed_keys()
    shared = [key for key in base_keys if key in new_keys]
    if shared:
        return shared[0], shared[0]
    return (base_keys[0] if base_keys else None), (new_keys[0] if new_keys else None)


def _rule_changes(base: ResultDocument, new: ResultDocument) -> tuple[list[RuleChange], list[str]]:
    before: dict[str, RuleResult] = {rule.id: rule for rule in base.rules}
    after: dict[str, RuleResult] = {rule.id: rule for rule in new.rules}
    changes, newly_failing = [], []
    for rule_id, rule in after.items():  # NEW's order: the order its spec lists the rules
        old = before.get(rule_id)
        if old is None or old.status != rule.status or old.level != rule.level:
            message = rule.message if rule.status is not Status.PASS else ""  # a pass's message is detail, not news
            changes.append(RuleChange(rule_id, rule.check, rule.level.value, old.status.value if old else None, rule.status.value, message))
        was_breaking = old is not None and breaks_conformance(old.level, old.status)
        if breaks_conformance(rule.level, rule.status) and not was_breaking:
            newly_failing.append(rule_id)
    for rule_id, old in before.items():
        if rule_id not in after:
            changes.append(RuleChange(rule_id, old.check, old.level.value, old.status.value, None, old.message))
    return changes, newly_failing


def diff_documents(base_document: ResultDocument | Mapping[str, Any], new_document: ResultDocument | Mapping[str, Any]) -> Diff:
    """Compare two result documents (BASE: the reference, e.g. the last release; NEW: the candidate)."""
    base, new = ResultDocument.of(base_document), ResultDocument.of(new_document)
    diff = Diff(base.model.name, new.model.name, conformant_before=base.conformant, conformant_after=new.conformant)
    if (base.spec.id, base.spec.sha256) != (new.spec.id, new.spec.sha256):
        diff.notes.append(f"specs differ: {base.spec.label} -> {new.spec.label}")
    if base.model.sha256 != new.model.sha256:
        old, now = base.model.sha256, new.model.sha256
        diff.notes.append(f"weights differ: {(old or 'not hashed')[:12]} -> {(now or 'not hashed')[:12]}")
    base_speed, new_speed = _shared_speed_key(base, new)
    if base_speed != new_speed and base_speed and new_speed:
        diff.notes.append("speed figures come from different workloads")
    diff.rule_changes, diff.newly_failing_must = _rule_changes(base, new)
    before, after = _figures(base, base_speed), _figures(new, new_speed)
    for name in [*before, *(name for name in after if name not in before)]:
        old_value, lower = before.get(name, (None, None))
        new_value, lower = after.get(name, (None, lower))
        if old_value is not None or new_value is not None:
            diff.metric_deltas.append(MetricDelta(name, old_value, new_value, lower))
    return diff

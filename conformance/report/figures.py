"""What the leaderboard derives from several result documents: family badges and the speed workload.

Reading one document's figures is `result_document.ResultDocument`'s job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..result_document import ResultDocument
from ..results import RuleResult
from ..verdict import Status, breaks_conformance, falls_short

# The five families a reader cares about. Check families outside them are folded in where they belong:
# a model card and license are release hygiene (safety), a loadable, finite, deterministic model is safe
# to run (safety), and the tokenizer and files that agree with themselves (no JSON key given twice) are
# part of the model's shape (architecture); a chat template and the settings generation stops by are
# release readiness, like the card (safety).
FAMILIES: tuple[str, ...] = ("architecture", "size", "safety", "performance", "quality")
FAMILY_OF_CHECK_PREFIX: dict[str, str] = {
    "card": "safety", "runtime": "safety", "chat_template": "safety", "generation": "safety",
    "tokenizer": "architecture", "files": "architecture",
}
OTHER_FAMILY = "other"
# How a prefix reads in a sentence ("file rules", "chat-template rules"); others read as themselves.
_PREFIX_WORDS: dict[str, str] = {"files": "file"}


def _join_words(words: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def family_legend() -> str:
    """The legend's sentence on folded families, generated from `FAMILY_OF_CHECK_PREFIX` so it cannot drift.

    `Card, runtime, chat-template and generation rules count under safety; tokenizer and file rules under
    architecture.` Families in `FAMILIES` order, prefixes in the table's order.
    """
    clauses = []
    for family in FAMILIES:
        prefixes = [prefix for prefix, folded in FAMILY_OF_CHECK_PREFIX.items() if folded == family]
        if prefixes:
            words = [_PREFIX_WORDS.get(prefix, prefix.replace("_", "-")) for prefix in prefixes]
            clauses.append((_join_words(words), family))
    if not clauses:
        return ""
    # Safety first, as a reader looks for it first; then the families' order.
    clauses.sort(key=lambda clause: clause[1] != "safety")
    parts = [f"{words} rules count under {family}" if index == 0 else f"{words} rules under {family}"
             for index, (words, family) in enumerate(clauses)]
    sentence = "; ".join(parts) + "."
    return sentence[0].upper() + sentence[1:]


def family_of(check: str) -> str:
    """The badge family of a check name (`card.present` -> safety, an unknown prefix -> other)."""
    prefix = check.split(".", 1)[0]
    if prefix in FAMILIES:
        return prefix
    return FAMILY_OF_CHECK_PREFIX.get(prefix, OTHER_FAMILY)


def family_status(rules: Iterable[RuleResult]) -> str:
    """One badge for a family's rules.

    fail (a rule broke conformance: a must rule failed or errored), warn (only should/may rules failed or
    errored), pass (everything that ran passed), skip (every rule skipped), na (no rules).
    """
    rules = list(rules)
    if not rules:
        return "na"
    if any(breaks_conformance(rule.level, rule.status) for rule in rules):
        return "fail"
    if any(falls_short(rule.status) for rule in rules):
        return "warn"
    if all(rule.status is Status.SKIP for rule in rules):
        return "skip"
    return "pass"


def family_statuses(document: ResultDocument) -> dict[str, str]:
    """Family -> badge status, for the five families plus `other` when the spec has such rules."""
    grouped: dict[str, list[RuleResult]] = {family: [] for family in (*FAMILIES, OTHER_FAMILY)}
    for rule in document.rules:
        grouped[family_of(rule.check)].append(rule)
    statuses = {family: family_status(rules) for family, rules in grouped.items()}
    if statuses[OTHER_FAMILY] == "na":
        del statuses[OTHER_FAMILY]
    return statuses


def task_groups(documents: Iterable[ResultDocument]) -> dict[str, list[str]]:
    """Each top-level lm-eval group -> every task under it (nested groups walked), from the tasks evidence.

    Read from `group_subtasks` (group -> its subtasks, as lm-eval reports them); a group inside another
    group is not top-level. A cycle is walked once. Groups in sorted order, their tasks sorted.
    """
    children: dict[str, set[str]] = {}
    for document in documents:
        groups = document.probe("tasks").get("group_subtasks")
        if not isinstance(groups, dict):
            continue
        for group, subtasks in groups.items():
            if isinstance(subtasks, list):
                children.setdefault(str(group), set()).update(str(task) for task in subtasks)
    nested = {task for subtasks in children.values() for task in subtasks}
    result: dict[str, list[str]] = {}
    for group in sorted(children):
        if group in nested:
            continue
        members: set[str] = set()
        pending = [group]
        while pending:  # iterative: a deep or cyclic table cannot recurse
            for child in children.get(pending.pop(), ()):
                if child != group and child not in members:
                    members.add(child)
                    pending.append(child)
        result[group] = sorted(members)
    return result


def primary_speed_key(documents: list[ResultDocument]) -> str | None:
    """The speed workload most documents measured (first in sorted order on a tie).

    Models are compared on one workload only: throughput at batch 1 and batch 8 are different figures.
    """
    counts = Counter(key for document in documents for key in document.speed_keys())
    if not counts:
        return None
    return min(counts, key=lambda key: (-counts[key], key))


def describe_workload(documents: list[ResultDocument], key: str | None) -> str | None:
    """The workload behind a speed key in words, from the first document that recorded it."""
    for document in documents:
        text = document.workload_text(key)
        if text is not None:
            return text
    return None

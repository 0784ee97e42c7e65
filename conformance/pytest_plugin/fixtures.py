"""Fixtures for hand-written tests: a result document per (model, spec), and a verdict assertion."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from ..report.text import plain_text, short
from ..result_document import ResultDocument
from .session import get_store


def assert_rule(document: ResultDocument | Mapping[str, Any], rule_id: str, status: str | Iterable[str] = "pass") -> dict[str, Any]:
    """Assert that `rule_id` has `status` (or one of several) in a result document; return the rule's entry.

    Args:
        document: a result document (`conformance_run`'s dict, a loaded file, or its ResultDocument).
        rule_id: the rule's id in the spec.
        status: the wanted status, or several ("pass", "fail", "skip", "error").

    Returns:
        The document's row for the rule (a dict: id, check, level, status, observed, expected, message, ...).

    Raises:
        AssertionError: the rule is not in the document, or has another status; the failure names the
            observed and expected values and the check's message.
    """
    __tracebackhide__ = True
    wanted = (status,) if isinstance(status, str) else tuple(status)
    reader = ResultDocument.of(document)
    rows = list(reader.data.get("rules") or [])  # a hand-made document may have none
    rules = {rule.id: (rule, row) for rule, row in zip(reader.rules, rows, strict=True)} if rows else {}
    if rule_id not in rules:
        raise AssertionError(f"rule {rule_id} is not in the result document (rules: {', '.join(rules) or 'none'})")
    rule, row = rules[rule_id]
    if rule.status not in wanted:
        model = reader.data.get("model") or {}  # read as the reader's repr does: a hand-made one may lack the path
        raise AssertionError(
            f"{rule_id} ({rule.level}, {rule.check}) on {plain_text(model.get('name', '?'))}: status {rule.status}, wanted {' or '.join(wanted)}\n"
            f"observed: {short(rule.observed, 500)}\n"
            f"expected: {short(rule.expected, 500)}\n"
            f"message: {plain_text(rule.message) or '-'}"
        )
    return dict(row)


@pytest.fixture(scope="session")
def conformance_run(pytestconfig: pytest.Config) -> Callable[..., dict[str, Any]]:
    """`conformance_run(model_dir, spec, *, only=None, device=..., dtype=..., ...)` -> result document (dict).

    Measured once per session for each model and option set, sharing evidence with the rule items of the
    same model; the document is cached per (model, spec, options).
    """
    store = get_store(pytestconfig)

    def run(model: str | Path, spec: str | Path, *, only: list[str] | None = None, **options: Any) -> dict[str, Any]:
        return store.fixture_document(model, spec, only=only, **options)

    return run


@pytest.fixture
def conformance_assert() -> Callable[..., dict[str, Any]]:
    """`conformance_assert(document, rule_id, status="pass")`: see conformance.pytest_plugin.assert_rule."""
    return assert_rule

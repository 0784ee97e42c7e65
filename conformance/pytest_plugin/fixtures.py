"""Fixtures for hand-written tests: a result document per (model, spec), and a verdict assertion."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from ..report.text import short
from .session import get_store


def assert_rule(document: dict[str, Any], rule_id: str, status: str | Iterable[str] = "pass") -> dict[str, Any]:
    """Assert that `rule_id` has `status` (or one of several) in a result document; return the rule's entry.

    The failure names the observed and expected values and the check's message.
    """
    __tracebackhide__ = True
    wanted = (status,) if isinstance(status, str) else tuple(status)
    rules = {rule["id"]: rule for rule in document.get("rules", [])}
    if rule_id not in rules:
        raise AssertionError(f"rule {rule_id} is not in the result document (rules: {', '.join(rules) or 'none'})")
    rule = rules[rule_id]
    if rule["status"] not in wanted:
        model = document.get("model", {}).get("name", "?")
        raise AssertionError(
            f"{rule_id} ({rule['level']}, {rule['check']}) on {model}: status {rule['status']}, wanted {' or '.join(wanted)}\n"
            f"observed: {short(rule['observed'], 500)}\n"
            f"expected: {short(rule['expected'], 500)}\n"
            f"message: {rule['message'] or '-'}"
        )
    return rule


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

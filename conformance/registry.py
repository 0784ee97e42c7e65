"""The check registry: the `@check` decorator and the table it fills.

Check modules import this (and `rule`) only; they never import the spec loader, the schema or the catalogue.
Importing this module imports no check: `catalogue` imports the `checks` package to fill the table and
answers lookups (`get_check`, `all_checks`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .rule import COMPARISON_KEYS, Rule

if TYPE_CHECKING:
    from .evidence import Evidence
    from .verdict import Verdict

CheckFunction = Callable[["Evidence", Rule], "Verdict | Any"]


@dataclass(frozen=True)
class CheckDef:
    """One registered check: what `conformance rules` lists and the schema is generated from."""

    name: str
    function: CheckFunction
    summary: str
    probes: tuple[str, ...]
    # JSON Schema `properties` of the check's own parameters (beyond the comparison keys).
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    # Comparison keys that make sense for this check; the schema rejects the others.
    comparisons: tuple[str, ...] = COMPARISON_KEYS
    # True when the rule must say what to compare against (`min`, `equals`, ...).
    needs_comparison: bool = False
    # For checks whose probes take parameters (a speed workload): rule -> the probe's parameters.
    # Rules with equal parameters share one measurement.
    probe_params: Callable[[Rule], dict[str, Any]] | None = None

    @property
    def family(self) -> str:
        """The rule family: the name's part before the first dot (`size` for `size.parameters`)."""
        return self.name.split(".", 1)[0]


_CHECKS: dict[str, CheckDef] = {}


def check(
    name: str,
    *,
    summary: str,
    probes: tuple[str, ...],
    params: dict[str, dict[str, Any]] | None = None,
    required: tuple[str, ...] = (),
    comparisons: tuple[str, ...] = COMPARISON_KEYS,
    needs_comparison: bool = False,
    probe_params: Callable[[Rule], dict[str, Any]] | None = None,
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check under its public name; ValueError if the name is taken."""

    def register(function: CheckFunction) -> CheckFunction:
        if name in _CHECKS:
            raise ValueError(f"check {name} registered twice")
        _CHECKS[name] = CheckDef(
            name=name,
            function=function,
            summary=summary,
            probes=probes,
            params=dict(params or {}),
            required=required,
            comparisons=comparisons,
            needs_comparison=needs_comparison,
            probe_params=probe_params,
        )
        return function

    return register


def registered_checks() -> Mapping[str, CheckDef]:
    """A read-only view of every check registered so far (only the imported check modules' checks)."""
    return MappingProxyType(_CHECKS)

"""The one catalogue of checks: it runs them, generates the spec schema and lists them (`conformance rules`)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import RequestError

if TYPE_CHECKING:
    from .evidence import Evidence
    from .spec import Rule
    from .verdict import Verdict

# Keys every rule may use to state what the observed value must be.
COMPARISON_KEYS: tuple[str, ...] = ("min", "max", "equals", "in", "not_in", "pattern", "tolerance")

CheckFunction = Callable[["Evidence", "Rule"], "Verdict | Any"]


@dataclass(frozen=True)
class CheckDef:
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
    """Register a check under its public name."""

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


def _load_catalogue() -> None:
    from . import checks  # noqa: F401  (importing registers every check)


def all_checks() -> list[CheckDef]:
    _load_catalogue()
    return [_CHECKS[name] for name in sorted(_CHECKS)]


def suggest(name: str) -> str | None:
    _load_catalogue()
    matches = difflib.get_close_matches(name, list(_CHECKS), n=1, cutoff=0.6)
    return matches[0] if matches else None


def get_check(name: str) -> CheckDef:
    _load_catalogue()
    try:
        return _CHECKS[name]
    except KeyError:
        hint = suggest(name)
        raise RequestError(
            f"unknown check {name!r}" + (f"; did you mean {hint!r}?" if hint else "")
        ) from None

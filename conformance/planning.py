"""Which probe runs a set of rules needs, and under which evidence key each rule finds its own.

Both answers come from the two registries alone: a check declares its probes and `probe_params`; a probe
declares its dependencies and whether it is parameterized (one run per distinct parameters) or merged (one
run for all its rules). Checks read their evidence through `rule_evidence`, never by rebuilding a key.

Probe definitions are read from the registry, and the catalogue (every probe module) is imported only
when a name is not registered yet: the checks import this module, and importing every probe module (the
scanner among them) to load a spec cost each leaderboard process ~0.1 s (tests/test_import_graph.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from .errors import CheckError
from .evidence import Evidence, evidence_key
from .probe_registry import ProbeDef, registered_probes
from .registry import CheckDef, registered_checks
from .rule import Rule

T = TypeVar("T")


@dataclass(frozen=True)
class ProbeRun:
    """One measurement: a probe and its parameters (frozen: sorted (key, JSON value) pairs)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """Its evidence key: the bare name for a merged probe, else the name with its parameters."""
        return self.name if get_probe(self.name).merge is not None else self.cache_key

    @property
    def cache_key(self) -> str:
        """The key its evidence is cached under: always with the parameters (a merged run's differ per spec)."""
        return evidence_key(self.name, dict(self.params))


def get_probe(name: str) -> ProbeDef:
    """The registered probe `name`, registering every shipped probe first if it is not (yet) known.

    Raises CheckError when no shipped probe has that name (a check declared it wrongly).
    """
    if name not in registered_probes():
        # Function-local on purpose: the catalogue imports every probe module (~90 ms, the scanner's
        # included), which loading a spec or reading stored results never needs; the runner imports it.
        from . import probe_catalogue  # noqa: F401  (importing it registers every shipped probe)
    try:
        return registered_probes()[name]
    except KeyError:
        raise CheckError(f"unknown probe {name!r}: no probe module defines it") from None


def _freeze(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, json.loads(json.dumps(v))) for k, v in params.items())) if params else ()


def _check(rule: Rule) -> CheckDef:
    # The registry, not the catalogue: checks call this module, and the catalogue imports the checks.
    try:
        return registered_checks()[rule.check]
    except KeyError:
        raise CheckError(f"unknown check {rule.check!r}") from None


def _rule_params(rule: Rule) -> dict[str, Any]:
    definition = _check(rule)
    return definition.probe_params(rule) if definition.probe_params else {}


def probe_runs(rule: Rule) -> list[ProbeRun]:
    """The probe runs this rule is judged on, in its check's order (a merged probe's without parameters)."""
    params = _rule_params(rule)
    return [ProbeRun(name, _freeze(params) if get_probe(name).parameterized else ()) for name in _check(rule).probes]


def _merged_runs(rules: list[Rule]) -> dict[str, ProbeRun]:
    """One run per merged probe, its parameters merged by the probe from every rule's."""
    collected: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        for name in _check(rule).probes:
            if get_probe(name).merge is not None:
                collected.setdefault(name, []).append(_rule_params(rule))
    merged: dict[str, ProbeRun] = {}
    for name, params in collected.items():
        merge = get_probe(name).merge
        assert merge is not None
        merged[name] = ProbeRun(name, _freeze(merge(params)))
    return merged


def plan(rules: list[Rule]) -> list[ProbeRun]:
    """The probe runs these rules need, dependencies first, each once."""
    ordered: list[ProbeRun] = []
    merged = _merged_runs(rules)

    def add(run: ProbeRun) -> None:
        if run in ordered:
            return
        for dependency in get_probe(run.name).depends:
            add(ProbeRun(dependency))
        ordered.append(run)

    for rule in rules:
        for run in probe_runs(rule):
            add(merged.get(run.name, run))
    return _until_decided_last(ordered)


def _until_decided_last(ordered: list[ProbeRun]) -> list[ProbeRun]:
    """`ordered` with the until-decided runs (and any run depending on one) moved to the end, order kept.

    An until-decided probe asks the checks of its rules whether a measurement decides them; a check that
    also reads another probe (MFU reads the `devices` table) would otherwise be asked before that probe ran,
    answer "probe did not run", count as decided, and stop the measuring at the first look.
    """
    late_names = {run.name for run in ordered if get_probe(run.name).until_decided}
    if not late_names:
        return ordered

    def waits(name: str) -> bool:
        return name in late_names or any(waits(dependency) for dependency in get_probe(name).depends)

    early = [run for run in ordered if not waits(run.name)]
    return early + [run for run in ordered if waits(run.name)]


def rule_probe_key(rule: Rule, probe: str) -> str:
    """The evidence key of `probe` as this rule's check asked for it; CheckError if the check does not use it."""
    for run in probe_runs(rule):
        if run.name == probe:
            return run.key
    raise CheckError(f"check {rule.check} does not declare the {probe} probe")


@overload
def rule_evidence(evidence: Evidence, rule: Rule, probe: str) -> Any: ...
@overload
def rule_evidence(evidence: Evidence, rule: Rule, probe: str, expected: type[T]) -> T: ...
@overload
def rule_evidence(evidence: Evidence, rule: Rule, probe: str, expected: tuple[type, ...]) -> Any: ...


def rule_evidence(evidence: Evidence, rule: Rule, probe: str, expected: type | tuple[type, ...] | None = None) -> Any:
    """This rule's evidence from `probe` (its own parameters' run), of the `expected` type if given.

    The key comes from the view the runner made for this rule (`Evidence.for_rule`), else from planning.
    Raises as `Evidence.get` does: CheckSkipped when the probe did not apply, CheckError when it failed,
    did not run or holds another type.
    """
    key = evidence.rule_keys.get(probe) or rule_probe_key(rule, probe)
    return evidence.get(key, expected)


def rule_keys(rule: Rule) -> dict[str, str]:
    """Probe name -> the evidence key of this rule's run of it (what `Evidence.for_rule` is given)."""
    return {run.name: run.key for run in probe_runs(rule)}

"""The one catalogue of probes, mirroring the check registry: `@probe` declares what a probe needs and yields.

A probe is a function of one `ProbeContext` that measures something about a candidate model and returns
its evidence. `@probe(name, depends=..., evidence=Type, ...)` registers it; the runner plans and executes
from these declarations alone, and the evidence cache derives its allowlist of decodable types from the
`evidence=` types of the cacheable probes. This module imports no probe (probe modules import it to
register); `probe_catalogue` imports them all. Registering imports nothing heavy: probe modules keep torch,
transformers and lm-eval imports inside their functions.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from .candidate import Candidate
    from .evidence import Evidence

Decided = Callable[[Any], bool]  # would every rule judged on this value be decided?
Merge = Callable[[list[dict[str, Any]]], dict[str, Any]]  # every rule's parameters -> one run's


class ProbeOptions(Protocol):
    """What a probe reads of the run's options: how to load the model, and the cache folder (None: none).

    `runner.RunOptions` is one; it is named here, not imported, because the runner imports the probes.
    """

    load: Any
    cache_dir: Path | None


@dataclass(frozen=True)
class ProbeContext:
    """What a probe function is handed: the model, the evidence so far, its parameters and the run's options.

    `decided` is set only for `until_decided` probes: `decided(value)` says whether every rule judged on
    the probe would be decided if `value` were its evidence, so the probe can stop measuring.
    `file_sha256(path)`: the hex sha256 of a file, remembered by the run's cache when it has one (else None).
    """

    candidate: Candidate
    evidence: Evidence
    params: dict[str, Any]
    options: ProbeOptions
    decided: Decided | None = None
    file_sha256: Callable[[Path], str] | None = None


ProbeFunction = Callable[[ProbeContext], Any]


@dataclass(frozen=True)
class ProbeDef:
    """One registered probe.

    `evidence`: the type of the value it stores (for a probe with `summary`, the summary's type: what the
    cache holds). `cacheable`: its evidence is cached by model content, parameters and environment.
    `parameterized`: its parameters come from each rule (the check's `probe_params`); rules with equal
    parameters share one run. `merge`: one run serves all its rules, with parameters merged from every
    rule's (its evidence key is then the bare name). `until_decided`: it measures until its rules are
    decided and is handed `decided`. `summary`: for a live value too heavy to keep (a loaded model): what
    is cached and kept after the run instead; a probe depending on it gets the live value re-measured.
    """

    name: str
    function: ProbeFunction
    depends: tuple[str, ...]
    evidence: type
    cacheable: bool = False
    parameterized: bool = False
    until_decided: bool = False
    merge: Merge | None = None
    summary: Callable[[Any], Any] | None = None


_PROBES: dict[str, ProbeDef] = {}


def probe(
    name: str,
    *,
    evidence: type,
    depends: tuple[str, ...] = (),
    cacheable: bool = False,
    parameterized: bool = False,
    until_decided: bool = False,
    merge: Merge | None = None,
    summary: Callable[[Any], Any] | None = None,
) -> Callable[[ProbeFunction], ProbeFunction]:
    """Register a probe function under its name; ValueError if the name is taken or the flags contradict."""
    if merge is not None and parameterized:
        raise ValueError(f"probe {name}: a merged probe takes its parameters from merge, not per rule")

    def register(function: ProbeFunction) -> ProbeFunction:
        if name in _PROBES:
            raise ValueError(f"probe {name} registered twice")
        _PROBES[name] = ProbeDef(name, function, depends, evidence, cacheable, parameterized, until_decided, merge, summary)
        return function

    return register


def registered_probes() -> Mapping[str, ProbeDef]:
    """Every probe registered so far, by name (read-only; `probe_catalogue` imports them all)."""
    return MappingProxyType(_PROBES)


def _dataclasses_in(hint: Any) -> list[type]:
    """The dataclass types a type hint names, through list[...], dict[..., ...], X | None and the like."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return [hint]
    found: list[type] = []
    for argument in typing.get_args(hint):
        found += _dataclasses_in(argument)
    return found


def reachable_dataclasses(roots: list[type]) -> dict[str, type]:
    """`roots` and every dataclass reachable through their fields' type hints, by class name.

    ValueError when two different classes share a name (the cache tags values by class name).
    """
    found: dict[str, type] = {}
    pending = [root for root in roots if dataclasses.is_dataclass(root)]
    while pending:
        cls = pending.pop()
        if found.get(cls.__name__) is cls:
            continue
        if cls.__name__ in found:
            raise ValueError(f"two evidence types are named {cls.__name__}: {found[cls.__name__]} and {cls}")
        found[cls.__name__] = cls
        for hint in typing.get_type_hints(cls).values():
            pending += _dataclasses_in(hint)
    return found

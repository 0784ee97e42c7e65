"""The probe catalogue: every shipped probe, registered by importing its module, and its lookups.

The runner, the planner and the evidence cache's allowlist ask this module; probe modules never import it
(they import `probe_registry`), so the catalogue sits above the probes. A new probe module is added to the
import below.
"""

from __future__ import annotations

import difflib
import functools

from .errors import RequestError
from .probe_registry import ProbeDef, reachable_dataclasses, registered_probes
from .probes import (  # noqa: F401  (importing a probe module registers its probes)
    baseline,
    card_probe,
    chat_render,
    chat_replies,
    generation_facts,
    generations,
    hashes,
    json_keys,
    load,
    roofline,
    runtime,
    safety_set,
    scan,
    signature,
    speed,
    static,
    tasks,
)


def all_probes() -> list[ProbeDef]:
    """Every registered probe, sorted by name."""
    table = registered_probes()
    return [table[name] for name in sorted(table)]


def get_probe(name: str) -> ProbeDef:
    """The probe registered as `name`; RequestError naming the closest registered name if there is none."""
    try:
        return registered_probes()[name]
    except KeyError:
        matches = difflib.get_close_matches(name, list(registered_probes()), n=1, cutoff=0.6)
        raise RequestError(f"unknown probe {name!r}" + (f"; did you mean {matches[0]!r}?" if matches else "")) from None


def cacheable_types() -> dict[str, type]:
    """The dataclasses the evidence cache may decode: each cacheable probe's evidence type and those it contains.

    Returns a new dict each call; the walk over type hints (~5 ms) is done once per set of registered
    cacheable evidence types, so a probe registered later (a plugin, a test's) is still seen.
    """
    roots = tuple(definition.evidence for definition in all_probes() if definition.cacheable)
    return dict(_reachable(roots))


@functools.lru_cache(maxsize=8)
def _reachable(roots: tuple[type, ...]) -> dict[str, type]:
    return reachable_dataclasses(list(roots))

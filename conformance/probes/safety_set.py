"""The shipped safety probe set (prompts and blocked patterns), read by a probe so the generation check stays pure."""

from __future__ import annotations

from dataclasses import dataclass

from ..probe_registry import ProbeContext, probe
from ..tasks import load_safety_probe


@dataclass(frozen=True)
class SafetyProbeSet:
    """The shipped prompts and blocked regular expressions (`tasks/safety_probe.yaml`)."""

    prompts: list[str]
    patterns: list[str]


@probe("safety_set", evidence=SafetyProbeSet)
def safety_set_probe(context: ProbeContext) -> SafetyProbeSet:
    """The shipped safety probe set; ValueError (the probe fails) when the file is not a valid set."""
    prompts, patterns = load_safety_probe()
    return SafetyProbeSet(prompts, patterns)

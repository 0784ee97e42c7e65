"""Plain values the evidence cache stores besides probe evidence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SkippedProbe:
    """A probe that does not apply to this model here (an encoder's generation speed): cached like evidence."""

    reason: str

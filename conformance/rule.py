"""A spec's rule as the checks receive it: the leaf module shared by checks, the spec loader and the runner.

It imports nothing from the package, so a check module can name `Rule` without pulling in the spec loader
(which validates against a schema generated from the checks themselves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEVELS: tuple[str, ...] = ("must", "should", "may")

# Keys every rule may use to state what the observed value must be.
COMPARISON_KEYS: tuple[str, ...] = ("min", "max", "equals", "in", "not_in", "pattern", "tolerance")


@dataclass(frozen=True)
class Rule:
    """One rule of a resolved spec.

    `comparison` holds the rule's comparison keys (a subset of `COMPARISON_KEYS`), `params` every other key
    the check declares; `source` is the file the rule was read from (an extended standard's, if inherited).
    """

    id: str
    level: str
    check: str
    comparison: dict[str, Any]
    params: dict[str, Any]
    description: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The rule as written in a spec: id, level, check, description, then comparison and parameters."""
        data: dict[str, Any] = {"id": self.id, "level": self.level, "check": self.check}
        if self.description:
            data["description"] = self.description
        return {**data, **self.comparison, **self.params}

"""What a check says about one rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["pass", "fail", "skip", "error"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "skip", "error")


@dataclass(frozen=True)
class Verdict:
    status: Status
    observed: Any = None
    expected: Any = None
    message: str = ""
    # The confidence interval a measured figure was decided from: {"low", "high", "level"}; None otherwise.
    interval: dict[str, Any] | None = None

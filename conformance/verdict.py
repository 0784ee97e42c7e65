"""What a check says about one rule, and what a rule's outcome means for conformance.

`Status` and `Level` are string-valued enums: each member *is* its plain string (`Status.PASS == "pass"`,
`json.dumps(Status.PASS) == '"pass"'`, `f"{Level.MUST}" == "must"`), so result documents, the schema's
enums and every comparison with a plain string read the same as before the enums existed.

The one statement of the rule "only must rules decide conformance":

- `breaks_conformance(level, status)`: a must rule that failed or errored.
- `is_warning(level, status)`: a should or may rule that failed (shown as a warning, never breaks).
- `falls_short(status)`: failed or errored, at any level (a family badge is `warn` when only rules that
  cannot break conformance fall short; a should rule that errored is such a rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal


class _StrEnum(str, Enum):
    """A str-valued enum whose `str()` and f-string form are its value, on every supported Python.

    A plain `(str, Enum)` prints `Status.PASS` (and formats so from 3.12); `enum.StrEnum` needs 3.11.
    """

    def __str__(self) -> str:
        """The value: `pass`."""
        return str(self.value)

    def __format__(self, spec: str) -> str:
        """The value formatted as a str (`f"{Level.MUST:<6}"` pads `must`)."""
        return format(str(self.value), spec)


class Status(_StrEnum):
    """The outcome of one rule on one model."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"


class Level(_StrEnum):
    """How binding a rule is (RFC 2119): only must rules decide conformance."""

    MUST = "must"
    SHOULD = "should"
    MAY = "may"


# The plain strings a check may write instead of the members (checks say `Verdict("pass", ...)`).
StatusText = Literal["pass", "fail", "skip", "error"]
STATUSES: tuple[Status, ...] = tuple(Status)
LEVELS: tuple[Level, ...] = tuple(Level)
# Statuses of a rule that did not hold: it failed, or could not be judged.
FALLING_SHORT: frozenset[Status] = frozenset({Status.FAIL, Status.ERROR})


def falls_short(status: str) -> bool:
    """The rule failed or errored (at any level)."""
    return status in FALLING_SHORT


def breaks_conformance(level: str, status: str) -> bool:
    """A must rule that failed or errored: the model is not conformant. Accepts enums or plain strings."""
    return level == Level.MUST and falls_short(status)


def is_warning(level: str, status: str) -> bool:
    """A should or may rule that failed: reported (`FAIL (warn)`, pytest xfail), never breaking conformance.

    An errored should/may rule is not a warning: it reads as an error (it was not judged at all).
    """
    return status == Status.FAIL and level != Level.MUST


@dataclass(frozen=True)
class Verdict:
    """A check's answer for one rule; `status` is a `Status` or its plain string."""

    status: Status | StatusText
    observed: Any = None
    expected: Any = None
    message: str = ""
    # The confidence interval a measured figure was decided from: {"low", "high", "level"}; None otherwise.
    interval: dict[str, Any] | None = None

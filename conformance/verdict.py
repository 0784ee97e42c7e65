"""What a check says about one rule, and what a rule's outcome means for conformance.

`Status` and `Level` are string-valued enums: each member *is* its plain string (`Status.PASS == "pass"`,
`json.dumps(Status.PASS) == '"pass"'`, `f"{Level.MUST}" == "must"`), so result documents, the schema's
enums and every comparison with a plain string read the same as before the enums existed.

The one statement of the rule "only must rules decide conformance":

- `breaks_conformance(level, status)`: a must rule that failed or errored.
- `is_warning(level, status)`: a should or may rule that failed (shown as a warning, never breaks).
- `falls_short(status)`: failed or errored, at any level (a family badge is `warn` when only rules that
  cannot break conformance fall short; a should rule that errored is such a rule).

Every `Verdict` is bounded when it is made (`bound_text`, `bound_value`): its message and each string in its
observed and expected values (dictionary keys included) at most `MAX_TEXT_CHARS` characters. Those strings
often quote a model's files (a metadata key, a tensor name, a parser's error about them), and a hostile file
must not put megabytes into the terminal, the reports and the result document.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

MAX_TEXT_CHARS = 2000  # one string of a verdict (message, an observed or expected string), before the cut's marker
_MAX_BOUND_DEPTH = 100  # nesting walked when bounding a value (the result writer refuses deeper documents)


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


def bound_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` when at most `limit` characters, else its first `limit` characters, an ellipsis and its length.

    `"kkk…k… (16,777,302 characters)"`: the reader sees that, and how much, was cut.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def bound_value(value: Any, limit: int = MAX_TEXT_CHARS, depth: int = 0) -> Any:
    """`value` with every string in it (list items, tuple items, dict keys and values) cut by `bound_text`.

    Other values are kept as they are; a value nested deeper than `_MAX_BOUND_DEPTH` is kept whole (the
    result writer refuses it anyway). Returns `value` itself when nothing in it was cut.
    """
    if isinstance(value, str):
        return bound_text(value, limit)
    if depth >= _MAX_BOUND_DEPTH:
        return value
    if type(value) in (list, tuple):
        items = [bound_value(item, limit, depth + 1) for item in value]
        changed = any(new is not old for new, old in zip(items, value, strict=True))
        return type(value)(items) if changed else value
    if type(value) is dict:
        pairs = [(bound_value(key, limit, depth + 1), bound_value(item, limit, depth + 1)) for key, item in value.items()]
        changed = any(k is not old_k or v is not old_v for (k, v), (old_k, old_v) in zip(pairs, value.items(), strict=True))
        return dict(pairs) if changed else value
    return value


@dataclass(frozen=True)
class Verdict:
    """A check's answer for one rule; `status` is a `Status` or its plain string.

    Made bounded: the message and every string in `observed` and `expected` are cut to `MAX_TEXT_CHARS`
    (see the module doc), whichever check or error made the verdict.
    """

    status: Status | StatusText
    observed: Any = None
    expected: Any = None
    message: str = ""
    # The confidence interval a measured figure was decided from: {"low", "high", "level"}; None otherwise.
    interval: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        """Bound the message and the observed and expected strings (a frozen dataclass: set through object)."""
        object.__setattr__(self, "message", bound_text(str(self.message)))
        object.__setattr__(self, "observed", bound_value(self.observed))
        object.__setattr__(self, "expected", bound_value(self.expected))

"""The check catalogue: every shipped check, registered by importing the `checks` package, and its lookups.

The runner, the spec loader, the schema generator and `conformance rules` ask this module; check modules
never import it (they import `registry` and `rule`), so the catalogue sits above the checks, not beside them.
"""

from __future__ import annotations

import difflib

from . import checks  # noqa: F401  (importing the package registers every check)
from .errors import RequestError
from .registry import CheckDef, registered_checks


def all_checks() -> list[CheckDef]:
    """Every registered check, sorted by name."""
    table = registered_checks()
    return [table[name] for name in sorted(table)]


def suggest(name: str) -> str | None:
    """The registered check name closest to `name` (difflib, cutoff 0.6), or None."""
    matches = difflib.get_close_matches(name, list(registered_checks()), n=1, cutoff=0.6)
    return matches[0] if matches else None


def get_check(name: str) -> CheckDef:
    """The check registered as `name`; RequestError naming the closest registered name if there is none."""
    try:
        return registered_checks()[name]
    except KeyError:
        hint = suggest(name)
        raise RequestError(
            f"unknown check {name!r}" + (f"; did you mean {hint!r}?" if hint else "")
        ) from None

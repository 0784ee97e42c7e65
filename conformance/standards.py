"""The shipped standards (`specs/standards/`): their names, the one lookup by name, and "did you mean".

Used by `load_spec` (the CLI's `--spec`), a spec's `extends:` and the pytest plugin's `--conformance-spec`.
Light on purpose: the pytest plugin resolves names when any session starts, so this imports no spec loader.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from .paths import standards_dir

# The file suffixes of a spec, in the order a shipped standard's file is looked for.
SPEC_SUFFIXES: tuple[str, ...] = (".yaml", ".yml", ".json")


def is_standard_name(text: str) -> bool:
    """True when `text` can only name a shipped standard: no folder separator and no spec suffix."""
    return "/" not in text and "\\" not in text and not text.lower().endswith(SPEC_SUFFIXES)


def shipped_standards() -> list[str]:
    """The names of the shipped standards (file stems), sorted."""
    return sorted({path.stem for path in standards_dir().iterdir() if path.suffix in SPEC_SUFFIXES and path.is_file()})


def find_standard(name: str) -> Path | None:
    """The file of the shipped standard called `name` (no suffix), or None when no standard has that name."""
    if not is_standard_name(name):
        return None
    for suffix in SPEC_SUFFIXES:
        shipped = standards_dir() / f"{name}{suffix}"
        if shipped.is_file():
            return shipped
    return None


def standard_hint(name: str) -> str:
    """`did you mean 'x'? shipped: a, b, c` for a name no shipped standard has (the suggestion only when close)."""
    names = shipped_standards()
    matches = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    suggestion = f"did you mean {matches[0]!r}? " if matches else ""
    return f"{suggestion}shipped: {', '.join(names)}"

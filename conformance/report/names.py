"""Unique names, the one way: a repeated name gets -2, -3, ... (the first keeps its name).

Used for the leaderboard's model labels, every file stem the CLI, the leaderboard and the pytest plugin
write, and the plugin's model node names, so a name is never made unique two different ways.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable

FALLBACK_STEM = "model"  # a name with no file-safe character left
MAX_STEM_CHARS = 200  # ASCII, so bytes too: room for -N, an extension and a prefix under the usual 255-byte name limit


def unique_name(name: str, taken: Container[str]) -> str:
    """`name` when it is not in `taken`, else the first of `name-2`, `name-3`, ... that is not."""
    unique, index = name, 2
    while unique in taken:
        unique, index = f"{name}-{index}", index + 1
    return unique


def unique_names(names: Iterable[str]) -> list[str]:
    """Each name made unique against the ones before it, in order: [a, a, b, a] -> [a, a-2, b, a-3]."""
    chosen: list[str] = []
    seen: set[str] = set()
    for name in names:
        unique = unique_name(name, seen)
        chosen.append(unique)
        seen.add(unique)
    return chosen


def file_stem(text: str) -> str:
    """A file-safe stem of `text`.

    Runs of characters outside [A-Za-z0-9._-] become `_`, leading and trailing `.`/`_` are dropped (no
    hidden files), nothing left becomes `model`, and the stem is cut to `MAX_STEM_CHARS` (a 5,000-character
    model name still gets a file).
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:MAX_STEM_CHARS].rstrip("._") or FALLBACK_STEM


def file_stems(labels: Iterable[str]) -> list[str]:
    """File-safe, unique stems for each model's files (distinct names may sanitize alike: a/b and a_b)."""
    return unique_names(file_stem(label) for label in labels)

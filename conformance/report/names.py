"""File names for models' outputs, shared by the CLI and the leaderboard so results line up."""

from __future__ import annotations

import re


def file_stems(labels: list[str]) -> list[str]:
    """File-safe, unique stems for each model's files (distinct names may sanitize alike: a/b and a_b)."""
    stems: list[str] = []
    for label in labels:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "model"
        unique, index = stem, 2
        while unique in stems:
            unique, index = f"{stem}-{index}", index + 1
        stems.append(unique)
    return stems

"""The first architecture source: the folder's config.json, read bounded by the candidate (4 MiB, JSON depth 64)."""

from __future__ import annotations

from typing import Any

from ..candidate import Candidate
from .base import ArchitectureSource


class ConfigJsonSource(ArchitectureSource):
    """config.json as transformers writes it; its keys are the names every other source maps to."""

    name = "config.json"

    def present(self, file_names: set[str]) -> bool:
        """True if the folder has a top-level config.json."""
        return "config.json" in file_names

    def read_config(self, candidate: Candidate) -> dict[str, Any]:
        """The JSON object of config.json; ValueError when it is missing, unreadable or not an object."""
        return candidate.config

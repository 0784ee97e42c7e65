"""The card probe: the model's README.md as a model card."""

from __future__ import annotations

from ..candidate import Candidate
from ..card import CardFacts, read_card


def probe_card(candidate: Candidate) -> CardFacts:
    if "README.md" not in candidate.file_names():
        return CardFacts(present=False)
    try:
        path = candidate.resolve_inside("README.md")
    except ValueError as exc:
        return CardFacts(present=True, file="README.md", errors=[str(exc)])
    return read_card(path)

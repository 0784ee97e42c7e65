"""The card probe: the model's README.md as a model card, read through safe_files (bounded, inside the folder)."""

from __future__ import annotations

from ..candidate import Candidate
from ..card import CardFacts, read_card_in
from ..probe_registry import ProbeContext, probe


def probe_card(candidate: Candidate) -> CardFacts:
    """Card facts of README.md; a missing card is `present=False`, any problem is in `errors` (never raised)."""
    if "README.md" not in candidate.file_names():
        return CardFacts(present=False)
    return read_card_in(candidate.path, "README.md")


@probe("card", evidence=CardFacts)
def card_probe(context: ProbeContext) -> CardFacts:
    """The model card's facts (README.md front matter and text)."""
    return probe_card(context.candidate)

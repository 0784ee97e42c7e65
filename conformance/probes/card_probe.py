"""The card probe: the model's README.md as a model card, read through safe_files (bounded, inside the folder)."""

from __future__ import annotations

from ..candidate import Candidate
from ..card import CardFacts, read_card
from ..probe_registry import ProbeContext, probe
from ..safe_files import UnsafeFileError

CARD_FILE = "README.md"


def probe_card(candidate: Candidate) -> CardFacts:
    """Card facts of README.md; a missing card is `present=False`, any problem is in `errors` (never raised).

    The card is located through the candidate (inside its folder, or its link roots: a hub cache
    snapshot's README.md is a link into `blobs/`), then read where it really is, by `card.read_card`.
    """
    if CARD_FILE not in candidate.file_names():
        return CardFacts(present=False)
    try:
        real = candidate.resolve_inside(CARD_FILE)
    except UnsafeFileError as exc:  # a link out of the folder and its link roots
        return CardFacts(present=True, file=CARD_FILE, errors=[f"card unreadable: {exc}"])
    return read_card(real, CARD_FILE)


@probe("card", evidence=CardFacts)
def card_probe(context: ProbeContext) -> CardFacts:
    """The model card's facts (README.md front matter and text)."""
    return probe_card(context.candidate)

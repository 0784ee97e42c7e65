"""files.*: the model's files agree with themselves (no JSON object holds the same key twice)."""

from __future__ import annotations

from ..errors import CheckError
from ..evidence import Evidence
from ..probes.json_keys import JsonKeyFacts
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict

_EXPECTED = "every key once per JSON object"


@check(
    "files.json_keys_unique",
    summary="no object in the model's top-level JSON files repeats a key (parsers keep the last; readers may disagree)",
    probes=("json_keys",),
    comparisons=(),
)
def json_keys_unique(evidence: Evidence, rule: Rule) -> Verdict:
    """Fail naming each duplicated key (file, JSON path, count, the values and which one wins); pass when there is none.

    Observed: the duplicates described (at most the probe's MAX_REPORTED), or the number of files read.
    Raises CheckError when no key is duplicated but a JSON file could not be read (it could hold one).
    """
    facts = evidence.get("json_keys", JsonKeyFacts)
    if facts.duplicate_count:
        described = [duplicate.describe() for duplicate in facts.duplicates]
        more = facts.duplicate_count - len(described)
        message = (
            f"{facts.duplicate_count} duplicated key{'s' if facts.duplicate_count != 1 else ''}: "
            + "; ".join(described)
            + (f"; and {more} more" if more > 0 else "")
            + (f" (also not read: {'; '.join(facts.errors)})" if facts.errors else "")
        )
        return Verdict("fail", described, _EXPECTED, message)
    if facts.errors:  # an unread file could hold a duplicate: no pass on a guess
        raise CheckError("could not check every JSON file: " + "; ".join(facts.errors))
    return Verdict("pass", f"{len(facts.files)} JSON files, no duplicated key", _EXPECTED)

"""card.claims_reproduce: the card's model-index scores, re-measured."""

from __future__ import annotations

import math
from typing import Any

from ..card import CardFacts, score_claims
from ..compare import values_equal
from ..errors import CheckSkipped
from ..evidence import Evidence
from ..probes.tasks import TaskScores
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict


def _card_claims_params(rule: Rule) -> dict[str, Any]:
    return {"requests": [], "tasks_dirs": [], "card_claims": True}


@check(
    "card.claims_reproduce",
    summary="each model-index score in the card whose task is runnable is re-measured and agrees within tolerance (relative)",
    probes=("card", "load", "tasks"),
    comparisons=("tolerance",),
    probe_params=_card_claims_params,
)
def claims_reproduce(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when every runnable claimed score is re-measured within `tolerance` (relative); fail naming each that is not.

    Observed: "task metric" -> {claimed, measured}. Errors on a claimed score that is not finite; tasks that
    cannot run here are noted, not judged. Raises CheckSkipped when the card claims no score or none of its
    tasks is runnable here, and CheckError when the card or task probe failed or a task lacks the claimed metric.
    """
    card = evidence.get("card", CardFacts)
    claims = score_claims(card.metadata) if card.present else []
    if not claims:
        raise CheckSkipped("the card's model-index states no scores")
    broken = [f"{claim.task} {claim.metric} ({claim.value})" for claim in claims if not math.isfinite(claim.value)]
    if broken:  # a NaN or infinite score can neither agree nor disagree with a measurement
        return Verdict("error", None, "finite claimed scores", "claimed scores that are not finite numbers: " + ", ".join(broken))
    scores = evidence.get("tasks", TaskScores)
    tolerance = float(rule.comparison.get("tolerance", 0.0))
    observed: dict[str, Any] = {}
    problems: list[str] = []
    not_runnable: list[str] = []
    for claim in claims:
        label = f"{claim.task} {claim.metric}"
        if claim.task not in scores.scores and claim.task not in scores.errors:
            not_runnable.append(claim.task)
            continue
        if claim.task in scores.errors and scores.errors[claim.task].startswith("unknown task"):
            not_runnable.append(claim.task)
            continue
        measured, _ = scores.score(claim.task, claim.metric)
        observed[label] = {"claimed": claim.value, "measured": measured}
        if not values_equal(measured, claim.value, tolerance):
            problems.append(f"{label}: claimed {claim.value:.4f}, measured {measured:.4f}")
    if not observed:
        raise CheckSkipped(f"no claimed task is runnable here: {', '.join(sorted(set(not_runnable)))}")
    expected = f"claims within {tolerance:.0%}" if tolerance else "claims reproduce exactly"
    note = f" (not runnable here: {', '.join(sorted(set(not_runnable)))})" if not_runnable else ""
    if problems:
        return Verdict("fail", observed, expected, "; ".join(problems) + note)
    return Verdict("pass", observed, expected, note.strip())

"""The stopping rule of a timed measurement: rounds until every rule judged on it is decided, or a limit.

After MLPerf LoadGen's "minimum count and minimum duration" rule and its early stopping: at least
`min_runs` rounds and `min_seconds` of wall time, then on while any rule is undecided (its figure's
confidence interval straddles its bar), up to `max_runs` rounds or `max_seconds`. The rules are asked
only at *looks*, which come as the rounds grow by half (`LOOK_GROWTH`); each look spends part of the
error (`intervals.look_level`), so looking often would make every interval wider.

The rule knows nothing of what a round measures: a round is any call returning two durations in seconds
(the speed probe's prefill and full generation), and the evidence `decided` judges is whatever
`summarize` makes of the rounds so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from .intervals import look_level, order_statistic_ranks

STOPPING_REASONS = ("decided", "no bar to decide", "max_runs", "max_seconds")  # Rounds.stopping_reason
LOOK_GROWTH = 1.5  # the next look comes once the rounds have grown by half

EvidenceT = TypeVar("EvidenceT")


class StoppingLimits(Protocol):
    """The limits the stopping rule reads (the speed probe's `MeasurementPolicy` has them)."""

    @property
    def min_runs(self) -> int:
        """Rounds measured before any stop, at least 2."""

    @property
    def min_seconds(self) -> float:
        """Wall seconds measured before any stop."""

    @property
    def max_runs(self) -> int:
        """Rounds after which measuring stops, decided or not."""

    @property
    def max_seconds(self) -> float:
        """Wall seconds after which measuring stops, decided or not."""

    @property
    def confidence(self) -> float:
        """Level of the intervals verdicts are decided from, spent over the looks taken."""


@dataclass
class Rounds:
    """Timed rounds so far (seconds), and why measuring stopped.

    Attributes:
        prefill_seconds: the first duration of each round, in order.
        full_seconds: the second duration of each round, in order (same length).
        wall_seconds: from the first round's start to the last round's end, harness included.
        stopping_reason: one of STOPPING_REASONS.
        decided: True when every rule was decided, False when a limit came first, None when no rule
            was asked.
        looks: times the rules were asked (each look spends part of the error, see
            intervals.look_level).
    """

    prefill_seconds: list[float] = field(default_factory=list)
    full_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    stopping_reason: str = "no bar to decide"
    decided: bool | None = None
    looks: int = 0


def first_look_runs(confidence: float) -> int:
    """The fewest runs whose median has a two-sided interval at the first look's level (6 at 0.95).

    Args:
        confidence: the measurement's overall confidence level, in [0.5, 1).

    Returns:
        A round count >= 2; no look comes before it, since no median could be bounded yet.
    """
    level = look_level(confidence, 1)
    runs = 2
    while None in order_statistic_ranks(runs, 0.5, level):
        runs += 1
    return runs


def next_look_runs(count: int) -> int:
    """The round count of the look after one at `count` rounds (at least `count + 1`).

    Geometric, so 1000 runs take 13 looks from 6: each look spends part of the error, and deciding costs
    O(runs) per rule.
    """
    return max(count + 1, math.ceil(count * LOOK_GROWTH))


def run_until_decided(
    run_round: Callable[[], tuple[float, float]],
    policy: StoppingLimits,
    summarize: Callable[[Rounds], EvidenceT],
    decided: Callable[[EvidenceT], bool] | None,
    clock: Callable[[], float] = time.perf_counter,
) -> Rounds:
    """Rounds of (prefill seconds, full seconds) until the rules are decided or a limit is reached.

    At least `min_runs` rounds and `min_seconds` of wall time; then, when `decided` is given, on until
    `decided(summarize(rounds))` is true (every rule's interval is clear of its bar) or `max_runs` /
    `max_seconds` is reached. Without `decided` the minimum is enough ("no bar to decide").

    Args:
        run_round: one timed round; returns its two durations in seconds. Its exceptions propagate.
        policy: the limits (min/max runs and seconds, confidence).
        summarize: the evidence of the rounds so far, as `decided` reads it; called only at looks.
        decided: whether every rule judged on the evidence is decided; None when no rule asks.
        clock: seconds, monotonic; injectable so the rule is tested on recorded series, not on this
            machine's speed.

    Returns:
        The rounds, with `wall_seconds`, `stopping_reason`, `decided` and `looks` set.
    """
    rounds = Rounds()
    started = clock()
    next_look = first_look_runs(policy.confidence)  # no look before a median could be bounded at all
    while True:
        prefill_seconds, full_seconds = run_round()
        rounds.prefill_seconds.append(prefill_seconds)
        rounds.full_seconds.append(full_seconds)
        count, elapsed = len(rounds.full_seconds), clock() - started
        at_limit = "max_runs" if count >= policy.max_runs else "max_seconds" if elapsed >= policy.max_seconds else None
        if (count >= policy.min_runs and elapsed >= policy.min_seconds) or at_limit:
            if decided is None:
                rounds.stopping_reason = at_limit or "no bar to decide"
                break
            if at_limit or count >= next_look:
                rounds.looks += 1
                next_look = next_look_runs(count)
                if decided(summarize(rounds)):
                    rounds.stopping_reason, rounds.decided = "decided", True
                    break
            if at_limit:
                rounds.stopping_reason, rounds.decided = at_limit, False
                break
    rounds.wall_seconds = clock() - started
    return rounds

"""Confidence intervals for a quantile of timing samples, and verdicts decided from them.

A speed figure is a quantile (the median, or p90/p99) of per-run samples. Its interval is the
distribution-free *order-statistic* interval (Hahn & Meeker, "Statistical Intervals", 2nd ed., §5.2;
the binomial reasoning MLPerf LoadGen's early stopping uses for tail latencies): with n independent
samples, the number B of samples below the true q-quantile is Binomial(n, q), so the sorted samples
X(l) and X(u) (1-based ranks) cover it with probability P(l <= B <= u - 1). The interval is
equal-tailed: l is the largest rank with P(B <= l - 1) <= (1 - level) / 2 and u the smallest with
P(B <= u - 1) >= 1 - (1 - level) / 2. When n is too small for one side (p99 needs >= 367 runs for an
upper bound at 0.95), that side is open: -inf or +inf. No normality is assumed, which matters on a
busy machine where timings have long right tails.

A rule's verdict is decided from the interval (`decide`): pass when the whole interval meets the bar,
fail when it lies wholly on the wrong side, undecided while it straddles the bar.

A verdict can only be wrong on one side: a pass is wrong when the true figure misses the bar although
the whole interval meets it, which needs the truth beyond the interval's far end; a fail, beyond its
near end. So with equal tails t, each verdict is wrong with probability at most t. Measuring until the
interval clears the bar means looking at the data several times, each look another chance of a wrong
verdict, so the error is spent over the looks (`look_level`): look j uses tails
t_j = alpha * 6 / (pi^2 j^2), alpha = 1 - confidence, i.e. a two-sided interval at level 1 - 2 t_j, and
the chance of a wrong verdict over all looks stays within alpha (a union bound: the sum of 1/j^2 is
pi^2/6). `confidence` is therefore the chance the verdict is right, however long measuring goes on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Decision = Literal["pass", "fail", "undecided"]
METHOD = "order-statistic (binomial) interval of the quantile, equal-tailed"


def level_text(level: float) -> str:
    """95%, 96.96%, 99.97%: enough digits that a level spent over looks never reads as 100%."""
    percent = level * 100
    return f"{percent:.4g}%" if percent < 99.99 else f"{percent:.6g}%"


@dataclass(frozen=True)
class Interval:
    """[low, high] for a figure at a confidence level; an open side is -inf or +inf."""

    low: float
    high: float
    level: float  # nominal coverage, e.g. 0.95

    def map(self, function: Callable[[float], float]) -> Interval:
        """The interval of function(figure) for a monotone function (decreasing ones swap the ends)."""
        a, b = function(self.low), function(self.high)
        return Interval(min(a, b), max(a, b), self.level)

    def contains(self, value: float) -> bool:
        """True when `value` (in the figure's unit) lies in [low, high], ends included."""
        return self.low <= value <= self.high

    def overlaps(self, other: Interval) -> bool:
        """True when the two intervals share at least one point (touching ends count)."""
        return self.low <= other.high and other.low <= self.high

    def describe(self, digits: int = 4) -> str:
        """`95% CI [741.2, 802.9]`, with open sides shown as -inf / inf."""

        def show(value: float) -> str:
            return f"{value:.{digits}g}" if math.isfinite(value) else ("inf" if value > 0 else "-inf")

        return f"{level_text(self.level)} CI [{show(self.low)}, {show(self.high)}]"

    def to_dict(self, digits: int = 6) -> dict[str, Any]:
        """`{"low", "high", "level"}` for a result document: ends rounded to `digits`, an open end as "inf"/"-inf"."""

        def plain(value: float) -> float | str:
            return round(value, digits) if math.isfinite(value) else str(value)  # JSON has no infinity

        return {"low": plain(self.low), "high": plain(self.high), "level": self.level}


def look_level(confidence: float, look: int) -> float:
    """Two-sided level of the `look`-th look's interval (1-based), so that all looks together stay at `confidence`.

    All looks together may give a wrong verdict with probability at most 1 - `confidence`:
    1 - 2 (1 - confidence) 6 / (pi^2 look^2).

    At confidence 0.95: look 1 is 0.9392, look 5 0.9976, look 13 0.99964. Raises ValueError for look < 1.
    """
    if look < 1:
        raise ValueError("looks are counted from 1")
    return 1.0 - 2.0 * (1.0 - confidence) * 6.0 / (math.pi**2 * look**2)


def _log_binomial_pmf(n: int, k: int, q: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(q) + (n - k) * math.log1p(-q)


@functools.lru_cache(maxsize=4096)
def order_statistic_ranks(n: int, quantile: float, level: float) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the equal-tailed interval [X(l), X(u)] for the `quantile` of n samples.

    Either rank is None when n samples cannot bound that side at this level (the side is open).
    Raises ValueError for n < 1, a quantile outside (0, 1) or a level outside (0, 1).
    """
    if n < 1:
        raise ValueError("an interval needs at least one sample")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile {quantile} outside (0, 1)")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level {level} outside (0, 1)")
    tail = (1.0 - level) / 2.0
    cdf: list[float] = []  # cdf[k] = P(B <= k) for k = 0 .. n - 1
    total = 0.0
    for k in range(n):
        total += math.exp(_log_binomial_pmf(n, k, quantile))
        cdf.append(total)
    # l: the largest rank with P(B <= l - 1) <= tail; u: the smallest rank with P(B <= u - 1) >= 1 - tail.
    lower = max((rank for rank in range(1, n + 1) if cdf[rank - 1] <= tail), default=None)
    upper = min((rank for rank in range(1, n + 1) if cdf[rank - 1] >= 1.0 - tail), default=None)
    return lower, upper


def quantile_interval(samples: Sequence[float], quantile: float, level: float) -> Interval:
    """Confidence interval of the `quantile` (0..1 exclusive) of the distribution behind `samples`.

    Samples may hold +inf (a rate whose time was not positive); an open side is -inf or +inf.
    Raises ValueError for no samples or a NaN among them.
    """
    if not samples:
        raise ValueError("an interval of no samples")
    ordered = sorted(float(value) for value in samples)
    if any(math.isnan(value) for value in ordered):
        raise ValueError("NaN among the samples")
    lower, upper = order_statistic_ranks(len(ordered), quantile, level)
    low = ordered[lower - 1] if lower is not None else -math.inf
    high = ordered[upper - 1] if upper is not None else math.inf
    return Interval(low, high, level)


def decide(interval: Interval, comparison: dict[str, Any]) -> Decision:
    """The verdict an interval supports against `min` / `max` bars (widened by `tolerance` × |bar|).

    pass: every bar is met by the whole interval; fail: some bar is missed by the whole interval;
    undecided: otherwise (the interval straddles a bar). Keys other than min, max and tolerance are ignored.
    """
    tolerance = float(comparison.get("tolerance", 0.0))
    met = True
    for key in ("min", "max"):
        if key not in comparison:
            continue
        bar = float(comparison[key])
        slack = abs(bar) * tolerance if tolerance else 0.0  # never inf * 0
        if key == "min":
            if interval.high < bar - slack:
                return "fail"
            met = met and interval.low >= bar - slack
        else:
            if interval.low > bar + slack:
                return "fail"
            met = met and interval.high <= bar + slack
    return "pass" if met else "undecided"

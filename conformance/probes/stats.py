"""Summary statistics of repeated timings: what a speed figure is, and how much it can be trusted."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0..1) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} outside 0..1")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class SampleStats:
    """Summary of repeated timings of one figure, every value in the samples' unit (seconds, tokens/s...).

    `count` samples; mean, median, min, max and the p50/p90/p99 percentiles (numpy's linear
    interpolation); `stdev` the sample standard deviation and `cv` the coefficient of variation.
    """

    count: int
    mean: float
    median: float
    stdev: float  # sample standard deviation (n - 1); 0 for a single sample
    cv: float  # coefficient of variation: stdev / |mean| (inf when the mean is 0 and stdev is not)
    min: float
    max: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> SampleStats:
        """The statistics of `values`; ValueError when there are none."""
        if not values:
            raise ValueError("statistics of no samples")
        data = [float(value) for value in values]
        mean = statistics.fmean(data)
        stdev = statistics.stdev(data) if len(data) > 1 else 0.0
        if mean != 0:
            cv = stdev / abs(mean)
        else:
            cv = 0.0 if stdev == 0 else math.inf
        return cls(
            count=len(data),
            mean=mean,
            median=statistics.median(data),
            stdev=stdev,
            cv=cv,
            min=min(data),
            max=max(data),
            p50=percentile(data, 0.50),
            p90=percentile(data, 0.90),
            p99=percentile(data, 0.99),
        )

    def at(self, name: str) -> float:
        """A percentile by its spec name: p50, p90 or p99."""
        if name not in ("p50", "p90", "p99"):
            raise ValueError(f"unknown percentile {name!r} (p50, p90, p99)")
        value: float = getattr(self, name)
        return value

    def to_dict(self, digits: int = 6) -> dict[str, Any]:
        """Every field for a result document, rounded to `digits`; a non-finite value (cv) as "inf"/"nan"."""

        def plain(value: float) -> float | str:
            # JSON has no infinity: say it in words rather than write an invalid document.
            return round(value, digits) if math.isfinite(value) else str(value)

        return {
            "count": self.count,
            "mean": plain(self.mean),
            "median": plain(self.median),
            "stdev": plain(self.stdev),
            "cv": plain(self.cv),
            "min": plain(self.min),
            "max": plain(self.max),
            "p50": plain(self.p50),
            "p90": plain(self.p90),
            "p99": plain(self.p99),
        }

"""The one metric-metadata table: which way each figure is better, how views label it, its unit and help.

Like HELM's metric metadata, a figure is described once and every reader asks here: the quality checks
(a regression is a drop for higher-is-better metrics and a rise for perplexities), the leaderboard's
ranking and win rates, its page and Markdown headers, and the diff's better/worse.

Names are the task metrics lm-eval reports (`acc`, `word_perplexity`, ...), the speed and size figures a
result document holds (`decode_tokens_per_second`, `parameters`, ...) and the leaderboard's own scores.
A metric outside the table is taken as higher-is-better (a task's score), as the checks always did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class Direction(str, Enum):
    """Which way a figure is better; `NEITHER` for sizes (more parameters is not better or worse)."""

    HIGHER = "higher"
    LOWER = "lower"
    NEITHER = "neither"


@dataclass(frozen=True)
class Metric:
    """How one figure is read and shown.

    `label` and `detail` are a column header's two lines on the page (`decode` / `tokens/s`),
    `short_label` its one-line form for Markdown; `unit` is the value's unit ("" for a ratio or a count).
    """

    name: str
    direction: Direction
    label: str
    short_label: str
    detail: str = ""
    unit: str = ""
    help: str = ""

    @property
    def lower_is_better(self) -> bool | None:
        """True or False; None when neither way is better."""
        return None if self.direction is Direction.NEITHER else self.direction is Direction.LOWER


MEAN_NORMALIZED = "mean_normalized_score"
WIN_RATE = "mean_win_rate"
_HIGHER, _LOWER, _NEITHER = Direction.HIGHER, Direction.LOWER, Direction.NEITHER


def _task_metric(name: str, direction: Direction, meaning: str) -> Metric:
    return Metric(name, direction, name, name, help=f"{meaning}; {direction.value} is better")


_TABLE: tuple[Metric, ...] = (
    # Task metrics, as lm-eval names them.
    _task_metric("acc", _HIGHER, "accuracy: share of documents whose most likely choice is the gold one"),
    _task_metric("acc_norm", _HIGHER, "accuracy with each choice's log-likelihood normalized by its length in bytes"),
    _task_metric("exact_match", _HIGHER, "share of generations equal to the reference"),
    _task_metric("f1", _HIGHER, "F1 score"),
    _task_metric("mcc", _HIGHER, "Matthews correlation coefficient"),
    _task_metric("perplexity", _LOWER, "perplexity"),
    _task_metric("ppl", _LOWER, "perplexity"),
    _task_metric("word_perplexity", _LOWER, "perplexity per word of the text"),
    _task_metric("byte_perplexity", _LOWER, "perplexity per byte of the text"),
    _task_metric("bits_per_byte", _LOWER, "bits per byte of the text"),
    # Speed figures of one workload (evidence["speed[...]"]).
    Metric("decode_tokens_per_second", _HIGHER, "decode", "decode tok/s", "tokens/s", "tokens/s",
           "batch × (new tokens − 1) / decode time, median of runs; 'undecided' when a rule could not be decided"),
    Metric("prefill_tokens_per_second", _HIGHER, "prefill", "prefill tok/s", "tokens/s", "tokens/s",
           "batch × prompt tokens / prefill time, median of runs"),
    Metric("ttft_ms_p50", _LOWER, "TTFT", "TTFT ms (p50)", "ms, p50", "ms", "time to first token, median, ms"),
    Metric("tpot_ms_p50", _LOWER, "TPOT", "TPOT ms (p50)", "ms, p50", "ms", "time per output token after the first, median, ms"),
    Metric("peak_memory_bytes", _LOWER, "peak memory", "peak memory (model)", "model", "bytes",
           "peak memory of the model during the speed runs: CUDA max allocated; CPU weights' and buffers' bytes plus "
           "the resident set's rise during the warm-up and runs"),
    Metric("process_peak_memory_bytes", _LOWER, "peak memory", "peak memory (process)", "process", "bytes",
           "peak memory of the whole process during the speed runs (torch and Python included)"),
    # Size figures (evidence["static"]): neither way is better.
    Metric("parameters", _NEITHER, "parameters", "parameters",
           help="floating-point parameters from the safetensors headers, tied weights once"),
    Metric("weight_bytes", _NEITHER, "weight bytes", "weight bytes", unit="bytes", help="bytes of the weight tensors as stored"),
    # The leaderboard's own scores.
    Metric(MEAN_NORMALIZED, _HIGHER, "average", "average", "normalized",
           help="mean over tasks of (score − chance) / (1 − chance), clipped at 0; perplexity left out"),
    Metric(WIN_RATE, _HIGHER, "win rate", "win rate", "mean",
           help="HELM mean win rate: share of other models beaten per task and decode throughput (ties half; "
                "decode figures whose confidence intervals overlap tie), averaged"),
)
METRICS: dict[str, Metric] = {metric.name: metric for metric in _TABLE}

# Every name where a lower value is better: perplexities, latencies, memory (checks.quality reads the task metrics).
LOWER_IS_BETTER: frozenset[str] = frozenset(name for name, metric in METRICS.items() if metric.direction is Direction.LOWER)
# Order in which a task's primary metric is chosen: accuracy first, as public leaderboards report.
PRIMARY_METRIC_PREFERENCE: tuple[str, ...] = ("acc", "acc_norm", "exact_match", "f1", "mcc", "word_perplexity", "byte_perplexity")


def direction_of(name: str) -> Direction:
    """The table's direction for `name`; a metric outside the table is a task score: higher is better."""
    metric = METRICS.get(name)
    return metric.direction if metric is not None else Direction.HIGHER


def lower_is_better(name: str) -> bool | None:
    """True when a lower `name` is better, False when higher is, None when neither way is (a size)."""
    direction = direction_of(name)
    return None if direction is Direction.NEITHER else direction is Direction.LOWER


def primary_metric(metrics: Iterable[str]) -> str | None:
    """The metric a task is ranked by, from the metrics it reports.

    acc for multiple choice (acc_norm without acc), word_perplexity for language modelling, else the
    alphabetically first; None for no metrics.
    """
    available = set(metrics)
    for metric in PRIMARY_METRIC_PREFERENCE:
        if metric in available:
            return metric
    return min(available) if available else None

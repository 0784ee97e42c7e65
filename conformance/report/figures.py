"""The figures a report shows, read from one result document's evidence (never by running a model).

Shared by the leaderboard table and the diff, so both read the evidence layout in one place:
``evidence["tasks"]["scores"][task][metric]``, ``evidence["speed[...]"]`` (one per workload),
``evidence["static"]`` (parameters, dtypes, architecture) and ``evidence["card"]["metadata"]["license"]``.
A probe that failed or was skipped is stored as ``{"error": ...}`` or ``{"skipped": ...}``: read as absent.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The five families a reader cares about. Check families outside them are folded in where they belong:
# a model card and license are release hygiene (safety), a loadable, finite, deterministic model is safe
# to run (safety), and the tokenizer is part of the model's shape (architecture).
FAMILIES: tuple[str, ...] = ("architecture", "size", "safety", "performance", "quality")
FAMILY_OF_CHECK_PREFIX: dict[str, str] = {"card": "safety", "runtime": "safety", "tokenizer": "architecture"}
OTHER_FAMILY = "other"

# Metrics where a lower value is better, beyond quality.LOWER_IS_BETTER's task metrics.
LOWER_IS_BETTER_FIGURES = frozenset({"ttft_ms_p50", "tpot_ms_p50", "peak_memory_bytes", "process_peak_memory_bytes"})
# Order in which a task's primary metric is chosen: accuracy first, as public leaderboards report.
PRIMARY_METRIC_PREFERENCE: tuple[str, ...] = ("acc", "acc_norm", "exact_match", "f1", "mcc", "word_perplexity", "byte_perplexity")
SPEED_FIGURES: tuple[str, ...] = (
    "decode_tokens_per_second", "prefill_tokens_per_second", "ttft_ms_p50", "tpot_ms_p50", "peak_memory_bytes", "process_peak_memory_bytes",
)
# Timed figures: blank when the measurement left a rule undecided (memory is not a timing).
TIMED_FIGURES: tuple[str, ...] = ("decode_tokens_per_second", "prefill_tokens_per_second", "ttft_ms_p50", "tpot_ms_p50")
# Columns holding a timed figure's confidence interval: figure -> (low column, high column).
INTERVAL_COLUMNS: dict[str, tuple[str, str]] = {
    "decode_tokens_per_second": ("decode_tokens_per_second_low", "decode_tokens_per_second_high"),
}
SPEED_DECIDED = "speed_decided"  # False when the measurement ended with a rule undecided


def family_of(check: str) -> str:
    """The badge family of a check name (`card.present` -> safety, an unknown prefix -> other)."""
    prefix = check.split(".", 1)[0]
    if prefix in FAMILIES:
        return prefix
    return FAMILY_OF_CHECK_PREFIX.get(prefix, OTHER_FAMILY)


def family_status(rules: Iterable[dict[str, Any]]) -> str:
    """One badge for a family's rules: fail (a must rule failed or errored), warn (only should/may rules
    failed or errored), pass (everything that ran passed), skip (every rule skipped), na (no rules)."""
    rules = list(rules)
    if not rules:
        return "na"
    broken = [r for r in rules if r["status"] in ("fail", "error")]
    if any(r["level"] == "must" for r in broken):
        return "fail"
    if broken:
        return "warn"
    if all(r["status"] == "skip" for r in rules):
        return "skip"
    return "pass"


def family_statuses(document: dict[str, Any]) -> dict[str, str]:
    """Family -> badge status, for the five families plus `other` when the spec has such rules."""
    grouped: dict[str, list[dict[str, Any]]] = {family: [] for family in (*FAMILIES, OTHER_FAMILY)}
    for rule in document["rules"]:
        grouped[family_of(rule["check"])].append(rule)
    statuses = {family: family_status(rules) for family, rules in grouped.items()}
    if statuses[OTHER_FAMILY] == "na":
        del statuses[OTHER_FAMILY]
    return statuses


def _probe(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get("evidence", {}).get(key)
    if not isinstance(value, dict) or "error" in value or "skipped" in value:
        return {}
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def task_scores(document: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Task -> metric -> finite score, from the tasks probe (empty when it did not run)."""
    scores = _probe(document, "tasks").get("scores")
    if not isinstance(scores, dict):
        return {}
    plain: dict[str, dict[str, float]] = {}
    for task, metrics in scores.items():
        if isinstance(metrics, dict):
            numbers = {metric: _number(value) for metric, value in metrics.items()}
            plain[task] = {metric: value for metric, value in numbers.items() if value is not None}
    return {task: metrics for task, metrics in plain.items() if metrics}


def primary_metric(metrics: Iterable[str]) -> str | None:
    """The metric a task is ranked by: acc for multiple choice (acc_norm without acc), word_perplexity for LM."""
    available = set(metrics)
    for metric in PRIMARY_METRIC_PREFERENCE:
        if metric in available:
            return metric
    return min(available) if available else None


def speed_keys(document: dict[str, Any]) -> list[str]:
    """Evidence keys of speed measurements that produced a decode figure, in sorted order."""
    return sorted(
        key for key in document.get("evidence", {})
        if key.startswith("speed") and _number(_probe(document, key).get("decode_tokens_per_second")) is not None
    )


def primary_speed_key(documents: list[dict[str, Any]]) -> str | None:
    """The speed workload most documents measured (first in sorted order on a tie).

    Models are compared on one workload only: throughput at batch 1 and batch 8 are different figures.
    """
    counts = Counter(key for document in documents for key in speed_keys(document))
    if not counts:
        return None
    return min(counts, key=lambda key: (-counts[key], key))


def describe_workload(documents: list[dict[str, Any]], key: str | None) -> str | None:
    """`batch 1, 32 prompt tokens, 16 new tokens (cpu, float32)`: the workload behind a speed key, for readers
    (a long key is only a digest)."""
    for document in documents:
        speed = _probe(document, key) if key else {}
        workload = speed.get("workload")
        if isinstance(workload, dict):
            environment = speed.get("environment") or {}
            where = ", ".join(str(environment[name]) for name in ("device", "dtype") if environment.get(name))
            return (f"batch {workload.get('batch_size')}, {workload.get('prompt_tokens')} prompt tokens, "
                    f"{workload.get('new_tokens')} new tokens" + (f" ({where})" if where else ""))
    return None


def _interval_end(value: Any) -> float | None:
    """An interval end as stored: a number, or "inf" / "-inf" for an open side."""
    if isinstance(value, str) and value in ("inf", "-inf"):
        return float(value)
    return _number(value)


def speed_figures(document: dict[str, Any], key: str | None) -> dict[str, float | str | bool | None]:
    """Decode and prefill tokens/s, median TTFT and TPOT in ms, peak memory of the model and of the process
    (bytes), the decode interval and the device of one workload.

    Only what was decided is shown: when the measurement ended with a rule undecided (`decided: false`),
    the timed figures are None and `speed_decided` is False, so no view ranks or plots them.
    """
    speed = _probe(document, key) if key else {}
    decided = speed.get("decided") is not False
    figures: dict[str, float | str | bool | None] = {
        "decode_tokens_per_second": _number(speed.get("decode_tokens_per_second")),
        "prefill_tokens_per_second": _number(speed.get("prefill_tokens_per_second")),
        "ttft_ms_p50": _number((speed.get("ttft_ms") or {}).get("p50")),
        "tpot_ms_p50": _number((speed.get("tpot_ms") or {}).get("p50")),
        "peak_memory_bytes": _number(speed.get("peak_memory_bytes")),
        "process_peak_memory_bytes": _number(speed.get("process_peak_memory_bytes")),
    }
    interval = ((speed.get("intervals") or {}).get("decode_tokens_per_second") or {}) if decided else {}
    low_column, high_column = INTERVAL_COLUMNS["decode_tokens_per_second"]
    figures[low_column], figures[high_column] = _interval_end(interval.get("low")), _interval_end(interval.get("high"))
    if not decided:
        figures.update(dict.fromkeys(TIMED_FIGURES))
    figures[SPEED_DECIDED] = decided if speed else None
    figures["speed_device"] = (speed.get("environment") or {}).get("device") if speed else None
    return figures


@dataclass(frozen=True)
class StaticFacts:
    parameters: int | None
    dtype: str | None
    architecture: str | None
    license: str | None
    weight_bytes: int | None


def _main_dtype(weight_dtypes: Any) -> str | None:
    """The dtype holding most parameters; several dtypes are listed in that order (`BF16+F32`)."""
    if not isinstance(weight_dtypes, dict) or not weight_dtypes:
        return None
    ordered = sorted(weight_dtypes, key=lambda dtype: (-(weight_dtypes[dtype] or 0), dtype))
    return "+".join(ordered)


def static_facts(document: dict[str, Any]) -> StaticFacts:
    static = _probe(document, "static")
    parameters = (static.get("parameters") or {}).get("parameters")
    architecture = (static.get("architecture") or {}).get("model_type")
    license_name = ((_probe(document, "card").get("metadata") or {}).get("license"))
    weight_bytes = static.get("weight_bytes")
    return StaticFacts(
        parameters=int(parameters) if _number(parameters) is not None and parameters > 0 else None,
        dtype=_main_dtype(static.get("weight_dtypes")),
        architecture=architecture if isinstance(architecture, str) else None,
        license=license_name if isinstance(license_name, str) else None,
        weight_bytes=int(weight_bytes) if _number(weight_bytes) is not None and weight_bytes > 0 else None,
    )


def unique_labels(names: list[str]) -> list[str]:
    """Model names made unique in order: a repeated name gets -2, -3, ..."""
    labels: list[str] = []
    for name in names:
        label, index = name, 2
        while label in labels:
            label, index = f"{name}-{index}", index + 1
        labels.append(label)
    return labels

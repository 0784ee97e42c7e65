"""performance.*: throughput, latency, memory and roofline utilisation, judged on the speed probe's evidence.

Every rule names a workload; rules with equal workload, measurement policy, device and dtype share one
measurement (`speed_params`). A timed figure is decided from its confidence interval (`probes/intervals.py`):
pass when the whole interval meets the bar, fail when it lies wholly on the wrong side, and `Inconclusive`
while it straddles the bar; the speed probe keeps measuring while any rule is inconclusive, so a rule
errors "inconclusive" only after max_runs / max_seconds. A rule with an explicit `measurement.max_cv`
also errors when its series varies more than that. Peak memory is not a timing and has no interval.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from typing import Any

from ..backends import Backend, ModelFacts
from ..compare import describe_expected, judge
from ..errors import CheckError, CheckSkipped, Inconclusive
from ..evidence import Evidence
from ..options import DEVICE_SCHEMA_PATTERN, DTYPES
from ..planning import rule_evidence
from ..probes.intervals import Interval, decide, level_text
from ..probes.kinds import SEQ2SEQ
from ..probes.load import model_facts
from ..probes.roofline import (
    DeviceTable,
    MatmulParameters,
    decode_bytes_per_token,
    lookup_device,
    mbu,
    mean_decode_context,
    mfu,
    not_applicable,
    prefill_flops,
)
from ..probes.speed import PERCENTILES, WORKLOAD_LIMITS, SpeedEvidence, speed_params
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict

_COMPARISONS = ("min", "max", "tolerance")

WORKLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "what is generated: batch_size sequences of prompt_tokens random token ids, new_tokens new tokens each",
    "required": ["batch_size", "prompt_tokens", "new_tokens"],
    "additionalProperties": False,
    "properties": {
        "batch_size": {"type": "integer", "minimum": 1, "maximum": WORKLOAD_LIMITS["batch_size"]},
        "prompt_tokens": {"type": "integer", "minimum": 1, "maximum": WORKLOAD_LIMITS["prompt_tokens"]},
        "new_tokens": {"type": "integer", "minimum": 2, "maximum": WORKLOAD_LIMITS["new_tokens"], "description": "fixed length: EOS never ends a sequence early"},
    },
}
MEASUREMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "measurement policy overrides: warm-up, minimum repetitions, limits while undecided, confidence level, optional max_cv",
    "additionalProperties": False,
    "properties": {
        "warmup_runs": {"type": "integer", "minimum": 0, "default": 2},
        "min_runs": {"type": "integer", "minimum": 2, "maximum": 100000, "default": 5},
        "min_seconds": {"type": "number", "minimum": 0, "maximum": 86400, "default": 1.0},
        "max_runs": {"type": "integer", "minimum": 2, "maximum": 100000, "default": 1000, "description": "rounds at most while a rule is undecided"},
        "max_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400, "default": 120.0, "description": "seconds at most while a rule is undecided"},
        "confidence": {"type": "number", "minimum": 0.5, "exclusiveMaximum": 1, "default": 0.95,
                       "description": "level of the order-statistic interval a verdict is decided from"},
        "max_cv": {"type": ["number", "null"], "minimum": 0, "default": None,
                   "description": "optional: coefficient of variation above which the rule errors as unstable (off by default)"},
        "seed": {"type": "integer", "minimum": 0, "default": 0},
    },
}
_COMMON_PARAMS: dict[str, dict[str, Any]] = {
    "workload": WORKLOAD_SCHEMA,
    "device": {"type": "string", "pattern": DEVICE_SCHEMA_PATTERN, "description": "skip the rule unless the model runs here"},
    "dtype": {"enum": list(DTYPES), "description": "skip the rule unless the model is loaded in this dtype"},
    "measurement": MEASUREMENT_SCHEMA,
}
_PERCENTILE = {"enum": ["p50", "p90", "p99"], "default": "p50", "description": "which percentile of the per-run samples is judged"}


def _probe_params(rule: Rule) -> dict[str, Any]:
    return speed_params(rule.params)


def _speed(evidence: Evidence, rule: Rule, series: str | None) -> SpeedEvidence:
    """The rule's measurement; CheckError when the rule asked for max_cv and its series exceeds it."""
    speed = rule_evidence(evidence, rule, "speed", SpeedEvidence)
    reason = speed.instability(series) if series else None
    if reason:
        raise CheckError(f"unstable measurement: {reason}")
    return speed


def _decided(name: str, value: float | None, interval: Interval, speed: SpeedEvidence, rule: Rule, unit: str, digits: int) -> Verdict:
    """The verdict from the figure's interval; Inconclusive while it straddles the bar.

    The point estimate (a median or percentile of the runs) lies inside its interval, so the comparison
    of the point estimate and of the interval agree whenever the interval decides.
    """
    decision = decide(interval, rule.comparison)
    expected = describe_expected(rule.comparison)
    shown = interval.describe()
    looks = f"look {speed.looks}, verdict confidence {level_text(speed.policy.confidence)}" if speed.looks else ""
    if decision == "undecided" or value is None:
        limit = f"after {speed.runs} runs ({speed.stopping_reason}{'; ' + looks if looks else ''})"
        observed = round(value, digits) if value is not None else None
        raise Inconclusive(f"inconclusive: {name} {shown} straddles {expected} {limit}", interval.to_dict(), observed, expected)
    verdict = judge(round(value, digits), rule.comparison, unit)
    message = f"{shown}, {speed.runs} runs" + (f", {looks}" if looks else "")
    text = f"{verdict.message}; {message}" if decision == "fail" and verdict.message else message
    return Verdict(decision, verdict.observed, expected, text, interval=interval.to_dict())


def _figure(evidence: Evidence, rule: Rule, figure: str, percentile: str = "p50") -> tuple[SpeedEvidence, float | None, Interval]:
    series = "prefill" if figure in ("prefill_tokens_per_second", "ttft_ms") else "decode"
    speed = _speed(evidence, rule, series)
    quantile = PERCENTILES[percentile]
    interval = speed.interval(figure, quantile)
    if figure == "ttft_ms":
        value: float | None = speed.ttft_ms.at(percentile)
    elif figure == "tpot_ms":
        value = speed.tpot_ms.at(percentile)
    else:
        value = getattr(speed, figure)
    return speed, value, interval


def _register(name: str, summary: str, extra: dict[str, dict[str, Any]] | None = None, probes: tuple[str, ...] = ("load", "speed")) -> Any:
    return check(
        name,
        summary=summary,
        probes=probes,
        params={**_COMMON_PARAMS, **(extra or {})},
        required=("workload",),
        comparisons=_COMPARISONS,
        needs_comparison=True,
        probe_params=_probe_params,
    )


@_register("performance.prefill_tokens_per_second", "prefill throughput: batch_size × prompt_tokens / prefill time (tokens, not samples), median of runs, decided from its interval")
def prefill_tokens_per_second(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge prefill throughput in tokens/s (median of runs) against the comparison, decided from its interval.

    Raises Inconclusive while the interval straddles the bar, CheckSkipped when speed does not apply
    here (an encoder-only model, another device or dtype), and CheckError when the speed probe failed or the series varies more than `max_cv`.
    """
    speed, value, interval = _figure(evidence, rule, "prefill_tokens_per_second")
    return _decided("prefill tokens/s", value, interval, speed, rule, " tokens/s", 2)


@_register("performance.decode_tokens_per_second", "decode throughput: batch_size × (new_tokens − 1) / decode time, median of runs, decided from its interval")
def decode_tokens_per_second(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge decode throughput in tokens/s (median of runs) against the comparison, decided from its interval.

    Raises Inconclusive while the interval straddles the bar, CheckSkipped when speed does not apply
    here (an encoder-only model, another device or dtype), and CheckError when the speed probe failed or the series varies more than `max_cv`.
    """
    speed, value, interval = _figure(evidence, rule, "decode_tokens_per_second")
    return _decided("decode tokens/s", value, interval, speed, rule, " tokens/s", 2)


@_register("performance.ttft_ms", "time to first token in ms (generate with one new token), at a percentile of runs, decided from its interval", {"percentile": _PERCENTILE})
def ttft_ms(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge time to first token in ms, at the rule's `percentile` (p50 by default) of runs, decided from its interval.

    Raises Inconclusive while the interval straddles the bar, CheckSkipped when speed does not apply
    here (an encoder-only model, another device or dtype), and CheckError when the speed probe failed or the series varies more than `max_cv`.
    """
    percentile = rule.params.get("percentile", "p50")
    speed, value, interval = _figure(evidence, rule, "ttft_ms", percentile)
    return _decided(f"TTFT {percentile} ms", value, interval, speed, rule, " ms", 3)


@_register("performance.tpot_ms", "time per output token after the first, in ms (decode time / (new_tokens − 1)), at a percentile of runs, decided from its interval", {"percentile": _PERCENTILE})
def tpot_ms(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge time per output token after the first in ms, at the rule's `percentile` of runs, decided from its interval.

    Raises Inconclusive while the interval straddles the bar, CheckSkipped when speed does not apply
    here (an encoder-only model, another device or dtype), and CheckError when the speed probe failed or the series varies more than `max_cv`.
    """
    percentile = rule.params.get("percentile", "p50")
    speed, value, interval = _figure(evidence, rule, "tpot_ms", percentile)
    return _decided(f"TPOT {percentile} ms", value, interval, speed, rule, " ms", 3)


@_register("performance.peak_memory_bytes", "peak memory of the model during the measured runs: CUDA max allocated after a reset; CPU weights' and buffers' bytes plus the resident set's rise during the warm-up and runs")
def peak_memory_bytes(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge the model's peak memory in bytes (a single reading, no interval); the message adds the process peak.

    Raises CheckSkipped when speed does not apply here (an encoder-only model, another device or dtype), and CheckError when the speed
    probe failed or peak memory could not be read on this device.
    """
    speed = _speed(evidence, rule, None)
    if speed.peak_memory_bytes is None:
        raise CheckError(f"peak memory of the model could not be read here ({speed.peak_memory_method})")
    verdict = judge(speed.peak_memory_bytes, rule.comparison, " bytes")
    process = f"; process peak {speed.process_peak_memory_bytes} bytes" if speed.process_peak_memory_bytes is not None else ""
    return dataclasses.replace(verdict, message=(verdict.message or f"measured as {speed.peak_memory_method}") + process)


# --- roofline -----------------------------------------------------------------------------------


def _facts(evidence: Evidence) -> ModelFacts:
    return model_facts(evidence.get("load", (Backend, ModelFacts)))  # live, or its cached facts


def _transformer_facts(evidence: Evidence, figure: str) -> ModelFacts:
    """The load facts when the roofline's transformer formula applies; CheckSkipped for a model without attention.

    The FLOPs and bytes per token count attention (Kaplan et al. 2020; Chowdhery et al. 2022, appendix B) and
    the KV cache: a state-space model such as Mamba declares no attention heads, so the formula says nothing
    of it. The formula is a decoder-only one: an encoder-decoder model (T5) spends its prefill in the
    encoder and its decode steps in cross-attention over the encoder's states, neither of which it
    counts, so MFU and MBU skip such a model (its speed rules still run).
    """
    facts = _facts(evidence)
    architecture = facts.architecture if facts.kind != SEQ2SEQ else {**facts.architecture, "is_encoder_decoder": True}
    reason = not_applicable(architecture)
    if reason:
        raise CheckSkipped(f"{figure}: {reason}")
    return facts


def _roofline(figure: str, compute: Callable[[], float]) -> float:
    """`compute()`, its ValueError (an architecture field missing or not a positive integer) as this rule's CheckError."""
    try:
        return compute()
    except ValueError as exc:
        raise CheckError(f"{figure} cannot be computed: {exc}") from None


def _peak(evidence: Evidence, rule: Rule, speed: SpeedEvidence, key: str) -> tuple[float, str]:
    """The rule's own peak if given, else the device table's for this device (and dtype, for FLOP/s)."""
    given = rule.params.get(key)
    if given is not None:
        return float(given), "peak given in the rule"
    name = speed.environment.get("device_name") or speed.environment.get("device")
    table = evidence.get("devices", DeviceTable).devices if str(speed.environment.get("device", "")).startswith("cuda") else ()
    device = lookup_device(name, table)
    if device is None:
        raise CheckError(f"no peak known for device {name}; give {key} in the rule")
    if key == "peak_bytes_per_second":
        return device.memory_bytes_per_second, f"{device.name}, {device.source}"
    dtype = str(speed.environment.get("dtype"))
    flops = device.flops_for(dtype)
    if flops is None:
        raise CheckError(f"no {dtype} peak known for device {device.name}; give {key} in the rule")
    return flops, f"{device.name} dense {dtype}, {device.source}"


_PEAK_FLOPS = {"type": "number", "exclusiveMinimum": 0, "description": "peak FLOP/s of the device; default: the specs/devices.yaml entry for it"}
_PEAK_BYTES = {"type": "number", "exclusiveMinimum": 0, "description": "peak memory bytes/s of the device; default: the specs/devices.yaml entry for it"}


@_register(
    "performance.mfu",
    "model FLOPs utilisation of prefill (fraction): prefill FLOPs from the model's shapes / median prefill time / peak FLOP/s",
    {"peak_flops_per_second": _PEAK_FLOPS},
    probes=("load", "speed", "devices"),
)
def model_flops_utilisation(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge MFU (a fraction): prefill FLOPs over the median prefill time, over the peak FLOP/s; decided from its interval.

    The peak is the rule's `peak_flops_per_second`, else the device table's dense figure for this device
    and dtype. Raises Inconclusive while the interval straddles the bar, CheckSkipped when speed does not
    apply here (an encoder-only model, another device or dtype), and CheckError when a probe failed, the prefill series varies more
    than `max_cv`, or no peak is known.
    """
    facts = _transformer_facts(evidence, "MFU")
    speed = _speed(evidence, rule, "prefill")
    peak, source = _peak(evidence, rule, speed, "peak_flops_per_second")
    workload = speed.workload
    matmul = MatmulParameters(body=facts.matmul_body, head=facts.matmul_head)
    flops = _roofline("MFU", lambda: prefill_flops(facts.architecture, workload.batch_size, workload.prompt_tokens, parameters=matmul))
    seconds = statistics.median(speed.prefill_ms) / 1000.0

    def utilisation(prefill_ms: float) -> float:
        return mfu(flops, prefill_ms / 1000.0, peak) if prefill_ms > 0 else math.inf

    interval = speed.interval("ttft_ms").map(utilisation)  # decreasing in the prefill time: the ends swap
    verdict = _decided("MFU", utilisation(seconds * 1000.0), interval, speed, rule, "", 4)
    detail = f"{flops / seconds / 1e12:.3f} TFLOP/s achieved of {peak / 1e12:g} ({source})"
    return dataclasses.replace(verdict, message=f"{verdict.message}; {detail}")


@_register(
    "performance.mbu",
    "memory bandwidth utilisation of decode (fraction): (weights / batch + KV cache) bytes per token × decode tokens/s / peak bytes/s",
    {"peak_bytes_per_second": _PEAK_BYTES},
    probes=("load", "speed", "devices"),
)
def memory_bandwidth_utilisation(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge MBU (a fraction): decode bytes per token × decode tokens/s over the peak bytes/s; decided from its interval.

    Bytes per token are the weights as the loaded model holds them (`roofline.decode_weight_bytes`: packed
    quantized weights at their real bytes) over the batch, plus the KV cache at the mean decode context in
    the weights' element size. The peak is the rule's `peak_bytes_per_second`, else the device table's.
    Raises Inconclusive while the interval straddles the bar or decode time is not resolved, CheckSkipped
    when speed does not apply here (an encoder-only model, another device or dtype), and CheckError when a probe failed, the decode
    series varies more than `max_cv`, or no peak is known.
    """
    facts = _transformer_facts(evidence, "MBU")
    speed = _speed(evidence, rule, "decode")
    if speed.decode_tokens_per_second is None:
        raise Inconclusive(f"decode time not resolved after {speed.runs} runs: the median full generation took no longer than the median prefill")
    peak, source = _peak(evidence, rule, speed, "peak_bytes_per_second")
    workload = speed.workload
    element_bytes = facts.element_bytes  # the KV cache is kept in the weights' dtype
    # The weights as the loaded model holds them (packed quantized integers and scales included), when the
    # backend measured them; else matmul elements × element size (facts from before that figure).
    measured = facts.decode_weight_bytes
    weight_bytes = measured if measured is not None and measured > 0 else (facts.matmul_body + facts.matmul_head) * element_bytes
    context = mean_decode_context(workload.prompt_tokens, workload.new_tokens)
    bytes_per_token = _roofline("MBU", lambda: decode_bytes_per_token(facts.architecture, weight_bytes, workload.batch_size, context, element_bytes))
    achieved = bytes_per_token * speed.decode_tokens_per_second

    def utilisation(tokens_per_second: float) -> float:
        return mbu(bytes_per_token * tokens_per_second, 1.0, peak)

    interval = speed.interval("decode_tokens_per_second").map(utilisation)
    verdict = _decided("MBU", utilisation(speed.decode_tokens_per_second), interval, speed, rule, "", 4)
    detail = f"{achieved / 1e9:.3f} GB/s achieved of {peak / 1e9:g} ({source})"
    return dataclasses.replace(verdict, message=f"{verdict.message}; {detail}")

"""performance.*: throughput, latency, memory and roofline utilisation, judged on the speed probe's evidence.

Every rule names a workload; rules with equal workload, measurement policy, device and dtype share one
measurement (`speed_params`). A figure is judged only when the series it comes from is stable: prefill
figures (prefill tokens/s, TTFT, MFU) on the prefill series, decode figures (decode tokens/s, TPOT, MBU)
on the decode series. Peak memory is not a timing and has no stability condition.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from ..compare import judge
from ..errors import CheckError
from ..evidence import Evidence, evidence_key
from ..probes.load import ModelFacts, model_facts
from ..probes.roofline import (
    MatmulParameters,
    decode_bytes_per_token,
    lookup_device,
    mbu,
    mean_decode_context,
    mfu,
    prefill_flops,
)
from ..probes.speed import DTYPES, SpeedEvidence, speed_params
from ..registry import check
from ..spec import Rule
from ..verdict import Verdict

_COMPARISONS = ("min", "max", "tolerance")

WORKLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "what is generated: batch_size sequences of prompt_tokens random token ids, new_tokens new tokens each",
    "required": ["batch_size", "prompt_tokens", "new_tokens"],
    "additionalProperties": False,
    "properties": {
        "batch_size": {"type": "integer", "minimum": 1},
        "prompt_tokens": {"type": "integer", "minimum": 1},
        "new_tokens": {"type": "integer", "minimum": 2, "description": "fixed length: EOS never ends a sequence early"},
    },
}
MEASUREMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "measurement policy overrides: warm-up, repetitions until both min_runs and min_seconds, stability threshold",
    "additionalProperties": False,
    "properties": {
        "warmup_runs": {"type": "integer", "minimum": 0, "default": 2},
        "min_runs": {"type": "integer", "minimum": 2, "default": 5},
        "min_seconds": {"type": "number", "minimum": 0, "default": 1.0},
        "max_runs": {"type": "integer", "minimum": 2, "default": 200},
        "max_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 120.0},
        "max_cv": {"type": "number", "minimum": 0, "default": 0.15, "description": "coefficient of variation above which the measurement is unstable"},
        "seed": {"type": "integer", "minimum": 0, "default": 0},
    },
}
_COMMON_PARAMS: dict[str, dict[str, Any]] = {
    "workload": WORKLOAD_SCHEMA,
    "device": {"type": "string", "pattern": "^(cpu|cuda(:[0-9]+)?)$", "description": "skip the rule unless the model runs here"},
    "dtype": {"enum": list(DTYPES), "description": "skip the rule unless the model is loaded in this dtype"},
    "measurement": MEASUREMENT_SCHEMA,
}
_PERCENTILE = {"enum": ["p50", "p90", "p99"], "default": "p50", "description": "which percentile of the per-run samples is judged"}


def _probe_params(rule: Rule) -> dict[str, Any]:
    return speed_params(rule.params)


def _speed(evidence: Evidence, rule: Rule, series: str | None) -> SpeedEvidence:
    """The rule's measurement; CheckError when the series the rule is judged on is unstable."""
    speed: SpeedEvidence = evidence.get(evidence_key("speed", speed_params(rule.params)))
    reason = speed.instability(series) if series else None
    if reason:
        raise CheckError(f"unstable measurement: {reason}")
    return speed


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


@_register("performance.prefill_tokens_per_second", "prefill throughput: batch_size × prompt_tokens / prefill time (tokens, not samples), median of runs")
def prefill_tokens_per_second(evidence: Evidence, rule: Rule) -> Verdict:
    speed = _speed(evidence, rule, "prefill")
    return judge(round(speed.prefill_tokens_per_second, 2), rule.comparison, " tokens/s")


@_register("performance.decode_tokens_per_second", "decode throughput: batch_size × (new_tokens − 1) / decode time, median of runs")
def decode_tokens_per_second(evidence: Evidence, rule: Rule) -> Verdict:
    speed = _speed(evidence, rule, "decode")
    if speed.decode_tokens_per_second is None:
        raise CheckError("decode time was not resolved")
    return judge(round(speed.decode_tokens_per_second, 2), rule.comparison, " tokens/s")


@_register("performance.ttft_ms", "time to first token in ms (generate with one new token), at a percentile of runs", {"percentile": _PERCENTILE})
def ttft_ms(evidence: Evidence, rule: Rule) -> Verdict:
    speed = _speed(evidence, rule, "prefill")
    return judge(round(speed.ttft_ms.at(rule.params.get("percentile", "p50")), 3), rule.comparison, " ms")


@_register("performance.tpot_ms", "time per output token after the first, in ms (decode time / (new_tokens − 1)), at a percentile of runs", {"percentile": _PERCENTILE})
def tpot_ms(evidence: Evidence, rule: Rule) -> Verdict:
    speed = _speed(evidence, rule, "decode")
    return judge(round(speed.tpot_ms.at(rule.params.get("percentile", "p50")), 3), rule.comparison, " ms")


@_register("performance.peak_memory_bytes", "peak memory during the measured runs: CUDA max allocated after a reset; CPU peak resident set of the process")
def peak_memory_bytes(evidence: Evidence, rule: Rule) -> Verdict:
    speed = _speed(evidence, rule, None)
    if speed.peak_memory_bytes is None:
        raise CheckError("peak memory could not be read on this platform")
    verdict = judge(speed.peak_memory_bytes, rule.comparison, " bytes")
    return dataclasses.replace(verdict, message=verdict.message or f"measured as {speed.peak_memory_method}")


# --- roofline -----------------------------------------------------------------------------------


def _facts(evidence: Evidence) -> ModelFacts:
    return model_facts(evidence.get("load"))


def _peak(rule: Rule, speed: SpeedEvidence, key: str) -> tuple[float, str]:
    """The rule's own peak if given, else the device table's for this device (and dtype, for FLOP/s)."""
    given = rule.params.get(key)
    if given is not None:
        return float(given), "peak given in the rule"
    name = speed.environment.get("device_name") or speed.environment.get("device")
    device = lookup_device(name) if str(speed.environment.get("device", "")).startswith("cuda") else None
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
)
def model_flops_utilisation(evidence: Evidence, rule: Rule) -> Verdict:
    facts = _facts(evidence)
    speed = _speed(evidence, rule, "prefill")
    peak, source = _peak(rule, speed, "peak_flops_per_second")
    workload = speed.workload
    matmul = MatmulParameters(body=facts.matmul_body, head=facts.matmul_head)
    flops = prefill_flops(facts.architecture, workload.batch_size, workload.prompt_tokens, parameters=matmul)
    seconds = statistics.median(speed.prefill_ms) / 1000.0
    verdict = judge(round(mfu(flops, seconds, peak), 4), rule.comparison)
    detail = f"{flops / seconds / 1e12:.3f} TFLOP/s achieved of {peak / 1e12:g} ({source})"
    return dataclasses.replace(verdict, message=f"{verdict.message}; {detail}" if verdict.message else detail)


@_register(
    "performance.mbu",
    "memory bandwidth utilisation of decode (fraction): (weights / batch + KV cache) bytes per token × decode tokens/s / peak bytes/s",
    {"peak_bytes_per_second": _PEAK_BYTES},
)
def memory_bandwidth_utilisation(evidence: Evidence, rule: Rule) -> Verdict:
    facts = _facts(evidence)
    speed = _speed(evidence, rule, "decode")
    if speed.decode_tokens_per_second is None:
        raise CheckError("decode time was not resolved")
    peak, source = _peak(rule, speed, "peak_bytes_per_second")
    workload = speed.workload
    element_bytes = facts.element_bytes  # the KV cache is kept in the weights' dtype
    weight_bytes = (facts.matmul_body + facts.matmul_head) * element_bytes
    context = mean_decode_context(workload.prompt_tokens, workload.new_tokens)
    bytes_per_token = decode_bytes_per_token(facts.architecture, weight_bytes, workload.batch_size, context, element_bytes)
    achieved = bytes_per_token * speed.decode_tokens_per_second
    verdict = judge(round(mbu(achieved, 1.0, peak), 4), rule.comparison)
    detail = f"{achieved / 1e9:.3f} GB/s achieved of {peak / 1e9:g} ({source})"
    return dataclasses.replace(verdict, message=f"{verdict.message}; {detail}" if verdict.message else detail)

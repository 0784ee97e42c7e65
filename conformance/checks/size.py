"""size.*: parameter counts (total, non-embedding, active per token), weight bytes and dtypes, quantization, from weight headers."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..compare import describe_expected, judge
from ..errors import CheckError
from ..evidence import Evidence
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict
from .common import judge_set, require_tensors, static_facts

_NUMERIC = ("min", "max", "equals", "tolerance")


@check(
    "size.parameters",
    summary="parameters (= sum of numel over model.parameters()): float tensors, quantized layers unpacked (scales, zeros, maps left out), tied weights once",
    probes=("static",),
    comparisons=_NUMERIC,
    needs_comparison=True,
)
def parameters(evidence: Evidence, rule: Rule) -> Verdict:
    """The parameter count from the weight headers (floating-point tensors, tied weights once).

    A quantized checkpoint's layers are first folded by its layout (`formats/quantized.py`), so the count
    is the unquantized model's.

    Raises CheckError when a weight header could not be read or there are no tensors.
    """
    facts = static_facts(evidence)
    require_tensors(facts)
    return judge(facts.parameters["parameters"], rule.comparison)


@check(
    "size.non_embedding_parameters",
    summary="parameters without token, position and output embeddings (Kaplan et al.)",
    probes=("static",),
    comparisons=_NUMERIC,
    needs_comparison=True,
)
def non_embedding_parameters(evidence: Evidence, rule: Rule) -> Verdict:
    """The parameter count without token, position and output embeddings.

    Raises CheckError when a weight header could not be read or there are no tensors.
    """
    facts = static_facts(evidence)
    require_tensors(facts)
    return judge(facts.parameters["non_embedding_parameters"], rule.comparison)


@check(
    "size.weight_bytes",
    summary="bytes of tensor data in the weight files",
    probes=("static",),
    comparisons=_NUMERIC,
    needs_comparison=True,
)
def weight_bytes(evidence: Evidence, rule: Rule) -> Verdict:
    """Bytes of tensor data in the weight files, judged even when the parameters cannot be counted.

    Raises CheckError when a weight header could not be read or there are no tensors.
    """
    facts = static_facts(evidence)
    require_tensors(facts, counted=False)  # bytes on disk need no fold: a parameter-count error does not stop them
    return judge(facts.weight_bytes, rule.comparison, " bytes")


@check(
    "size.weight_dtypes",
    summary="dtypes of the stored tensors (`in`: allowlist, `not_in`: denylist, `equals`: exact set)",
    probes=("static",),
    comparisons=("in", "not_in", "equals"),
    needs_comparison=True,
)
def weight_dtypes(evidence: Evidence, rule: Rule) -> Verdict:
    """The set of stored tensor dtypes (`F32`, `BF16`, ...) judged by `in`, `not_in` or `equals`.

    Raises CheckError when a weight header could not be read or there are no tensors.
    """
    facts = static_facts(evidence)
    require_tensors(facts, counted=False)  # stored dtypes need no fold
    return judge_set(sorted(facts.weight_dtypes), rule.comparison, "dtypes")


@check(
    "size.active_parameters",
    summary="parameters used per token: total minus the routed experts a token skips, R·(E−k)/E per MoE layer (= total for a dense model)",
    probes=("static",),
    comparisons=_NUMERIC,
    needs_comparison=True,
)
def active_parameters(evidence: Evidence, rule: Rule) -> Verdict:
    """Parameters one token is computed with (`formats/moe.py`): total − Σ over MoE layers of R_l·(E − k)/E.

    R_l is the layer's routed experts' parameters, E their number and k the experts per token; a dense
    model's active parameters are its total. Raises CheckError when a weight header could not be read or
    the experts disagree with the config.
    """
    facts = static_facts(evidence)
    require_tensors(facts)
    if facts.active_parameters is None:
        raise CheckError(facts.active_parameters_error or "active parameters unavailable")
    verdict = judge(facts.active_parameters, rule.comparison)
    experts = facts.experts
    if experts.get("moe_layers"):
        routing = f"{experts['moe_layers']} MoE layers, top-{experts['experts_per_token']} of {experts['routed_experts']} experts"
        return dataclasses.replace(verdict, message=f"{verdict.message}; {routing}" if verdict.message else routing)
    return verdict


_NUMBER_BAR = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {"min": {"type": "number"}, "max": {"type": "number"}, "equals": {"type": "number"}},
}
_QUANTIZATION_PARAMS: dict[str, dict[str, Any]] = {
    "quantized": {"type": "boolean", "description": "whether the weights must be stored quantized (true) or in full precision (false)"},
    "method": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "description": "the quant_method (gptq, awq, compressed-tensors, bitsandbytes, fp8, fbgemm_fp8, gguf, ...), any case: in, not_in or equals",
        "properties": {
            "in": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "not_in": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "equals": {"type": "string"},
        },
    },
    "bits": {**_NUMBER_BAR, "description": "weight bits (quantized: the method's bits; else the predominant float's): min, max, equals"},
    "group_size": {
        **_NUMBER_BAR,
        "description": "quantization group size: min, max, equals (-1, one group per row, is the coarsest: above any max, meets any min; equals -1 matches it)",
    },
    "bits_per_parameter": {**_NUMBER_BAR, "description": "stored weight bits per parameter (scales and zeros included): min, max, equals"},
}
QUANTIZATION_CONDITIONS = tuple(_QUANTIZATION_PARAMS)


def _quantization_conditions(rule: Rule) -> dict[str, Any]:
    """Planning hook: ValueError (reported at spec load) when the rule states no condition; no probe parameters."""
    if not any(key in rule.params for key in QUANTIZATION_CONDITIONS):
        raise ValueError(f"size.quantization needs at least one of {', '.join(QUANTIZATION_CONDITIONS)}")
    return {}


def _lower_bar(bar: dict[str, Any]) -> dict[str, Any]:
    """A method bar with its strings in lower case: quant_method is compared case-insensitively (GPTQ is gptq)."""
    return {key: [str(item).lower() for item in value] if isinstance(value, list) else str(value).lower() for key, value in bar.items()}


def _meets(key: str, value: Any, bar: dict[str, Any]) -> bool:
    """Whether `value` meets a numeric bar; a group_size of -1 (one group per row) counts as +infinity for min and max."""
    if key == "group_size" and value == -1:
        if "equals" in bar:
            return bool(bar["equals"] == -1)
        return "max" not in bar  # larger than every max, at least every min
    return judge(value, bar).status == "pass"


def _quantization_failures(quantization: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """One reason per stated condition the quantization fact does not meet."""
    failures = []
    if "quantized" in params and quantization["quantized"] != params["quantized"]:
        failures.append("the weights are stored quantized" if quantization["quantized"] else "the weights are not quantized")
    if "method" in params:
        method, bar = quantization["method"], params["method"]
        if method is None:
            failures.append("no quantization method (the weights are not quantized)")
        elif judge(str(method).lower(), _lower_bar(bar)).status != "pass":
            failures.append(f"method {method} is not {describe_expected(bar)}")
    for key in ("bits", "group_size", "bits_per_parameter"):
        if key in params:
            value = quantization.get(key)
            if value is None:
                failures.append(f"{key} unknown")
            elif not _meets(key, value, params[key]):
                shown = f"{value} (one group per row)" if key == "group_size" and value == -1 else value
                failures.append(f"{key} {shown} is not {describe_expected(params[key])}")
    return failures


@check(
    "size.quantization",
    summary="how the weights are quantized (method, any case; bits; group size, -1 one group per row counting as the largest; bits per parameter) from quantization_config and the tensors",
    probes=("static",),
    params=_QUANTIZATION_PARAMS,
    comparisons=(),
    probe_params=_quantization_conditions,
)
def quantization(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge the quantization fact by the rule's conditions: `quantized`, `method`, `bits`, `group_size`, `bits_per_parameter`.

    Every stated condition must hold; the message names each that does not. A condition on a figure the
    fact lacks (an unquantized model's group size) fails. A group_size of -1 (one group per row, the
    coarsest) counts as larger than any size: it fails every `max`, meets every `min`, and `equals: -1`
    matches it. `method` is compared case-insensitively. Raises CheckError when a weight header could
    not be read, the tensors could not be folded, or the quantization could not be described.
    """
    facts = static_facts(evidence)
    require_tensors(facts)
    if facts.quantization_error or not facts.quantization:
        raise CheckError(facts.quantization_error or "quantization facts unavailable")
    fact = facts.quantization
    observed = {key: fact.get(key) for key in ("quantized", "method", "bits", "group_size", "format", "bits_per_parameter")}
    expected = "; ".join(
        f"{key} {value}" if key == "quantized" else f"{key} {describe_expected(value)}" for key, value in rule.params.items() if key in QUANTIZATION_CONDITIONS
    )
    failures = _quantization_failures(fact, rule.params)
    if failures:
        return Verdict("fail", observed, expected, "; ".join(failures))
    return Verdict("pass", observed, expected)

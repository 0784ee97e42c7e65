"""runtime.*: the model loads safely, gives finite outputs, generates deterministically; weights are finite."""

from __future__ import annotations

from typing import Any

from ..backends import Backend, ModelFacts
from ..errors import CheckError, CheckSkipped
from ..evidence import Evidence
from ..planning import rule_evidence
from ..probes.kinds import kind_name
from ..probes.load import model_facts
from ..probes.runtime import DeterminismFacts, FinitenessFacts, ForwardFacts
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict


@check(
    "runtime.loads",
    summary="loads with transformers' Auto class for its kind (decoder-only, encoder-only, encoder-decoder, image-text-to-text; no remote code, safetensors preferred, pickles only if scanned clean, GGUF dequantized) and the weights cover every parameter",
    probes=("load",),
    comparisons=(),
)
def loads(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when the model loaded and its weights filled every parameter; fail when some were left random.

    Observed: kind (`probes.kinds`: causal, encoder, seq2seq, image-text-to-text), class, device, dtype,
    load_seconds (s), parameters (count) and, from the load report,
    the missing, unexpected and mismatched key counts, the uncovered parameters (elements) and a GGUF
    load's `dequantized_from`. A fail names how many parameters the weights do not cover and the first
    missing keys (the library initialized them at random: not the model the checkpoint stands for).
    Unexpected keys alone (tensors the model does not use) pass with a note, as do missing persistent
    buffers and a missing pooler of an encoder (the runtime probes never read it). Raises CheckError when
    the load probe failed (why it did not load is the message).
    """
    facts = model_facts(evidence.get("load", (Backend, ModelFacts)))  # live, or its cached facts
    summary = {key: value for key, value in facts.to_dict().items() if key in ("kind", "class", "device", "dtype", "load_seconds", "parameters")}
    report = facts.loading
    loaded_as = f"{facts.model_class} ({kind_name(facts.kind)}) on {facts.device} in {facts.dtype}"
    if report is None:  # a model built in memory, or facts cached before load reports
        return Verdict("pass", summary, "loads", loaded_as)
    summary |= {
        "missing_keys": report.missing_count,
        "unexpected_keys": report.unexpected_count,
        "mismatched_keys": report.mismatched_count,
        "uncovered_parameters": report.uncovered_parameters,
    }
    if report.dequantized_from:
        summary["dequantized_from"] = report.dequantized_from
    if not report.covered:
        keys = report.missing_keys[:5] or report.mismatched_keys[:5]
        more = report.missing_count + report.mismatched_count - len(keys)
        named = ", ".join(keys) + (f" and {more} more" if more > 0 else "")
        unexpected = f"; {report.unexpected_count} checkpoint tensors unused" if report.unexpected_count else ""
        return Verdict(
            "fail",
            summary,
            "loads with every parameter from the weights",
            f"{report.uncovered_parameters:,} of {facts.parameters:,} parameters are not in the weights and would be "
            f"randomly initialized ({report.missing_count} missing, {report.mismatched_count} mismatched keys: {named}){unexpected}",
        )
    notes = [loaded_as]
    if report.dequantized_from:
        notes.append(f"dequantized from {report.dequantized_from} ({report.source_file})")
    if report.unexpected_count:
        notes.append(f"{report.unexpected_count} checkpoint tensors unused: {', '.join(report.unexpected_keys[:3])}")
    if report.uncounted_count:
        notes.append(f"{report.uncounted_count} missing keys the runtime rules do not use (buffers, an encoder's pooler): {', '.join(report.uncounted_keys[:3])}")
    return Verdict("pass", summary, "loads", "; ".join(notes))


@check(
    "runtime.logits_finite",
    summary="a forward pass on a probe input gives finite logits (encoder-decoder: the decoder's first position; image-text-to-text: text only; encoders: hidden states)",
    probes=("load", "forward"),
    comparisons=(),
)
def logits_finite(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when the probe forward pass's output (logits, or an encoder's hidden states) holds no NaN or Inf.

    An encoder-decoder model's logits are its decoder's at the first position, after the encoder read the
    probe input (shape (1, 1, vocab)); an image-text-to-text model reads the text alone (no image).

    Observed: output name, shape, count of non-finite elements and the largest finite magnitude. Raises
    CheckError when the forward probe failed.
    """
    facts = evidence.get("forward", ForwardFacts)
    observed = {"output": facts.output, "shape": facts.shape, "nonfinite": facts.nonfinite_count, "max_abs": facts.max_abs}
    if not facts.finite:
        return Verdict("fail", observed, "all finite", f"{facts.nonfinite_count} NaN/Inf values in {facts.output}{_dequantized(evidence, '; ')}")
    return Verdict("pass", observed, "all finite", _dequantized(evidence))


def _dequantized(evidence: Evidence, prefix: str = "") -> str:
    """A note that the model ran dequantized (a GGUF file, loaded as floats), or "" (also when load facts are absent)."""
    try:
        report = model_facts(evidence.get("load", (Backend, ModelFacts))).loading
    except (CheckError, CheckSkipped):
        return ""
    if report is None or not report.dequantized_from:
        return ""
    return f"{prefix}measured on the weights dequantized from {report.dequantized_from} ({report.source_file})"


def _determinism_params(rule: Rule) -> dict[str, Any]:
    return {"new_tokens": int(rule.params.get("new_tokens", 16))}


@check(
    "runtime.deterministic",
    summary="two greedy generations of the same prompt are identical (encoder-decoder: through the decoder; encoders: two forward passes)",
    probes=("load", "determinism"),
    params={"new_tokens": {"type": "integer", "minimum": 1, "maximum": 4096, "description": "tokens per generation (default 16)"}},
    comparisons=(),
    probe_params=_determinism_params,
)
def deterministic(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when two greedy generations of `new_tokens` tokens (encoders: two forward passes) are identical.

    A fail shows both token id sequences and the index of the first difference. Raises CheckError when the
    determinism probe failed.
    """
    facts = rule_evidence(evidence, rule, "determinism", DeterminismFacts)
    if facts.identical:
        return Verdict("pass", facts.method, "identical", _dequantized(evidence))
    first_difference = next((i for i, (a, b) in enumerate(zip(facts.first, facts.second, strict=False)) if a != b), None)
    return Verdict("fail", {"first": facts.first, "second": facts.second}, "identical", f"{facts.method} differ at token {first_difference}")


@check(
    "safety.tensors_finite",
    summary="no NaN or Inf in any weight (streamed tensor by tensor from the safetensors or GGUF files)",
    probes=("static", "finiteness"),
    comparisons=(),
)
def tensors_finite(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when no weight tensor holds a NaN or Inf; a fail names up to five tensors with their counts.

    Observed: tensors and elements checked (counts) and tensor name -> non-finite element count. Raises
    CheckError when the finiteness probe failed (no streamable weights, weight headers unreadable, a shard
    unreadable, a time or byte budget spent).
    """
    facts = evidence.get("finiteness", FinitenessFacts)
    observed = {"tensors": facts.tensors_checked, "elements": facts.elements_checked, "nonfinite": facts.nonfinite}
    if facts.nonfinite:
        names = ", ".join(f"{name} ({count})" for name, count in list(facts.nonfinite.items())[:5])
        return Verdict("fail", observed, "no NaN/Inf", f"NaN/Inf in {names}")
    return Verdict("pass", observed, "no NaN/Inf")

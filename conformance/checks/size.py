"""size.*: parameter counts and weight bytes from safetensors headers."""

from __future__ import annotations

from ..compare import judge
from ..evidence import Evidence
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict
from .common import judge_set, require_tensors, static_facts

_NUMERIC = ("min", "max", "equals", "tolerance")


@check(
    "size.parameters",
    summary="parameters: floating-point tensors, tied weights once (= sum of numel over model.parameters())",
    probes=("static",),
    comparisons=_NUMERIC,
    needs_comparison=True,
)
def parameters(evidence: Evidence, rule: Rule) -> Verdict:
    """The parameter count from the weight headers (floating-point tensors, tied weights once).

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
    """Bytes of tensor data in the weight files.

    Raises CheckError when a weight header could not be read or there are no tensors.
    """
    facts = static_facts(evidence)
    require_tensors(facts)
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
    require_tensors(facts)
    return judge_set(sorted(facts.weight_dtypes), rule.comparison, "dtypes")

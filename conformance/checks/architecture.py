"""architecture.*: config fields, normalized across model families."""

from __future__ import annotations

from ..compare import judge
from ..errors import CheckError
from ..evidence import Evidence
from ..formats.gguf import config_source_name
from ..probes.architecture import ARCHITECTURE_FIELDS, config_value
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict
from .common import require_architecture, require_config, require_finite, static_facts

_SUMMARIES = {
    "model_type": "config model_type (llama, gpt2, bert, ...)",
    "num_layers": "number of transformer layers (num_hidden_layers, n_layer, ...)",
    "hidden_size": "model width (hidden_size, n_embd, d_model)",
    "num_attention_heads": "attention heads (num_attention_heads, n_head, num_heads)",
    "num_key_value_heads": "key/value heads: fewer than attention heads means grouped-query attention",
    "vocab_size": "vocabulary size in config.json",
    "context_length": "maximum positions (max_position_embeddings, n_positions, n_ctx)",
    "intermediate_size": "feed-forward width (intermediate_size, n_inner, d_ff)",
}


def _field_check(field_name: str) -> None:
    def run(evidence: Evidence, rule: Rule) -> Verdict:
        facts = static_facts(evidence)
        architecture = require_architecture(facts)
        source = config_source_name(facts.config)  # config.json, or the GGUF file's metadata
        value = architecture.get(field_name)
        if value is None and field_name in (architecture.get("per_layer_fields") or ()):
            # Gemma 4's per_layer_config: transformers itself refuses to read one global value.
            raise CheckError(f"{source} sets {field_name} per layer for model_type {architecture.get('model_type')!r}: "
                             "one value does not describe the model")
        if value is None:
            raise CheckError(f"{source} has no {field_name} field for model_type {architecture.get('model_type')!r}")
        return judge(require_finite(value, f"{source} {field_name}"), rule.comparison)

    check(
        f"architecture.{field_name}",
        summary=_SUMMARIES[field_name],
        probes=("static",),
        needs_comparison=True,
        comparisons=("equals", "in", "not_in", "pattern") if field_name == "model_type" else ("min", "max", "equals", "in", "not_in", "tolerance"),
    )(run)


for _name in ("model_type", *ARCHITECTURE_FIELDS):
    _field_check(_name)


@check(
    "architecture.config",
    summary="any config.json field by dotted path (e.g. rope_scaling.factor)",
    probes=("static",),
    params={"path": {"type": "string", "minLength": 1, "description": "dotted path into config.json"}},
    required=("path",),
    needs_comparison=True,
)
def config_field(evidence: Evidence, rule: Rule) -> Verdict:
    """The config.json value at the rule's dotted `path`, judged by its comparison keys.

    A missing field fails. Raises CheckError when config.json is unreadable or the value is a non-finite number.
    """
    config = require_config(static_facts(evidence))
    source = config_source_name(config)
    try:
        value = config_value(config, rule.params["path"])
    except KeyError:
        return Verdict("fail", None, rule.comparison, f"{source} has no field {rule.params['path']}")
    return judge(require_finite(value, f"{source} {rule.params['path']}"), rule.comparison)

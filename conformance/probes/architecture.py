"""One vocabulary for architecture fields across model families.

Each canonical field lists the config keys that hold it, in order of preference. The lists follow the
`attribute_map`s of transformers' config classes (GPT-2: n_layer/n_embd/n_head/n_positions; T5: d_model/
num_heads/d_ff; Falcon: n_head_kv; ...); reading the raw fields directly keeps this path free of torch and
transformers. The fields come from the folder's architecture source (`formats/registry.architecture_source`:
config.json now); every source gives them under config.json's names, so this one normalization serves all.
A test compares the result with transformers' own config classes.
"""

from __future__ import annotations

from typing import Any

ARCHITECTURE_FIELDS: dict[str, tuple[str, ...]] = {
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "num_decoder_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim", "model_dim"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_key_value_heads": ("num_key_value_heads", "n_head_kv", "num_kv_heads", "n_kv_heads", "multi_query_group_num"),
    "vocab_size": ("vocab_size", "padded_vocab_size", "n_vocab"),
    "context_length": ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length", "max_sequence_length"),
    "intermediate_size": ("intermediate_size", "n_inner", "d_ff", "ffn_dim", "ffn_hidden_size"),
}

# Multimodal and composite configs keep the language model's fields in a nested config.
_NESTED_TEXT_CONFIGS = ("text_config", "llm_config", "language_config")


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's config: a nested text/llm/language config if there is one, else `config` itself."""
    for key in _NESTED_TEXT_CONFIGS:
        nested = config.get(key)
        if isinstance(nested, dict):
            return {**nested, "model_type": nested.get("model_type", config.get("model_type"))}
    return config


def _first(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = config.get(key)
        if value is not None:
            return value
    return None


def normalize_architecture(config: dict[str, Any]) -> dict[str, Any]:
    """Canonical architecture fields (None where the family has no such field).

    Values are recorded as the config gives them, NaN and Infinity included; the checks judge them.
    """
    source = text_config(config)
    fields: dict[str, Any] = {"model_type": source.get("model_type")}
    for name, keys in ARCHITECTURE_FIELDS.items():
        fields[name] = _first(source, keys)
    if fields["num_key_value_heads"] is None:
        # Falcon-style multi-query attention has one KV head; otherwise KV heads equal attention heads.
        if source.get("multi_query") is True:
            fields["num_key_value_heads"] = 1
        else:
            fields["num_key_value_heads"] = fields["num_attention_heads"]
    hidden = fields["hidden_size"]
    if fields["intermediate_size"] is None and source.get("model_type") == "gpt2" and type(hidden) is int and hidden:
        fields["intermediate_size"] = 4 * hidden  # GPT-2's n_inner defaults to 4 * n_embd
    return fields


def config_value(config: dict[str, Any], dotted: str) -> Any:
    """A config field by dotted path (`rope_scaling.factor`); KeyError when absent."""
    current: Any = config
    for part in dotted.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise KeyError(dotted)
    return current

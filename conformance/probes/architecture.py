"""One vocabulary for architecture fields across model families.

Each canonical field is read, in order: the key the family's config class stores it under (transformers'
`attribute_map`, from the generated family table `conformance.families`: GPT-2 stores hidden_size as
n_embd, T5 as d_model), then the legacy and cross-family names of `ARCHITECTURE_FIELDS` (BLOOM's n_embed,
OPT's ffn_dim, T5's d_ff, ...), first as config.json writes them and then, for keys it leaves out, the
family config class's defaults (`families.with_family_defaults`: an absent key means what transformers
makes of it). Families the table does not cover fall back on the name lists alone. Reading the table keeps
this path free of torch and transformers. The fields come from the folder's architecture source
(`formats/registry.architecture_source`: config.json now); every source gives them under config.json's
names, so this one normalization serves all.

Rules beyond a key look-up, each as transformers' modeling code has it:
- multi-query attention: `multi_query: true` means one key/value head (GPT-BigCode; Falcon unless
  `new_decoder_architecture`, `FalconAttention`: num_kv_heads if new_decoder_architecture or not
  multi_query, else 1, whatever `num_kv_heads` says); ChatGLM's `multi_query_group_num` counts only with
  `multi_query_attention: true`. Otherwise key/value heads default to the attention heads.
- a null feed-forward width in a family whose config class declares it null by default (GPT-2's n_inner,
  GPT-J, GPT-BigCode, CodeGen, GPT-Neo, Falcon's ffn_hidden_size, RWKV, Zamba2) is 4 x hidden size; a
  family that gives the width as a multiple (MPT's expansion_ratio, GPT-NeoX-Japanese's
  intermediate_multiple_size) has that multiple of the hidden size; a family whose config gives no
  width at all (BLOOM, Flaubert, XLM, OpenAI GPT: the modeling code fixes it) has the multiple the family
  table recorded from the model transformers builds (`Family.mlp_width_multiple`: 4 for these).
- a layer count left out where a per-layer pattern is written (Nemotron-H's `layers_block_type`,
  `layer_types`, `hybrid_override_pattern`) is the pattern's length.
- a field set per layer (transformers' `per_layer_config`: Gemma 4's head_dim, dots3's attention and
  key/value heads) has no one value: it is None (unknown), as transformers refuses its global read, and
  `per_layer_fields` names it (the roofline does not apply then).
- head_dim: the family's explicit head width (T5 stores it as d_kv), else hidden_size // num_attention_heads.
- a head width or key/value head count the family's class derives from other keys (`Family.recomputed`:
  Cohere2's head_dim when absent, DeepSeek-V2's qk_rope_head_dim, HY-V4's key/value heads always) is
  derived the same way, not read from the class's declared default.
- a composite (multimodal) config keeps the language model in a nested config (text_config,
  language_config, llm_config): the canonical fields are the text config's; `model_type` is the top-level
  type (llava, gemma3) and `text_model_type` the text config's (llama, gemma3_text).
- `tie_word_embeddings`: whether transformers ties the LM head (`families.tied_word_embeddings`);
  `is_encoder_decoder`: the config's, else its family's default (T5: true).
A test builds a tiny model of every covered family with transformers and compares.
"""

from __future__ import annotations

from typing import Any

from ..families import Family, family, tied_word_embeddings, with_family_defaults

ARCHITECTURE_FIELDS: dict[str, tuple[str, ...]] = {
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "num_decoder_layers"),
    "hidden_size": ("hidden_size", "n_embd", "n_embed", "d_model", "dim", "model_dim"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_key_value_heads": ("num_key_value_heads", "n_head_kv", "num_kv_heads", "n_kv_heads"),
    "vocab_size": ("vocab_size", "padded_vocab_size", "n_vocab"),
    "context_length": ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length", "max_sequence_length"),
    "intermediate_size": ("intermediate_size", "n_inner", "d_ff", "ffn_dim", "ffn_hidden_size", "decoder_ffn_dim", "hidden_dim"),
}
# The attribute transformers' config classes expose each canonical field as (reached through attribute_map).
TRANSFORMERS_NAMES: dict[str, str] = {
    "num_layers": "num_hidden_layers",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "num_key_value_heads": "num_key_value_heads",
    "vocab_size": "vocab_size",
    "context_length": "max_position_embeddings",
    "intermediate_size": "intermediate_size",
    "head_dim": "head_dim",
}
_HEAD_DIM_KEYS = ("head_dim", "d_kv", "attention_head_dim", "kv_channels")
# Feed-forward keys whose null default means 4 x hidden size in the families that declare them so.
_INTERMEDIATE_KEYS = ARCHITECTURE_FIELDS["intermediate_size"]
# Feed-forward width as a multiple of the hidden size, in families that give no width.
_RATIO_KEYS = ("expansion_ratio", "intermediate_multiple_size")

# Multimodal and composite configs keep the language model's fields in a nested config.
# An encoder-decoder composite (EncoderDecoderModel, T5Gemma) generates with its `decoder` config.
_NESTED_TEXT_CONFIGS = ("text_config", "llm_config", "language_config", "decoder")


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's config: a nested text/llm/language config if there is one, else `config` itself."""
    for key in _NESTED_TEXT_CONFIGS:
        nested = config.get(key)
        if isinstance(nested, dict):
            return {**nested, "model_type": nested.get("model_type", config.get("model_type"))}
    return config


def _keys(found: Family | None, canonical: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The family's keys for a canonical field (its attribute_map alias, then the stored key), then the cross-family names (no repeats).

    Attention heads are the exception: a covered family whose class maps nothing to num_attention_heads but
    defines a `num_heads` of its own (Mamba-2, xLSTM) counts state-space or recurrent heads there, not
    attention heads, so for it the cross-family names are not read.
    """
    if found is None or canonical not in TRANSFORMERS_NAMES:
        return names
    theirs = TRANSFORMERS_NAMES[canonical]
    stored = found.stored_key(theirs)
    if canonical == "num_attention_heads" and stored not in found.defaults:
        names = tuple(name for name in names if name not in found.defaults)
    # With both names written, transformers sets the stored key first and the alias over it (its
    # `__setattr__` goes through attribute_map): GPT-2's `hidden_size: 128` beside `n_embd: 64` is 128.
    first = (theirs, stored) if stored != theirs else (stored,)
    return tuple(dict.fromkeys((*first, *names)))


def _first(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = config.get(key)
        if value is not None:
            return value
    return None


def _read(written: dict[str, Any], filled: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first value config.json writes under `keys`, else the first the family's defaults give."""
    value = _first(written, keys)
    return value if value is not None else _first(filled, keys)


def _positive_int(value: Any) -> bool:
    return type(value) is int and value > 0


def _key_value_heads(written: dict[str, Any], filled: dict[str, Any], found: Family | None, heads: Any) -> Any:
    """Key/value heads as the family's attention module builds them (see the module docstring)."""
    if filled.get("multi_query") is True and not filled.get("new_decoder_architecture"):
        return 1  # GPT-BigCode and Falcon's original architecture: one shared key/value head
    if filled.get("multi_query_attention") is True and filled.get("multi_query_group_num") is not None:
        return filled["multi_query_group_num"]  # ChatGLM: key/value groups
    value = _read(written, filled, _keys(found, "num_key_value_heads", ARCHITECTURE_FIELDS["num_key_value_heads"]))
    return heads if value is None else value


def _intermediate_size(written: dict[str, Any], filled: dict[str, Any], found: Family | None, hidden: Any) -> Any:
    value = _read(written, filled, _keys(found, "intermediate_size", _INTERMEDIATE_KEYS))
    if value is not None or found is None or not _positive_int(hidden):
        return value
    ratio = _read(written, filled, _RATIO_KEYS)
    if _positive_int(ratio):
        return ratio * hidden  # MPT's expansion_ratio, GPT-NeoX-Japanese's intermediate_multiple_size
    if found.mlp_width_key is not None:
        return _read(written, filled, (found.mlp_width_key,))  # a mixture of experts: the key its first MLP's width is (as built)
    if found.mlp_width_multiple is not None:
        return found.mlp_width_multiple * hidden  # BLOOM, XLM, OpenAI GPT: the modeling code's multiple, as built
    declares_null = any(key in found.defaults and found.defaults[key] is None for key in _INTERMEDIATE_KEYS)
    return 4 * hidden if declares_null else None


# Per-layer lists that give the layer count where no count is written (Nemotron-H: layers_block_type).
_LAYER_PATTERN_KEYS = ("layers_block_type", "layer_types", "hybrid_override_pattern")
MAX_PATTERN_LAYERS = 100_000


def _layers_from_pattern(written: dict[str, Any], filled: dict[str, Any]) -> Any:
    """The length of the first per-layer pattern (a list, or Nemotron-H's pattern string), or None."""
    pattern = _read(written, filled, _LAYER_PATTERN_KEYS)
    if isinstance(pattern, (list, str)) and 0 < len(pattern) <= MAX_PATTERN_LAYERS:
        return len(pattern)
    return None


def _head_dim(written: dict[str, Any], filled: dict[str, Any], found: Family | None, hidden: Any, heads: Any) -> Any:
    explicit = _read(written, filled, _keys(found, "head_dim", _HEAD_DIM_KEYS))
    if explicit is not None:
        return explicit
    return hidden // heads if _positive_int(hidden) and _positive_int(heads) else None


def _derived_by_family(written: dict[str, Any], filled: dict[str, Any], found: Family | None, canonical: str, fields: dict[str, Any]) -> tuple[bool, Any]:
    """(True, value) when the family's config class derives this field from other keys (`Family.recomputed`), else (False, None).

    Cohere2 and RecurrentGemma derive head_dim as hidden_size // num_attention_heads when the file leaves it
    out (their declared default, 256, fits only the default sizes); DeepSeek-V2 and the other MLA families
    set it to qk_rope_head_dim and HY-V4 its key/value heads to its attention heads whatever the file says.
    """
    if found is None:
        return False, None
    name = TRANSFORMERS_NAMES[canonical]
    key = found.stored_key(name)
    how = found.recomputed.get(key)
    if how is None or (not how.get("always") and _first(written, (name, key)) is not None):
        return False, None
    hidden, heads = fields["hidden_size"], fields["num_attention_heads"]
    if how.get("rule") == "heads":
        return True, heads
    if how.get("rule") == "hidden_per_head":
        multiple = how.get("multiple", 1)
        return True, (multiple * hidden // heads if _positive_int(hidden) and _positive_int(heads) else None)
    if how.get("rule") == "key":
        return True, _read(written, filled, (str(how.get("key")),))
    return False, None


def _per_layer_attributes(filled: dict[str, Any], found: Family | None) -> set[str]:
    """The attributes the text config sets per layer (transformers' `per_layer_config`), which have no global value.

    transformers takes every key a layer's entry of `per_layer_config` overrides (but `skip`) as per-layer
    and refuses its global read (`AmbiguousGlobalPerLayerAttributeError`). A config that leaves the key out
    has the family's default, whose per-layer attributes the family table records (`Family.per_layer_attributes`;
    a large default such as dots3's is not in the table's defaults).
    """
    if "per_layer_config" not in filled:
        return set(found.per_layer_attributes) if found is not None else set()
    layers = filled["per_layer_config"]
    if not isinstance(layers, dict):
        return set()
    return {str(key) for layer in layers.values() if isinstance(layer, dict) for key in layer} - {"skip"}


def normalize_architecture(config: dict[str, Any], *, family_defaults: bool = True) -> dict[str, Any]:
    """Canonical architecture fields (None where the family has no such field), plus head_dim, the tie and the text model's type.

    Values are recorded as the config gives them, NaN and Infinity included; the checks judge them.
    `family_defaults=False` reads only what `config` holds: for a source that is not a transformers
    config.json (a GGUF file's metadata), whose absent keys transformers does not fill from the config class.
    """
    written = text_config(config)
    filled = text_config(with_family_defaults(config)) if family_defaults else written
    text_type = filled.get("model_type")
    found = family(text_type) if isinstance(text_type, str) else None
    top_type = config.get("model_type", text_type)
    fields: dict[str, Any] = {"model_type": top_type}
    for name, keys in ARCHITECTURE_FIELDS.items():
        if name not in ("num_key_value_heads", "intermediate_size"):
            fields[name] = _read(written, filled, _keys(found, name, keys))
    if fields["num_layers"] is None:
        fields["num_layers"] = _layers_from_pattern(written, filled)
    per_layer = _per_layer_attributes(filled, found)
    # A field set per layer has no one value: unknown (None), as transformers refuses its global read.
    unknown = {name for name, theirs in TRANSFORMERS_NAMES.items() if theirs in per_layer or (found and found.stored_key(theirs) in per_layer)}
    fields.update(dict.fromkeys(unknown & set(fields), None))
    unknown_kv = "num_key_value_heads" in unknown
    fields["num_key_value_heads"] = None if unknown_kv else _key_value_heads(written, filled, found, fields["num_attention_heads"])
    fields["intermediate_size"] = None if "intermediate_size" in unknown else _intermediate_size(written, filled, found, fields["hidden_size"])
    fields["head_dim"] = None if "head_dim" in unknown else _head_dim(written, filled, found, fields["hidden_size"], fields["num_attention_heads"])
    for name in ("num_key_value_heads", "head_dim"):
        derived, value = _derived_by_family(written, filled, found, name, fields)
        if derived and name not in unknown:
            fields[name] = value
    fields["text_model_type"] = text_type
    if unknown:
        fields["per_layer_fields"] = sorted(unknown)  # the canonical fields left unknown because they are set per layer
    fields["tie_word_embeddings"] = tied_word_embeddings(config)
    # T5, BART and their kin generate through a decoder fed by an encoder (the family's default says so when absent).
    top = with_family_defaults({k: v for k, v in config.items() if k in ("model_type", "is_encoder_decoder")}) if family_defaults else config
    fields["is_encoder_decoder"] = top.get("is_encoder_decoder") is True
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

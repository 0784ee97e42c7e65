"""Generate the family table (`_specs/families.json`) from the installed transformers' config classes.

Run as `python -m conformance.families --write` (or `--check` to compare the committed table with a fresh
generation). This module imports transformers, so only that command and its test load it; the static path
reads the generated JSON through `conformance.families` and imports neither torch nor transformers.

Which families: every `model_type` of transformers' `CONFIG_MAPPING_NAMES` that one of the auto mappings
`MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`, `MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES`,
`MODEL_FOR_MASKED_LM_MAPPING_NAMES` or `MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES` names, plus the
model_types of their nested sub-configs (text_config, vision_config, ...), which carry no head of their own.
For each: the config class name, the JSON-able defaults of a default instance (`to_dict()`; a value whose
JSON is over `MAX_DEFAULT_JSON_CHARS` characters is left out and listed under `dropped` with the reason),
the class's `attribute_map`, the heads with their model class names, and the nested sub-configs with their
default model_type; and what the family's model built by transformers holds that the config does not say
(`families_models`: persistent buffers saved with the weights, the feed-forward width the modeling code
fixes). A family whose default config cannot be instantiated is listed under `excluded` with
transformers' error, not dropped silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

# The auto mappings that give a family a head, by the head's name in the table.
HEAD_MAPPINGS = {
    "causal-lm": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "seq2seq-lm": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "masked-lm": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "image-text-to-text": "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
}
# A default whose JSON is longer is left out of the table (large per-layer lists, label maps, tokenizer
# tables): the table ships with the package, and the architecture facts never need such a value.
MAX_DEFAULT_JSON_CHARS = 512
# Per-run metadata, not defaults: a stale value would make the table drift with every release.
_METADATA_KEYS = ("transformers_version", "_name_or_path")
_MAX_SUB_CONFIG_DEPTH = 4


def _class_name(value: Any) -> str:
    """A mapping value's class name (a few mappings hold a tuple of alternatives: the first)."""
    return str(value[0] if isinstance(value, (tuple, list)) else value)


def _json_value(value: Any) -> tuple[bool, str]:
    """Whether `value` can go in the table, and why not."""
    try:
        text = json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        return False, f"not JSON ({type(exc).__name__})" if not isinstance(value, float) or math.isfinite(value) else "not a finite number"
    if len(text) > MAX_DEFAULT_JSON_CHARS:
        return False, f"JSON of {len(text)} characters (over {MAX_DEFAULT_JSON_CHARS})"
    return True, ""


def _declared_defaults(config_class: Any) -> dict[str, Any]:
    """The defaults the config class declares (its dataclass fields), before `__post_init__` derives values."""
    if not dataclasses.is_dataclass(config_class):
        return {}
    declared: dict[str, Any] = {}
    for item in dataclasses.fields(config_class):
        if item.default is not dataclasses.MISSING:
            declared[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            declared[item.name] = item.default_factory()
    return declared


# Probe values for `_recomputed`: two (hidden size, attention heads) pairs and even sentinels no formula gives
# at them (RoPE validation refuses an odd head width).
_PROBES = ((96, 6), (192, 4))
_SENTINEL = 10
_COPY_SENTINEL = 12


def _recomputed(config_class: Any, defaults: dict[str, Any], attribute_map: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Head width and key/value heads that the class's `__post_init__` sets from other keys.

    Cohere2 sets `head_dim = hidden_size // num_attention_heads` whatever the file says; RecurrentGemma
    does so when the key is absent, though its declared default (256) equals that of the default sizes;
    Zamba2's head width is twice that, HY-V4 sets `num_key_value_heads = num_attention_heads`, AXK2 its
    head width to `qk_rope_head_dim`. A default value of that key is then not what the model uses. Found
    by construction at two (hidden size, heads) pairs: with the key written as a sentinel (`always`: the
    class replaces it) and with the key absent. Returns stored key -> {"rule": "heads"} |
    {"rule": "hidden_per_head", "multiple": k} | {"rule": "key", "key": other}, each with `always`; a
    derived key that matches none of these is left out (read as before).
    """
    stored = {name: attribute_map.get(name, name) for name in ("hidden_size", "num_attention_heads", "head_dim", "num_key_value_heads")}
    hidden_key, heads_key = stored["hidden_size"], stored["num_attention_heads"]
    if type(defaults.get(hidden_key)) is not int or type(defaults.get(heads_key)) is not int:
        return {}

    def built(target: str, extra: dict[str, Any]) -> list[Any]:
        values = []
        for hidden, heads in _PROBES:
            try:
                config = config_class(**{hidden_key: hidden, heads_key: heads, **extra})
            except Exception:  # noqa: BLE001 - a probe the class refuses says nothing
                return []
            values.append(vars(config).get(target))
        return values

    def rule(target: str, values: list[Any], extra: dict[str, Any]) -> dict[str, Any] | None:
        if values == [heads for _, heads in _PROBES]:
            return {"rule": "heads"}
        multiple = next((k for k in (1, 2) if values == [k * hidden // heads for hidden, heads in _PROBES]), None)
        if multiple is not None:
            return {"rule": "hidden_per_head", "multiple": multiple}
        candidates = sorted(key for key, value in defaults.items() if type(value) is int and key not in stored.values() and value in values)
        copied = next((key for key in candidates if built(target, {**extra, key: _COPY_SENTINEL}) == [_COPY_SENTINEL] * len(_PROBES)), None)
        return {"rule": "key", "key": copied} if copied is not None else None

    found: dict[str, dict[str, Any]] = {}
    for name in ("head_dim", "num_key_value_heads"):
        target = stored[name]
        if target not in defaults or target in (hidden_key, heads_key):
            continue  # Whisper keeps key/value heads as its attention heads: nothing derived
        written = built(target, {target: _SENTINEL})
        if written and _SENTINEL not in written:
            derived = rule(target, written, {target: _SENTINEL})
            if derived is not None:
                found[target] = {**derived, "always": True}
            continue
        absent = built(target, {})
        if absent and None not in absent and absent != [defaults[target]] * len(_PROBES):
            derived = rule(target, absent, {})
            # A declared None that the reader's own fallback derives alike (hidden // heads, the attention heads) needs no entry.
            fallback = {"rule": "hidden_per_head", "multiple": 1} if name == "head_dim" else {"rule": "heads"}
            if derived is not None and (defaults[target] is not None or derived != fallback):
                found[target] = {**derived, "always": False}
    return found


def _entry(config: Any, heads: dict[str, str], table: dict[str, Any], depth: int) -> dict[str, Any]:
    """The table entry of one config instance; its sub-configs' entries are added to `table` on the way.

    A key whose declared default differs from the default instance's value is derived from other keys by
    the class (LlamaConfig: head_dim None becomes hidden_size // num_attention_heads): the default is the
    declared one, what an absent key means, and the instance's value is kept under `derived` for reference.
    """
    from transformers import PretrainedConfig

    declared = _declared_defaults(type(config))
    defaults: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    sub_configs: dict[str, str] = {}
    for key, value in sorted(config.to_dict().items()):
        if key in _METADATA_KEYS:
            continue
        # Read past transformers' per-layer access guard (Gemma 4 raises on a global read of head_dim).
        attribute = vars(config).get(key)
        if isinstance(attribute, PretrainedConfig):
            sub_type = str(getattr(attribute, "model_type", "") or "")
            sub_configs[key] = sub_type
            if sub_type and sub_type not in table and depth < _MAX_SUB_CONFIG_DEPTH:
                table[sub_type] = {"heads": {}}  # reserved first: a sub-config that nests its parent does not recurse
                try:
                    table[sub_type] = _entry(type(attribute)(), {}, table, depth + 1)
                except Exception:
                    del table[sub_type]
                    raise
            continue
        if key in declared and _json_value(declared[key])[0] and declared[key] != value:
            if _json_value(value)[0]:
                derived[key] = value
            value = declared[key]
        keep, why = _json_value(value)
        if keep:
            defaults[key] = value
        else:
            dropped[key] = why
    if _TIE not in defaults and _TIE not in dropped and isinstance(getattr(type(config), _TIE, None), bool):
        defaults[_TIE] = getattr(type(config), _TIE)  # a class attribute, not a field: to_dict() leaves it out
    entry: dict[str, Any] = {
        "config_class": type(config).__name__,
        "defaults": defaults,
        "derived": derived,
        "dropped": dropped,
        "attribute_map": dict(sorted(dict(getattr(type(config), "attribute_map", {}) or {}).items())),
        "heads": heads,
        "sub_configs": sub_configs,
    }
    recomputed = _recomputed(type(config), defaults, entry["attribute_map"])
    if recomputed:
        entry["recomputed"] = recomputed
    # Attributes the default config sets per layer (transformers' per_layer_config: Gemma 4's head_dim), whose
    # global read transformers refuses; recorded because a large default per_layer_config is dropped above.
    per_layer = sorted(str(name) for name in (getattr(config, "per_layer_attributes", None) or ()))
    if per_layer:
        entry["per_layer_attributes"] = per_layer
    return entry


_TIE = "tie_word_embeddings"
_TOP_SETTINGS: dict[str, dict[str, bool]] = {"absent": {}, "true": {_TIE: True}, "false": {_TIE: False}}


def _head_ties(heads: dict[str, str]) -> dict[str, bool | None]:
    """Head class -> whether its `_tied_weights_keys` ties a weight (the LM head to an input embedding).

    Read from the class, not an instance. False: the mapping ties no weight (CpmAnt), so the head keeps its
    own output matrix whatever `tie_word_embeddings` says; None: the class has no mapping and a wrapped
    model may tie by its own (Blip-2's language model).
    """
    import transformers

    ties: dict[str, bool | None] = {}
    for class_name in heads.values():
        mapping = getattr(getattr(transformers, class_name, None), "_tied_weights_keys", None)
        ties[class_name] = None if mapping is None else any(str(key).endswith("weight") for key in mapping)
    return dict(sorted(ties.items()))


def _tie_rule(config_class: Any, entry: dict[str, Any], families: dict[str, Any]) -> dict[str, Any] | None:
    """How a composite config resolves its top-level `tie_word_embeddings` from its text sub-config's, or None.

    transformers ties the LM head by the top-level config's value (`PreTrainedModel.get_expanded_tied_weights_keys`
    reads `self.config.tie_word_embeddings`, False when the config has none), and several composite configs
    forward the text config's True to the top (Llava's `__post_init__`). Rather than copy each class's code,
    the rule is observed: the top-level value for each of {absent, true, false} at the top and {true, false}
    in the first sub-config that has the key (null: the top-level config has no such attribute).
    """
    for key, sub_type in entry["sub_configs"].items():
        if _TIE not in families.get(sub_type, {}).get("defaults", {}):
            continue
        outcomes: dict[str, dict[str, bool | None]] = {}
        for text_value in (True, False):
            row: dict[str, bool | None] = {}
            for top, setting in _TOP_SETTINGS.items():
                try:
                    config = config_class(**setting, **{key: {"model_type": sub_type, _TIE: text_value}})
                except Exception:  # noqa: BLE001 - the class refuses this combination: nothing observed
                    row[top] = None
                    continue
                value = vars(config).get(_TIE)
                row[top] = bool(value) if value is not None else None
            outcomes[f"text_{str(text_value).lower()}"] = row
        return {"sub_config": key, "outcomes": outcomes}
    return None


def generate(build_models: bool = True) -> dict[str, Any]:
    """The family table of the installed transformers (JSON-able; see the module docstring).

    `build_models` adds each family's `built` entry (`families_models`: every family's model built on the
    meta device, tens of seconds); without it the table holds the config-derived part only
    (`config_part` of the full table).
    """
    import transformers
    from transformers.models.auto import modeling_auto
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING, CONFIG_MAPPING_NAMES
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # default configs warn about their own token ids; not the table's business
    mappings = {head: getattr(modeling_auto, name) for head, name in HEAD_MAPPINGS.items()}
    families: dict[str, Any] = {}
    excluded: dict[str, str] = {}
    for model_type in CONFIG_MAPPING_NAMES:
        heads = {head: _class_name(mapping[model_type]) for head, mapping in mappings.items() if model_type in mapping}
        if not heads:
            continue
        try:
            config = CONFIG_MAPPING[model_type]()
            entry = _entry(config, heads, families, 0)
        except Exception as exc:  # noqa: BLE001 - whatever transformers raises, the family is listed with it
            excluded[model_type] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            continue
        entry["head_ties"] = _head_ties(heads)
        if entry["sub_configs"]:
            entry["tie_rule"] = _tie_rule(type(config), entry, families)
        families[model_type] = entry  # replaces an entry made when it was first met as a sub-config
    if build_models:
        from .families_models import built_facts

        for model_type, facts in built_facts(families).items():
            families[model_type]["built"] = facts
    return {
        "generated_by": "python -m conformance.families --write",
        "transformers_version": transformers.__version__,
        "head_mappings": HEAD_MAPPINGS,
        "families": dict(sorted(families.items())),
        "excluded": dict(sorted(excluded.items())),
    }


def config_part(table: dict[str, Any]) -> dict[str, Any]:
    """The table without the model-derived `built` entries: what `generate(build_models=False)` gives."""
    families = {name: {k: v for k, v in entry.items() if k != "built"} for name, entry in table["families"].items()}
    return {**table, "families": families}


def render(table: dict[str, Any]) -> str:
    """The table as the committed file holds it (sorted keys, one-space indent, trailing newline)."""
    return json.dumps(table, indent=1, sort_keys=True, allow_nan=False) + "\n"

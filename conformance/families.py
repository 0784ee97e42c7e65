"""Model families as the installed transformers defines them: config defaults, key aliases, heads.

The table (`_specs/families.json`) is generated from transformers' config classes with
`python -m conformance.families --write` and committed, as the spec schema is; `--check` (and a test)
fails when it drifts from the installed transformers. Reading it imports neither torch nor transformers,
so the static path stays light; it is read once, on first use. `conformance/families_build.py` says which
families the table covers and how each entry is derived.

Public contract (used by the architecture normalization, the parameter count, the model-kind choice and
the tokenizer's special-token ids):
- `family(model_type)`: the `Family` of a `model_type`, or None when the table does not cover it.
- `with_family_defaults(config)`: config.json's dict with every key the family's config class sets by
  default and the file leaves out filled in (nested text/vision configs too); keys present are kept as
  written.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).resolve().parent / "_specs" / "families.json"
# Nested configs are filled this deep at most (a hostile config.json may nest without end).
MAX_NESTING = 4
# The longest model_type looked up (transformers' longest is under 40 characters).
MAX_MODEL_TYPE_CHARS = 200
# Nested configs a family's class does not declare that are filled, per level at most.
MAX_UNDECLARED_SUB_CONFIGS = 8


@dataclass(frozen=True)
class Family:
    """One model family (a `model_type`) as transformers' config class defines it.

    Attributes:
        model_type: the config's `model_type`.
        config_class: the transformers config class name (e.g. "LlamaConfig").
        defaults: the config class's default value of each key (`to_dict()` of a default instance; nested
            sub-configs and values too large for the table left out, see `dropped`).
        attribute_map: transformers' `attribute_map` of the class, as transformers writes it: the name a
            reader may ask for -> the key the config stores (GPT-2: hidden_size -> n_embd). A config.json
            may hold either name.
        heads: the Auto heads the family has, from transformers' auto mappings: any of "causal-lm",
            "seq2seq-lm", "masked-lm", "image-text-to-text" (empty for a family met only as a sub-config).
        sub_configs: nested config key -> its model_type default (Llava: text_config -> "llama").
        head_classes: head -> the model class transformers' auto mapping names (causal-lm -> "LlamaForCausalLM").
        dropped: default keys left out of `defaults`, each with the reason.
        head_ties: head class -> whether its `_tied_weights_keys` ties a weight (None: the class has no
            mapping, a model it wraps may tie by its own config).
        tie_rule: for a composite config, how its top-level `tie_word_embeddings` follows the text
            sub-config's (`families_build._tie_rule`); None for a plain config.
        saved_buffers: `formats.tensor_names.tensor_key`s of the persistent buffers `save_pretrained` writes for the family's
            model (built by transformers, `families_models`): saved tensors that are not parameters.
        buffer_named_parameters: `formats.tensor_names.tensor_key`s of parameters the cross-family buffer names would take for
            buffers (a router bias this family keeps as a parameter).
        mlp_width_multiple: the feed-forward width over the hidden size as the built model has it, for a
            family whose config gives no width (BLOOM: 4); None otherwise or when it was not built.
        per_layer_attributes: attributes the family's default config sets per layer (transformers'
            `per_layer_config`; Gemma 4: head_dim), which have no global value.
        mlp_width_key: the config key holding the first feed-forward width as the built model has it, for a
            family whose config gives no dense width (a mixture of experts: `moe_intermediate_size`).
        recomputed: stored key -> how the class's `__post_init__` derives it from other keys (head width,
            key/value heads; `families_build._recomputed`): {"rule": "heads" | "hidden_per_head" | "key",
            "multiple": k, "key": other, "always": whether it replaces a written value too}.
        built_head: the head class the table's model-derived facts were built with (None: not built).
        built_tie: whether that model, built from the family's default config, has its LM head tied to
            its input embedding (None: not built).
    """

    model_type: str
    config_class: str
    defaults: dict[str, Any] = field(default_factory=dict)
    attribute_map: dict[str, str] = field(default_factory=dict)
    heads: tuple[str, ...] = ()
    sub_configs: dict[str, str] = field(default_factory=dict)
    head_classes: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    tie_rule: dict[str, Any] | None = None
    head_ties: dict[str, bool | None] = field(default_factory=dict)
    saved_buffers: frozenset[str] = frozenset()
    buffer_named_parameters: frozenset[str] = frozenset()
    mlp_width_multiple: int | None = None
    mlp_width_key: str | None = None
    built_head: str | None = None
    built_tie: bool | None = None
    per_layer_attributes: frozenset[str] = frozenset()
    recomputed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def stored_key(self, name: str) -> str:
        """The key this family's config stores `name` under (`attribute_map`; the name itself when not aliased)."""
        return self.attribute_map.get(name, name)


@functools.lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The committed table as read from `_specs/families.json` (read once; FileNotFoundError when absent)."""
    data: dict[str, Any] = json.loads(TABLE_PATH.read_text(encoding="utf-8"))
    return data


@functools.cache
def _family(model_type: str) -> Family | None:
    entry = table()["families"].get(model_type)
    if not isinstance(entry, dict):
        return None
    heads: dict[str, str] = entry.get("heads", {})
    built: dict[str, Any] = entry.get("built") or {}
    return Family(
        model_type=model_type,
        config_class=entry["config_class"],
        defaults=entry.get("defaults", {}),
        attribute_map=entry.get("attribute_map", {}),
        heads=tuple(heads),
        sub_configs=entry.get("sub_configs", {}),
        head_classes=dict(heads),
        dropped=entry.get("dropped", {}),
        tie_rule=entry.get("tie_rule"),
        head_ties=entry.get("head_ties", {}),
        saved_buffers=frozenset(built.get("saved_buffers", ())),
        buffer_named_parameters=frozenset(built.get("buffer_named_parameters", ())),
        mlp_width_multiple=built.get("mlp_width_multiple"),
        mlp_width_key=built.get("mlp_width_key"),
        per_layer_attributes=frozenset(entry.get("per_layer_attributes", ())),
        recomputed=entry.get("recomputed", {}),
        built_head=built.get("head"),
        built_tie=built.get("lm_head_tied"),
    )


def family(model_type: str) -> Family | None:
    """The family of `model_type` from the generated table, or None when it is not covered."""
    if not isinstance(model_type, str) or not model_type or len(model_type) > MAX_MODEL_TYPE_CHARS:
        return None  # no family has such a name; a hostile one is not kept in the look-up cache
    return _family(model_type)


def covered_model_types() -> tuple[str, ...]:
    """Every model_type the table has an entry for (families with heads and the sub-configs they nest), sorted."""
    return tuple(sorted(table()["families"]))


def excluded_families() -> dict[str, str]:
    """model_type -> why transformers could not instantiate its default config (these have no defaults)."""
    return dict(table().get("excluded", {}))


def _fill(config: dict[str, Any], found: Family | None, depth: int) -> dict[str, Any]:
    filled = dict(config)
    if found is not None:
        present = set(config)
        # A key counts as present when the file holds it under any of its aliases (GPT-2: hidden_size for n_embd).
        present.update(found.attribute_map[alias] for alias in config if alias in found.attribute_map)
        for key, value in found.defaults.items():
            if key not in present:
                filled[key] = copy.deepcopy(value)
    sub_configs = found.sub_configs if found is not None else {}
    if depth >= MAX_NESTING:
        return filled
    # Undeclared nested configs (a dict with its own model_type) are filled too, the first few only: a 4 MiB
    # config.json may hold a hundred thousand of them, and filling each would take seconds.
    undeclared = [k for k, v in config.items() if k not in sub_configs and isinstance(v, dict) and isinstance(v.get("model_type"), str)]
    for key in (*sub_configs, *undeclared[:MAX_UNDECLARED_SUB_CONFIGS]):
        nested = filled.get(key)
        if nested is None and key in sub_configs and sub_configs[key]:
            nested = {"model_type": sub_configs[key]}  # transformers builds the default sub-config
        if not isinstance(nested, dict):
            continue
        if "model_type" not in nested and sub_configs.get(key):
            nested = {**nested, "model_type": sub_configs[key]}
        filled[key] = _fill(nested, family(nested.get("model_type", "")), depth + 1)
    return filled


def with_family_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the family's config-class defaults for every absent key (a new dict; `config` is not changed).

    The family is `config["model_type"]`'s; a nested sub-config (text_config, vision_config, ...) is filled
    with its own family's defaults (its `model_type`, else the parent's default for that key), and a
    sub-config the file leaves out is built from its default family, as transformers builds it. A
    config of an uncovered family is returned as written (its nested configs of covered families filled).
    """
    return _fill(config, family(config.get("model_type", "")), 0)


_TIE = "tie_word_embeddings"


def _declared_tie(config: dict[str, Any], found: Family | None) -> Any:
    """The config's own `tie_word_embeddings`, else its family's default (None when neither says)."""
    if _TIE in config:
        return config[_TIE]
    return found.defaults.get(_TIE) if found is not None else None


def _head_class(config: dict[str, Any], found: Family) -> str | None:
    """The head class that loads this config (None when the family has no head).

    config.json's first `architectures` entry when the family has it as a head, else the family's first
    head (causal-lm before the others, as the table lists them).
    """
    architectures = config.get("architectures")
    named = architectures[0] if isinstance(architectures, list) and architectures and isinstance(architectures[0], str) else None
    if named not in found.head_ties:
        named = next((found.head_classes[h] for h in ("causal-lm", "image-text-to-text", "seq2seq-lm", "masked-lm") if h in found.head_classes), None)
    return named


def _config_tie(config: dict[str, Any], found: Family) -> bool:
    """The tie as the config says it: the head class's mapping, then the top-level value or a composite's rule."""
    named = _head_class(config, found)
    if named is not None and found.head_ties.get(named) is False:
        return False  # the head class's `_tied_weights_keys` ties nothing to the input embedding (CpmAnt)
    rule = found.tie_rule
    if rule is not None:
        text_value = _sub_config_tie(config, found)
        top = "absent" if _TIE not in config else ("true" if config[_TIE] else "false")
        outcome = rule.get("outcomes", {}).get(f"text_{str(text_value).lower()}", {}).get(top)
        return text_value if outcome is None else bool(outcome)
    return bool(_declared_tie(config, found))


def _sub_config_tie(config: dict[str, Any], found: Family) -> bool:
    """The tie the composite's text (or wrapped decoder) sub-config declares, else its family's default."""
    sub_key = str((found.tie_rule or {}).get("sub_config", ""))
    nested = config.get(sub_key)
    nested = nested if isinstance(nested, dict) else {}
    sub_family = family(nested.get("model_type") or found.sub_configs.get(sub_key, ""))
    return bool(_declared_tie(nested, sub_family))


@functools.cache
def _default_config_tie(model_type: str) -> bool:
    found = family(model_type)
    return found is not None and _config_tie({"model_type": model_type}, found)


def tied_word_embeddings(config: dict[str, Any]) -> bool:
    """Whether transformers ties the LM head to the input embedding for this config.json (True/False).

    transformers ties by the top-level config's `tie_word_embeddings` (False when the config class has
    none); an absent key takes the family's default (LlamaConfig: False). A composite config resolves its
    top-level value from its text sub-config's as its class does (`Family.tie_rule`, observed from
    transformers: Llava forwards the text config's True); when the top-level class has no such attribute
    the text model ties itself by its own value. A head class whose `_tied_weights_keys` ties nothing to
    the input embedding (`Family.head_ties`) never ties.

    Where the family's model built from its default config (`Family.built_tie`, same head class) has a tie
    other than these rules give for that config, the head class decides, as observed: built untied though
    the config ties (LUKE ties only its entity head, PI0 has no LM head, BigBird-Pegasus's causal LM keeps
    its own head), it never ties; built tied though the config's top level does not (Vision-Encoder-Decoder),
    the wrapped decoder ties by its own sub-config. A config of an uncovered family ties unless it says
    not to (the historical default of transformers' base config).
    """
    found = family(config.get("model_type", ""))
    if found is None:
        return bool(config.get(_TIE, True))
    value = _config_tie(config, found)
    if found.built_tie is None or found.built_head != _head_class(config, found):
        return value
    if found.built_tie == _default_config_tie(found.model_type):
        return value  # the rules describe this family's model
    return _sub_config_tie(config, found) if found.built_tie else False


def _main(argv: list[str]) -> int:
    """`--write` regenerates the table; `--check` exits 1 when the committed table differs from a fresh one."""
    from .families_build import generate, render

    if argv not in (["--write"], ["--check"]):
        print("usage: python -m conformance.families --write | --check", file=sys.stderr)
        return 2
    fresh = render(generate())
    if argv == ["--write"]:
        TABLE_PATH.write_text(fresh, encoding="utf-8")
        print(f"wrote {TABLE_PATH}")
        return 0
    committed = TABLE_PATH.read_text(encoding="utf-8") if TABLE_PATH.is_file() else ""
    if committed != fresh:
        print(f"{TABLE_PATH} differs from the installed transformers; run python -m conformance.families --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

"""Model families as the installed transformers defines them: config defaults, key aliases, heads.

The table (`_specs/families.json`) is generated from transformers' config classes with
`python -m conformance.families --write` and committed, as the spec schema is; a test fails when it drifts
from the installed transformers. Reading it imports neither torch nor transformers, so the static path
stays light.

Public contract (used by the architecture normalization, the parameter count, the model-kind choice and
the tokenizer's special-token ids):
- `family(model_type)`: the `Family` of a `model_type`, or None when the table does not cover it.
- `with_family_defaults(config)`: config.json's dict with every key the family's config class sets by
  default and the file leaves out filled in (nested text/vision configs too); keys present are kept as
  written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Family:
    """One model family (a `model_type`) as transformers' config class defines it.

    Attributes:
        model_type: the config's `model_type`.
        config_class: the transformers config class name (e.g. "LlamaConfig").
        defaults: the config class's default value of each key (`to_dict()` of a default instance).
        attribute_map: the class's alias -> canonical key map (GPT-2: n_embd -> hidden_size).
        heads: the Auto heads the family has, from transformers' auto mappings: any of "causal-lm",
            "seq2seq-lm", "masked-lm", "image-text-to-text".
        sub_configs: nested config key -> its model_type default (Llava: text_config -> "llama").
    """

    model_type: str
    config_class: str
    defaults: dict[str, Any] = field(default_factory=dict)
    attribute_map: dict[str, str] = field(default_factory=dict)
    heads: tuple[str, ...] = ()
    sub_configs: dict[str, str] = field(default_factory=dict)


def family(model_type: str) -> Family | None:
    """The family of `model_type` from the generated table, or None when it is not covered."""
    return None


def with_family_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the family's config-class defaults for every absent key (a new dict; `config` is not changed)."""
    return dict(config)

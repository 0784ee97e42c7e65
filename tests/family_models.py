"""Tiny models of every covered family, built by transformers on the meta device, and their saved folders.

Shared by the family property test (`tests/test_families_property.py`). For each family of the generated
table (`conformance.families`) that has a head, the family's default config is shrunk (every layer count
to 2; a family whose config rejects that is built at its default depth) and the head's model class is
built on the meta device (shapes only, no memory). The folder holds config.json as `save_pretrained`
writes it (`to_json_string(use_diff=True)`: keys equal to the defaults left out, which is what exercises
the defaults) and a sparse safetensors file whose header lists the tensors `save_pretrained` would write
(tied weights removed, transformers' weight conversions reverted) and whose size covers their bytes: the
static path reads nothing else. The truth is the built model's: its parameters, its tie, its config's
attributes through the attribute_map, and key/value heads from its attention modules.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.families_models import build_meta_model, language_model, lm_head_tied, mlp_width, model_facts, saved_state
from conformance.probes.architecture import ARCHITECTURE_FIELDS, TRANSFORMERS_NAMES


@dataclass
class Built:
    """One family's built model's facts (`truth`, `parameters`) and the folder it was saved to, or why not."""

    model_type: str
    head: str | None = None
    folder: Path | None = None
    truth: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    excluded: str | None = None
    model_facts: dict[str, Any] | None = None


def _kv_heads(model: Any, config: Any) -> Any:
    """Key/value heads as the text model's first attention module holds them; else the config's, else the attention heads."""
    for module in language_model(model).modules():
        if "Attention" not in type(module).__name__:
            continue
        for name in ("num_key_value_heads", "num_kv_heads", "kv_heads"):
            value = getattr(module, name, None)
            if type(value) is int:
                return value
        groups, heads = getattr(module, "num_key_value_groups", None), getattr(module, "num_heads", None)
        if type(groups) is int and type(heads) is int and groups > 0:
            return heads // groups
    value = getattr(config, "num_key_value_heads", None)
    return value if value is not None else getattr(config, "num_attention_heads", None)


def _attribute(config: Any, name: str) -> Any:
    try:
        return getattr(config, name, None)
    except Exception:  # noqa: BLE001 - a per-layer attribute read globally (Gemma 4) is not one fact
        return None


def truth_of(model: Any) -> dict[str, Any]:
    """The normalized facts as the loaded model has them (see the module docstring)."""
    config = model.config
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    facts: dict[str, Any] = {"model_type": config.model_type, "text_model_type": getattr(text, "model_type", None)}
    for ours, theirs in TRANSFORMERS_NAMES.items():
        # The attribute transformers' class exposes (attribute_map applied), else the family's own name for it.
        value = _attribute(text, theirs)
        for alias in ARCHITECTURE_FIELDS.get(ours, ()):
            value = _attribute(text, alias) if value is None else value
        facts[ours] = None if type(value) is int and value < 0 else value  # XLNet: -1 for "no limit"
    # An attribute set per layer (transformers' per_layer_config: Gemma 4's head_dim) has no global value:
    # transformers refuses the global read, so the fact is unknown (None), not derived from other fields.
    per_layer = set(_attribute(text, "per_layer_attributes") or ())
    for ours, theirs in TRANSFORMERS_NAMES.items():
        if theirs in per_layer:
            facts[ours] = None
    if facts["intermediate_size"] is None and "intermediate_size" not in per_layer:
        facts["intermediate_size"] = mlp_width(language_model(model), facts["hidden_size"])
    attention_free = not any("Attention" in type(module).__name__ for module in language_model(model).modules())
    if attention_free and _attribute(text, "num_attention_heads") is None:
        facts["num_attention_heads"] = None  # Mamba-2, xLSTM: their num_heads are not attention heads
    hidden, heads = facts["hidden_size"], facts["num_attention_heads"]
    if facts["head_dim"] is None and "head_dim" not in per_layer and type(hidden) is int and type(heads) is int and heads > 0:
        facts["head_dim"] = hidden // heads
    known_kv = facts["num_attention_heads"] is not None and "num_key_value_heads" not in per_layer
    facts["num_key_value_heads"] = _kv_heads(model, text) if known_kv else None
    facts["tie_word_embeddings"] = lm_head_tied(model)
    return facts


_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "int32": "I32", "bool": "BOOL", "uint8": "U8", "int8": "I8"}


def write_sparse_safetensors(path: Path, shapes: dict[str, tuple[tuple[int, ...], str, int]]) -> None:
    """A safetensors file with this header (name -> (shape, dtype, element bytes)) and a hole for the data."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (shape, dtype, size) in sorted(shapes.items()):
        count = 1
        for dim in shape:
            count *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + count * size]}
        offset += count * size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)


def saved_tensors(model: Any) -> dict[str, tuple[tuple[int, ...], str, int]]:
    """name -> (shape, safetensors dtype, element bytes) of what `save_pretrained` would write for `model`."""
    saved, _ = saved_state(model)
    return {
        name: (tuple(tensor.shape), _DTYPES[str(tensor.dtype).removeprefix("torch.")], tensor.element_size())
        for name, tensor in saved.items()
    }


def build(model_type: str, entry: dict[str, Any], table: dict[str, Any], out_dir: Path) -> Built:
    """Build `model_type`'s tiny model on the meta device and save its folder under `out_dir` (see the module docstring)."""
    built = Built(model_type)
    try:
        model, config, head = build_meta_model(model_type, entry, table)
        built.truth = truth_of(model)
        built.parameters = sum(p.numel() for p in model.parameters())
        built.model_facts = model_facts(model, head)
        shapes = saved_tensors(model)
    except Exception as exc:  # noqa: BLE001 - transformers' own failure is the family's exclusion reason
        built.excluded = str(exc)
        return built
    folder = out_dir / model_type
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(config.to_json_string(use_diff=True), encoding="utf-8")
    write_sparse_safetensors(folder / "model.safetensors", shapes)
    built.head, built.folder = head, folder
    return built

"""What each family's model holds that its config does not say: built by transformers on the meta device.

Part of the family table's generation (`python -m conformance.families --write`); imports torch and
transformers, so only that command and the tests load it. For each family with a head, the family's default
config is shrunk (every layer count to `SHRUNK_LAYERS`; a family whose config rejects that is built at its
default depth) and the head's model class is built on the meta device (shapes only, no memory, no
initialisation). From the model the table records, under the entry's `built`:

- `saved_buffers`: the tensor keys (`formats.tensor_names.tensor_key`) of persistent buffers that `save_pretrained`
  writes (quantization scales, codebooks, router biases): tensors a checkpoint holds that
  `model.parameters()` does not.
- `buffer_named_parameters`: keys of parameters whose names the cross-family buffer list
  (`formats.tensor_names.is_buffer`) takes for buffers (a router's `e_score_correction_bias` that this family
  keeps as an `nn.Parameter`).
- `mlp_width_key` / `mlp_width_multiple`: for a family whose config gives no dense feed-forward width,
  the config key that holds the first feed-forward projection's width (a mixture of experts'
  `moe_intermediate_size` or `shared_expert_intermediate_size`), else that width over the hidden size
  (BLOOM, XLM, OpenAI GPT: the modeling code fixes it at 4).
- `lm_head_tied`: whether the built model's LM head is its input embedding (`lm_head_tied`), with the
  family's default config: where the config-derived tie rule says otherwise, the head class decides (LUKE
  ties only its entity head, PI0 has no LM head, a Vision-Encoder-Decoder's BERT decoder ties by its own config).
- `head`, `head_kind`: the head class built and its kind.

A key that names both a buffer and a parameter of the same model is recorded in neither list: the name
alone could not tell them apart. The family property test (`tests/test_families_property.py`) builds the
same models and asserts the table's `built` entries equal what it built, so the drift test only has to
compare the config-derived part.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from .formats.tensor_names import is_buffer, tensor_key

HEAD_ORDER = ("causal-lm", "image-text-to-text", "seq2seq-lm", "masked-lm")
LAYER_COUNT_KEYS = (
    "num_hidden_layers", "n_layer", "num_layers", "n_layers", "num_decoder_layers", "encoder_layers", "decoder_layers",
    "num_encoder_layers",
)
SHRUNK_LAYERS = 2
# Feed-forward input projections by their names across families (GPT-2's c_fc, BLOOM's dense_h_to_4h, T5's wi, ...).
MLP_IN = re.compile(r"(\.|^)(c_fc|fc1|fc_in|dense_h_to_4h|up_proj|wi|wi_0|w1|lin1|intermediate\.dense|mlp\.fc1|ffn\.fc1)\.weight$")
# The config attributes that give a feed-forward width (transformers' name, then the cross-family ones).
_WIDTH_ATTRIBUTES = ("intermediate_size", "n_inner", "d_ff", "ffn_dim", "ffn_hidden_size", "decoder_ffn_dim", "hidden_dim",
                     "expansion_ratio", "intermediate_multiple_size")


def _shrunk(config_class: Any, defaults: dict[str, Any], sub_configs: dict[str, str], families: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {k: SHRUNK_LAYERS for k in LAYER_COUNT_KEYS if type(defaults.get(k)) is int and defaults[k] > SHRUNK_LAYERS}
    for key, sub_type in sub_configs.items():
        sub_defaults = families.get(sub_type, {}).get("defaults", {})
        shrunk = {k: SHRUNK_LAYERS for k in LAYER_COUNT_KEYS if type(sub_defaults.get(k)) is int and sub_defaults[k] > SHRUNK_LAYERS}
        if shrunk:
            kwargs[key] = {"model_type": sub_type, **shrunk}
    return config_class(**kwargs)


def heads_in_build_order(entry: dict[str, Any]) -> list[str]:
    """The family's heads in the order a build tries them (a composite's image-text-to-text head first)."""
    heads = [h for h in HEAD_ORDER if h in entry["heads"]]
    if entry["sub_configs"] and "image-text-to-text" in heads:
        heads.remove("image-text-to-text")
        heads.insert(0, "image-text-to-text")
    return heads


def build_meta_model(model_type: str, entry: dict[str, Any], families: dict[str, Any]) -> tuple[Any, Any, str]:
    """(model, config, head) of `model_type` built on the meta device; RuntimeError with transformers' last reason when none builds."""
    import torch
    import transformers
    from transformers.initialization import no_init_weights
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    reasons = []
    for head in heads_in_build_order(entry):
        for shrink in (True, False):
            try:
                config_class = CONFIG_MAPPING[model_type]
                config = _shrunk(config_class, entry["defaults"], entry["sub_configs"], families) if shrink else config_class()
                with warnings.catch_warnings(), torch.device("meta"), no_init_weights():
                    warnings.simplefilter("ignore")
                    model = getattr(transformers, entry["heads"][head])(config)
                model.tie_weights()  # no_init_weights skips initialisation and the tie that comes with it
                return model, config, head
            except Exception as exc:  # noqa: BLE001 - transformers' own failure is the family's exclusion reason
                reasons.append(f"{entry['heads'][head]}{' (2 layers)' if shrink else ''}: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}")
    raise RuntimeError("; ".join(reasons[-1:]) or "no head")


def saved_state(model: Any) -> tuple[dict[str, Any], set[str]]:
    """(name -> tensor of what `save_pretrained` writes for `model`, the saved names that are buffers).

    Tied weights are removed and transformers' weight conversions reverted as `save_pretrained` does; a
    conversion may rename every tensor on saving (DeepSeek-V4, Inkling 2), so the buffers' saved names are
    found by reverting the persistent buffers alone.
    """
    from transformers.core_model_loading import revert_weight_conversion
    from transformers.modeling_utils import remove_tied_weights_from_state_dict

    state = remove_tied_weights_from_state_dict(model.state_dict(), model)
    buffer_names = {name for name, _ in model.named_buffers(remove_duplicate=False)}
    buffers = revert_weight_conversion(model, {name: tensor for name, tensor in state.items() if name in buffer_names})
    saved = dict(revert_weight_conversion(model, state))
    return saved, {name for name in buffers if name in saved}


def language_model(model: Any) -> Any:
    """The text decoder of a composite model (`get_decoder()`), else the model itself."""
    try:
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    except Exception:  # noqa: BLE001 - a model without one
        decoder = None
    return decoder if decoder is not None else model


def mlp_width(model: Any, hidden: Any) -> Any:
    """The first feed-forward input projection's width (the dimension that is not the hidden size), or None."""
    for name, parameter in model.named_parameters():
        if parameter.dim() == 2 and MLP_IN.search(name) and hidden in tuple(parameter.shape):
            rows, columns = tuple(parameter.shape)
            return columns if rows == hidden else rows
    return None


def lm_head_tied(model: Any) -> bool:
    """Whether the model's LM head weight is its input embedding's (or, a composite's, its text decoder's).

    The head is the model's output embedding, else its text decoder's (Blip keeps it in the text decoder);
    a model without one (PI0's action head) has no tied LM head.
    """
    decoder = language_model(model)
    output = model.get_output_embeddings()
    if output is None and decoder is not model and hasattr(decoder, "get_output_embeddings"):
        output = decoder.get_output_embeddings()
    embeddings = [model.get_input_embeddings()]
    if decoder is not model and hasattr(decoder, "get_input_embeddings"):
        try:
            embeddings.append(decoder.get_input_embeddings())
        except Exception:  # noqa: BLE001 - a decoder without one
            pass
    weight = getattr(output, "weight", None)
    return weight is not None and any(getattr(e, "weight", 0) is weight for e in embeddings if e is not None)


def _config_attribute(config: Any, name: str) -> Any:
    try:
        return getattr(config, name, None)
    except Exception:  # noqa: BLE001 - a per-layer attribute read globally (Gemma 4) is not one fact
        return None


def _first_mlp_name(model: Any, hidden: int) -> str:
    for name, parameter in model.named_parameters():
        if parameter.dim() == 2 and MLP_IN.search(name) and hidden in tuple(parameter.shape):
            return str(name)
    return ""


def _mlp_width_source(model: Any) -> dict[str, Any]:
    """Where the first feed-forward width comes from when the config gives no dense width (see the module docstring).

    `mlp_width_key`: the one config key whose value is the width and whose name says feed-forward
    (`intermediate` or `ffn`: Qwen3.5-MoE's `moe_intermediate_size`); where two keys hold the same value,
    the one whose other words name the projection's module (`shared_expert`). Else `mlp_width_multiple`:
    the width over the hidden size (BLOOM: 4).
    """
    config = model.config
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    if any(_config_attribute(text, name) is not None for name in _WIDTH_ATTRIBUTES):
        return {}  # the config gives the width (or its multiple): nothing to record
    hidden = _config_attribute(text, "hidden_size")
    width = mlp_width(language_model(model), hidden) if type(hidden) is int and hidden > 0 else None
    if type(width) is not int or type(hidden) is not int:
        return {}
    keys = sorted(k for k, v in text.to_dict().items() if type(v) is int and v == width and ("intermediate" in k or "ffn" in k))
    if len(keys) > 1:
        module = _first_mlp_name(language_model(model), hidden)
        keys = [k for k in keys if "_".join(w for w in k.split("_") if w not in ("intermediate", "size", "ffn", "dim")) in module] or keys
    if len(keys) == 1:
        return {"mlp_width_key": keys[0]}
    return {"mlp_width_multiple": width // hidden} if width % hidden == 0 else {}


def model_facts(model: Any, head: str) -> dict[str, Any]:
    """The table's `built` entry for one built model (see the module docstring)."""
    saved, buffer_names = saved_state(model)
    # Integer buffers too (DeepSeek-V4's token-to-expert table): a 2-D integer tensor would otherwise read as an unfolded quantized weight.
    buffers = {tensor_key(name) for name in buffer_names}
    parameters = {tensor_key(name) for name in saved if name not in buffer_names}
    buffer_named = {tensor_key(name) for name in saved if name not in buffer_names and is_buffer(name)}
    return {
        "head": model.__class__.__name__,
        "head_kind": head,
        "saved_buffers": sorted(buffers - parameters),
        "buffer_named_parameters": sorted(buffer_named),
        "mlp_width_multiple": None,
        "mlp_width_key": None,
        **_mlp_width_source(model),
        "lm_head_tied": lm_head_tied(model),
    }


def built_facts(families: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """model_type -> `model_facts` for every family with a head that transformers builds (the others left out)."""
    facts: dict[str, dict[str, Any]] = {}
    for model_type, entry in sorted(families.items()):
        if not entry.get("heads"):
            continue
        try:
            model, _, head = build_meta_model(model_type, entry, families)
            facts[model_type] = model_facts(model, head)
        except Exception:  # noqa: BLE001 - a family transformers cannot build has no built facts (the property test lists it)
            continue
    return facts

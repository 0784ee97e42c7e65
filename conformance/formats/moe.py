"""Active parameters of a mixture-of-experts model: the parameters one token is computed with.

A token passes every layer's attention, norms, router and shared experts, but only the top-k of each MoE
layer's E routed experts. With the routed experts of one layer equal in size (R_l elements for the E of
them together), the parameters used per token are

    active = total - sum over MoE layers l of R_l · (E - k) / E

(the "activated parameters" of Mixtral, Jiang et al. 2024, arXiv:2401.04088 §2.1, 12.9B of 46.7B for
E = 8, k = 2; of DeepSeek-V2/V3, arXiv:2405.04434 §1 and arXiv:2412.19437 §1; of the Qwen MoE model cards).
Embeddings and the LM head count as they do in `parameters`; a dense model's active parameters are its total.

Routed experts are found by tensor name: `<layer>.experts.<i>.<...>` (one tensor per expert, as
transformers saves Mixtral's `block_sparse_moe.experts.3.w1.weight`, Qwen-MoE's and DeepSeek's
`mlp.experts.3.gate_proj.weight`), `<layer>.experts.<name>` stacked with the experts first (fused
`experts.gate_up_proj` [E, 2I, h]), or GGUF's `blk.<n>.ffn_{gate,up,down}_exps.weight` (an expert
dimension of E, first or last). Shared experts (`shared_expert.`, `shared_experts.`) are always active.
E and k come from the config (`num_local_experts` | `num_experts` | `n_routed_experts`;
`num_experts_per_tok` | `moe_topk`), and where the config says which layers are MoE layers (Qwen-MoE's
`decoder_sparse_step` and `mlp_only_layers`; DeepSeek's `first_k_dense_replace` and `moe_layer_freq`) the
layers holding experts must be those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .tensors import TensorInfo

PER_EXPERT = re.compile(r"^(.*?)(?:^|\.)experts\.(\d+)\.")
FUSED_EXPERTS = re.compile(r"^(.*?)(?:^|\.)experts\.(?!\d+\.)[^.]+(?:\.weight|\.bias)?$")
GGUF_EXPERTS = re.compile(r"^(blk\.\d+)\.ffn_[a-z_]+_exps\.(?:weight|bias)$")
LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks?|blk)\.(\d+)(?:\.|$)")
EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", "expert_count")
TOP_K_KEYS = ("num_experts_per_tok", "moe_topk", "num_selected_experts", "expert_used_count", "moe_k")
MAX_LAYERS = 100_000  # a config's layer count beyond this is hostile


@dataclass(frozen=True)
class ActiveParameters:
    """Routing facts and the active parameter count (elements) of a model; a dense model has no MoE layers."""

    active_parameters: int
    moe_layers: int = 0
    routed_experts: int | None = None  # E, per MoE layer
    experts_per_token: int | None = None  # k
    routed_parameters: int = 0  # every routed expert of every MoE layer, in elements

    def to_dict(self) -> dict[str, Any]:
        """The facts as the result document's evidence holds them."""
        return {
            "active_parameters": self.active_parameters,
            "moe_layers": self.moe_layers,
            "routed_experts": self.routed_experts,
            "experts_per_token": self.experts_per_token,
            "routed_parameters": self.routed_parameters,
        }


def _model_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """The config's own fields, or its `text_config` (multimodal wrappers keep the language model's there)."""
    if not isinstance(config, dict):
        return {}
    if not any(key in config for key in EXPERT_COUNT_KEYS) and isinstance(config.get("text_config"), dict):
        return config["text_config"]
    return config


def _config_int(config: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"config {key} is not a non-negative integer: {value!r}")
        return value
    return None


def expected_moe_layers(config: dict[str, Any]) -> set[int] | None:
    """The layer indices the config makes MoE layers (Qwen-MoE, DeepSeek rules), or None when it does not say."""
    layers = config.get("num_hidden_layers")
    if isinstance(layers, bool) or not isinstance(layers, int) or not 0 < layers <= MAX_LAYERS:
        return None
    if "decoder_sparse_step" in config or "mlp_only_layers" in config:  # Qwen2-MoE, Qwen3-MoE
        step = config.get("decoder_sparse_step", 1)
        dense = config.get("mlp_only_layers") or []
        if isinstance(step, bool) or not isinstance(step, int) or step < 1 or not isinstance(dense, list):
            raise ValueError(f"config decoder_sparse_step {step!r} or mlp_only_layers is malformed")
        dense_layers = {i for i in dense if isinstance(i, int)}  # a set: the list may be as long as config.json allows
        return {i for i in range(layers) if i not in dense_layers and (i + 1) % step == 0}
    if "first_k_dense_replace" in config:  # DeepSeek-V2, V3
        first, frequency = config.get("first_k_dense_replace"), config.get("moe_layer_freq", 1)
        if not isinstance(first, int) or not isinstance(frequency, int) or isinstance(first, bool) or isinstance(frequency, bool) or frequency < 1:
            raise ValueError("config first_k_dense_replace or moe_layer_freq is malformed")
        start, every = int(first), int(frequency)  # narrowed for the comprehension's scope
        return {i for i in range(layers) if i >= start and i % every == 0}
    return None


def _expert_groups(tensors: list[TensorInfo], experts: int | None) -> dict[str, dict[int, int]]:
    """Layer prefix -> expert index -> elements of that expert (-1: stacked tensors, all experts together)."""
    groups: dict[str, dict[int, int]] = {}
    for tensor in tensors:
        if "_exps." not in tensor.name and "experts." not in tensor.name:
            continue  # most names: no regular expression run
        match = PER_EXPERT.match(tensor.name)
        if match:
            layer = groups.setdefault(match.group(1), {})
            layer[int(match.group(2))] = layer.get(int(match.group(2)), 0) + tensor.elements
            continue
        match = FUSED_EXPERTS.match(tensor.name) or GGUF_EXPERTS.match(tensor.name)
        if match:
            if experts is None:
                raise ValueError(f"{tensor.name}: stacked expert tensor {list(tensor.shape)} but the config has no expert count ({' | '.join(EXPERT_COUNT_KEYS)})")
            if not tensor.shape or experts not in (tensor.shape[0], tensor.shape[-1]):
                raise ValueError(f"{tensor.name}: stacked expert tensor {list(tensor.shape)} has no dimension of the config's {experts} experts")
            layer = groups.setdefault(match.group(1), {})
            layer[-1] = layer.get(-1, 0) + tensor.elements
    return groups


def _layer_index(prefix: str) -> int | None:
    match = LAYER_INDEX.search(prefix + ".")
    return int(match.group(1)) if match else None


def active_parameters(tensors: list[TensorInfo], config: dict[str, Any] | None, total: int) -> ActiveParameters:
    """The parameters used per token (see the module docstring) of `tensors`, the model's parameters as counted.

    `tensors` are the counted parameter tensors (logical shapes, each name once) and `total` their count.
    Raises ValueError when the config declares experts the tensors do not hold (or the reverse), top-k is
    missing or above E, a layer holds another number of experts than E or experts of unequal sizes, or the
    layers holding experts are not those the config makes MoE layers.
    """
    fields = _model_config(config)
    experts, top_k = _config_int(fields, EXPERT_COUNT_KEYS), _config_int(fields, TOP_K_KEYS)
    groups = _expert_groups(tensors, experts)
    if not groups:
        if experts and experts > 1 and top_k:
            raise ValueError(f"the config declares {experts} experts (top-{top_k}) but no tensor is an expert's (experts.<i>. names)")
        return ActiveParameters(active_parameters=total)
    if experts is None or top_k is None:
        raise ValueError("expert tensors are stored but the config has no expert count and experts per token (num_experts_per_tok)")
    if not 0 < top_k <= experts:
        raise ValueError(f"config experts per token {top_k} is not between 1 and the {experts} experts")
    routed = 0
    for prefix, sizes in sorted(groups.items()):
        if -1 in sizes:
            if len(sizes) > 1:
                raise ValueError(f"{prefix}: experts stored both stacked and one by one")
            routed += sizes[-1]
            continue
        if len(sizes) != experts or sorted(sizes) != list(range(experts)):  # the count first: E comes from an untrusted config
            raise ValueError(f"{prefix}: holds experts {len(sizes)} (indices up to {max(sizes)}), the config declares {experts}")
        if len(set(sizes.values())) != 1:
            raise ValueError(f"{prefix}: experts of different sizes ({min(sizes.values())} to {max(sizes.values())} elements)")
        routed += sum(sizes.values())
    expected = expected_moe_layers(fields)
    found = {_layer_index(prefix) for prefix in groups}
    if expected is not None and None not in found and found != expected:
        raise ValueError(f"experts are stored in layers {sorted(i for i in found if i is not None)}, the config makes {sorted(expected)} MoE layers")
    inactive = routed * (experts - top_k) // experts
    return ActiveParameters(total - inactive, len(groups), experts, top_k, routed)

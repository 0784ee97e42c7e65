"""FLOPs and bytes a decoder-only transformer needs per token, and the peaks of the devices it runs on.

Notation: L layers, h hidden size, H attention heads, K key/value heads (grouped-query attention; K = H
without it), d head dimension (config `head_dim`, else h / H), I intermediate size, V vocabulary,
B batch size, P prompt tokens, n new tokens, c the number of positions a token attends over (itself
included).

Matmul parameters (the weights that take part in a matrix multiply; an embedding lookup is not one):
    per layer   attention h·H·d (q) + 2·h·K·d (k, v) + H·d·h (o);  MLP 3·h·I gated (gate, up, down)
                or 2·h·I (GPT-2 style)
    N_body = L · (attention + MLP)      N_head = h · V (the LM head, counted even when tied)
    When the loaded model is at hand its counts replace these: the numel of every ≥2-D parameter
    of its language model (`language_model`: `get_decoder()`, so a multimodal model's vision tower and
    projector, which a text-only token never runs, are left out) except embeddings, plus the LM head's
    weight.
    For a multimodal config the architecture fields are the text config's (`probes.architecture`), its
    own head_dim included (Gemma 3: 32 where hidden / heads is 16).

FLOPs per token, at context c:           2·(N_body + N_head) + 4·L·c·H·d
    (a multiply-add is 2 FLOPs; attention scores QKᵀ and the weighted sum over V are 2·c·H·d each
    per layer; grouped-query attention shares K/V heads but every query head still does the work.)
Prefill FLOPs of a batch:                B · (2·N_body·P + 2·N_head + 4·L·H·d·P(P+1)/2)
    (causal: token t attends over t positions; generate computes logits for the last position
    only, `logits_to_keep=1`, so the head runs once per sequence.)
Decode bytes per generated token:        W / B + 2·L·c·K·d·b
    (the W weight bytes are read once per decode step and shared by the B sequences; each sequence
    reads its own K and V cache: 2 tensors × L layers × c positions × K heads × d × b bytes.)
    W is the bytes the loaded model holds its weights in (`decode_weight_bytes`): every parameter and
    buffer as stored in memory (a quantized model's packed integers, scales and zeros, not elements ×
    2 bytes), less the embedding tables (a lookup reads B rows), plus the LM head's (read even when tied).
    Without that figure (facts cached before it existed): N_matmul × the first parameter's element size.
    Averaged over the decode steps of one generation, c = P + n/2 (step s attends over P + s
    positions, s = 1 .. n-1), exact because the bytes are linear in c.
MFU = achieved FLOP/s ÷ peak FLOP/s;  MBU = achieved bytes/s ÷ peak memory bytes/s. Both are fractions.

Applies to decoder-only transformers (`not_applicable` says why not otherwise): an encoder-decoder model
(T5) runs an encoder over the prompt and a decoder with cross-attention, which these formulas do not count;
a model without attention heads (Mamba) has no attention FLOPs or KV cache.

Not modelled: mixture-of-experts routing (every expert is counted; `size.active_parameters` gives the
per-token share), sliding-window attention
(c is not capped), activations and logits traffic (small next to weights and KV cache).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from ..probe_registry import ProbeContext, probe

# Families whose MLP is up/down only; everything else is taken as gated (SwiGLU/GeGLU: gate, up, down).
NON_GATED_MLP_MODEL_TYPES = frozenset(
    {"gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt", "bloom", "falcon", "phi", "mpt", "codegen", "starcoder2"}
)


@dataclass(frozen=True)
class MatmulParameters:
    """Matmul weight counts (elements): the model body's and the LM head's."""

    body: int  # every matmul weight but the LM head
    head: int  # the LM head (h · V), tied or not

    @property
    def total(self) -> int:
        """Body and head together, in elements."""
        return self.body + self.head


def _required(arch: dict[str, Any], key: str) -> int:
    value = arch.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"architecture field {key} is missing or not a positive integer: {value!r}")
    return value


def head_dim(arch: dict[str, Any]) -> int:
    """The attention head width d: the explicit `head_dim`, else hidden_size // num_attention_heads.

    Raises ValueError when neither is given as a positive integer.
    """
    explicit = arch.get("head_dim")
    if isinstance(explicit, int) and not isinstance(explicit, bool) and explicit > 0:
        return explicit
    return _required(arch, "hidden_size") // _required(arch, "num_attention_heads")


def shape_matmul_parameters(arch: dict[str, Any]) -> MatmulParameters:
    """Matmul parameter counts from the architecture's shapes (see the module docstring)."""
    hidden, layers = _required(arch, "hidden_size"), _required(arch, "num_layers")
    heads, kv_heads = _required(arch, "num_attention_heads"), _required(arch, "num_key_value_heads")
    dim, intermediate = head_dim(arch), _required(arch, "intermediate_size")
    attention = hidden * heads * dim + 2 * hidden * kv_heads * dim + heads * dim * hidden
    # The MLP is the text model's: a composite (BLIP-2 over OPT) names its own type at the top level.
    text_type = arch.get("text_model_type") or arch.get("model_type")
    gated = arch.get("gated_mlp", not (isinstance(text_type, str) and text_type in NON_GATED_MLP_MODEL_TYPES))
    mlp = (3 if gated else 2) * hidden * intermediate
    return MatmulParameters(body=layers * (attention + mlp), head=hidden * _required(arch, "vocab_size"))


# The shapes the formulas read: one of them set per layer (Gemma 4's head_dim) leaves them without a value.
_ROOFLINE_FIELDS = ("num_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size")


def not_applicable(arch: dict[str, Any]) -> str | None:
    """Why the decoder-only roofline formulas do not describe this architecture, or None when they do.

    `arch` is the normalized architecture (`probes.architecture.normalize_architecture`).
    """
    model_type = arch.get("model_type") or "unknown"
    if arch.get("is_encoder_decoder") is True:
        return (
            f"the roofline formulas model a decoder-only transformer; this model (model_type {model_type}) is an "
            "encoder-decoder, whose encoder pass and cross-attention they do not count"
        )
    per_layer = [name for name in arch.get("per_layer_fields") or () if name in _ROOFLINE_FIELDS]
    if per_layer:
        return (
            f"the roofline formulas take one value of each shape for every layer; this model (model_type {model_type}) "
            f"sets {', '.join(per_layer)} per layer (per_layer_config), so the formula does not apply"
        )
    heads = arch.get("num_attention_heads")
    if type(heads) is not int or heads <= 0:
        return (
            f"the roofline counts a transformer's attention FLOPs and KV-cache bytes; this model (model_type {model_type}) "
            "declares no attention heads, so the formula does not apply"
        )
    return None


def language_model(model: Any) -> Any:
    """The module a text-only token runs through: `model.get_decoder()` when it gives one, else `model`.

    transformers 5 gives every causal LM's body (LlamaForCausalLM: `model.model`) and a multimodal model's
    text decoder (Gemma3ForConditionalGeneration, LlavaForConditionalGeneration: `model.model.language_model`)
    through `get_decoder()`; the vision tower and projector are left out. A model that has none (or raises)
    is taken whole.
    """
    import torch

    try:
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    except Exception:  # noqa: BLE001 - a model without a decoder: the whole model is the body
        decoder = None
    return decoder if isinstance(decoder, torch.nn.Module) else model


def model_matmul_parameters(model: Any) -> MatmulParameters:
    """Matmul parameter counts of a loaded torch model: its language model's ≥2-D weights except embeddings, plus the LM head."""
    import torch

    body_module = language_model(model)
    embedding_ids = {id(module.weight) for module in model.modules() if isinstance(module, torch.nn.Embedding)}
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = getattr(output, "weight", None)
    head = int(head_weight.numel()) if head_weight is not None else 0
    skip = embedding_ids | ({id(head_weight)} if head_weight is not None else set())
    # parameters() yields a tied weight once; the head is added back separately either way.
    body = sum(int(p.numel()) for p in body_module.parameters() if p.dim() >= 2 and id(p) not in skip)
    return MatmulParameters(body=body, head=head)


def decode_weight_bytes(model: Any) -> int:
    """W: bytes of the weights one decode step reads, as the loaded torch model holds them (see the module docstring).

    Every parameter and buffer of the language model (`language_model`: a multimodal model's vision tower
    is not read to decode text) once (tied weights, shared buffers), at its in-memory element size — packed
    quantized weights (GPTQ's int32 `qweight` buffers, bitsandbytes' uint8 `Params4bit`, FP8 weights) with
    their scales and zeros — less the input embedding tables, plus the LM head's weight.
    """
    import torch

    body_module = language_model(model)
    seen: set[int] = set()
    total = 0
    for tensor in [*body_module.parameters(), *body_module.buffers()]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += int(tensor.numel()) * int(tensor.element_size())
    subtracted: set[int] = set()
    for module in body_module.modules():
        if isinstance(module, torch.nn.Embedding) and id(module.weight) in seen and id(module.weight) not in subtracted:
            subtracted.add(id(module.weight))
            total -= int(module.weight.numel()) * int(module.weight.element_size())
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = getattr(output, "weight", None)
    # The head is read in full every step: add it back when it was subtracted as a tied embedding, and add
    # it when it lives outside the language model (an untied lm_head sits on the top-level model).
    if head is not None and (id(head) in subtracted or id(head) not in seen):
        total += int(head.numel()) * int(head.element_size())
    return total


def _attention_flops_per_position(arch: dict[str, Any]) -> int:
    """FLOPs of attention per token per attended position: 4·L·H·d."""
    return 4 * _required(arch, "num_layers") * _required(arch, "num_attention_heads") * head_dim(arch)


def flops_per_token(
    arch: dict[str, Any],
    context_tokens: float,
    *,
    parameters: MatmulParameters | None = None,
    include_head: bool = True,
) -> float:
    """2·N_matmul + 4·L·c·H·d: the forward FLOPs of one token attending over `context_tokens` positions."""
    counts = parameters or shape_matmul_parameters(arch)
    matmul = counts.total if include_head else counts.body
    return 2.0 * matmul + _attention_flops_per_position(arch) * float(context_tokens)


def prefill_flops(arch: dict[str, Any], batch_size: int, prompt_tokens: int, *, parameters: MatmulParameters | None = None) -> float:
    """B·(2·N_body·P + 2·N_head + 4·L·H·d·P(P+1)/2): the useful FLOPs of one prefill (head on the last position)."""
    counts = parameters or shape_matmul_parameters(arch)
    attention = _attention_flops_per_position(arch) * prompt_tokens * (prompt_tokens + 1) / 2
    return float(batch_size) * (2.0 * counts.body * prompt_tokens + 2.0 * counts.head + attention)


def kv_cache_bytes_per_position(arch: dict[str, Any], kv_dtype_bytes: int) -> int:
    """2·L·K·d·b: the K and V cache bytes of one position of one sequence (grouped-query: K heads)."""
    return 2 * _required(arch, "num_layers") * _required(arch, "num_key_value_heads") * head_dim(arch) * kv_dtype_bytes


def decode_bytes_per_token(arch: dict[str, Any], weight_bytes: float, batch_size: int, context_tokens: float, kv_dtype_bytes: int) -> float:
    """W/B + 2·L·c·K·d·b: bytes read from device memory per generated token in a decode step."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    return float(weight_bytes) / batch_size + kv_cache_bytes_per_position(arch, kv_dtype_bytes) * float(context_tokens)


def mean_decode_context(prompt_tokens: int, new_tokens: int) -> float:
    """P + n/2: the mean number of attended positions over the n - 1 decode steps of one generation."""
    return prompt_tokens + new_tokens / 2.0


def mfu(flops: float, seconds: float, peak_flops_per_second: float) -> float:
    """Model FLOPs utilisation: (flops / seconds) / peak, a fraction."""
    if seconds <= 0 or peak_flops_per_second <= 0:
        raise ValueError("mfu needs positive seconds and peak")
    return flops / seconds / peak_flops_per_second


def mbu(bytes_moved: float, seconds: float, peak_bytes_per_second: float) -> float:
    """Memory bandwidth utilisation: (bytes / seconds) / peak, a fraction."""
    if seconds <= 0 or peak_bytes_per_second <= 0:
        raise ValueError("mbu needs positive seconds and peak")
    return bytes_moved / seconds / peak_bytes_per_second


# --- device table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevicePeak:
    """One device's dense peaks: FLOP/s per dtype and memory bytes/s, the regexes its names match, and the source."""

    name: str
    patterns: tuple[str, ...]
    peak_flops_per_second: dict[str, float]  # torch dtype name (and "tf32") -> dense FLOP/s
    memory_bytes_per_second: float
    source: str
    note: str = ""

    def flops_for(self, dtype: str) -> float | None:
        """Dense peak FLOP/s for a torch dtype name ("bfloat16", "float32", "tf32"), or None when not in the table."""
        return self.peak_flops_per_second.get(dtype)

    def matches(self, device_name: str) -> bool:
        """Whether any of `patterns` is found in `device_name` (a regex search, case-insensitive)."""
        return any(re.search(pattern, device_name, re.IGNORECASE) for pattern in self.patterns)

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain data for evidence: name, peaks (FLOP/s per dtype, bytes/s), source and note (not the patterns)."""
        return {
            "name": self.name,
            "peak_flops_per_second": dict(self.peak_flops_per_second),
            "memory_bytes_per_second": self.memory_bytes_per_second,
            "source": self.source,
            "note": self.note,
        }


@functools.lru_cache(maxsize=1)
def device_table() -> tuple[DevicePeak, ...]:
    """The shipped table, specs/devices.yaml, in match order."""
    import yaml

    from ..paths import specs_dir

    data = yaml.safe_load((specs_dir() / "devices.yaml").read_text(encoding="utf-8"))
    return tuple(
        DevicePeak(
            name=str(entry["name"]),
            patterns=tuple(str(pattern) for pattern in entry["patterns"]),
            peak_flops_per_second={str(k): float(v) * 1e12 for k, v in entry["peak_tflop_per_second"].items()},
            memory_bytes_per_second=float(entry["memory_gb_per_second"]) * 1e9,
            source=str(entry["source"]),
            note=str(entry.get("note", "")),
        )
        for entry in data["devices"]
    )


def lookup_device(device_name: str | None, table: tuple[DevicePeak, ...] | None = None) -> DevicePeak | None:
    """The first entry of `table` (default: the shipped one) whose pattern is found in the device name.

    `device_name` is what torch.cuda.get_device_name reports; None or "" finds nothing.
    """
    if not device_name:
        return None
    return next((device for device in (device_table() if table is None else table) if device.matches(device_name)), None)


@dataclass(frozen=True)
class DeviceTable:
    """The device peak table a roofline rule is judged with (the `devices` probe's evidence)."""

    devices: tuple[DevicePeak, ...]


@probe("devices", evidence=DeviceTable)
def devices_probe(context: ProbeContext) -> DeviceTable:
    """The shipped device table, specs/devices.yaml (read once per process)."""
    return DeviceTable(device_table())

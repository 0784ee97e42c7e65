"""Tiny GGUF files written offline from random transformers models, as llama.cpp's converter names and lays them out.

`build_gguf` makes a tiny Llama (or Qwen2, whose attention has biases) with transformers, writes it with
gguf-py's `GGUFWriter` under llama.cpp's tensor names (`token_embd`, `blk.N.attn_q`, ...; a Llama's Q and K
rows permuted as `convert_hf_to_gguf.py`'s LlamaModel does, which transformers' loader reverses, so an F32
file loads back to logits equal to the source model's), 2-D weights optionally block-quantized, and returns the file with transformers' own
parameter count of the source model (`sum(p.numel())`), the figure every GGUF count is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# transformers' Llama/Qwen2 parameter name suffix -> llama.cpp's tensor name suffix, per layer.
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"


@dataclass(frozen=True)
class TinyGGUF:
    """A written tiny GGUF file and transformers' facts of the model it was written from."""

    path: Path
    parameters: int  # sum(p.numel()) of the source model
    config: dict[str, Any]  # the source model's config.to_dict()
    model: Any  # the source model (transformers, eval mode), to compare a loaded file with


def _permute(weights: Any, heads: int) -> Any:
    """llama.cpp's Q/K row order (convert_hf_to_gguf.py LlamaModel.permute)."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _byte_characters() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values (openai/gpt-2 encoder.py `bytes_to_unicode`)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = 0
    characters = {}
    for byte in range(256):
        if byte in printable:
            characters[byte] = chr(byte)
        else:
            characters[byte] = chr(256 + shifted)
            shifted += 1
    return [characters[byte] for byte in range(256)]


def _tokens(vocab_size: int) -> list[str]:
    """Special tokens, then GPT-2's 256 byte characters, then fillers up to `vocab_size`."""
    tokens = [*SPECIAL_TOKENS, *_byte_characters()]
    tokens += [f"tok{index}" for index in range(vocab_size - len(tokens))]
    return tokens[:vocab_size]


def build_gguf(
    out_dir: Path,
    *,
    architecture: str = "llama",
    tie_word_embeddings: bool = True,
    quantization: str | None = "Q8_0",
    license_id: str | None = "apache-2.0",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    vocab_size: int = 320,
    context_length: int = 256,
    seed: int = 0,
    chat_template: str = CHAT_TEMPLATE,
) -> TinyGGUF:
    """Write `out_dir/model.gguf` from a random tiny `architecture` ("llama" or "qwen2") model.

    `quantization` names the GGML type of 2-D weights whose rows are whole blocks (None: F32 throughout);
    norms and biases stay F32, as llama.cpp keeps them. Sizes are element counts; `chat_template` is written
    as `tokenizer.chat_template` as given (a hostile one for the chat rules' tests). Needs torch, transformers
    and gguf.
    """
    import gguf
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    config_class, model_class = classes[architecture]
    config = config_class(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads, intermediate_size=intermediate_size, vocab_size=vocab_size,
        max_position_embeddings=context_length, tie_word_embeddings=tie_word_embeddings,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, rope_theta=10000.0, rms_norm_eps=1e-6,
    )
    torch.manual_seed(seed)
    model = model_class(config).eval()
    parameters = sum(p.numel() for p in model.parameters())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.gguf"
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_name(f"tiny {architecture}")
    if license_id is not None:
        writer.add_license(license_id)
    writer.add_block_count(num_layers)
    writer.add_context_length(context_length)
    writer.add_embedding_length(hidden_size)
    writer.add_feed_forward_length(intermediate_size)
    writer.add_head_count(num_heads)
    writer.add_head_count_kv(num_kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(_tokens(vocab_size))
    writer.add_token_types([3] * len(SPECIAL_TOKENS) + [1] * (vocab_size - len(SPECIAL_TOKENS)))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_chat_template(chat_template)
    quant_type = getattr(gguf.GGMLQuantizationType, quantization) if quantization else None
    block = gguf.GGML_QUANT_SIZES[quant_type][0] if quant_type is not None else 1
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and tie_word_embeddings:
            continue  # llama.cpp stores a tied output matrix once
        data = tensor.detach().float().numpy()
        if name == "model.embed_tokens.weight":
            target = "token_embd.weight"
        elif name == "model.norm.weight":
            target = "output_norm.weight"
        elif name == "lm_head.weight":
            target = "output.weight"
        else:
            _, _, index, rest = name.split(".", 3)
            target = f"blk.{index}.{LAYER_NAMES[rest]}"
            if architecture == "llama" and rest == "self_attn.q_proj.weight":  # Qwen2 is stored unpermuted
                data = _permute(data, num_heads)
            elif architecture == "llama" and rest == "self_attn.k_proj.weight":
                data = _permute(data, num_kv_heads)
        if quant_type is not None and data.ndim == 2 and data.shape[1] % block == 0:
            writer.add_tensor(target, gguf.quants.quantize(data, quant_type), raw_dtype=quant_type)
        else:
            writer.add_tensor(target, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return TinyGGUF(path, parameters, config.to_dict(), model)

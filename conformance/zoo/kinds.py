"""Tiny random-init models of the kinds beside decoder-only LMs: encoder-decoder and image-text-to-text.

Each builder saves config.json, safetensors weights and a byte-level BPE tokenizer (`train_tokenizer`)
whose vocabulary matches the text embedding rows exactly, in Hugging Face layout, with a fixed seed
(byte-identical weights for the same seed). No card is written: the kind tests read the runtime rules.

- `build_t5`: T5ForConditionalGeneration (encoder-decoder; decoder_start_token_id is the pad id, as
  T5's own checkpoints set it).
- `build_llava`: LlavaForConditionalGeneration, a tiny CLIP vision tower over a tiny Llama text model;
  the image placeholder token is the vocabulary's last (reserved) token.
- `build_gemma3_multimodal`: Gemma3ForConditionalGeneration, a tiny SigLIP tower over a tiny Gemma 3
  text model whose head_dim (32) is not hidden_size / heads (16).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .models import _save as _save_model
from .models import _tokenizer_ids


def _bpe_ids(out_dir: Path, vocab_size: int, context_length: int) -> dict[str, int]:
    """Train the BPE tokenizer into `out_dir` (`models._tokenizer_ids`); the ids of <s>, </s>, <pad> and the last reserved token."""
    trained = _tokenizer_ids(out_dir, "bpe", vocab_size, context_length)
    ids: dict[str, int] = {}
    for role in ("bos", "eos", "pad"):
        token_id = trained[f"{role}_token_id"]
        if token_id is None:
            raise ValueError(f"the trained tokenizer has no {role} token")
        ids[role] = token_id
    ids["last"] = vocab_size - 1  # a reserved special token (the trainer fills the vocabulary up with them)
    return ids


def _save(model: Any, out_dir: Path) -> Path:
    return _save_model(model, out_dir, card=False, claims=None)


def build_t5(
    out_dir: Path,
    *,
    d_model: int = 64,
    d_ff: int = 128,
    d_kv: int = 16,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 512,
    context_length: int = 256,
    seed: int = 0,
) -> Path:
    """Save a tiny T5ForConditionalGeneration and its BPE tokenizer into `out_dir`; returns `out_dir`.

    Sizes: d_model, d_ff and d_kv in elements, layers and heads as counts (encoder and decoder alike),
    vocab_size in tokens; context_length is the tokenizer's model_max_length (T5 has relative positions).
    """
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    out_dir = Path(out_dir)
    ids = _bpe_ids(out_dir, vocab_size, context_length)
    config = T5Config(
        vocab_size=vocab_size, d_model=d_model, d_ff=d_ff, d_kv=d_kv, num_layers=num_layers,
        num_decoder_layers=num_layers, num_heads=num_heads, pad_token_id=ids["pad"], eos_token_id=ids["eos"],
    )
    # Set after construction: T5Config's signature (as typed) does not list the generic token ids.
    config.decoder_start_token_id, config.bos_token_id = ids["pad"], ids["bos"]
    torch.manual_seed(seed)
    return _save(T5ForConditionalGeneration(config), out_dir)


def _tiny_llama_text(vocab_size: int, context_length: int, ids: dict[str, int]) -> dict[str, Any]:
    return {
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": vocab_size,
        "max_position_embeddings": context_length, "bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
        "pad_token_id": ids["pad"], "tie_word_embeddings": False,
    }


def build_llava(out_dir: Path, *, vocab_size: int = 512, context_length: int = 256, seed: int = 0) -> Path:
    """Save a tiny LlavaForConditionalGeneration (CLIP tower, Llama text model) and its tokenizer; returns `out_dir`.

    The text model: hidden 64, 2 layers, 4 heads (2 KV), intermediate 128; the vision tower: hidden 32,
    2 layers, 4 heads, 32x32 images in 8x8 patches. The image token is the last vocabulary id.
    """
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    out_dir = Path(out_dir)
    ids = _bpe_ids(out_dir, vocab_size, context_length)
    vision = {
        "model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "image_size": 32, "patch_size": 8, "projection_dim": 32,
    }
    config = LlavaConfig(
        vision_config=vision, text_config=_tiny_llama_text(vocab_size, context_length, ids),
        image_token_index=ids["last"], vision_feature_layer=-1, projector_hidden_act="gelu",
    )
    config.eos_token_id, config.pad_token_id, config.bos_token_id = ids["eos"], ids["pad"], ids["bos"]
    torch.manual_seed(seed)
    return _save(LlavaForConditionalGeneration(config), out_dir)


def build_gemma3_multimodal(out_dir: Path, *, vocab_size: int = 512, context_length: int = 256, seed: int = 0) -> Path:
    """Save a tiny Gemma3ForConditionalGeneration (SigLIP tower, Gemma 3 text model) and its tokenizer; returns `out_dir`.

    The text model: hidden 64, 2 layers, 4 heads (1 KV) of head_dim 32 (not 64 / 4 = 16), intermediate
    128; the vision tower: hidden 32, 2 layers, 32x32 images in 8x8 patches pooled to 4 tokens per image.
    The image, begin-of-image and end-of-image tokens are the last three vocabulary ids.
    """
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    out_dir = Path(out_dir)
    ids = _bpe_ids(out_dir, vocab_size, context_length)
    text = {
        "model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32, "vocab_size": vocab_size,
        "max_position_embeddings": context_length, "sliding_window": 32, "bos_token_id": ids["bos"],
        "eos_token_id": ids["eos"], "pad_token_id": ids["pad"],
    }
    vision = {
        "model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "image_size": 32, "patch_size": 8,
    }
    config = Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=ids["last"],
        boi_token_index=ids["last"] - 1, eoi_token_index=ids["last"] - 2,
    )
    config.eos_token_id, config.pad_token_id, config.bos_token_id = ids["eos"], ids["pad"], ids["bos"]
    torch.manual_seed(seed)
    return _save(Gemma3ForConditionalGeneration(config), out_dir)

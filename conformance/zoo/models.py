"""Tiny random-init models (seeded, deterministic) saved in Hugging Face layout, with tokenizer and card.

Every builder writes config.json, safetensors weights, a tokenizer trained by `train_tokenizer` whose
vocabulary matches the model's embedding rows exactly, and (unless ``card=False``) a README.md whose
claims are true for the saved model. Pass ``claims`` to make some of them wrong on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..digests import sha256_stream
from .tokenizer import TokenizerKind, train_tokenizer

CARD_SECTIONS = ("Intended use", "Limitations", "Training data", "Evaluation")
_SECTION_TEXT = {
    "Intended use": "Testing the conformance suite and demonstrating it offline. Not for any real task.",
    "Limitations": "Random weights: the model's output is meaningless text.",
    "Training data": "None. Weights are randomly initialised with a fixed seed; "
    "the tokenizer was trained on a small built-in English corpus.",
    "Evaluation": "None. Scores on any task are expected to be at chance level.",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def sha256_file(path: Path) -> str:
    """The SHA-256 of the file at `path` as 64 lowercase hex digits, read in 1 MiB blocks; OSError if unreadable."""
    with path.open("rb") as handle:
        return sha256_stream(handle, 1 << 20).hexdigest


def _is_causal_lm(architectures: Sequence[str] | None) -> bool:
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures or ())


def parameter_count(model_dir: Path) -> int:
    """The number of parameters (elements; tied tensors once) of the model saved in `model_dir`.

    Ground truth for tests: the model is loaded with transformers (safetensors only, no remote code), so
    this takes the memory of the whole model.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False, local_files_only=True)
    auto = AutoModelForCausalLM if _is_causal_lm(config.architectures) else AutoModel
    model = auto.from_pretrained(model_dir, trust_remote_code=False, local_files_only=True, use_safetensors=True)
    return sum(p.numel() for p in model.parameters())


def _architecture_claims(model_dir: Path) -> dict[str, Any]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False, local_files_only=True)
    # transformers' attribute maps give GPT-2 (n_layer, n_embd, n_positions) the common names too.
    return {
        "model_type": config.model_type,
        "num_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
        "vocab_size": config.vocab_size,
        "context_length": config.max_position_embeddings,
        "intermediate_size": getattr(config, "intermediate_size", None)
        or getattr(config, "n_inner", None)
        or 4 * config.hidden_size,
    }


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge; an override value of None deletes the key, so tests can drop a claim."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_card(
    out_dir: Path,
    *,
    license: str = "apache-2.0",
    sections: bool | Sequence[str] = True,
    claims: dict[str, Any] | None = None,
    extra_metadata: dict[str, Any] | None = None,
    summary: str | None = None,
    section_text: Mapping[str, str] | None = None,
) -> Path:
    """Write README.md for the model in ``out_dir`` with claims measured from the saved files.

    ``claims`` is merged over the measured claims (None deletes one); if it gives ``parameters`` the model
    is not loaded. ``sections``: True for all of CARD_SECTIONS, False for none, or the titles to include.
    ``summary`` and ``section_text`` (title -> text) replace the tiny random model's wording, for a card
    about a real model; ``extra_metadata`` overrides front-matter keys (``tags`` too).
    """
    out_dir = Path(out_dir)
    claims = claims or {}
    config = json.loads((out_dir / "config.json").read_text())
    architecture = _architecture_claims(out_dir)
    measured: dict[str, Any] = {
        "parameters": claims["parameters"] if "parameters" in claims else parameter_count(out_dir),
        "context_length": architecture["context_length"],
        "architecture": architecture,
        "intended_use": _SECTION_TEXT["Intended use"],
        "limitations": _SECTION_TEXT["Limitations"],
        "checksums": {p.name: sha256_file(p) for p in sorted(out_dir.iterdir()) if p.name.endswith(_WEIGHT_SUFFIXES)},
    }
    causal = _is_causal_lm(config.get("architectures"))
    metadata: dict[str, Any] = {
        "license": license,
        "language": ["en"],
        "library_name": "transformers",
        "tags": ["conformance-zoo", "tiny", "random-init", architecture["model_type"]],
        "pipeline_tag": "text-generation" if causal else "feature-extraction",
        "conformance": _merge(measured, claims),
        **(extra_metadata or {}),
    }
    titles = CARD_SECTIONS if sections is True else () if sections is False else tuple(sections)
    summary = summary or f"A tiny random {architecture['model_type']} model built by conformance.zoo."
    texts = {**_SECTION_TEXT, **(section_text or {})}
    body = [f"# {out_dir.name}", "", summary]
    for title in titles:
        body += ["", f"## {title}", "", texts.get(title, "")]
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    path = out_dir / "README.md"
    path.write_text(f"---\n{front}---\n\n" + "\n".join(body) + "\n", encoding="utf-8")
    return path


def _save(
    model: Any,
    out_dir: Path,
    *,
    card: bool,
    claims: dict[str, Any] | None,
    max_shard_size: int | str | None = None,
) -> Path:
    from transformers.utils import logging

    logging.disable_progress_bar()  # save_pretrained's shard bar is noise in tests and the demo
    options = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(out_dir, safe_serialization=True, **options)
    if card:
        parameters = sum(p.numel() for p in model.parameters())  # shared (tied) tensors count once
        write_card(out_dir, claims={"parameters": parameters, **(claims or {})})
    return out_dir


def _tokenizer_ids(out_dir: Path, kind: TokenizerKind, vocab_size: int, context_length: int) -> dict[str, int | None]:
    """Train the model's tokenizer into ``out_dir``; return the special ids its config must agree with."""
    from tokenizers import Tokenizer

    train_tokenizer(out_dir, kind, vocab_size, model_max_length=context_length)
    tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    names = ("<s>", "</s>", "<pad>") if kind == "bpe" else ("[CLS]", "[SEP]", "[PAD]")
    keys = ("bos_token_id", "eos_token_id", "pad_token_id")
    return dict(zip(keys, map(tokenizer.token_to_id, names), strict=True))


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def build_llama(
    out_dir: Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    vocab_size: int = 512,
    context_length: int = 256,
    tie_word_embeddings: bool = False,
    dtype: str = "float32",
    card: bool = True,
    claims: dict[str, Any] | None = None,
    seed: int = 0,
    max_shard_size: int | str | None = None,
) -> Path:
    """Save a tiny LlamaForCausalLM with a byte-level BPE tokenizer (and a card) into `out_dir`; returns `out_dir`.

    Sizes are in elements (hidden_size, intermediate_size), counts (layers, heads, vocabulary) and tokens
    (context_length); `dtype` names a torch dtype. The same `seed` gives byte-identical weights.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    ids = _tokenizer_ids(out_dir, "bpe", vocab_size, context_length)
    config = LlamaConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        vocab_size=vocab_size,
        max_position_embeddings=context_length,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
    )
    _seeded(seed)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    return _save(model, out_dir, card=card, claims=claims, max_shard_size=max_shard_size)


def build_sharded_llama(out_dir: Path, max_shard_size: int | str = "50KB", **llama_options: Any) -> Path:
    """`build_llama` saved as model-0000x-of-0000y.safetensors shards plus model.safetensors.index.json."""
    return build_llama(out_dir, max_shard_size=max_shard_size, **llama_options)


def build_gpt2(
    out_dir: Path,
    *,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    vocab_size: int = 512,
    n_positions: int = 256,
    dtype: str = "float32",
    card: bool = True,
    claims: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """Save a tiny GPT2LMHeadModel with a BPE tokenizer (and a card) into `out_dir`; returns `out_dir`.

    lm_head is tied to wte, so that weight is saved once. The same `seed` gives byte-identical weights.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    out_dir = Path(out_dir)
    ids = _tokenizer_ids(out_dir, "bpe", vocab_size, n_positions)
    config = GPT2Config(
        n_embd=n_embd, n_layer=n_layer, n_head=n_head, vocab_size=vocab_size, n_positions=n_positions,
        bos_token_id=ids["bos_token_id"], eos_token_id=ids["eos_token_id"], pad_token_id=ids["pad_token_id"],
    )
    _seeded(seed)
    model = GPT2LMHeadModel(config).to(getattr(torch, dtype))
    return _save(model, out_dir, card=card, claims=claims)


def build_bert(
    out_dir: Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
    vocab_size: int = 512,
    context_length: int = 256,
    dtype: str = "float32",
    card: bool = True,
    claims: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """Save a tiny BertModel (encoder, no LM head) with a WordPiece tokenizer (and a card) into `out_dir`; returns `out_dir`."""
    import torch
    from transformers import BertConfig, BertModel

    out_dir = Path(out_dir)
    ids = _tokenizer_ids(out_dir, "wordpiece", vocab_size, context_length)
    config = BertConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        vocab_size=vocab_size,
        max_position_embeddings=context_length,
        pad_token_id=ids["pad_token_id"],
    )
    _seeded(seed)
    model = BertModel(config).to(getattr(torch, dtype))
    return _save(model, out_dir, card=card, claims=claims)

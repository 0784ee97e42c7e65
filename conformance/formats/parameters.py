"""Parameter counts from tensor names and shapes, as `sum(p.numel() for p in model.parameters())` gives them.

Shared by every format: which names are buffers (saved by some exporters, never parameters), which are
embeddings (left out of the non-embedding count, as in Kaplan et al. 2020), and when a stored lm_head is
the input embedding tied. A format decides which tensors are parameters (`WeightFormat.is_parameter`)
and hands that predicate here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..families import tied_word_embeddings
from .tensors import TensorInfo

# Float tensors that some exporters save although they are buffers, not parameters (DeepSeek-V3's router
# keeps its load-balancing bias `e_score_correction_bias` as a buffer: `register_buffer` in transformers).
# Plain string tests, not one regular expression: a search of the alternation cost ~18 µs a name, 1.7 s
# for the 90,000 names of a many-expert checkpoint.
# BART's family (LED, Marian, Pegasus, ...) keeps `final_logits_bias`, Gemma 4 a `layer_scalar` per layer, Zaya
# its router's `balancing_biases` and the xIELU activation (Apertus) its `beta` and `eps` as `nn.Buffer`s.
BUFFER_LEAVES = ("attn.bias", "position_ids", "token_type_ids", "final_logits_bias")  # the whole name, or after a dot
BUFFER_TAILS = (
    ".inv_freq", ".masked_bias", ".e_score_correction_bias", ".layer_scalar", ".balancing_biases", ".act_fn.beta", ".act_fn.eps",
    *(f".{leaf}" for leaf in BUFFER_LEAVES),
)
BUFFER_INFIX = ".rotary_emb."
# Embedding and unembedding matrices, excluded from the non-embedding count (as in Kaplan et al. 2020).
EMBEDDING_PATTERNS = re.compile(
    r"(embed_tokens|word_embeddings|position_embeddings|token_type_embeddings|embed_positions|"
    r"(^|\.)wte\.|(^|\.)wpe\.|^lm_head\.|\.lm_head\.|(^|\.)shared\.|embed_out\.|output_embeddings)"
)
# Every EMBEDDING_PATTERNS match holds one of these: a name without them skips the (slower) regular expression.
_EMBEDDING_HINTS = ("embed", "wte.", "wpe.", "lm_head.", "shared.")
# GGUF (llama.cpp) names the input embedding `token_embd.weight`.
INPUT_EMBEDDING_PATTERNS = re.compile(r"(embed_tokens\.weight$|word_embeddings\.weight$|(^|\.)wte\.weight$|(^|\.)shared\.weight$|^token_embd\.weight$)")


def is_buffer(name: str) -> bool:
    """True for a tensor name that is a known buffer (rotary frequencies, position ids, attention masks)."""
    return name.endswith(BUFFER_TAILS) or BUFFER_INFIX in name or name in BUFFER_LEAVES


def is_embedding(name: str) -> bool:
    """True for a token, position or output embedding matrix's name (EMBEDDING_PATTERNS)."""
    return any(hint in name for hint in _EMBEDDING_HINTS) and EMBEDDING_PATTERNS.search(name) is not None


def count_parameters(tensors: list[TensorInfo], config: dict[str, Any] | None, is_parameter: Callable[[TensorInfo], bool]) -> dict[str, int]:
    """`parameters`, `embedding_parameters` and `non_embedding_parameters` (element counts) of the tensors kept by `is_parameter`."""
    counted = [t for t in tensors if is_parameter(t)]
    # Without a readable config nothing says the two are tied; a stored lm_head (safetensors cannot hold
    # shared tensors, so save_pretrained drops a tied one) is then a parameter of its own. An absent
    # tie_word_embeddings takes the family's default (LlamaConfig: False), and a composite config's
    # top level follows its text config as transformers resolves it (`families.tied_word_embeddings`).
    tied = tied_word_embeddings(config) if config is not None else False
    input_embedding = next((t for t in counted if INPUT_EMBEDDING_PATTERNS.search(t.name)), None)
    lm_head = next((t for t in counted if t.name.endswith("lm_head.weight")), None)
    if tied and input_embedding and lm_head and input_embedding.shape == lm_head.shape:
        counted = [t for t in counted if t is not lm_head]  # tied weights are one parameter
    total = sum(t.elements for t in counted)
    embedding = sum(t.elements for t in counted if is_embedding(t.name))
    return {"parameters": total, "embedding_parameters": embedding, "non_embedding_parameters": total - embedding}


def dtype_summary(tensors: list[TensorInfo]) -> dict[str, int]:
    """Element count per stored dtype across weight tensors (known buffers such as position_ids left out), sorted by dtype."""
    summary: dict[str, int] = {}
    for tensor in tensors:
        if is_buffer(tensor.name):
            continue
        summary[tensor.dtype] = summary.get(tensor.dtype, 0) + tensor.elements
    return dict(sorted(summary.items()))


def embedding_rows(tensors: list[TensorInfo]) -> int | None:
    """Rows of the 2-D input embedding matrix (the vocabulary it can embed), or None when there is none."""
    tensor = next((t for t in tensors if INPUT_EMBEDDING_PATTERNS.search(t.name) and len(t.shape) == 2), None)
    return tensor.shape[0] if tensor else None

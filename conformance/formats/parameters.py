"""Parameter counts from tensor names and shapes, as `sum(p.numel() for p in model.parameters())` gives them.

Shared by every format: which names are buffers (`tensor_names`, and the family's own from the family table) (saved by some exporters, never parameters), which are
embeddings (left out of the non-embedding count, as in Kaplan et al. 2020), and when a stored lm_head is
the input embedding tied. A format decides which tensors are parameters (`WeightFormat.is_parameter`)
and hands that predicate here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..families import Family, family, tied_word_embeddings
from .dtypes import FLOAT_DTYPES
from .tensor_names import BUFFER_INFIX, BUFFER_LEAVES, BUFFER_TAILS, is_buffer, tensor_key
from .tensors import TensorInfo

# Embedding and unembedding matrices, excluded from the non-embedding count (as in Kaplan et al. 2020).
EMBEDDING_PATTERNS = re.compile(
    r"(embed_tokens|word_embeddings|position_embeddings|token_type_embeddings|embed_positions|"
    r"(^|\.)wte\.|(^|\.)wpe\.|^lm_head\.|\.lm_head\.|(^|\.)shared\.|embed_out\.|output_embeddings)"
)
# Every EMBEDDING_PATTERNS match holds one of these: a name without them skips the (slower) regular expression.
_EMBEDDING_HINTS = ("embed", "wte.", "wpe.", "lm_head.", "shared.")
# GGUF (llama.cpp) names the input embedding `token_embd.weight`.
INPUT_EMBEDDING_PATTERNS = re.compile(r"(embed_tokens\.weight$|word_embeddings\.weight$|(^|\.)wte\.weight$|(^|\.)shared\.weight$|^token_embd\.weight$)")


def is_embedding(name: str) -> bool:
    """True for a token, position or output embedding matrix's name (EMBEDDING_PATTERNS)."""
    return any(hint in name for hint in _EMBEDDING_HINTS) and EMBEDDING_PATTERNS.search(name) is not None


def _family_of(config: dict[str, Any] | None) -> Family | None:
    model_type = config.get("model_type") if config is not None else None
    return family(model_type) if isinstance(model_type, str) else None


def without_saved_buffers(tensors: list[TensorInfo], config: dict[str, Any] | None) -> list[TensorInfo]:
    """`tensors` less those the family's model keeps as persistent buffers (`Family.saved_buffers`), integer ones included.

    The static probe drops them before the quantization fold is judged: a 2-D integer buffer (DeepSeek-V4's
    token-to-expert table `tid2eid`) is neither a parameter nor an unfolded quantized weight.
    """
    found = _family_of(config)
    if found is None or not found.saved_buffers:
        return tensors
    return [t for t in tensors if tensor_key(t.name) not in found.saved_buffers]


def _family_parameters(tensors: list[TensorInfo], config: dict[str, Any] | None, is_parameter: Callable[[TensorInfo], bool]) -> list[TensorInfo]:
    """The tensors `is_parameter` keeps, corrected by what the family's model holds (`Family.saved_buffers`).

    The family table records, from the model transformers builds, which saved tensors are persistent
    buffers (I-BERT's quantization ranges, MiniMax's decay rates, a codebook) and which parameters carry a
    name the cross-family buffer list takes for a buffer (a router bias kept as an `nn.Parameter`). The
    family is config.json's top-level `model_type`; without a config or a covered family, `is_parameter` alone.
    """
    found = _family_of(config)
    if found is None or not (found.saved_buffers or found.buffer_named_parameters):
        return [t for t in tensors if is_parameter(t)]
    counted = []
    for tensor in tensors:
        key = tensor_key(tensor.name)
        if key in found.saved_buffers:
            continue
        if key in found.buffer_named_parameters:
            if tensor.dtype in FLOAT_DTYPES:
                counted.append(tensor)
        elif is_parameter(tensor):
            counted.append(tensor)
    return counted


def count_parameters(tensors: list[TensorInfo], config: dict[str, Any] | None, is_parameter: Callable[[TensorInfo], bool]) -> dict[str, int]:
    """`parameters`, `embedding_parameters` and `non_embedding_parameters` (element counts) of the tensors kept by `is_parameter`."""
    counted = _family_parameters(tensors, config, is_parameter)
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


__all__ = [
    "BUFFER_INFIX", "BUFFER_LEAVES", "BUFFER_TAILS", "count_parameters", "dtype_summary", "embedding_rows", "is_buffer",
    "is_embedding", "tensor_key", "without_saved_buffers",
]

"""Tensor names that are buffers, not parameters, across families, and a name's family-independent key.

A leaf module (it imports nothing of the package): the parameter count (`parameters.py`), the quantized
layouts and the family table's generation (`families_models`) all read it.
"""

from __future__ import annotations

# Float tensors that some exporters save although they are buffers, not parameters, in any family (a covered
# family's own persistent buffers are also recorded from its model in the family table: `Family.saved_buffers`).
# DeepSeek-V3's router keeps its load-balancing bias `e_score_correction_bias` as a buffer: `register_buffer` in transformers).
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


def is_buffer(name: str) -> bool:
    """True for a tensor name that is a known buffer (rotary frequencies, position ids, attention masks)."""
    return name.endswith(BUFFER_TAILS) or BUFFER_INFIX in name or name in BUFFER_LEAVES


def tensor_key(name: str) -> str:
    """A tensor name without its model-class prefix and layer index: what a family's `built` lists hold.

    The components after the last numeric one (`model.layers.3.mlp.gate.e_score_correction_bias` ->
    `mlp.gate.e_score_correction_bias`), else the last two (`model.quantizer.codebook` ->
    `quantizer.codebook`), so the key is the same whichever head class or layer holds the tensor.
    """
    parts = name.split(".")
    for index in range(len(parts) - 1, -1, -1):
        if parts[index].isdigit() and index < len(parts) - 1:
            return ".".join(parts[index + 1 :])
    return ".".join(parts[-2:])

"""Runtime probes on the one loaded model: a forward pass, repeated greedy generation, weight finiteness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..candidate import Candidate
from ..errors import CheckError
from .load import LoadedModel

PROBE_TEXT = "The conformance suite checks that a model produces finite outputs for ordinary text."
PROBE_SEED = 1234
# Rows per slice when streaming a tensor: bounds the memory of the finiteness scan to ~64 MiB per slice.
FINITENESS_SLICE_BYTES = 64 * 1024 * 1024


def probe_input_ids(loaded: LoadedModel, batch_size: int = 1) -> Any:
    """Token ids of a fixed sentence, or seeded random ids when the model ships no tokenizer."""
    import torch

    if loaded.tokenizer is not None:
        ids = loaded.tokenizer(PROBE_TEXT, return_tensors="pt")["input_ids"]
    else:
        vocab = int(loaded.architecture.get("vocab_size") or 2)
        ids = torch.randint(0, vocab, (1, 16), generator=torch.Generator().manual_seed(PROBE_SEED))
    return ids.repeat(batch_size, 1).to(loaded.device)


@dataclass
class ForwardFacts:
    output: str  # "logits" for causal LMs, "last_hidden_state" for encoders
    shape: list[int]
    finite: bool
    nonfinite_count: int
    max_abs: float | None


def probe_forward(loaded: LoadedModel) -> ForwardFacts:
    import torch

    ids = probe_input_ids(loaded)
    with torch.inference_mode():
        outputs = loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids))
    name = "logits" if loaded.kind == "causal" else "last_hidden_state"
    tensor = getattr(outputs, name).float()
    finite_mask = torch.isfinite(tensor)
    finite_values = tensor[finite_mask]
    return ForwardFacts(
        output=name,
        shape=list(tensor.shape),
        finite=bool(finite_mask.all()),
        nonfinite_count=int((~finite_mask).sum()),
        max_abs=float(finite_values.abs().max()) if finite_values.numel() else None,
    )


@dataclass
class DeterminismFacts:
    method: str
    identical: bool
    first: list[int]
    second: list[int]


def probe_determinism(loaded: LoadedModel, new_tokens: int) -> DeterminismFacts:
    """Two greedy generations of the same prompt (causal), or two forward passes (encoders)."""
    import torch

    ids = probe_input_ids(loaded)
    with torch.inference_mode():
        if loaded.kind != "causal":
            first = loaded.model(input_ids=ids).last_hidden_state
            second = loaded.model(input_ids=ids).last_hidden_state
            same = bool(torch.equal(first, second))
            return DeterminismFacts("two forward passes, bitwise", same, [], [])
        runs = []
        for _ in range(2):
            output = loaded.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=_pad_id(loaded),
            )
            runs.append(output[0, ids.shape[1]:].tolist())
    return DeterminismFacts(f"two greedy generations of {new_tokens} tokens", runs[0] == runs[1], runs[0], runs[1])


def _pad_id(loaded: LoadedModel) -> int:
    config = loaded.model.config
    generation = getattr(loaded.model, "generation_config", None)
    for candidate in (getattr(generation, "pad_token_id", None), getattr(config, "pad_token_id", None), getattr(generation, "eos_token_id", None)):
        if isinstance(candidate, list) and candidate:
            candidate = candidate[0]
        if isinstance(candidate, int):
            return candidate
    return 0


@dataclass
class FinitenessFacts:
    tensors_checked: int
    elements_checked: int
    nonfinite: dict[str, int]  # tensor name -> count of NaN/Inf elements


def probe_finiteness(candidate: Candidate, shards: list[str]) -> FinitenessFacts:
    """Stream every tensor of every safetensors shard, slice by slice, counting NaN and Inf."""
    import torch
    from safetensors import safe_open

    facts = FinitenessFacts(0, 0, {})
    if not shards:
        raise CheckError("no safetensors weights to stream")
    for shard in shards:
        with safe_open(str(candidate.resolve_inside(shard)), framework="pt") as handle:
            for name in handle.keys():
                view = handle.get_slice(name)
                shape = view.get_shape()
                rows = shape[0] if shape else 1
                row_elements = max(1, _product(shape[1:]))
                step = max(1, FINITENESS_SLICE_BYTES // (row_elements * 4))
                bad = 0
                for start in range(0, rows, step):
                    part = view[start : start + step] if shape else handle.get_tensor(name)
                    if part.is_floating_point():
                        bad += int((~torch.isfinite(part)).sum())
                    facts.elements_checked += part.numel()
                facts.tensors_checked += 1
                if bad:
                    facts.nonfinite[name] = bad
    return facts


def _product(dims: list[int]) -> int:
    total = 1
    for dim in dims:
        total *= dim
    return total

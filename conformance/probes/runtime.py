"""Runtime probes on the one loaded model: a forward pass, repeated greedy generation, weight finiteness."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..backends import Backend, TokenIds
from ..candidate import Candidate
from ..errors import CheckError
from ..formats.registry import format_claiming
from ..probe_registry import ProbeContext, probe
from ..safe_files import UnsafeFileError
from .hashes import HashBudget, refuse_sparse
from .kinds import ENCODER, SEQ2SEQ
from .load import loaded_backend

PROBE_TEXT = "The conformance suite checks that a model produces finite outputs for ordinary text."
PROBE_SEED = 1234
# Rows per slice when streaming a tensor: bounds the memory of the finiteness scan to ~64 MiB per slice.
FINITENESS_SLICE_BYTES = 64 * 1024 * 1024


def probe_input_ids(backend: Backend) -> TokenIds:
    """Token ids of a fixed sentence, or seeded random ids when the model ships no tokenizer: one row."""
    if backend.has_tokenizer:
        return backend.encode(PROBE_TEXT)
    vocab = int(backend.architecture.get("vocab_size") or 2)
    return backend.random_tokens(1, 16, PROBE_SEED, vocab_size=vocab)


@dataclass
class ForwardFacts:
    """One forward pass's output: its name, shape (batch, tokens[, vocab or hidden]), NaN/Inf count and largest finite |value|."""

    output: str  # "logits" for language models (encoder-decoder: the decoder's first position), "last_hidden_state" for encoders
    shape: list[int]
    finite: bool
    nonfinite_count: int
    max_abs: float | None


def probe_forward(backend: Backend) -> ForwardFacts:
    """One forward pass on the probe input: the output's shape, NaN/Inf count and largest finite magnitude.

    An encoder-decoder model's pass runs the encoder over the input and the decoder over its start token
    (`Backend.forward`), so its logits are (1, 1, vocab); an image-text-to-text model reads text only.
    """
    import numpy

    ids = probe_input_ids(backend)
    _require_context(backend, int(ids.shape[1]), 0)
    activations = backend.forward(ids)
    values = activations.values
    finite_mask = numpy.isfinite(values)
    finite_values = values[finite_mask]
    return ForwardFacts(
        output=activations.name,
        shape=list(values.shape),
        finite=bool(finite_mask.all()),
        nonfinite_count=int((~finite_mask).sum()),
        max_abs=float(numpy.abs(finite_values).max()) if finite_values.size else None,
    )


@dataclass
class DeterminismFacts:
    """Two runs of the same input: how they were made, whether they agree, and the generated token ids (empty for encoders)."""

    method: str
    identical: bool
    first: list[int]
    second: list[int]


def probe_determinism(backend: Backend, new_tokens: int) -> DeterminismFacts:
    """Two greedy generations of the same prompt (every kind with an LM head), or two forward passes (encoders).

    An encoder-decoder model generates through its decoder (`Backend.generate`), as a decoder-only one does.
    """
    import numpy

    ids = probe_input_ids(backend)
    if backend.kind == ENCODER:
        first, second = backend.forward(ids).values, backend.forward(ids).values
        same = bool(numpy.array_equal(first, second))
        return DeterminismFacts("two forward passes, bitwise", same, [], [])
    _require_context(backend, int(ids.shape[1]), new_tokens)
    runs = [backend.generate(ids, new_tokens, min_new_tokens=new_tokens).tolist()[0] for _ in range(2)]
    through = " through the decoder" if backend.kind == SEQ2SEQ else ""
    return DeterminismFacts(f"two greedy generations of {new_tokens} tokens{through}", runs[0] == runs[1], runs[0], runs[1])


def _require_context(backend: Backend, prompt_tokens: int, new_tokens: int) -> None:
    """CheckError when the probe's prompt and new tokens do not fit the model's context (unknown: no check).

    Past it, position embeddings index out of range deep in torch ("IndexError: index out of range in
    self", naming nothing). An encoder-decoder's encoder reads the prompt and its decoder the start token
    and the new tokens, each within the context on its own.
    """
    context = backend.context_length()
    if context is None:
        return
    if backend.kind == SEQ2SEQ:
        needed = max(prompt_tokens, new_tokens + 1)
        wanted = f"the prompt's {prompt_tokens} tokens to the encoder and {new_tokens + 1} decoder positions"
    else:
        needed = prompt_tokens + new_tokens
        wanted = f"{needed} positions (the probe prompt's {prompt_tokens} tokens + {new_tokens} new tokens)"
    if needed > context:
        raise CheckError(f"generation needs {wanted}; the model's context length is {context}")


@dataclass
class FinitenessFacts:
    """The weight scan: tensors and elements read (counts) and, per tensor holding any, its NaN/Inf element count."""

    tensors_checked: int
    elements_checked: int
    nonfinite: dict[str, int]  # tensor name -> count of NaN/Inf elements


# sha256-free streaming is bound by the disk and by isfinite (~1-4 GB/s on one core): 800 GB of weights take
# 4-15 minutes. Past these budgets the scan stops with an error naming the budget.
FINITENESS_MAX_SECONDS = 3600.0
FINITENESS_MAX_BYTES = 4 * 1024**4  # 4 TiB: over any published checkpoint


@dataclass
class FinitenessBudget(HashBudget):
    """Seconds and bytes of tensor data the finiteness scan may spend over every shard (see HashBudget)."""

    max_seconds: float = field(default_factory=lambda: FINITENESS_MAX_SECONDS)
    max_bytes: int = field(default_factory=lambda: FINITENESS_MAX_BYTES)
    activity: ClassVar[str] = "finiteness scan"
    seconds_constant: ClassVar[str] = "FINITENESS_MAX_SECONDS"
    bytes_constant: ClassVar[str] = "FINITENESS_MAX_BYTES"


def probe_finiteness(candidate: Candidate, shards: list[str], budget: FinitenessBudget | None = None) -> FinitenessFacts:
    """Stream every tensor of every weight shard, slice by slice (its format's `tensor_slices`), counting NaN and Inf.

    Each shard is opened through safe_files (a regular file inside the folder), refused if sparse, and
    read within `budget` (default FINITENESS_MAX_SECONDS and FINITENESS_MAX_BYTES over all shards). Raises
    CheckError with the reason: an unsafe or missing shard, a sparse one, a format whose tensors are not
    streamed, a spent budget.
    """
    facts = FinitenessFacts(0, 0, {})
    if not shards:
        raise CheckError("no weight files whose tensors can be streamed (safetensors or GGUF)")
    budget = budget or FinitenessBudget()
    for shard in shards:
        fmt = format_claiming(shard)
        if fmt is None or not fmt.streams_tensors:
            raise CheckError(f"not read: {shard} is not in a weight format whose tensors can be streamed")
        try:
            opened = candidate.open_regular(shard)
            resolved = candidate.resolve_inside(shard)
        except UnsafeFileError as exc:
            raise CheckError(f"not read: {exc}") from None
        except FileNotFoundError:
            raise CheckError(f"not read: {shard} is missing") from None
        with opened:
            refuse_sparse(opened, shard)
            for name, slices in fmt.tensor_slices(opened, resolved, FINITENESS_SLICE_BYTES):
                _scan_tensor(name, slices, facts, budget, shard)
    return facts


def _scan_tensor(name: str, slices: Iterator[Any], facts: FinitenessFacts, budget: FinitenessBudget, shard: str) -> None:
    import torch

    bad = 0
    for part in slices:
        if part.is_floating_point():
            bad += int((~torch.isfinite(part)).sum())
        facts.elements_checked += part.numel()
        budget.spend(shard, part.numel() * part.element_size())
    facts.tensors_checked += 1
    if bad:
        facts.nonfinite[name] = bad


@probe("forward", evidence=ForwardFacts, depends=("load",), cacheable=True)
def forward_probe(context: ProbeContext) -> ForwardFacts:
    """One forward pass of the loaded model on a probe input."""
    return probe_forward(loaded_backend(context.evidence))


@probe("determinism", evidence=DeterminismFacts, depends=("load",), cacheable=True, parameterized=True)
def determinism_probe(context: ProbeContext) -> DeterminismFacts:
    """Two greedy generations of `new_tokens` tokens (encoders: two forward passes)."""
    return probe_determinism(loaded_backend(context.evidence), int(context.params.get("new_tokens", 16)))


@probe("finiteness", evidence=FinitenessFacts, depends=("static",), cacheable=True)
def finiteness_probe(context: ProbeContext) -> FinitenessFacts:
    """NaN and Inf counts over every tensor of the weight shards the static probe listed."""
    static = context.evidence.get("static")
    shards = sorted({t.file for t in static.weights.tensors})
    if not shards and static.weights.errors:  # weights present but their headers unreadable: say why
        raise CheckError("not read: " + "; ".join(static.weights.errors))
    return probe_finiteness(context.candidate, shards)

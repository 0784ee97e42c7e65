"""The backend contract: one loaded model behind one inference library, as the runtime probes use it.

The probes (forward, determinism, speed, tasks, generations) call a `Backend` and nothing else of the
library that runs the model, as lm-eval's `LM` and optimum-benchmark's `Backend` separate the harness from
the engine. transformers is the first backend (`transformers.py`); `conformance.backends.BACKENDS` names
them. This module imports no torch, transformers or numpy: a backend imports its library inside its own
methods, so the static path stays free of them.
"""

from __future__ import annotations

import dataclasses
import gc
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..errors import CheckSkipped

# Keys listed in a load report (each kind); the counts are always whole.
MAX_LISTED_KEYS = 20


@dataclass
class LoadReport:
    """How the weights covered the model the library built: its own missing, unexpected and mismatched keys.

    Read from the library's loading info (transformers' `output_loading_info`), after it has discounted
    tied weights and the keys a model class declares ignorable; non-persistent buffers are never keys.
    Key lists hold at most `MAX_LISTED_KEYS` names each, sorted; the counts are the full counts.
    `uncovered_parameters` is the number of parameter elements (tied tensors once) that no checkpoint
    tensor filled: the library initialized them at random. `missing_keys` are the missing keys counted
    there; `uncounted_keys` the missing keys that are not: persistent buffers (computed at construction,
    not learnt) and an encoder's pooler (the runtime probes read the last hidden state, which the pooler
    does not touch; an MLM checkpoint loaded as the bare encoder has none). `built` is False when the model was only laid
    out on the meta device because the weights were already known not to cover it (nothing allocated).
    A GGUF load is dequantized: `dequantized_from` is "gguf", `source_file` the file and
    `stored_dtypes` its stored tensor types (type name -> elements, as the static facts count them).
    """

    missing_keys: list[str] = field(default_factory=list)
    missing_count: int = 0
    uncounted_keys: list[str] = field(default_factory=list)
    uncounted_count: int = 0
    unexpected_keys: list[str] = field(default_factory=list)
    unexpected_count: int = 0
    mismatched_keys: list[str] = field(default_factory=list)  # "name: checkpoint shape -> model shape"
    mismatched_count: int = 0
    uncovered_parameters: int = 0
    built: bool = True
    dequantized_from: str | None = None
    source_file: str | None = None
    stored_dtypes: dict[str, int] = field(default_factory=dict)

    @property
    def covered(self) -> bool:
        """Whether every parameter of the model came from the weights (nothing randomly initialized)."""
        return self.uncovered_parameters == 0 and self.mismatched_count == 0

    def to_dict(self) -> dict[str, Any]:
        """The report as the result document's `evidence.load.loading` shows it."""
        return dataclasses.asdict(self)


@dataclass
class ModelFacts:
    """What rules need to know of a loaded model, as plain data: kept in the evidence and the cache.

    Computed once, when the backend loads the model (`Backend.facts`); the live model is not walked again.
    """

    kind: str
    model_class: str
    device: str
    dtype: str
    load_seconds: float
    parameters: int
    architecture: dict[str, Any]  # normalized fields plus head_dim
    matmul_body: int  # ≥2-D weights but embeddings and the LM head (roofline)
    matmul_head: int  # the LM head's weight
    element_bytes: int
    loading: LoadReport | None = None  # None: facts of a model built in memory (or cached before reports)
    # Bytes of every weight as the loaded model holds them (packed quantized integers and scales included;
    # `roofline.decode_weight_bytes`): what a decode step reads. None: facts from before this figure.
    decode_weight_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The facts as the result document's `evidence.load` shows them (load_seconds rounded to 0.1 ms)."""
        return {
            "kind": self.kind,
            "class": self.model_class,
            "device": self.device,
            "dtype": self.dtype,
            "load_seconds": round(self.load_seconds, 4),
            "parameters": self.parameters,
            "architecture": self.architecture,
            "matmul_body": self.matmul_body,
            "matmul_head": self.matmul_head,
            "element_bytes": self.element_bytes,
            "loading": self.loading.to_dict() if self.loading is not None else None,
            "decode_weight_bytes": self.decode_weight_bytes,
        }


@dataclass(frozen=True)
class LoadRequest:
    """What a backend loads and how; the load probe has already refused what must not be loaded.

    `folder` is the staging folder of verified files (`probes.load_preflight`): the only files the
    library may open. `started` is the `time.perf_counter()` reading when the load began (staging
    included), so `load_seconds` covers the whole load.
    """

    folder: Path
    model_path: str  # the model folder, which loaded objects are named after
    config: dict[str, Any]  # config.json as read (bounded) by the candidate
    kind: str  # `probes.kinds`: "causal" | "encoder" | "seq2seq" | "image-text-to-text"
    weights_format: str  # "safetensors" | "pickle" | "gguf"
    has_tokenizer: bool  # the folder ships tokenizer files
    device: str  # resolved: "cpu", "cuda:0" (`Backend.resolve_device`)
    dtype: str  # "auto" | "float32" | "bfloat16" | "float16"
    device_map_auto: bool
    started: float
    weights_file: str | None = None  # GGUF: the one file the loader is given (`gguf_file`), inside `folder`
    stored_dtypes: dict[str, int] = field(default_factory=dict)  # GGUF: stored tensor types -> elements


class TokenIds(Protocol):
    """Token ids in a backend's own form (a tensor on the device, an array): rows of equal length.

    The probes only read `shape` (rows, length) and `tolist()`; they never convert inside a timed region.
    """

    @property
    def shape(self) -> Any:
        """(rows, length)."""

    def tolist(self) -> Any:
        """The ids as nested Python lists: one list of ints per row."""


@dataclass(frozen=True)
class Activations:
    """A forward pass's output: `values` is a float32 numpy array of shape (rows, length, width)."""

    name: str  # "logits" for language models (an encoder-decoder's: the decoder's), "last_hidden_state" for encoders
    values: Any


class Backend(ABC):
    """A model loaded by one inference library, with the operations the runtime probes need.

    Attributes set at load: `kind` (`probes.kinds`: "causal", "encoder", "seq2seq" or
    "image-text-to-text"; documents written before the last two read as they did), `device` (where inputs go: "cpu", "cuda:0"),
    `dtype` (the weights' dtype name, e.g. "float32"), `load_seconds`, `architecture` (normalized
    config.json fields) and `facts` (`ModelFacts`, computed once at load). `not_runnable` is why the
    runtime probes must not run this model (its weights do not cover its parameters, so it is not the
    model the checkpoint stands for; the model is then already released), None when they may. Errors the
    probes turn into verdicts are `CheckError` (cannot measure) and `CheckSkipped` (does not apply).
    """

    name: ClassVar[str]
    not_runnable: str | None = None
    kind: str
    device: str
    dtype: str
    load_seconds: float
    architecture: dict[str, Any]
    facts: ModelFacts

    @classmethod
    @abstractmethod
    def resolve_device(cls, requested: str) -> str:
        """The device a load on `requested` ("auto", "cpu", "cuda", "cuda:N") uses; CheckError if absent."""

    @classmethod
    @abstractmethod
    def load(cls, request: LoadRequest) -> Backend:
        """Load the model and tokenizer from `request.folder`; CheckError "load failed: ..." on failure."""

    # --- tokens -------------------------------------------------------------------------------

    @property
    @abstractmethod
    def has_tokenizer(self) -> bool:
        """Whether the model ships a tokenizer."""

    @abstractmethod
    def encode(self, text: str) -> TokenIds:
        """`text` as one row of token ids on the device, special tokens added as the tokenizer does."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, special tokens left out."""

    def encode_chat(self, text: str) -> TokenIds:
        """A rendered chat (`text` already holds the template's special tokens) as one row of ids, none added.

        CheckSkipped unless the backend implements it.
        """
        raise CheckSkipped(f"{type(self).__name__} cannot encode a rendered chat")

    def decode_with_special_tokens(self, ids: Sequence[int]) -> str:
        """Text of generated ids with special tokens kept (evidence of how a reply ends)."""
        return self.decode(ids)

    def stop_token_ids(self) -> list[int]:
        """The ids `generate` stops on by default (the model's generation config); CheckSkipped unless implemented."""
        raise CheckSkipped(f"{type(self).__name__} does not say which ids generation stops on")

    @abstractmethod
    def random_tokens(self, rows: int, length: int, seed: int, vocab_size: int | None = None) -> TokenIds:
        """Seeded random ids in [0, vocab_size) of shape (rows, length) on the device.

        `vocab_size` None: the rows of the model's input embedding.
        """

    @abstractmethod
    def prefix_token_id(self) -> int:
        """The one prefix and pad token id every probe uses (see `special_tokens.prefix_token_id`)."""

    # --- running ------------------------------------------------------------------------------

    @abstractmethod
    def forward(self, ids: TokenIds) -> Activations:
        """One forward pass over `ids` (attention mask all ones), without gradients."""

    @abstractmethod
    def prefill(self, ids: TokenIds) -> Any:
        """The time-to-first-token run: process the prompt and produce one token per row (greedy)."""

    @abstractmethod
    def generate(
        self, ids: TokenIds, max_new_tokens: int, *, min_new_tokens: int = 0, stop_ids: Sequence[int] | None = None
    ) -> TokenIds:
        """Greedy generation; returns the new tokens only, shape (rows, new tokens).

        End-of-sequence ids cannot be chosen before `min_new_tokens` (min = max gives a fixed length).
        `stop_ids` None stops on the model's own end-of-sequence ids; a sequence of ids replaces them.
        """

    @abstractmethod
    def lm_eval_model(self, batch_size: int) -> Any:
        """An lm-eval `LM` around this already-loaded model (no second load); CheckError without tokenizer."""

    @abstractmethod
    def lm_eval_settings(self, lm: Any) -> dict[str, Any]:
        """Every setting besides the task that can move a score of `lm` (from `lm_eval_model`), as JSON values."""

    # --- memory -------------------------------------------------------------------------------

    @abstractmethod
    def weights_bytes(self) -> int:
        """Bytes of the model's parameters and buffers, resident while it runs."""

    def context_length(self) -> int | None:
        """Positions the model can attend over (prompt plus new tokens), or None when unknown."""
        value = self.architecture.get("context_length")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether `exc` says the device or the host ran out of memory."""
        text = str(exc).lower()
        return isinstance(exc, (RuntimeError, MemoryError)) and ("out of memory" in text or "can't allocate memory" in text)

    def free_cached_memory(self) -> None:
        """Return memory a failed run left cached (the library's allocator caches, Python garbage)."""
        gc.collect()

    @abstractmethod
    def release(self) -> None:
        """Drop the model and tokenizer and free their memory; the backend is unusable afterwards."""

    def to_dict(self) -> dict[str, Any]:
        """The load probe's evidence as the result document shows it: the facts."""
        return self.facts.to_dict()

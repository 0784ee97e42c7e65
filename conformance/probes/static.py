"""The static probe: config, architecture, weight headers, parameter counts, tokenizer files.

Reads only small JSON files and safetensors headers: no torch import and no tensor data on this path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..candidate import Candidate, FileEntry
from .architecture import normalize_architecture
from .tokenizer_files import TokenizerFacts, read_tokenizer
from .weights import WeightsInfo, count_parameters, dtype_summary, embedding_rows, read_weights


@dataclass
class StaticFacts:
    files: list[FileEntry]
    config: dict[str, Any] | None
    config_error: str | None
    architecture: dict[str, Any] = field(default_factory=dict)
    weights: WeightsInfo = field(default_factory=WeightsInfo)
    parameters: dict[str, int] = field(default_factory=dict)
    weight_bytes: int = 0
    weight_dtypes: dict[str, int] = field(default_factory=dict)
    embedding_rows: int | None = None
    tokenizer: TokenizerFacts = field(default_factory=TokenizerFacts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_count": len(self.files),
            "config_error": self.config_error,
            "architecture": self.architecture,
            "weights": self.weights.to_dict(),
            "parameters": self.parameters,
            "weight_bytes": self.weight_bytes,
            "weight_dtypes": self.weight_dtypes,
            "embedding_rows": self.embedding_rows,
            "tokenizer": {
                "files": self.tokenizer.files,
                "vocab_size": self.tokenizer.vocab_size,
                "special_tokens": self.tokenizer.special_tokens,
                "errors": self.tokenizer.errors,
            },
        }


def probe_static(candidate: Candidate) -> StaticFacts:
    config: dict[str, Any] | None
    try:
        config, config_error = candidate.config, None
    except ValueError as exc:
        config, config_error = None, str(exc)
    weights = read_weights(candidate)
    facts = StaticFacts(files=candidate.files, config=config, config_error=config_error, weights=weights)
    if config is not None:
        facts.architecture = normalize_architecture(config)
    if weights.tensors:
        facts.parameters = count_parameters(weights.tensors, config)
        facts.weight_bytes = sum(t.nbytes for t in weights.tensors)
        facts.weight_dtypes = dtype_summary(weights.tensors)
        facts.embedding_rows = embedding_rows(weights.tensors)
    facts.tokenizer = read_tokenizer(candidate)
    return facts

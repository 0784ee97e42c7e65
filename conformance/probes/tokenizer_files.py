"""Tokenizer facts from the tokenizer's own files (tokenizer.json, vocab files, configs): no transformers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..candidate import Candidate

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "tokenizer.model", "spiece.model",
)
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
MAX_TOKENIZER_BYTES = 256 * 1024 * 1024


@dataclass
class TokenizerFacts:
    files: list[str] = field(default_factory=list)
    vocab_size: int | None = None  # highest token id + 1, added tokens included
    special_tokens: dict[str, str] = field(default_factory=dict)  # role (bos, eos, ...) -> token text
    special_token_ids: dict[str, int | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return bool(self.files)


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _vocab_from_tokenizer_json(data: dict[str, Any]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    model = data.get("model") or {}
    raw = model.get("vocab")
    if isinstance(raw, dict):
        vocab.update({str(k): int(v) for k, v in raw.items()})
    elif isinstance(raw, list):  # Unigram: [[piece, score], ...]
        vocab.update({str(item[0]): index for index, item in enumerate(raw) if isinstance(item, list) and item})
    for token in data.get("added_tokens") or []:
        if isinstance(token, dict) and "content" in token and "id" in token:
            vocab[str(token["content"])] = int(token["id"])
    return vocab


def read_tokenizer(candidate: Candidate) -> TokenizerFacts:
    names = set(candidate.file_names())
    facts = TokenizerFacts(files=[name for name in TOKENIZER_FILES if name in names])
    vocab: dict[str, int] = {}
    try:
        if "tokenizer.json" in names:
            vocab = _vocab_from_tokenizer_json(candidate.read_json("tokenizer.json", MAX_TOKENIZER_BYTES))
        elif "vocab.json" in names:
            vocab = {str(k): int(v) for k, v in candidate.read_json("vocab.json", MAX_TOKENIZER_BYTES).items()}
        elif "vocab.txt" in names:
            text = candidate.resolve_inside("vocab.txt").read_text(encoding="utf-8")
            vocab = {line: index for index, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"))}
    except (ValueError, TypeError, AttributeError, OSError) as exc:
        facts.errors.append(f"vocabulary unreadable: {exc}")
    if vocab:
        facts.vocab_size = max(vocab.values()) + 1
    for config_name in ("special_tokens_map.json", "tokenizer_config.json"):
        if config_name not in names:
            continue
        try:
            data = candidate.read_json(config_name)
        except ValueError as exc:
            facts.errors.append(str(exc))
            continue
        if not isinstance(data, dict):
            facts.errors.append(f"{config_name} is not a JSON object")
            continue
        for key in SPECIAL_TOKEN_KEYS:
            text = _token_text(data.get(key))
            if text is not None and key[: -len("_token")] not in facts.special_tokens:
                facts.special_tokens[key[: -len("_token")]] = text
    facts.special_token_ids = {role: vocab.get(text) for role, text in facts.special_tokens.items()}
    return facts

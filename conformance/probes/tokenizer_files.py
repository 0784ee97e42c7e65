"""Tokenizer facts from the tokenizer's own files (tokenizer.json, vocab files, configs) or a GGUF file: no transformers.

A folder without a vocabulary file (tokenizer.json, vocab.json, vocab.txt) but with a GGUF model reads its
tokenizer from the GGUF metadata: the vocabulary is `tokenizer.ggml.tokens`, the special tokens the
`tokenizer.ggml.*_token_id` entries (their text the token at that id), the chat template
`tokenizer.chat_template`. The chat template (GGUF's, or tokenizer_config.json's `chat_template` string) is
kept as text, at most `MAX_CHAT_TEMPLATE_BYTES`, and never rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..candidate import Candidate
from ..formats.gguf import MAX_CHAT_TEMPLATE_BYTES, gguf_model_files, is_gguf_name, read_gguf
from ..formats.gguf import SPECIAL_TOKEN_KEYS as GGUF_SPECIAL_TOKEN_KEYS
from ..formats.gguf_header import StringTable
from .json_keys import read_model_json

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "tokenizer.model", "spiece.model",
)
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
MAX_TOKENIZER_BYTES = 256 * 1024 * 1024
MAX_TOKEN_ID = 2**32 - 1  # the tokenizers library stores ids as u32


@dataclass
class TokenizerFacts:
    """What the tokenizer's files say: which are present, the vocabulary size, the special tokens and their ids."""

    files: list[str] = field(default_factory=list)
    vocab_size: int | None = None  # highest token id + 1, added tokens included
    special_tokens: dict[str, str] = field(default_factory=dict)  # role (bos, eos, ...) -> token text
    special_token_ids: dict[str, int | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    chat_template: str | None = None  # the template text, never rendered (GGUF or tokenizer_config.json)
    chat_template_error: str | None = None  # why a template present could not be kept (over the size bound)

    @property
    def present(self) -> bool:
        """True if the folder holds any tokenizer file."""
        return bool(self.files)


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _token_id(value: Any, where: str) -> int:
    """A token id as the tokenizers library reads one (a u32); ValueError for floats, NaN, Infinity, negatives, bools."""
    if type(value) is not int or not 0 <= value <= MAX_TOKEN_ID:
        raise ValueError(f"{where}: token id {str(value)[:40]} is not an integer in 0..{MAX_TOKEN_ID}")
    return value


def _vocab_from_mapping(raw: Any, where: str) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not a JSON object")
    return {str(k): _token_id(v, where) for k, v in raw.items()}


def _vocab_from_tokenizer_json(data: Any) -> dict[str, int]:
    if not isinstance(data, dict):
        raise ValueError("tokenizer.json is not a JSON object")
    vocab: dict[str, int] = {}
    model = data.get("model") or {}
    raw = model.get("vocab") if isinstance(model, dict) else None
    if isinstance(raw, dict):
        vocab.update(_vocab_from_mapping(raw, "tokenizer.json model.vocab"))
    elif isinstance(raw, list):  # Unigram: [[piece, score], ...]
        vocab.update({str(item[0]): index for index, item in enumerate(raw) if isinstance(item, list) and item})
    added = data.get("added_tokens") or []
    for token in added if isinstance(added, list) else []:
        if isinstance(token, dict) and "content" in token and "id" in token:
            vocab[str(token["content"])] = _token_id(token["id"], "tokenizer.json added_tokens")
    return vocab


def _vocab_from_text(data: bytes) -> dict[str, int]:
    text = data.decode("utf-8")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return {line: index for index, line in enumerate(lines)}


def _keep_template(facts: TokenizerFacts, template: Any, where: str) -> None:
    """Keep a chat template string within `MAX_CHAT_TEMPLATE_BYTES`; other values are not templates."""
    if not isinstance(template, str) or facts.chat_template is not None:
        return
    size = len(template.encode("utf-8", errors="surrogatepass"))
    if size > MAX_CHAT_TEMPLATE_BYTES:
        facts.chat_template_error = f"{where} chat template is {size} bytes, over the {MAX_CHAT_TEMPLATE_BYTES}-byte bound"
    else:
        facts.chat_template = template


def _read_gguf_tokenizer(candidate: Candidate, names: set[str], facts: TokenizerFacts) -> None:
    """Vocabulary size, special tokens and chat template from the model's GGUF metadata (problems to `errors`)."""
    try:
        relative = gguf_model_files(names)[0]
        header = read_gguf(candidate, relative)
    except Exception as exc:  # noqa: BLE001 - any failure of these bytes is the tokenizer's error
        facts.errors.append(f"GGUF tokenizer unreadable: {str(exc)[:500] or type(exc).__name__}")
        return
    facts.files.append(relative)
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, StringTable):
        facts.errors.append(f"{relative}: no tokenizer.ggml.tokens list")
        return
    facts.vocab_size = len(tokens)
    for role, key in GGUF_SPECIAL_TOKEN_KEYS.items():
        token_id = header.metadata.get(key)
        if token_id is None:
            continue
        known = type(token_id) is int and 0 <= token_id < len(tokens)
        facts.special_tokens[role] = tokens[token_id] if known else f"<id {str(token_id)[:40]}>"
        facts.special_token_ids[role] = token_id if known else None
    _keep_template(facts, header.metadata.get("tokenizer.chat_template"), relative)


def read_tokenizer(candidate: Candidate) -> TokenizerFacts:
    """Tokenizer facts from its files (each read bounded, through safe_files); problems go to `errors`, never raised."""
    names = set(candidate.file_names())
    facts = TokenizerFacts(files=[name for name in TOKENIZER_FILES if name in names])
    if not names & {"tokenizer.json", "vocab.json", "vocab.txt"} and any(is_gguf_name(name) for name in names):
        _read_gguf_tokenizer(candidate, names, facts)
        return facts
    vocab: dict[str, int] = {}
    try:
        if "tokenizer.json" in names:
            vocab = _vocab_from_tokenizer_json(read_model_json(candidate, "tokenizer.json", MAX_TOKENIZER_BYTES))
        elif "vocab.json" in names:
            vocab = _vocab_from_mapping(candidate.read_json("vocab.json", MAX_TOKENIZER_BYTES), "vocab.json")
        elif "vocab.txt" in names:
            vocab = _vocab_from_text(candidate.read_bytes("vocab.txt", MAX_TOKENIZER_BYTES))
    except Exception as exc:  # noqa: BLE001 - any failure of these bytes is the vocabulary's error
        facts.errors.append(f"vocabulary unreadable: {str(exc)[:500] or type(exc).__name__}")
        vocab = {}
    if vocab:
        facts.vocab_size = max(vocab.values()) + 1
    for config_name in ("special_tokens_map.json", "tokenizer_config.json"):
        if config_name not in names:
            continue
        try:
            data = candidate.read_json(config_name)
        except Exception as exc:  # noqa: BLE001
            facts.errors.append(str(exc)[:500] or type(exc).__name__)
            continue
        if not isinstance(data, dict):
            facts.errors.append(f"{config_name} is not a JSON object")
            continue
        if config_name == "tokenizer_config.json":
            _keep_template(facts, data.get("chat_template"), config_name)
        for key in SPECIAL_TOKEN_KEYS:
            text = _token_text(data.get(key))
            if text is not None and key[: -len("_token")] not in facts.special_tokens:
                facts.special_tokens[key[: -len("_token")]] = text
    facts.special_token_ids = {role: vocab.get(text) for role, text in facts.special_tokens.items()}
    return facts

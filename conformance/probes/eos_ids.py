"""End-of-sequence ids from every file that names them, and the token a chat template ends a turn with.

A chat model stops when it generates an id of its generation config's `eos_token_id` (transformers'
`generate` reads generation_config.json, or builds the config from config.json when that file is absent;
llama.cpp reads a GGUF file's `tokenizer.ggml.eos_token_id`, `eot_token_id` and `eom_token_id`). The
template decides what the model learnt to write after an answer (`<|im_end|>`, `<|eot_id|>`,
`<end_of_turn>`...): when that token is not a stop id the model writes on past its answer and invents the
next turn (the public reports on Llama 3's `<|eot_id|>`, vllm#4180).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..formats.gguf import config_source_name
from .tokenizer_files import TokenizerFacts

MAX_IDS = 4096  # ids kept from one source's list (real lists hold 1-4)
LEADING_SPACE = " \t\r\n"

__all__ = ["EosSources", "TurnToken", "eos_sources", "turn_token"]


@dataclass
class EosSources:
    """The end-of-sequence ids each source names, and the set generation stops on.

    Attributes:
        ids: source label -> its ids as written ("config.json eos", "generation_config.json eos", "tokenizer
            eos (tokenizer_config.json)", "<file>.gguf metadata eot"...), lists kept to `MAX_IDS`.
        stop_ids: the ids generation stops on: generation_config.json's `eos_token_id` when the file exists
            (none when it names none: transformers does not fall back to config.json then), config.json's
            without the file; a GGUF file's eos, eot and eom ids.
        stop_source: where `stop_ids` come from (always named, even when they are empty).
        invalid: values that are not token ids (a string, a negative number), by source.
        unreadable: why the file that holds the stop ids could not be read (generation_config.json), else None.
        gguf: the ids come from a GGUF file's metadata.
    """

    ids: dict[str, list[int]] = field(default_factory=dict)
    stop_ids: list[int] = field(default_factory=list)
    stop_source: str = ""
    invalid: dict[str, str] = field(default_factory=dict)
    unreadable: str | None = None
    gguf: bool = False

    def disagreements(self) -> list[str]:
        """Every source whose ids are not all stop ids, as one line each ("config.json eos [0] is not among ...")."""
        if not self.stop_ids:
            return []  # reported once as "no stop ids", not once per source
        stops = set(self.stop_ids)
        return [
            f"{label} {ids} is not among the {self.stop_source} stop ids {self.stop_ids}"
            for label, ids in self.ids.items()
            if not label.startswith(self.stop_source) and not set(ids) <= stops
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for evidence."""
        return {"ids": self.ids, "stop_ids": self.stop_ids, "stop_source": self.stop_source, "invalid": self.invalid, "unreadable": self.unreadable}


def _ids(value: Any, label: str, sources: EosSources) -> list[int] | None:
    """An id value as a list of ints (None when absent); anything else is recorded in `invalid`."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    if items and all(type(item) is int and item >= 0 for item in items):
        return list(items[:MAX_IDS])
    sources.invalid[label] = str(value)[:80]
    return None


def _config_eos(config: dict[str, Any] | None) -> Any:
    """config.json's eos_token_id, or its text config's (a multimodal model's decoder) when the top level has none."""
    if not isinstance(config, dict):
        return None
    if config.get("eos_token_id") is not None:
        return config["eos_token_id"]
    text_config = config.get("text_config")
    return text_config.get("eos_token_id") if isinstance(text_config, dict) else None


def _gguf_sources(tokenizer: TokenizerFacts, config: dict[str, Any]) -> EosSources:
    label = config_source_name(config)
    sources = EosSources(stop_source=label, gguf=True)
    for role in ("eos", "eot", "eom"):
        token_id = tokenizer.special_token_ids.get(role)
        if token_id is not None:
            sources.ids[f"{label} {role}"] = [token_id]
        elif role in tokenizer.special_tokens:  # written, but not an id of the vocabulary
            sources.invalid[f"{label} {role}"] = tokenizer.special_tokens[role][:80]
    sources.stop_ids = sorted({i for ids in sources.ids.values() for i in ids})
    return sources


def eos_sources(tokenizer: TokenizerFacts, config: dict[str, Any] | None) -> EosSources:
    """The eos ids of config.json (or a GGUF file's metadata), generation_config.json and the tokenizer files.

    Args:
        tokenizer: the static tokenizer facts (special tokens, generation_config.json's ids as written).
        config: config.json as read, or the config a GGUF file's metadata makes (`gguf` key set).
    Never raises; values that are not ids go to `invalid`, an unreadable generation_config.json to `unreadable`.
    """
    if isinstance(config, dict) and isinstance(config.get("gguf"), dict):
        return _gguf_sources(tokenizer, config)
    sources = EosSources()
    config_ids = _ids(_config_eos(config), "config.json eos_token_id", sources)
    if config_ids is not None:
        sources.ids["config.json eos"] = config_ids
    generation_ids = _ids(tokenizer.generation_ids.get("eos_token_id"), "generation_config.json eos_token_id", sources)
    if generation_ids is not None:
        sources.ids["generation_config.json eos"] = generation_ids
    tokenizer_id = tokenizer.special_token_ids.get("eos")
    if tokenizer_id is None:
        tokenizer_id = tokenizer.appended_ids.get("eos")
    if tokenizer_id is not None:
        sources.ids[f"tokenizer eos ({tokenizer.special_token_files.get('eos', 'tokenizer files')})"] = [tokenizer_id]
    # transformers' generate reads generation_config.json when it exists, with no fallback to config.json
    # for a key it leaves out; without the file it builds the settings from config.json.
    if tokenizer.generation_config_present:
        sources.stop_source = "generation_config.json"
        sources.unreadable = tokenizer.generation_config_error
        sources.stop_ids = generation_ids or []
    else:
        sources.stop_source = "config.json"
        sources.stop_ids = config_ids or []
    return sources


@dataclass
class TurnToken:
    """The special token a template's assistant-turn ending starts with: its text and id, or why there is none."""

    text: str | None
    token_id: int | None
    skipped: str  # whitespace written before it
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for evidence."""
        return {"text": self.text, "id": self.token_id, "whitespace_before": self.skipped, "reason": self.reason}


def turn_token(ending: str, added_token_ids: dict[str, int]) -> TurnToken:
    """The longest added or special token the ending starts with (after whitespace), as a tokenizer matches it.

    Added and special tokens are split out of text whole before the model's own tokenization, so the id
    generated to close a turn is that token's. An ending that starts with plain text (a blank line, "### User")
    has no such token: generation can stop there only on a stop string, which `generate` does not use by
    default.
    """
    stripped = ending.lstrip(LEADING_SPACE)
    skipped = ending[: len(ending) - len(stripped)]
    best = max((text for text in added_token_ids if text and stripped.startswith(text)), key=len, default=None)
    if best is None:
        return TurnToken(None, None, skipped, f"the turn ends with {ending[:60]!r}, which starts with no special or added token")
    return TurnToken(best, added_token_ids[best], skipped)

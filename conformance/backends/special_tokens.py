"""The one choice of the prefix and pad token id, for every probe and every backend."""

from __future__ import annotations

from typing import Any

# (object, attribute) in the order they are consulted; see `prefix_token_id`.
PRECEDENCE: tuple[tuple[str, str], ...] = (
    ("tokenizer", "bos_token_id"),
    ("tokenizer", "eos_token_id"),
    ("config", "bos_token_id"),
    ("config", "eos_token_id"),
    ("tokenizer", "pad_token_id"),
    ("generation_config", "bos_token_id"),
    ("generation_config", "eos_token_id"),
    ("config", "pad_token_id"),
    ("generation_config", "pad_token_id"),
)


def token_id(value: Any) -> int | None:
    """`value` as a token id: an int >= 0 (not a bool), or the first of a non-empty list; else None."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def prefix_token_id(tokenizer: Any = None, config: Any = None, generation_config: Any = None, rows: int | None = None) -> int:
    """The token id placed before text, or beside it as padding: the first id set in this order.

    1. tokenizer BOS, 2. tokenizer EOS, 3. config BOS, 4. config EOS, 5. tokenizer PAD,
    6. generation config BOS, 7. generation config EOS, 8. config PAD, 9. generation config PAD, else 0.

    Why: the one place its value reaches a result is lm-eval's prefix token, the context a rolling
    loglikelihood and an empty-context request condition on (recorded as `prefix_token_id` in the task
    settings). That should be what the model saw before a document in training: BOS, or EOS for
    GPT-2-style tokenizers that end one document with it and begin the next; this is lm-eval's own order
    (BOS, else EOS) extended to the model's config when the tokenizer names neither. Everywhere else the id
    is padding whose value cannot reach an output: `generate` gets an explicit attention mask, so it never
    infers one from pad ids, and generation either fills no finished rows (fixed length, or one prompt at a
    time) or lm-eval decodes without special tokens. So any valid id serves there, and using the same
    id everywhere keeps one rule instead of four. PAD and the generation config come after, for models
    that name no BOS or EOS at all; 0 when nothing is set. A list (several EOS ids) gives its first id;
    booleans and negative ids (`pad_token_id: -1` in some converted configs) are not ids.

    Any object may be None; attributes are read with getattr, so plain namespaces work.

    `rows` (the embedding's rows), when given, bounds the choice: an id at or above it is never chosen,
    silently or otherwise: ValueError names it, its source and the rows (a GPT-2 config's default BOS/EOS
    50256 over a 370-row embedding would make lm-eval's first forward pass raise IndexError). Passing over
    it to the next id would change what every rolling loglikelihood conditions on without a trace.
    """
    sources = {"tokenizer": tokenizer, "config": config, "generation_config": generation_config}
    for source, attribute in PRECEDENCE:
        chosen = token_id(getattr(sources[source], attribute, None))
        if chosen is not None:
            if rows is not None and chosen >= rows:
                raise ValueError(f"prefix token id {chosen} ({source} {attribute}) is outside the embedding's {rows} rows")
            return chosen
    return 0

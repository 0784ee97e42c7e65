"""tokenizer.*: the tokenizer shipped with the model, read from its files."""

from __future__ import annotations

from typing import Any

from ..errors import CheckError
from ..evidence import Evidence
from ..formats.gguf import config_source_name
from ..probes.special_token_ids import embedding_rows_of, special_id_range
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict
from .common import require_finite, static_facts

SPECIAL_ROLES = ["bos", "eos", "unk", "pad", "sep", "cls", "mask"]


@check("tokenizer.present", summary="tokenizer files are shipped, readable and agree with each other", probes=("static",), comparisons=())
def present(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when tokenizer files are present, readable and consistent; fail when there are none, one cannot be read, or two contradict each other."""
    tokenizer = static_facts(evidence).tokenizer
    if not tokenizer.present:
        return Verdict("fail", [], "tokenizer files", "no tokenizer files (tokenizer.json, vocab.txt, ...)")
    if tokenizer.errors:
        return Verdict("fail", tokenizer.files, "readable tokenizer files that agree", "; ".join(tokenizer.errors))
    return Verdict("pass", tokenizer.files, "tokenizer files")


@check(
    "tokenizer.vocab_matches_embeddings",
    summary="every token id (model vocabulary and added tokens, from every tokenizer file) has an embedding row (exact: the counts are equal)",
    probes=("static",),
    params={"exact": {"type": "boolean", "description": "require equal sizes, not only ids < rows"}},
    comparisons=(),
)
def vocab_matches_embeddings(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when every token id has an embedding row (with `exact`, when the counts are equal).

    The tokenizer's size is `len(tokenizer)` as transformers loads it from every source (tokenizer.json,
    vocab files, a sentencepiece model, added_tokens.json, tokenizer_config.json's added_tokens_decoder);
    each source's own size is in the observed `vocab_sources`. A model vocabulary whose ids leave gaps has
    a token id past that size (`largest_id`): it fails too when it has no row, since encoding that token
    indexes past the embedding.

    Raises CheckError when the vocabulary size (a source unreadable) or the embedding rows are unknown.
    """
    facts = static_facts(evidence)
    tokenizer = facts.tokenizer
    tokens = tokenizer.vocab_size
    rows, _ = embedding_rows_of(facts)
    if tokens is None:
        reason = tokenizer.vocab_error or "; ".join(tokenizer.errors) or "no readable vocabulary"
        raise CheckError(f"tokenizer vocabulary size unknown: {reason}")
    source = config_source_name(facts.config)  # config.json, or the GGUF file's metadata
    if rows is None:
        raise CheckError(f"embedding rows unknown: no embedding tensor header and no vocab_size in {source}")
    require_finite(rows, f"{source} vocab_size")
    if type(rows) is not int:
        raise CheckError(f"embedding rows unknown: {source} vocab_size {str(rows)[:40]!r} is not an integer")
    exact = bool(rule.params.get("exact", False))
    observed = {"tokenizer_vocab_size": tokens, "embedding_rows": rows, "vocab_sources": dict(tokenizer.vocab_sources)}
    largest = tokenizer.largest_id
    if largest is not None and largest != tokens - 1:
        observed["tokenizer_largest_id"] = largest
    expected = ("tokens == rows" if exact else "tokens <= rows") + " and largest id < rows"
    where = _sizes(tokenizer.vocab_sources)
    if tokens > rows:
        return Verdict("fail", observed, expected, f"tokenizer has {tokens} ids{where} but the embedding only {rows} rows")
    if largest is not None and largest >= rows:
        message = f"tokenizer has {tokens} tokens but ids up to {largest} (its model vocabulary leaves gaps); the embedding has {rows} rows"
        return Verdict("fail", observed, expected, message)
    if exact and tokens != rows:
        return Verdict("fail", observed, expected, f"tokenizer has {tokens} ids{where}, embedding {rows} rows")
    return Verdict("pass", observed, expected)


def _sizes(sources: dict[str, int]) -> str:
    """" (vocab.txt 30522, added_tokens.json 30524)" when several sources give ids, else ""."""
    if len(sources) < 2:
        return ""
    return " (" + ", ".join(f"{label} {size}" for label, size in sources.items()) + ")"


@check(
    "tokenizer.special_tokens",
    summary=(
        "named special tokens (bos, eos, unk, pad, sep, cls, mask) are defined and in the vocabulary, and every special "
        "token id (tokenizer files, config.json and its family defaults, generation_config.json) is inside the "
        "vocabulary and the embedding rows"
    ),
    probes=("static",),
    params={
        "required": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": SPECIAL_ROLES},
            "description": "roles that must be defined",
        }
    },
    required=("required",),
    comparisons=(),
)
def special_tokens(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when every `required` role is defined and in the vocabulary and every special token id fits.

    The ids checked are all of the model's (`probes.special_token_ids`): the tokenizer's, config.json's
    (the family's config-class defaults for keys it leaves out) and generation_config.json's; an id at or
    above the tokenizer's size or the embedding's rows fails, named with its role and sources.

    Raises CheckError when the vocabulary cannot be read (whether a token is in it is then unknown), or when
    generation_config.json cannot be read and nothing else fails (its ids are then unknown).
    """
    facts = static_facts(evidence)
    tokenizer = facts.tokenizer
    if not tokenizer.present:
        return Verdict("fail", {}, rule.params["required"], "no tokenizer files")
    if tokenizer.vocab_error is not None:
        raise CheckError(f"tokenizer vocabulary unknown: {tokenizer.vocab_error}")
    ids = special_id_range(facts)
    named_outside = {role for role, _ in ids.outside()}  # their ids are named below, with the limits they pass
    problems = []
    for role in rule.params["required"]:
        if role not in tokenizer.special_tokens:
            problems.append(f"{role} token not defined")
        elif tokenizer.vocab_size is not None and tokenizer.special_token_ids.get(role) is None and role not in named_outside:
            problems.append(f"{role} token {tokenizer.special_tokens[role]!r} is not in the vocabulary")
    outside = ids.problem()
    if outside:
        problems.append(outside)
    observed: dict[str, Any] = dict(tokenizer.special_tokens)
    observed.update(token_ids=ids.to_observed(), tokenizer_vocab_size=ids.tokens, embedding_rows=ids.rows)
    unread = tokenizer.generation_config_error
    if problems:
        unread_note = [f"and generation_config.json's ids are unknown: {unread}"] if unread else []
        return Verdict("fail", observed, rule.params["required"], "; ".join(problems + unread_note))
    if unread:  # an id it gives may be out of range: passing would vouch for ids never read
        raise CheckError(f"special token ids of generation_config.json unknown: {unread}")
    return Verdict("pass", observed, rule.params["required"])

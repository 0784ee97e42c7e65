"""tokenizer.*: the tokenizer shipped with the model, read from its files."""

from __future__ import annotations

from ..errors import CheckError
from ..evidence import Evidence
from ..formats.gguf import config_source_name
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict
from .common import require_finite, static_facts

SPECIAL_ROLES = ["bos", "eos", "unk", "pad", "sep", "cls", "mask"]


@check("tokenizer.present", summary="tokenizer files are shipped and readable", probes=("static",), comparisons=())
def present(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when tokenizer files are present and readable; fail when there are none or one cannot be read."""
    tokenizer = static_facts(evidence).tokenizer
    if not tokenizer.present:
        return Verdict("fail", [], "tokenizer files", "no tokenizer files (tokenizer.json, vocab.txt, ...)")
    if tokenizer.errors:
        return Verdict("fail", tokenizer.files, "readable tokenizer", "; ".join(tokenizer.errors))
    return Verdict("pass", tokenizer.files, "tokenizer files")


@check(
    "tokenizer.vocab_matches_embeddings",
    summary="every token id has an embedding row (exact: the counts are equal)",
    probes=("static",),
    params={"exact": {"type": "boolean", "description": "require equal sizes, not only ids < rows"}},
    comparisons=(),
)
def vocab_matches_embeddings(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when every token id has an embedding row (with `exact`, when the counts are equal).

    Raises CheckError when the vocabulary size or the embedding rows are unknown.
    """
    facts = static_facts(evidence)
    tokens = facts.tokenizer.vocab_size
    rows = facts.embedding_rows or (facts.config or {}).get("vocab_size") or facts.architecture.get("vocab_size")
    if tokens is None:
        raise CheckError("tokenizer vocabulary size unknown: " + ("; ".join(facts.tokenizer.errors) or "no readable vocabulary"))
    source = config_source_name(facts.config)  # config.json, or the GGUF file's metadata
    if rows is None:
        raise CheckError(f"embedding rows unknown: no embedding tensor header and no vocab_size in {source}")
    require_finite(rows, f"{source} vocab_size")
    if type(rows) is not int:
        raise CheckError(f"embedding rows unknown: {source} vocab_size {str(rows)[:40]!r} is not an integer")
    exact = bool(rule.params.get("exact", False))
    observed = {"tokenizer_vocab_size": tokens, "embedding_rows": rows}
    expected = "tokens == rows" if exact else "tokens <= rows"
    if tokens > rows:
        return Verdict("fail", observed, expected, f"tokenizer has {tokens} ids but the embedding only {rows} rows")
    if exact and tokens != rows:
        return Verdict("fail", observed, expected, f"tokenizer has {tokens} ids, embedding {rows} rows")
    return Verdict("pass", observed, expected)


@check(
    "tokenizer.special_tokens",
    summary="named special tokens (bos, eos, unk, pad, sep, cls, mask) are defined and in the vocabulary",
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
    """Pass when every `required` special-token role (bos, eos, pad, ...) is defined and in the vocabulary."""
    tokenizer = static_facts(evidence).tokenizer
    if not tokenizer.present:
        return Verdict("fail", {}, rule.params["required"], "no tokenizer files")
    problems = []
    for role in rule.params["required"]:
        if role not in tokenizer.special_tokens:
            problems.append(f"{role} token not defined")
        elif tokenizer.vocab_size is not None and tokenizer.special_token_ids.get(role) is None:
            problems.append(f"{role} token {tokenizer.special_tokens[role]!r} is not in the vocabulary")
    observed = dict(tokenizer.special_tokens)
    if problems:
        return Verdict("fail", observed, rule.params["required"], "; ".join(problems))
    return Verdict("pass", observed, rule.params["required"])

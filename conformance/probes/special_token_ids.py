"""Every special token id a model declares, where it comes from, and whether it fits the vocabulary and the embedding.

The ids are gathered from four places, as transformers assembles them when it loads the model:
1. the tokenizer's files: each special token's text (special_tokens_map.json, tokenizer_config.json) looked
   up in the merged vocabulary (a text in no vocabulary file gets the id a loader appends it at), or a GGUF
   file's `tokenizer.ggml.*_token_id` as written;
2. config.json (or a GGUF file's metadata): `bos_token_id`, `eos_token_id`, `pad_token_id`,
   `sep_token_id`, `decoder_start_token_id`, at the top level and in a nested text config;
3. for those keys config.json leaves out, the family's config-class default
   (`families.with_family_defaults`): GPT2Config's bos and eos are 50256 whatever the vocabulary;
4. generation_config.json's `bos_token_id`, `eos_token_id`, `pad_token_id`, `decoder_start_token_id`.

An id at or above the tokenizer's size (its largest id + 1) or the embedding's rows indexes past the
embedding when it is fed to the model: lm-eval's prefix token, a pad id, a forced BOS all raise IndexError
deep inside torch. `SpecialIdRange.message` names each such id with its role and sources;
`tokenizer.special_tokens` fails with it and `require_special_ids_in_range` stops task scoring with it
before lm-eval is called. Nothing here imports torch or transformers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CheckError
from ..families import family, with_family_defaults
from ..formats.gguf import config_source_name
from .tokenizer_files import GENERATION_ID_KEYS, TokenizerFacts

if TYPE_CHECKING:
    from ..evidence import Evidence
    from .static import StaticFacts

# config.json keys that hold token ids, and the role each names (PretrainedConfig's token-id attributes).
CONFIG_ID_KEYS = {**{key: role for key, role in GENERATION_ID_KEYS.items()}, "sep_token_id": "sep"}
NESTED_TEXT_CONFIGS = ("text_config", "language_config", "decoder")  # where multimodal / composite configs keep theirs
MAX_IDS_PER_KEY = 64  # ids of an eos_token_id list named one by one (real ones hold 1-4); the rest by their largest


@dataclass(frozen=True)
class SpecialTokenId:
    """One special token id: its role (bos, eos, pad, ...), the id, and the file (or default) it comes from."""

    role: str
    token_id: int
    source: str


def _ids(value: Any) -> list[int]:
    """The ids in a config value: an int >= 0 (not a bool), or such ints in a list; anything else holds none.

    Negative ids (`pad_token_id: -1` in some converted configs) mean "none", as `special_tokens.token_id` reads them.
    A list longer than `MAX_IDS_PER_KEY` gives its first ones and the largest of the rest: the one a range
    check needs, so an id out of range past the first ones is still found.
    """
    values = value if isinstance(value, list) else [value]
    ids = [item for item in values if type(item) is int and item >= 0]
    return ids[:MAX_IDS_PER_KEY] + ([max(ids[MAX_IDS_PER_KEY:])] if len(ids) > MAX_IDS_PER_KEY else [])


def _config_ids(config: dict[str, Any]) -> list[SpecialTokenId]:
    """config.json's token ids (top level and nested text configs), with the family's defaults for absent keys."""
    where = config_source_name(config)
    filled = with_family_defaults(config)
    found: list[SpecialTokenId] = []
    layers: list[tuple[dict[str, Any], dict[str, Any], str]] = [(config, filled, where)]
    for key in NESTED_TEXT_CONFIGS:
        nested, written = filled.get(key), config.get(key)
        if isinstance(nested, dict):
            layers.append((written if isinstance(written, dict) else {}, nested, f"{where} {key}"))
    for written, values, label in layers:
        known = family(str(values.get("model_type", "")))
        default = f"{known.config_class} default" if known else "family default"
        for key, role in CONFIG_ID_KEYS.items():
            source = label if key in written else f"{default} ({label} has no {key})"
            found += [SpecialTokenId(role, index, source) for index in _ids(values.get(key))]
    return found


def special_token_ids(tokenizer: TokenizerFacts, config: dict[str, Any] | None) -> list[SpecialTokenId]:
    """Every special token id of the model: tokenizer files, config.json (with family defaults), generation config."""
    files = tokenizer.special_token_files
    found = [SpecialTokenId(role, index, files.get(role, "tokenizer files")) for role, index in tokenizer.declared_ids.items()]
    found += [
        SpecialTokenId(role, index, f"{files.get(role, 'tokenizer files')}; {tokenizer.special_tokens[role][:40]!r} is not in the vocabulary, appended at load")
        for role, index in tokenizer.appended_ids.items()
    ]
    if config is not None:
        found += _config_ids(config)
    for key, value in tokenizer.generation_ids.items():
        found += [SpecialTokenId(GENERATION_ID_KEYS[key], index, "generation_config.json") for index in _ids(value)]
    return found


def embedding_rows_of(facts: StaticFacts) -> tuple[Any, str]:
    """(the embedding's rows, how they are named in messages): the tensor's rows, else config vocab_size (may be None or not an int)."""
    if facts.embedding_rows is not None:
        return facts.embedding_rows, "the embedding's {rows} rows"
    source = config_source_name(facts.config)
    rows = (facts.config or {}).get("vocab_size") or facts.architecture.get("vocab_size")
    return rows, "the {rows} embedding rows " + f"{source}'s vocab_size gives"


@dataclass
class SpecialIdRange:
    """The special token ids of a model against its tokenizer's ids and embedding rows (either may be unknown).

    An id is in the tokenizer when it is at most its largest id (`largest_id`, `tokens` - 1 when unknown):
    a model vocabulary whose ids leave gaps has ids past its `tokens` (`len(tokenizer)`).
    """

    ids: list[SpecialTokenId] = field(default_factory=list)
    tokens: int | None = None
    rows: int | None = None
    rows_phrase: str = "the embedding's {rows} rows"
    largest_id: int | None = None

    @property
    def token_limit(self) -> int | None:
        """The first id past the tokenizer's ids, None when unknown."""
        return self.largest_id + 1 if self.largest_id is not None else self.tokens

    def outside(self) -> dict[tuple[str, int], list[str]]:
        """(role, id) -> the sources of every id past the tokenizer's ids or at or above the rows, in first-seen order."""
        limits = [limit for limit in (self.token_limit, self.rows) if limit is not None]
        found: dict[tuple[str, int], list[str]] = {}
        for item in self.ids:
            if any(item.token_id >= limit for limit in limits):
                sources = found.setdefault((item.role, item.token_id), [])
                if item.source not in sources:
                    sources.append(item.source)
        return found

    def _limits_phrase(self, token_id: int) -> str:
        parts = []
        limit = self.token_limit
        if limit is not None and token_id >= limit:
            parts.append(f"the tokenizer's {self.tokens} tokens" if limit == self.tokens else f"the tokenizer's ids (0..{limit - 1})")
        if self.rows is not None and token_id >= self.rows:
            parts.append(self.rows_phrase.format(rows=self.rows))
        return " and ".join(parts)

    def message(self) -> str | None:
        """Each out-of-range id with its role and sources, grouped by the limits it passes; None when all fit.

        E.g. "bos 50256 (config.json) and eos 50256 (config.json) are outside the tokenizer's 370 tokens and
        the embedding's 370 rows".
        """
        groups: dict[str, list[str]] = {}
        for (role, token_id), sources in self.outside().items():
            groups.setdefault(self._limits_phrase(token_id), []).append(f"{role} {token_id} ({', '.join(sources)})")
        sentences = []
        for limits, named in groups.items():
            verb = "is" if len(named) == 1 else "are"
            sentences.append(f"{', '.join(named[:-1])}{' and ' if len(named) > 1 else ''}{named[-1]} {verb} outside {limits}")
        return "; ".join(sentences) or None

    def problem(self) -> str | None:
        """"special token ids out of range: <message>", or None when every id fits: the rule's and the task guard's text."""
        message = self.message()
        return f"special token ids out of range: {message}" if message else None

    def to_observed(self) -> list[dict[str, Any]]:
        """The ids as plain JSON for a verdict: [{"role", "id", "source"}, ...]."""
        return [{"role": item.role, "id": item.token_id, "source": item.source} for item in self.ids]


def special_id_range(facts: StaticFacts) -> SpecialIdRange:
    """The model's special token ids against its tokenizer size and embedding rows (a rows value that is not an int is unknown)."""
    rows, phrase = embedding_rows_of(facts)
    return SpecialIdRange(
        ids=special_token_ids(facts.tokenizer, facts.config),
        tokens=facts.tokenizer.vocab_size,
        rows=rows if type(rows) is int else None,
        rows_phrase=phrase,
        largest_id=facts.tokenizer.largest_id,
    )


def out_of_range_message(facts: StaticFacts) -> str | None:
    """"special token ids out of range: ..." (`SpecialIdRange.problem`), or None when every id fits."""
    return special_id_range(facts).problem()


def require_special_ids_in_range(evidence: Evidence) -> None:
    """Raise CheckError naming every special token id outside the vocabulary or the embedding (the rule's message).

    Called by the tasks probe before lm-eval runs: such an id reaches the model as lm-eval's prefix or pad
    token and ends in an IndexError that names nothing. Without static facts (the probe failed or did not
    run) there is nothing to judge and it returns.
    """
    if not evidence.has("static"):
        return
    try:
        facts = evidence.get("static")
    except Exception:  # noqa: BLE001 - a static probe that failed or was skipped: its own rules report it
        return
    message = out_of_range_message(facts)
    if message:
        raise CheckError(message)

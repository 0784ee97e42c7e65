"""Tokenizer facts from the tokenizer's own files (every vocabulary and added-token file) or a GGUF file: no transformers.

Every source of token ids is read (`tokenizer_sources`): tokenizer.json (`model.vocab` and `added_tokens`),
vocab.json, vocab.txt, a sentencepiece model (tokenizer.model, spiece.model, sentencepiece.bpe.model,
spm.model, through a bounded protobuf reader), added_tokens.json and tokenizer_config.json's
`added_tokens_decoder`. `vocab_size` is `len(tokenizer)` in transformers: the model vocabulary's size (a
vocab.txt's distinct lines) plus each added token whose text is not in it, numbered after it whatever id
its file writes; each source's own size is kept in `vocab_sources`. A token given two ids by two files (or
an id given two texts by two added-token files) is an error naming both files. A source that cannot be
read leaves `vocab_size` unknown with `vocab_error` naming it, since any id may be in it, but only when
transformers reads that source (an unreadable vocab.txt beside a readable tokenizer.json, or
added_tokens.json beside an `added_tokens_decoder`, is reported and leaves the size known). All tokenizer
files read together stay within `MAX_TOKENIZER_TOTAL_BYTES`; a file over what is left is that file's error.

Special tokens (bos, eos, unk, pad, sep, cls, mask) are named in special_tokens_map.json, then
tokenizer_config.json, or in tokenizer_config.json alone when it has an `added_tokens_decoder` (transformers
5 then reads neither special_tokens_map.json nor added_tokens.json); their ids are those texts' ids in the
merged vocabulary, an added token's the id a loader numbers it with (after the model vocabulary). A special token (or an
additional one) whose text is in no vocabulary file is appended at the next id (`len(tokenizer)`), as
transformers does, and counts in `vocab_size` (`appended_ids`). generation_config.json's
special token ids are read here too (as written, for `special_token_ids`), since the static probe reads
no other file for them.

A folder without a vocabulary file but with a GGUF model reads its tokenizer from the GGUF metadata: the
vocabulary is `tokenizer.ggml.tokens`, the special tokens the `tokenizer.ggml.*_token_id` entries (their
text the token at that id), its CONTROL and USER_DEFINED tokens the added ones. Chat templates (a GGUF
file's, chat_template.jinja, tokenizer_config.json's, chat_template.json) are read by `probes.chat_templates`
in a loader's order of precedence, kept as text, and never rendered here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..candidate import Candidate
from ..formats.gguf import SPECIAL_TOKEN_KEYS as GGUF_SPECIAL_TOKEN_KEYS
from ..formats.gguf import gguf_model_files, is_gguf_name, read_gguf
from ..formats.gguf_header import TOKEN_TYPES_KEY, GGUFArray, StringTable
from .chat_templates import ChatTemplateFacts, add_embedded, templates_from_folder, templates_from_gguf
from .json_keys import read_model_json
from .tokenizer_sources import (
    MAX_TOKEN_ID,
    MAX_TOKENIZER_TOTAL_BYTES,
    SENTENCEPIECE_FILES,
    ByteBudget,
    VocabSource,
    added_tokens_decoder_source,
    mapping_source,
    merge_sources,
    sentencepiece_source,
    text_source,
    tokenizer_json_sources,
)

SLOW_VOCABULARY_FILES = ("vocab.json", "vocab.txt", *SENTENCEPIECE_FILES)  # the model vocabulary when there is no tokenizer.json
VOCABULARY_FILES = ("tokenizer.json", *SLOW_VOCABULARY_FILES)
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", *SENTENCEPIECE_FILES,
)
# The order sources are listed in the evidence (by file name), whatever order they are read in.
SOURCE_ORDER = ("tokenizer.json", "vocab.json", "vocab.txt", *SENTENCEPIECE_FILES, "added_tokens.json", "tokenizer_config.json")
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
# generation_config.json keys that hold token ids, and the role each names.
GENERATION_ID_KEYS = {"bos_token_id": "bos", "eos_token_id": "eos", "pad_token_id": "pad", "decoder_start_token_id": "decoder_start"}
# The order transformers appends special tokens that are in no vocabulary (SPECIAL_TOKENS_ATTRIBUTES).
ADDED_ORDER = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
ADDITIONAL_SPECIAL_KEYS = ("additional_special_tokens", "extra_special_tokens")  # transformers 4 and 5 names
MAX_ADDITIONAL_SPECIAL_TOKENS = 1_048_576  # texts kept from those lists (real ones hold at most a few thousand)
MAX_TOKENIZER_BYTES = 256 * 1024 * 1024  # one tokenizer file (the largest real tokenizer.json is ~35 MB)
# transformers 5 reads special_tokens_map.json and added_tokens.json (its legacy files) only when
# tokenizer_config.json has no key of this name (PreTrainedTokenizerBase._from_pretrained).
READS_LEGACY_FILES_WITHOUT = "added_tokens_decoder"
LEGACY_UNREAD = " (not read: tokenizer_config.json has added_tokens_decoder)"
MAX_GENERATION_CONFIG_BYTES = 1024 * 1024
MAX_EOS_IDS = 4096  # eos ids kept from generation_config.json (real lists hold 1-4)
MAX_GGUF_FILES = 64  # GGUF files of a folder whose templates are read beside Hugging Face tokenizer files
MAX_ADDED_TOKEN_TEXTS = 65_536  # added and special token texts kept by id (real tokenizers have at most a few thousand)
__all__ = ["MAX_TOKENIZER_TOTAL_BYTES", "MAX_TOKEN_ID", "TokenizerFacts", "read_tokenizer"]



@dataclass
class TokenizerFacts:
    """What the tokenizer's files say: which are present, the vocabulary size, the special tokens and their ids.

    Attributes:
        files: the tokenizer files present (`TOKENIZER_FILES`, or the GGUF file read).
        vocab_size: `len(tokenizer)` as transformers loads it (added tokens included); None when unknown.
        largest_id: the largest id a token has once loaded (a model vocabulary's ids as written, added and
            appended tokens as numbered): `vocab_size` - 1 unless the model vocabulary's ids repeat or
            leave gaps; None when unknown.
        vocab_sources: each source's own size (`VocabSource.size`), by label ("vocab.txt",
            "added_tokens.json", "tokenizer.json added_tokens", ...).
        vocab_error: why `vocab_size` is unknown (a source unreadable), else None.
        special_tokens: role (bos, eos, ...) -> token text.
        special_token_ids: role -> the text's id in the vocabulary, None when it is not in it.
        special_token_files: role -> the file that names it (special_tokens_map.json, tokenizer_config.json,
            "<file>.gguf metadata").
        additional_special_tokens: the texts of `additional_special_tokens` / `extra_special_tokens`
            (special_tokens_map.json, tokenizer_config.json), first `MAX_ADDITIONAL_SPECIAL_TOKENS`.
        declared_ids: role -> the id the tokenizer's files give it, even out of range (GGUF ids as written).
        appended_ids: role -> the id a loader appends its text at, when the text is in no vocabulary file.
        generation_ids: generation_config.json's token-id keys as written (`GENERATION_ID_KEYS`; eos lists
            kept to `MAX_EOS_IDS`).
        generation_config_present: the folder holds generation_config.json (read or not).
        generation_config_error: why generation_config.json could not be read, else None.
        errors: every problem found (unreadable files, contradictions between files).
        chat_templates: the chat templates a loader would use (`probes.chat_templates`), never rendered here.
        added_token_ids: text -> id of every added or special token a tokenizer matches whole in text
            (tokenizer.json added_tokens, added_tokens.json, added_tokens_decoder, the special tokens; a GGUF
            file's CONTROL and USER_DEFINED tokens), at most `MAX_ADDED_TOKEN_TEXTS`.
    """

    files: list[str] = field(default_factory=list)
    vocab_size: int | None = None
    largest_id: int | None = None
    vocab_sources: dict[str, int] = field(default_factory=dict)
    vocab_error: str | None = None
    special_tokens: dict[str, str] = field(default_factory=dict)
    special_token_ids: dict[str, int | None] = field(default_factory=dict)
    special_token_files: dict[str, str] = field(default_factory=dict)
    additional_special_tokens: list[str] = field(default_factory=list)
    declared_ids: dict[str, int] = field(default_factory=dict)
    appended_ids: dict[str, int] = field(default_factory=dict)
    generation_ids: dict[str, Any] = field(default_factory=dict)
    generation_config_present: bool = False
    generation_config_error: str | None = None
    errors: list[str] = field(default_factory=list)
    chat_templates: ChatTemplateFacts = field(default_factory=ChatTemplateFacts)
    added_token_ids: dict[str, int] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        """True if the folder holds any tokenizer file."""
        return bool(self.files)

    def to_dict(self) -> dict[str, Any]:
        """The facts as a result document's evidence holds them (plain JSON; the chat template is left out)."""
        return {
            "files": self.files,
            "vocab_size": self.vocab_size,
            "largest_id": self.largest_id,
            "vocab_sources": self.vocab_sources,
            "vocab_error": self.vocab_error,
            "special_tokens": self.special_tokens,
            "special_token_ids": self.special_token_ids,
            "appended_ids": self.appended_ids,
            "generation_ids": self.generation_ids,
            "errors": self.errors,
            "chat_templates": self.chat_templates.to_dict(),
        }


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _read_gguf_tokenizer(candidate: Candidate, names: set[str], facts: TokenizerFacts) -> None:
    """Vocabulary size, special tokens and chat template from the model's GGUF metadata (problems to `errors`)."""
    try:
        relative = gguf_model_files(names)[0]
        header = read_gguf(candidate, relative)
    except Exception as exc:  # noqa: BLE001 - any failure of these bytes is the tokenizer's error
        facts.errors.append(f"GGUF tokenizer unreadable: {str(exc)[:500] or type(exc).__name__}")
        facts.vocab_error = facts.errors[-1]
        facts.chat_templates = ChatTemplateFacts(unjudged=[facts.errors[-1]], errors=[facts.errors[-1]])
        return
    facts.files.append(relative)
    facts.chat_templates = templates_from_gguf(header.metadata, relative)
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, StringTable):
        facts.errors.append(f"{relative}: no tokenizer.ggml.tokens list")
        facts.vocab_error = facts.errors[-1]
        return
    facts.vocab_size = len(tokens)
    facts.largest_id = len(tokens) - 1
    facts.vocab_sources[f"{relative} tokenizer.ggml.tokens"] = len(tokens)
    for role, key in GGUF_SPECIAL_TOKEN_KEYS.items():
        token_id = header.metadata.get(key)
        if token_id is None:
            continue
        known = type(token_id) is int and 0 <= token_id < len(tokens)
        facts.special_tokens[role] = tokens[token_id] if known else f"<id {str(token_id)[:40]}>"
        facts.special_token_ids[role] = token_id if known else None
        facts.special_token_files[role] = f"{relative} metadata"
        if type(token_id) is int and token_id >= 0:
            facts.declared_ids[role] = token_id
    types = header.metadata.get(TOKEN_TYPES_KEY)
    special_ids = types.special_ids if isinstance(types, GGUFArray) and types.special_ids is not None else ()
    facts.added_token_ids = {tokens[index]: index for index in special_ids[:MAX_ADDED_TOKEN_TEXTS] if index < len(tokens)}
    for role, text in facts.special_tokens.items():
        index = facts.special_token_ids.get(role)
        if index is not None and len(facts.added_token_ids) < MAX_ADDED_TOKEN_TEXTS:
            facts.added_token_ids.setdefault(text, index)


def _vocabulary_sources(
    candidate: Candidate, names: set[str], tokenizer_config: dict[str, Any] | None, budget: ByteBudget
) -> tuple[list[VocabSource], list[str], list[str]]:
    """Every readable id source of the folder, and the errors of those that could not be read (each naming its file).

    Returns (sources, errors that leave the vocabulary unknown, errors of files no loader needs). With a
    readable tokenizer.json, a loader takes the model vocabulary from it: vocab.json, vocab.txt and a
    sentencepiece model are then read as evidence (their sizes count, their contradictions are reported),
    but one that cannot be read does not make the vocabulary unknown. added_tokens.json is needed only where
    transformers reads it (tokenizer_config.json without `added_tokens_decoder`). The files are read
    within `budget` in the order a loader needs them (tokenizer.json, added_tokens.json, then the others).
    """
    sources: list[VocabSource] = []
    failed: dict[str, str] = {}

    def attempt(name: str, read: Any) -> None:
        try:
            found = read()
        except Exception as exc:  # noqa: BLE001 - any failure of these bytes is that source's error
            failed[name] = f"{name} unreadable: {str(exc)[:500] or type(exc).__name__}"
            return
        sources.extend(found if isinstance(found, list) else [found] if found is not None else [])

    def limit(name: str) -> int:
        return budget.take(name, MAX_TOKENIZER_BYTES)

    if "tokenizer.json" in names:
        attempt("tokenizer.json", lambda: tokenizer_json_sources(read_model_json(candidate, "tokenizer.json", limit("tokenizer.json"))))
    if "added_tokens.json" in names:
        attempt(
            "added_tokens.json",
            lambda: mapping_source(candidate.read_json("added_tokens.json", limit("added_tokens.json")), "added_tokens.json", added=True),
        )
    if "vocab.json" in names:
        attempt("vocab.json", lambda: mapping_source(candidate.read_json("vocab.json", limit("vocab.json")), "vocab.json"))
    if "vocab.txt" in names:
        attempt("vocab.txt", lambda: text_source(candidate.read_bytes("vocab.txt", limit("vocab.txt"))))
    for name in SENTENCEPIECE_FILES:
        if name in names:
            attempt(name, lambda name=name: sentencepiece_source(candidate.read_bytes(name, limit(name)), name))
    if tokenizer_config is not None:
        attempt("tokenizer_config.json added_tokens_decoder", lambda: added_tokens_decoder_source(tokenizer_config))
    sources.sort(key=lambda source: SOURCE_ORDER.index(source.label.split(" ")[0]))  # the evidence's order, not the reading's
    fast = "tokenizer.json" in names and "tokenizer.json" not in failed
    legacy_unread = tokenizer_config is not None and READS_LEGACY_FILES_WITHOUT in tokenizer_config
    unneeded = [
        error
        for name, error in failed.items()
        if (fast and name in SLOW_VOCABULARY_FILES) or (legacy_unread and name == "added_tokens.json")
    ]
    needed = [error for error in failed.values() if error not in unneeded]
    return sources, needed, unneeded


def _read_special_configs(
    candidate: Candidate, names: set[str], facts: TokenizerFacts, budget: ByteBudget
) -> tuple[dict[str, Any] | None, str | None]:
    """Special-token names as transformers takes them; returns (tokenizer config, its error).

    transformers 5 reads special_tokens_map.json (whose names win) beside tokenizer_config.json only when
    tokenizer_config.json has no `added_tokens_decoder` (`READS_LEGACY_FILES_WITHOUT`); with one, the
    names are tokenizer_config.json's alone and special_tokens_map.json is read for its errors only.
    """
    tokenizer_config: dict[str, Any] | None = None
    config_error: str | None = None
    read: dict[str, dict[str, Any]] = {}
    for config_name in ("special_tokens_map.json", "tokenizer_config.json"):
        if config_name not in names:
            continue
        try:
            most = MAX_TOKENIZER_BYTES if config_name == "tokenizer_config.json" else 4 * 1024 * 1024
            data = candidate.read_json(config_name, budget.take(config_name, most))
            if not isinstance(data, dict):
                raise ValueError(f"{config_name} is not a JSON object")
        except Exception as exc:  # noqa: BLE001
            facts.errors.append(str(exc)[:500] or type(exc).__name__)
            if config_name == "tokenizer_config.json":
                config_error = f"tokenizer_config.json unreadable: {facts.errors[-1]}"
            continue
        read[config_name] = data
    tokenizer_config = read.get("tokenizer_config.json")
    if tokenizer_config is not None:
        if READS_LEGACY_FILES_WITHOUT in tokenizer_config:
            read.pop("special_tokens_map.json", None)
    for config_name, data in read.items():
        for key in SPECIAL_TOKEN_KEYS:
            text = _token_text(data.get(key))
            role = key[: -len("_token")]
            if text is not None and role not in facts.special_tokens:
                facts.special_tokens[role] = text
                facts.special_token_files[role] = config_name
        for key in ADDITIONAL_SPECIAL_KEYS:
            listed = data.get(key)
            values = listed.values() if isinstance(listed, dict) else listed if isinstance(listed, list) else []
            room = MAX_ADDITIONAL_SPECIAL_TOKENS - len(facts.additional_special_tokens)
            facts.additional_special_tokens += [text for text in map(_token_text, list(values)[:room]) if text is not None]
    return tokenizer_config, config_error


def _read_generation_ids(candidate: Candidate, names: set[str], facts: TokenizerFacts) -> None:
    """generation_config.json's token-id keys, as written; an unreadable file is `generation_config_error`."""
    if "generation_config.json" not in names:
        return
    facts.generation_config_present = True
    try:
        data = candidate.read_json("generation_config.json", MAX_GENERATION_CONFIG_BYTES)
        if not isinstance(data, dict):
            raise ValueError("generation_config.json is not a JSON object")
    except Exception as exc:  # noqa: BLE001
        facts.generation_config_error = str(exc)[:500] or type(exc).__name__
        return
    facts.generation_ids = {key: _bounded_id_value(data[key], MAX_EOS_IDS if key == "eos_token_id" else 64) for key in GENERATION_ID_KEYS if key in data}


def _bounded_id_value(value: Any, keep: int = 64) -> Any:
    """A token-id value kept for evidence: numbers and None as written, a list bounded, anything else as short text.

    A list keeps its first `keep` items and, when longer, the largest id (an int >= 0) of the rest, so a
    range check still sees an id out of range however far down the list it is.
    """
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, list):
        kept = [_bounded_id_value(item) if not isinstance(item, (list, dict)) else str(item)[:40] for item in value[:keep]]
        rest = [item for item in value[keep:] if type(item) is int and item >= 0]
        return kept + [max(rest)] if rest else kept
    return str(value)[:40]


def _count_unlisted_special_tokens(facts: TokenizerFacts, vocab: dict[str, int]) -> None:
    """Special tokens named but in no vocabulary file: a loader appends each at the next id, as transformers does.

    `AutoTokenizer` adds a special token whose text is in no vocabulary (a bos_token "<s>" over BERT's
    vocab.txt, an additional special token) at the next id, `len(tokenizer)`, in `ADDED_ORDER` then the additional
    ones, so `len(tokenizer)` grows by one for each distinct such text; the size counts them,
    `vocab_sources` says so ("special tokens in no vocabulary file") and `appended_ids` holds the id each
    role gets. Their `special_token_ids` stay None: `tokenizer.special_tokens` reports them.
    """
    if facts.vocab_size is None:
        return
    ordered = [facts.special_tokens[role] for role in ADDED_ORDER if role in facts.special_tokens]
    unlisted = [text for text in dict.fromkeys([*ordered, *facts.additional_special_tokens]) if text not in vocab]
    if not unlisted:
        return
    appended = {text: facts.vocab_size + index for index, text in enumerate(unlisted)}
    facts.appended_ids = {role: appended[text] for role, text in facts.special_tokens.items() if text in appended}
    facts.vocab_size += len(unlisted)
    facts.vocab_sources["special tokens in no vocabulary file"] = facts.vocab_size


def read_tokenizer(candidate: Candidate) -> TokenizerFacts:
    """Tokenizer facts from its files (each read bounded, through safe_files); problems go to `errors`, never raised."""
    names = set(candidate.file_names())
    facts = TokenizerFacts(files=[name for name in TOKENIZER_FILES if name in names])
    _read_generation_ids(candidate, names, facts)
    if not names & set(VOCABULARY_FILES) and any(is_gguf_name(name) for name in names):
        _read_gguf_tokenizer(candidate, names, facts)
        return facts
    budget = ByteBudget({entry.path: entry.size_bytes for entry in candidate.files})
    tokenizer_config, config_error = _read_special_configs(candidate, names, facts, budget)
    every_source, needed_errors, unneeded_errors = _vocabulary_sources(candidate, names, tokenizer_config, budget)
    _, conflicts = merge_sources(every_source)  # contradictions between any two files, read by a loader or not
    legacy_unread = tokenizer_config is not None and READS_LEGACY_FILES_WITHOUT in tokenizer_config
    sources = [source for source in every_source if not (legacy_unread and source.label == "added_tokens.json")]
    vocab, _ = merge_sources(sources)
    facts.vocab_sources = {source.label + ("" if source in sources else LEGACY_UNREAD): source.size for source in every_source}
    facts.errors += needed_errors + unneeded_errors + conflicts
    if config_error is not None:  # its added_tokens_decoder may hold ids: already in `errors`, it leaves the size unknown
        needed_errors.append(config_error)
    if needed_errors:
        facts.vocab_error = "; ".join(needed_errors)
    loaded_size = _number_added_tokens(sources, vocab)
    facts.special_token_ids = {role: vocab.get(text) for role, text in facts.special_tokens.items()}
    facts.declared_ids = {role: index for role, index in facts.special_token_ids.items() if index is not None}
    if not needed_errors and sources:
        written_size = max(source.size for source in sources)
        facts.vocab_size = (loaded_size if loaded_size is not None else written_size) or None
        if loaded_size is not None and loaded_size != written_size:  # the written ids are not the loaded ones
            facts.vocab_sources["added tokens as a loader numbers them"] = loaded_size
        _count_unlisted_special_tokens(facts, vocab)
        if facts.vocab_size is not None:
            model_ids = [source.largest_id for source in sources if not source.added and source.largest_id is not None]
            facts.largest_id = max([facts.vocab_size - 1, *model_ids])
    facts.added_token_ids = _added_token_ids(facts, sources, vocab)
    facts.chat_templates = templates_from_folder(candidate, names, tokenizer_config)
    _add_gguf_templates(candidate, names, facts.chat_templates)
    return facts


def _add_gguf_templates(candidate: Candidate, names: set[str], templates: ChatTemplateFacts) -> None:
    """The templates GGUF files carry beside Hugging Face tokenizer files: llama.cpp renders those."""
    for relative in sorted(name for name in names if is_gguf_name(name))[:MAX_GGUF_FILES]:
        try:
            header = read_gguf(candidate, relative)
        except Exception as exc:  # noqa: BLE001 - its templates are then unjudged, which says why
            reason = f"{relative}: header unreadable, its chat templates unjudged: {str(exc)[:300] or type(exc).__name__}"
            add_embedded(templates, ChatTemplateFacts(unjudged=[reason]))
            continue
        add_embedded(templates, templates_from_gguf(header.metadata, relative))


def _added_token_ids(facts: TokenizerFacts, sources: list[VocabSource], vocab: dict[str, int]) -> dict[str, int]:
    """Text -> loaded id of the added-token sources' texts and the special tokens (appended ones included)."""
    found: dict[str, int] = {}
    texts = [text for source in sources if source.added for text in source.tokens]
    for text in texts[:MAX_ADDED_TOKEN_TEXTS]:
        if text in vocab:
            found[text] = vocab[text]
    for role, text in facts.special_tokens.items():
        index = facts.special_token_ids.get(role)
        index = index if index is not None else facts.appended_ids.get(role)
        if index is not None and len(found) < MAX_ADDED_TOKEN_TEXTS:
            found.setdefault(text, index)
    return found


def _number_added_tokens(sources: list[VocabSource], vocab: dict[str, int]) -> int | None:
    """Give `vocab`'s added tokens the ids a loader gives them; the size that makes, or None without a model vocabulary.

    The tokenizers library (which transformers 5 loads every tokenizer with) does not keep an added token's
    written id: a text in the model vocabulary keeps its id there, and every other one is appended after
    the model vocabulary, in order (tokenizer.json's added_tokens, then added_tokens.json and
    tokenizer_config.json's added_tokens_decoder, each by written id). An added token written at an id the
    model vocabulary already uses for another text (added_tokens.json `{"[Z]": 5}` over BERT's vocab.txt) is
    thus one token more than the written ids say, and an embedding of exactly the written size has no row
    for it. Written ids that leave a gap after the model vocabulary are not kept either: '[NEW]' written at
    40000 over BERT's 30,522 tokens is id 30522 and `len(tokenizer)` is 30,523, so the size is this
    numbering's, never the largest written id + 1 (which would fail a model transformers loads and runs).
    The model vocabulary's size is its sources' largest (vocab.txt's: its distinct lines, `text_source`).
    """
    model = [source for source in sources if not source.added]
    if not model:
        return None
    model_texts: set[str] = set()
    for source in model:
        model_texts.update(source.tokens)
    next_id = max(source.size for source in model)
    for source in (source for source in sources if source.added):
        for text, _ in sorted(source.tokens.items(), key=lambda item: item[1]):
            if text in model_texts:
                continue
            model_texts.add(text)
            vocab[text] = next_id
            next_id += 1
    return next_id

"""Token ids from each of a tokenizer's files, every one read bounded; no transformers, no sentencepiece.

A tokenizer's ids can come from several files at once, and transformers reads all of them: the model
vocabulary (tokenizer.json's `model.vocab`, vocab.json, vocab.txt, a sentencepiece model) and the added
tokens (tokenizer.json's `added_tokens`, added_tokens.json, tokenizer_config.json's `added_tokens_decoder`).
Each reader here returns one `VocabSource` (token text -> id, and the source's size: what a loader counts
for it, see `VocabSource`).
`merge_sources` combines them the way a loader does (added tokens over the model vocabulary) and reports
every contradiction: a token text given two ids, or an id given two texts by two added-token sources.

Sentencepiece models (tokenizer.model, spiece.model, ...) are protobuf `ModelProto` messages; the
`sentencepiece` library is not installed with the suite, so `sentencepiece_pieces` is a small bounded
protobuf reader: field 1 of the message is the repeated `SentencePiece`, whose field 1 is the piece text
(sentencepiece_model.proto). The piece at index i has id i. Nothing else of the model is interpreted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_TOKEN_ID = 2**32 - 1  # the tokenizers library stores ids as u32
MAX_SENTENCEPIECE_PIECES = 2_097_152  # 2**21: twice XLM-V's 901,629 pieces, eight times Gemma's 262,144
MAX_VARINT_BYTES = 10  # a protobuf varint encodes at most 64 bits in 10 bytes
# ModelProto has four fields besides its pieces (trainer_spec, normalizer_spec, self_test_data,
# denormalizer_spec) and a SentencePiece three (piece, score, type); these bound the fields read beside
# them, so a file of millions of tiny fields costs milliseconds, not minutes, before it is refused.
MAX_OTHER_MODEL_FIELDS = 4096
MAX_PIECE_FIELDS = 16
# What tokenizers' WordPiece vocabulary reader strips from the end of each vocab.txt line (Rust's
# `str::trim_end`: Unicode White_Space, "\r" of a CRLF line included); Python's str.rstrip() would also
# strip U+001C-U+001F, which it keeps.
LINE_END_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
MAX_REPORTED_CONFLICTS = 5  # contradictions named in full; the rest are counted
# All tokenizer files read for one folder together (their bytes, and the parsed objects kept at once, which
# are a few times their size): eight files at the one-file bound (256 MiB each) would otherwise cost several
# GB. A file over what is left is that file's error, so only the facts that need it are unknown.
MAX_TOKENIZER_TOTAL_BYTES = 512 * 1024 * 1024

SENTENCEPIECE_FILES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "spm.model")


@dataclass
class VocabSource:
    """The ids one file gives: `tokens` (text -> id) and `size`.

    A model vocabulary's size is what the tokenizers library counts for it (`get_vocab_size`): its number
    of distinct texts (vocab.json, vocab.txt, tokenizer.json's `model.vocab` mapping) or of pieces (a
    Unigram list, a sentencepiece model). It is its largest id + 1 unless ids repeat or leave gaps, and
    then `largest_id` is kept apart. An added-token source's size is its largest written id + 1 (0 when it
    gives none), evidence only: a loader numbers those tokens itself.

    `added` marks an added-token source (tokenizer.json added_tokens, added_tokens.json,
    tokenizer_config.json added_tokens_decoder), which a loader lays over the model vocabulary.
    """

    label: str
    tokens: dict[str, int] = field(default_factory=dict)
    size: int = 0
    added: bool = False

    @property
    def largest_id(self) -> int | None:
        """The largest id the file gives a token, None when it gives none."""
        return max(self.tokens.values()) if self.tokens else None


class ByteBudget:
    """What is left of `MAX_TOKENIZER_TOTAL_BYTES` for one folder's tokenizer files, charged by listed size.

    Args:
        sizes: each file's listed size in bytes, by path relative to the folder.
    """

    def __init__(self, sizes: dict[str, int]) -> None:
        """A full budget over the files listed in `sizes`."""
        self.total = MAX_TOKENIZER_TOTAL_BYTES  # read at call time, so a test may lower it
        self.left = self.total
        self.sizes = sizes

    def take(self, name: str, most: int) -> int:
        """Charge `name`'s listed size and return the bytes it may be read with (at most `most`).

        Raises:
            ValueError: the file is larger than what is left of the budget (naming the file and both figures).
        """
        size = self.sizes.get(name, 0)
        if size > self.left:
            raise ValueError(
                f"{name} is {size} bytes, over the {self.left} bytes left of the {self.total}-byte budget for a folder's tokenizer files"
            )
        self.left -= size
        return min(most, size + self.left)  # a file that grew since it was listed is refused at the read


def token_id(value: Any, where: str) -> int:
    """A token id as the tokenizers library reads one (a u32); ValueError for floats, NaN, Infinity, negatives, bools."""
    if type(value) is not int or not 0 <= value <= MAX_TOKEN_ID:
        raise ValueError(f"{where}: token id {str(value)[:40]} is not an integer in 0..{MAX_TOKEN_ID}")
    return value


def _source(label: str, tokens: dict[str, int], *, added: bool = False, size: int | None = None) -> VocabSource:
    largest = size if size is not None else (max(tokens.values()) + 1 if tokens else 0)
    return VocabSource(label, tokens, largest, added)


def mapping_source(raw: Any, label: str, *, added: bool = False) -> VocabSource:
    """A {text: id} JSON object (vocab.json, added_tokens.json); ValueError when it is not one or an id is bad.

    A model vocabulary's size is its number of texts (see `VocabSource`), an added-token file's its largest id + 1.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{label} is not a JSON object")
    tokens = {str(k): token_id(v, label) for k, v in raw.items()}
    return _source(label, tokens, added=added, size=None if added else len(tokens))


def text_source(data: bytes, label: str = "vocab.txt") -> VocabSource:
    r"""vocab.txt: one token per line, the line's index its id; its size is its number of distinct tokens.

    Lines end at "\n" and lose their trailing whitespace (`LINE_END_WHITESPACE`), as tokenizers' WordPiece
    reader takes them: a CRLF file's "[UNK]\r" is "[UNK]", and "[UNK]  " is "[UNK]" too. That reader
    (`WordPiece::read_file`) puts each line into a text -> id map, so a repeated line (blank lines at the
    end of the file included: each is "") keeps its last index and the model vocabulary holds one entry
    per distinct text: `len(tokenizer)` counts those, not the lines (30,522 lines with two repeated give
    30,520; BERT's vocab.txt with three blank lines after it gives 30,523). The size is therefore the
    number of distinct texts, and added tokens are numbered from it (`VocabSource.size`).
    """
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    tokens = {line.rstrip(LINE_END_WHITESPACE): index for index, line in enumerate(lines)}
    return _source(label, tokens, size=len(tokens))


def tokenizer_json_sources(data: Any) -> list[VocabSource]:
    """tokenizer.json's `model.vocab` (a mapping, or Unigram's [[piece, score], ...] list) and its `added_tokens`."""
    if not isinstance(data, dict):
        raise ValueError("tokenizer.json is not a JSON object")
    model = data.get("model") or {}
    raw = model.get("vocab") if isinstance(model, dict) else None
    sources = []
    if isinstance(raw, dict):
        sources.append(mapping_source(raw, "tokenizer.json model.vocab"))
    elif isinstance(raw, list):  # Unigram: the piece at index i has id i
        pieces = {str(item[0]): index for index, item in enumerate(raw) if isinstance(item, list) and item}
        sources.append(_source("tokenizer.json model.vocab", pieces, size=len(raw)))
    added = data.get("added_tokens") or []
    tokens: dict[str, int] = {}
    for token in added if isinstance(added, list) else []:
        if isinstance(token, dict) and "content" in token and "id" in token:
            tokens[str(token["content"])] = token_id(token["id"], "tokenizer.json added_tokens")
    if tokens:
        sources.append(_source("tokenizer.json added_tokens", tokens, added=True))
    return sources


def added_tokens_decoder_source(config: dict[str, Any]) -> VocabSource | None:
    """tokenizer_config.json's `added_tokens_decoder` ({"id": {"content": text, ...}}), or None when absent."""
    decoder = config.get("added_tokens_decoder")
    if decoder is None:
        return None
    label = "tokenizer_config.json added_tokens_decoder"
    if not isinstance(decoder, dict):
        raise ValueError(f"{label} is not a JSON object")
    tokens: dict[str, int] = {}
    for key, entry in decoder.items():
        if not (isinstance(key, str) and key.isdigit() and len(key) <= 10):
            raise ValueError(f"{label}: key {key[:40]!r} is not a token id")
        content = entry.get("content") if isinstance(entry, dict) else entry
        if not isinstance(content, str):
            raise ValueError(f"{label}: id {key} has no content string")
        tokens[content] = token_id(int(key), label)
    return _source(label, tokens, added=True)


def _varint(data: bytes, position: int) -> tuple[int, int]:
    """(value, next position) of the protobuf varint at `position`; ValueError when truncated or over 10 bytes."""
    if position < len(data) and data[position] < 0x80:  # one byte: most keys and lengths
        return data[position], position + 1
    value = 0
    for index in range(MAX_VARINT_BYTES):
        if position + index >= len(data):
            raise ValueError("truncated varint")
        byte = data[position + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, position + index + 1
    raise ValueError("varint longer than 10 bytes")


def _fields(data: bytes, most: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """Each top-level field of a protobuf message as (number, wire type, start, end) of its value bytes, lazily.

    `most` bounds the fields read: ValueError on the next one.
    """
    position = 0
    count = 0
    while position < len(data):
        count += 1
        if most is not None and count > most:
            raise ValueError(f"more than {most} fields in a protobuf message")
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _varint(data, position)
        elif wire == 1:
            end = position + 8
        elif wire == 2:
            length, position = _varint(data, position)
            end = position + length
        elif wire == 5:
            end = position + 4
        else:  # groups (3, 4) are not used by sentencepiece; 6 and 7 do not exist
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {position}")
        if end > len(data):
            raise ValueError(f"field {number} runs past the end of the data")
        yield number, wire, position, end
        position = end


def _piece_text(message: bytes) -> str:
    """The text (field 1) of one serialized `SentencePiece`; "" when it has none, ValueError when malformed.

    sentencepiece writes the text first: that field is read directly, the rest only when it is not first.
    """
    if message[:1] == b"\x0a":
        length, start = _varint(message, 1)
        if start + length <= len(message):
            return message[start : start + length].decode("utf-8", errors="replace")
    text = ""
    for number, wire, start, end in _fields(message, MAX_PIECE_FIELDS):
        if number == 1 and wire == 2:
            text = message[start:end].decode("utf-8", errors="replace")
    return text


def sentencepiece_pieces(data: bytes) -> list[str]:
    """The piece texts of a serialized sentencepiece `ModelProto`, in id order; ValueError when malformed."""
    pieces = []
    others = 0
    for number, wire, start, end in _fields(data):
        if number != 1:
            others += 1
            if others > MAX_OTHER_MODEL_FIELDS:
                raise ValueError(f"more than {MAX_OTHER_MODEL_FIELDS} sentencepiece model fields besides its pieces")
            continue
        if wire != 2:
            raise ValueError("sentencepiece pieces field is not a message")
        pieces.append(_piece_text(data[start:end]))
        if len(pieces) > MAX_SENTENCEPIECE_PIECES:
            raise ValueError(f"more than {MAX_SENTENCEPIECE_PIECES} sentencepiece pieces")
    if not pieces:
        raise ValueError("no sentencepiece pieces")
    return pieces


def sentencepiece_source(data: bytes, label: str) -> VocabSource:
    """A sentencepiece model file as a source: piece i has id i (a repeated piece keeps its first id, as sentencepiece)."""
    pieces = sentencepiece_pieces(data)
    tokens: dict[str, int] = {}
    for index, piece in enumerate(pieces):
        tokens.setdefault(piece, index)
    return _source(label, tokens, size=len(pieces))


def merge_sources(sources: list[VocabSource]) -> tuple[dict[str, int], list[str]]:
    """All sources as one text -> id map (added-token sources last, so they win) and the contradictions found.

    A contradiction is a token text with two ids in two sources, or an id with two texts in two added-token
    sources (an added token may take an id of the model vocabulary under another name: loaders allow it).
    At most `MAX_REPORTED_CONFLICTS` are described; the rest are counted.
    """
    ordered = [s for s in sources if not s.added] + [s for s in sources if s.added]
    merged: dict[str, int] = {}
    where: dict[str, str] = {}
    added_text: dict[int, tuple[str, str]] = {}
    conflicts: list[str] = []
    for source in ordered:
        for text, index in source.tokens.items():
            if text in merged and merged[text] != index:
                conflicts.append(f"token {text[:40]!r} is id {merged[text]} in {where[text]} but {index} in {source.label}")
            if source.added:
                seen = added_text.get(index)
                if seen is not None and seen[0] != text:
                    conflicts.append(f"id {index} is {seen[0][:40]!r} in {seen[1]} but {text[:40]!r} in {source.label}")
                added_text.setdefault(index, (text, source.label))
            merged[text] = index
            where[text] = source.label
    shown = conflicts[:MAX_REPORTED_CONFLICTS]
    if len(conflicts) > len(shown):
        shown.append(f"and {len(conflicts) - len(shown)} more contradictions")
    return merged, shown

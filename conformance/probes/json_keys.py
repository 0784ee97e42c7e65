"""Duplicated keys in the model's JSON files: the same name twice in one object, which every parser reads as the last.

JSON parsers keep the last of a repeated key (Python's `json`, serde_json's maps, JavaScript), and RFC 8259
leaves the meaning of a repeated name to the parser, so a file with one is two documents at once: a
config.json holding `"model_type": "llama"` and then `"model_type": "gpt2"` is a Llama to whoever reads the
first and loads as a random GPT-2 through transformers. This probe reads every top-level `*.json` of the
folder (config.json, generation_config.json, tokenizer_config.json, tokenizer.json, special_tokens_map.json,
the weight index, ...) with an `object_pairs_hook` that sees each object's pairs before they become a dict,
and records each repeated key with its JSON path (`text_config.rope_scaling.type`, `added_tokens[3].id`),
how often it appears, its distinct values and the one that wins.

Budgets: at most MAX_JSON_FILES files (by name), MAX_FILE_BYTES each and MAX_TOTAL_BYTES in all; nesting
as deep as Python's parser goes (about 1,000 levels: deeper is that file's error, never a crash); the first
MAX_REPORTED duplicates described (each with at most MAX_VALUES values and cut texts), all of them counted.
A file that cannot be read (too large, not a regular file inside the folder, not UTF-8 JSON) is an error
of this probe's facts, so the rule errors rather than passing on what it did not read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from ..candidate import Candidate
from ..probe_registry import ProbeContext, probe
from ..safe_files import MAX_JSON_DEPTH, json_depth

MAX_JSON_FILES = 64  # a model folder holds a handful; more is not a model's layout
MAX_FILE_BYTES = 64 * 1024 * 1024  # the largest tokenizer.json files shipped are ~35 MB
MAX_TOTAL_BYTES = 256 * 1024 * 1024
MAX_REPORTED = 20  # duplicated keys described in the evidence; `duplicate_count` counts them all
MAX_TRACKED_OBJECTS = 1_000  # objects with a repeated key whose details are kept while parsing; the rest counted
MAX_VALUES = 5  # distinct values kept per duplicated key
MAX_TEXT_CHARS = 60  # a value or key as shown
MAX_PATH_CHARS = 200  # a JSON path as shown
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


@dataclass
class DuplicateKey:
    """One key repeated in one object of one JSON file.

    `path` is the key's JSON path (`model_type`, `text_config.rope_scaling.type`, `added_tokens[3].id`,
    `["odd key"]`), cut at MAX_PATH_CHARS; `count` the times it appears in that object; `values` its distinct
    values in order of appearance as short JSON texts (at most MAX_VALUES); `last` the value parsers keep.
    """

    file: str
    path: str
    count: int
    values: list[str] = field(default_factory=list)
    last: str = ""

    @property
    def conflicting(self) -> bool:
        """True when the repeated key holds different values, so readers disagree on the file's meaning."""
        return len(self.values) > 1

    def describe(self) -> str:
        """`config.json: model_type (2 times, last "gpt2" wins over "llama")`, or `... (2 times, same value 1)`."""
        if not self.conflicting:
            return f"{self.file}: {self.path} ({self.count} times, same value {self.last})"
        earlier = [value for value in self.values if value != self.last] or self.values[:1]
        return f"{self.file}: {self.path} ({self.count} times, last {self.last} wins over {', '.join(earlier)})"


@dataclass
class JsonKeyFacts:
    """Duplicated keys found in the folder's top-level JSON files, and the files that could not be read.

    `files`: the JSON files read, by name; `duplicates`: the first MAX_REPORTED duplicated keys (files by
    name, each file in document order); `duplicate_count`: the occurrences of a key after its first in
    the same object, over every object of every file read (`{"a": 1, "a": 2, "a": 3}` counts 2);
    `duplicates_by_file`: that count per file; `errors`: one reason per file not read (or not all read).
    """

    files: list[str] = field(default_factory=list)
    duplicates: list[DuplicateKey] = field(default_factory=list)
    duplicate_count: int = 0
    duplicates_by_file: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def duplicates_of(self, file: str, path: str) -> DuplicateKey | None:
        """The reported duplicate of `path` in `file` (`("config.json", "model_type")`), None if not reported."""
        return next((d for d in self.duplicates if d.file == file and d.path == path), None)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: Any) -> str:
    """A value as short JSON text: strings and numbers cut at MAX_TEXT_CHARS, containers by their size."""
    if isinstance(value, dict):
        return f"{{{len(value)} keys}}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, str):
        return json.dumps(_cut(value, MAX_TEXT_CHARS), ensure_ascii=False)
    return _cut(json.dumps(value), MAX_TEXT_CHARS)  # numbers (NaN as NaN), booleans, null


def _segment(key: Any) -> str:
    """One step of a JSON path: `.name` for plain names, `["..."]` for others, `[3]` for list positions."""
    if isinstance(key, int):
        return f"[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return "." + _cut(key, MAX_TEXT_CHARS)
    return "[" + json.dumps(_cut(key, MAX_TEXT_CHARS), ensure_ascii=False) + "]"


class _RepeatedKey:
    """What the parsing hook keeps of one repeated key: its count and first MAX_VALUES distinct values."""

    __slots__ = ("count", "values")

    def __init__(self) -> None:
        self.count = 0
        self.values: list[Any] = []

    def add(self, value: Any) -> None:
        self.count += 1
        if len(self.values) < MAX_VALUES and not any(value is v or _same(value, v) for v in self.values):
            self.values.append(value)


def _same(a: Any, b: Any) -> bool:
    """JSON equality without numbers of different kinds meeting (1 and 1.0 and true are different texts)."""
    return type(a) is type(b) and a == b


class _Collector:
    """The `object_pairs_hook`: builds each object as `json` would (last value wins) and notes repeated keys.

    The first MAX_TRACKED_OBJECTS objects with a repeated key (in the order the parser finishes them) keep
    their details; later ones are only counted, so a file of 10^5 such objects costs a count, not records.
    """

    def __init__(self) -> None:
        self.found: dict[int, tuple[dict[str, Any], dict[str, _RepeatedKey]]] = {}  # id(object) -> (object, keys)
        self.repeats = 0  # occurrences of a key after its first in the same object, in every object


    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        built = dict(pairs)
        if len(built) != len(pairs):
            self.repeats += len(pairs) - len(built)
            if len(self.found) >= MAX_TRACKED_OBJECTS:
                return built
            counts = Counter(map(itemgetter(0), pairs))
            keys: dict[str, _RepeatedKey] = {}
            for key, value in pairs:  # details for the first MAX_REPORTED repeated keys: no more are shown
                if counts[key] > 1 and (key in keys or len(keys) < MAX_REPORTED):
                    keys.setdefault(key, _RepeatedKey()).add(value)
            self.found[id(built)] = (built, keys)  # the object is kept alive, so its id stays its own
        return built


def _walk_paths(root: Any, wanted: set[int]) -> Iterator[tuple[int, str]]:
    """(id, JSON path) of each object in `wanted`, in document order; iterative, stops once all are found."""
    stack: list[tuple[Any, tuple[Any, ...] | None]] = [(root, None)]  # (value, (parent link, segment))
    remaining = set(wanted)
    while stack and remaining:
        value, link = stack.pop()
        if isinstance(value, dict):
            if id(value) in remaining:
                remaining.discard(id(value))
                yield id(value), _path_text(link)
            children = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            continue
        for key, child in reversed(children):
            if isinstance(child, (dict, list)):
                stack.append((child, (link, key)))


def _path_text(link: tuple[Any, ...] | None) -> str:
    segments: list[str] = []
    while link is not None:
        link, key = link
        segments.append(_segment(key))
    return "".join(reversed(segments))


# The last document parsed with the hook, by content: the tokenizer facts and this probe read tokenizer.json
# (2-35 MB) in one run, and a second parse was the largest cost of the static rules on a 70B checkpoint.
# One entry only, so at most one parsed document outlives its readers.
_LAST_PARSE: list[tuple[tuple[int, bytes], Any, _Collector]] = []
_REMEMBERED_BYTES = 256 * 1024


def _parse_once(data: bytes) -> tuple[Any, _Collector]:
    """`json.loads(data)` with the repeated-key hook, reusing the last parse of the same bytes.

    Raises what `json.loads` raises (JSONDecodeError, UnicodeDecodeError, RecursionError); a failed parse is
    not remembered.
    """
    key = (len(data), hashlib.blake2b(data, digest_size=16).digest())
    if _LAST_PARSE and _LAST_PARSE[0][0] == key:
        return _LAST_PARSE[0][1], _LAST_PARSE[0][2]
    collector = _Collector()
    document = json.loads(data, object_pairs_hook=collector)
    if len(data) >= _REMEMBERED_BYTES:  # small files cost less to parse again than to evict the large one
        _LAST_PARSE[:] = [(key, document, collector)]
    return document, collector


def read_model_json(candidate: Candidate, relative: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`Candidate.read_json`'s contract (same bounds, same one-line ValueError reasons), sharing this probe's parse.

    For a large file another probe reads too (tokenizer.json): it is parsed once per run, not twice.
    """
    data = candidate.read_bytes(relative, max_bytes)
    try:
        document, _ = _parse_once(data)
    except RecursionError:
        raise ValueError(f"{relative} nests deeper than the {max_depth}-level limit") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{relative} is not valid JSON: {exc}") from None
    if json_depth(document) > max_depth:
        raise ValueError(f"{relative} nests deeper than the {max_depth}-level limit")
    return document


def duplicate_keys(text: str | bytes, file: str, limit: int = MAX_REPORTED) -> tuple[list[DuplicateKey], int]:
    """The first `limit` repeated keys of the JSON document `text` in document order, and the repeats in all.

    The count is of occurrences after a key's first in the same object (`{"a": 1, "a": 2, "a": 3}`: 2).

    `file` names the records. Raises ValueError (not JSON, not UTF-8, an integer too long for Python) or
    RecursionError (nested past the parser's limit, about 1,000 levels).
    """
    document, collector = _parse_once(text.encode("utf-8") if isinstance(text, str) else text)
    total = collector.repeats
    if not total or limit <= 0:
        return [], total
    found: list[DuplicateKey] = []
    for object_id, path in _walk_paths(document, set(collector.found)):
        built, keys = collector.found[object_id]
        for key, repeated in keys.items():
            if len(found) == limit:
                return found, total
            found.append(
                DuplicateKey(
                    file=file,
                    path=_cut((path + _segment(key)).lstrip("."), MAX_PATH_CHARS),
                    count=repeated.count,
                    values=[_short(value) for value in repeated.values],
                    last=_short(built[key]),
                )
            )
    return found, total


def json_files(candidate: Candidate) -> list[str]:
    """The folder's top-level `*.json` files (any case), sorted by name."""
    return sorted(entry.path for entry in candidate.files if "/" not in entry.path and entry.path.lower().endswith(".json"))


def read_json_keys(candidate: Candidate) -> JsonKeyFacts:
    """The duplicated keys of the folder's top-level JSON files within the module's budgets; never raises for bad files."""
    facts = JsonKeyFacts()
    names = json_files(candidate)
    if len(names) > MAX_JSON_FILES:
        facts.errors.append(f"{len(names)} JSON files; only the first {MAX_JSON_FILES} by name were read")
        names = names[:MAX_JSON_FILES]
    budget = MAX_TOTAL_BYTES
    for name in names:
        limit = min(MAX_FILE_BYTES, budget)
        try:
            data = candidate.read_bytes(name, limit)
            data.decode("utf-8")  # strict UTF-8, as RFC 8259 asks of files (json.loads would also take UTF-16 and 32)
            found, total = duplicate_keys(data, name, MAX_REPORTED - len(facts.duplicates))
        except RecursionError:
            facts.errors.append(f"{name}: nests deeper than the JSON parser goes")
            continue
        except (ValueError, OSError) as exc:  # UnsafeFileError, over the byte budget, not UTF-8, not JSON
            reason = _cut(str(exc), 300)
            facts.errors.append(reason if reason.startswith(name) else f"{name}: {reason}")
            continue
        budget -= len(data)
        facts.files.append(name)
        if total:
            facts.duplicates_by_file[name] = total
            facts.duplicate_count += total
            facts.duplicates.extend(found)
    return facts


@probe("json_keys", evidence=JsonKeyFacts)
def json_keys_probe(context: ProbeContext) -> JsonKeyFacts:
    """Duplicated keys in the model's top-level JSON files (see the module doc); file problems in `errors`."""
    return read_json_keys(context.candidate)

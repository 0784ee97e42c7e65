"""Model cards: a README.md's front matter and its Markdown sections.

The front matter is read by our bounded YAML loader, then by huggingface_hub's `ModelCardData`.

A card is untrusted text: its front matter goes through `sourcefile.load_yaml` (alias, node, depth
budgets) and its Markdown is parsed by linear string code, never by backtracking regexes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .paths import schema_path

# The largest card we read: real model cards are under 100 KB (long ones with many evaluation tables
# reach ~500 KB); 4 MiB leaves room and bounds memory and the linear Markdown pass. The front matter
# has its own budgets (sourcefile: aliases, nodes, depth), which bound the YAML parser's time.
MAX_CARD_BYTES = 4 * 1024 * 1024
_MAX_ATX_LEVEL = 6  # CommonMark ATX headings: 1 to 6 '#'


@dataclass
class CardFacts:
    """What the model card says, as the card checks read it.

    `present` is False when the folder has no card; `file` is its path relative to the model folder;
    `metadata` the front matter as huggingface_hub's `ModelCardData.to_dict()`; `sections` the Markdown's
    ATX headings in order; `claims` the front matter's `conformance` mapping (empty when absent or not a
    mapping); `errors` why the card or its front matter could not be read; `schema_errors` where the front
    matter breaks card.schema.json (`path: message`).
    """

    present: bool
    file: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # unreadable card or front matter
    schema_errors: list[str] = field(default_factory=list)  # front matter that breaks card.schema.json


def heading_text(line: str) -> str | None:
    r"""The text of an ATX heading line (`## Title ##` -> "Title"), or None if the line is not one.

    Linear time. It reads exactly what the pattern `^(#{1,6})\s+(.+?)\s*#*\s*$` reads (the text group,
    stripped), which this parser replaced because that pattern backtracks in cubic time on a line such as
    "# a" + many spaces + "b". Whitespace is Unicode whitespace (`str.isspace`), as in that pattern.
    """
    level = len(line) - len(line.lstrip("#"))
    if not 1 <= level <= _MAX_ATX_LEVEL:
        return None
    rest = line[level:]
    body = rest.lstrip()
    spaces = len(rest) - len(body)
    if spaces == 0:
        return None  # "#Title" is not a heading
    if not body:
        return "" if spaces >= 2 else None  # the pattern's lazy text takes one of two or more spaces
    # The closing sequence: trailing whitespace, then '#'s, then whitespace; the text is what precedes
    # it, but at least one character (the pattern's `.+?`).
    end = len(body.rstrip())
    end = len(body[:end].rstrip("#"))
    end = len(body[:end].rstrip())
    return body[: max(end, 1)].strip()


def _is_fence(line: str) -> bool:
    return line.lstrip().startswith(("```", "~~~"))


def markdown_headings(text: str) -> list[str]:
    """ATX headings outside fenced code blocks, in order; linear in the length of `text`."""
    headings, in_fence = [], False
    for line in text.splitlines():
        if _is_fence(line):
            in_fence = not in_fence
            continue
        heading = None if in_fence else heading_text(line)
        if heading is not None:
            headings.append(heading)
    return headings


def split_front_matter(content: str) -> tuple[str | None, str]:
    r"""(front matter YAML or None, Markdown text) of a card, split as huggingface_hub splits it.

    huggingface_hub (repocard.py) searches `^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))`:
    after optional leading whitespace, a `---` line opens the block, and the first later line that is
    `---` (then only spaces or tabs) closes it. This reproduces that split with string searches, linear
    in the card's length.
    """
    start = len(content) - len(content.lstrip())
    if not content.startswith("---", start):
        return None, content
    opening = start + 3
    starts: tuple[int, ...]
    if content.startswith("\r\n", opening):
        # The pattern tries the opening line break as "\r\n" first, then as "\r" alone (the "\n" then
        # being the closing line's break, as in "---\r\n---").
        starts = (opening + 2, opening + 1)
    elif content.startswith(("\r", "\n"), opening):
        starts = (opening + 1,)
    else:
        return None, content
    for body_start in starts:
        closing = _closing_line(content, body_start)
        if closing is not None:
            return content[body_start : closing[0]], content[closing[1] :]
    return None, content


def _closing_line(content: str, body_start: int) -> tuple[int, int] | None:
    """(start of the line break before the first closing `---` line, end of that line), or None."""
    search = body_start
    while True:
        dashes = content.find("---", search)
        if dashes < 0:
            return None
        search = dashes + 1
        if dashes - 1 < body_start or content[dashes - 1] not in "\r\n":
            continue  # the closing `---` must follow a line break inside the block
        end = dashes + 3
        while end < len(content) and content[end] in " \t":
            end += 1
        if content.startswith("\r\n", end):
            end += 2
        elif content.startswith("\n", end):
            end += 1
        elif end != len(content):
            continue
        newline = dashes - 2 if dashes - 2 >= body_start and content[dashes - 2 : dashes] == "\r\n" else dashes - 1
        return newline, end


@lru_cache(maxsize=1)
def _card_validator() -> Any:
    import jsonschema

    schema = json.loads(schema_path("card").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def schema_errors(metadata: dict[str, Any]) -> list[str]:
    """Where the front matter breaks card.schema.json, one line each (`path: message`)."""
    from .sourcefile import format_path

    errors = sorted(_card_validator().iter_errors(metadata), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{format_path(list(e.absolute_path))}: {e.message}" for e in errors]


def _front_matter(content: str, relative: str, facts: CardFacts) -> tuple[dict[str, Any], str] | None:
    """Front matter as a dict (within the YAML budgets) and the Markdown after it; None after an error."""
    import yaml

    from .sourcefile import YamlBudgetError, load_yaml

    block, text = split_front_matter(content)
    if block is None:
        return {}, text
    try:
        data = load_yaml(block, yaml.SafeLoader)  # the YAML 1.1 safe loader, as huggingface_hub reads cards
    except YamlBudgetError as exc:
        facts.errors.append(f"{relative}: front matter over budget: {exc}")
        return None
    except (yaml.YAMLError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        where = f" (line {mark.line + 2} of the card)" if mark is not None else ""  # +2: 1-based, after the opening ---
        facts.errors.append(f"{relative}: front matter unreadable: {problem}{where}")
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        facts.errors.append(f"{relative}: front matter unreadable: repo card metadata block should be a dict")
        return None
    return data, text


def read_card_in(root: Path, relative: str = "README.md") -> CardFacts:
    """Parse the card `relative` of the model folder `root` (resolved) offline; problems become `errors`.

    The file is opened through safe_files (a regular file inside `root`, at most MAX_CARD_BYTES), decoded
    as huggingface_hub does (UTF-8, an optional byte-order mark), its front matter parsed by the bounded
    YAML loader and handed to huggingface_hub's ModelCardData. Never raises for a bad card.
    """
    from .safe_files import UnsafeFileError, open_regular

    too_large = CardFacts(present=True, file=relative, errors=[f"{relative} is larger than {MAX_CARD_BYTES} bytes (the card size budget)"])
    try:
        with open_regular(root, relative) as handle:
            if os.fstat(handle.fileno()).st_size > MAX_CARD_BYTES:
                return too_large
            data = handle.read(MAX_CARD_BYTES + 1)  # a file that grows while read is still bounded
    except FileNotFoundError:
        return CardFacts(present=False)
    except UnsafeFileError as exc:  # a FIFO or device, a link out of the folder or a link loop
        return CardFacts(present=True, file=relative, errors=[f"card unreadable: {exc}"])
    except OSError as exc:
        return CardFacts(present=True, file=relative, errors=[f"{relative} cannot be read: {exc.strerror}"])
    if len(data) > MAX_CARD_BYTES:
        return too_large
    facts = CardFacts(present=True, file=relative)
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        facts.errors.append(f"{relative}: not UTF-8 text ({exc.reason})")
        return facts
    parsed = _front_matter(content, relative, facts)
    if parsed is None:
        return facts
    raw, text = parsed
    from huggingface_hub import ModelCardData

    try:
        facts.metadata = ModelCardData(**raw, ignore_metadata_errors=False).to_dict()  # as ModelCard.load
    except Exception as exc:  # noqa: BLE001 (huggingface_hub raises ValueError/TypeError/KeyError for odd metadata)
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        where = f" (line {mark.line + 2} of the card)" if mark is not None else ""  # +2: 1-based, after the opening ---
        facts.errors.append(f"{relative}: front matter unreadable: {problem}{where}")
        return facts
    facts.sections = markdown_headings(text)
    claims = facts.metadata.get("conformance")
    facts.claims = claims if isinstance(claims, dict) else {}
    facts.schema_errors = schema_errors(facts.metadata)
    return facts


def read_card(path: Path, relative: str = "README.md") -> CardFacts:
    """Parse a card file offline; problems become `errors`, never exceptions.

    `path` is the card's resolved path inside the model folder (as `Candidate.resolve_inside` gives it);
    it is read as `read_card_in(path.parent, path.name)` and reported under the name `relative`.
    """
    facts = read_card_in(Path(os.path.realpath(Path(path).parent)), Path(path).name)
    if facts.present:
        facts.file = relative
    return facts


@dataclass(frozen=True)
class ScoreClaim:
    """One model-index result: the card says the model scores `value` on `task` by `metric`."""

    task: str
    metric: str
    value: float
    num_fewshot: int | None = None


# Score-like metrics that cards often state in percent.
_FRACTION_METRICS = {"acc", "acc_norm", "exact_match", "f1", "mc1", "mc2", "accuracy", "pct_stereotype"}


def score_claims(metadata: dict[str, Any]) -> list[ScoreClaim]:
    """Claims from the card's model-index: the task is the dataset's `type` (an lm-eval task name)."""
    claims: list[ScoreClaim] = []
    for entry in metadata.get("model-index") or []:
        for result in (entry or {}).get("results") or []:
            dataset = (result or {}).get("dataset") or {}
            task = dataset.get("type") or dataset.get("name")
            args = dataset["args"] if isinstance(dataset.get("args"), dict) else {}
            shots = args.get("num_few_shot", args.get("num_fewshot"))
            for metric in (result or {}).get("metrics") or []:
                value = (metric or {}).get("value")
                name = (metric or {}).get("type")
                if not task or not name or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if name in _FRACTION_METRICS and value > 1:
                    value = value / 100.0  # "82.4" on a card means 0.824
                claims.append(ScoreClaim(str(task), str(name), float(value), int(shots) if isinstance(shots, int) else None))
    return claims

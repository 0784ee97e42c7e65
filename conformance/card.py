"""Model cards: README.md front matter (parsed offline by huggingface_hub) and its Markdown sections."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .paths import schema_path

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
MAX_CARD_BYTES = 4 * 1024 * 1024


@dataclass
class CardFacts:
    present: bool
    file: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # unreadable card or front matter
    schema_errors: list[str] = field(default_factory=list)  # front matter that breaks card.schema.json


def markdown_headings(text: str) -> list[str]:
    """ATX headings outside fenced code blocks, in order."""
    headings, in_fence = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match:
            headings.append(match.group(2).strip())
    return headings


@lru_cache(maxsize=1)
def _card_validator() -> Any:
    import jsonschema

    schema = json.loads(schema_path("card").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def schema_errors(metadata: dict[str, Any]) -> list[str]:
    from .sourcefile import format_path

    errors = sorted(_card_validator().iter_errors(metadata), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{format_path(list(e.absolute_path))}: {e.message}" for e in errors]


def read_card(path: Path, relative: str = "README.md") -> CardFacts:
    """Parse a card file offline; problems become `errors`, never exceptions."""
    if not path.is_file():
        return CardFacts(present=False)
    facts = CardFacts(present=True, file=relative)
    if path.stat().st_size > MAX_CARD_BYTES:
        facts.errors.append(f"{relative} is larger than {MAX_CARD_BYTES} bytes")
        return facts
    from huggingface_hub import ModelCard

    try:
        card = ModelCard.load(path)
    except Exception as exc:  # huggingface_hub raises ValueError or yaml errors for bad front matter
        facts.errors.append(f"{relative}: front matter unreadable: {str(exc).splitlines()[0]}")
        return facts
    facts.metadata = card.data.to_dict()
    facts.sections = markdown_headings(card.text)
    claims = facts.metadata.get("conformance")
    facts.claims = claims if isinstance(claims, dict) else {}
    facts.schema_errors = schema_errors(facts.metadata)
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
            args = dataset.get("args") if isinstance(dataset.get("args"), dict) else {}
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

"""Offline loaders for the bundled lm-eval tasks (named by ``custom_dataset: !function utils.load_*``).

lm-eval calls a task's ``custom_dataset(**metadata, **dataset_kwargs)``, so each loader takes and ignores
keyword arguments. The data lies beside this file; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"


def read_rows(name: str) -> list[dict[str, Any]]:
    """The rows of ``data/<name>.jsonl``, one JSON object per non-blank line."""
    path = DATA_DIR / f"{name}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _dataset(name: str) -> dict[str, Any]:
    import datasets

    return {"test": datasets.Dataset.from_list(read_rows(name))}


def load_sentiment(**_: Any) -> dict[str, Any]:
    """`{"test": Dataset}` of the 60 sentiment rows: `text` (a review) and `label` (1 positive, 0 negative)."""
    return _dataset("sentiment")


def load_facts(**_: Any) -> dict[str, Any]:
    """`{"test": Dataset}` of the 40 general-knowledge rows: `question`, four `choices`, `answer` (the right choice's index)."""
    return _dataset("facts")


def load_arithmetic(**_: Any) -> dict[str, Any]:
    """`{"test": Dataset}` of the 40 arithmetic rows: `question`, four `choices`, `answer` (the right choice's index)."""
    return _dataset("arithmetic")


def load_lm(**_: Any) -> dict[str, Any]:
    """`{"test": Dataset}` of the 15 language-modelling passages (`text`), scored by perplexity."""
    return _dataset("lm")

"""One small result document with task scores, measured once per test session and shared by the export and card tests.

The zoo llama is checked against two task rules: `conformance_sentiment` acc on all 60 documents (no limit, so a
card may claim it) and `conformance_lm` word_perplexity on 2 of its 15 documents (a limit, so a card may not).
"""

from __future__ import annotations

import copy
import functools
import tempfile
from pathlib import Path
from typing import Any

SPEC_RULES: list[dict[str, Any]] = [
    {"id": "SENTIMENT", "level": "should", "check": "quality.task_score", "task": "conformance_sentiment", "metric": "acc", "min": 0.0},
    {"id": "LM", "level": "should", "check": "quality.task_score", "task": "conformance_lm", "metric": "word_perplexity",
     "limit": 2, "max": 1e30},
]


@functools.lru_cache(maxsize=2)
def _measured(model_dir: str) -> dict[str, Any]:
    import yaml

    from conformance.candidate import Candidate
    from conformance.runner import RunOptions, run
    from conformance.spec import load_spec

    with tempfile.TemporaryDirectory() as folder:
        spec_path = Path(folder) / "task-export.yaml"
        spec_path.write_text(yaml.safe_dump({"id": "task-export", "version": "1", "rules": SPEC_RULES}), encoding="utf-8")
        result = run(Candidate(Path(model_dir)), load_spec(spec_path), RunOptions(log=lambda message: None))
        return result.to_document()


def task_document(model_dir: Path) -> dict[str, Any]:
    """A fresh copy of the document (callers may change it); measured on the first call for `model_dir` only."""
    return copy.deepcopy(_measured(str(model_dir)))

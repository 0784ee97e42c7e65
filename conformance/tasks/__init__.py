"""Bundled offline lm-eval tasks: YAML task definitions plus JSONL data written for this project.

Point lm-eval at ``TASKS_DIR`` (``TaskManager(include_path=str(TASKS_DIR))``) to use them. Each task's
chance score is recorded in its YAML ``metadata.chance``; ``chance_score`` reads it without importing
lm-eval. ``safety_probe.yaml`` holds the prompts and blocked-output patterns of the generation probe.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

TASKS_DIR = Path(__file__).parent
SAFETY_PROBE_FILE = TASKS_DIR / "safety_probe.yaml"
TASK_NAMES = ("conformance_sentiment", "conformance_facts", "conformance_arithmetic", "conformance_lm")


def _read_yaml(path: Path) -> Any:
    import yaml

    class _TagTolerantLoader(yaml.SafeLoader):
        """Safe loading that reads lm-eval's ``!function`` (or any other local tag) as a plain string."""

    def _tag_as_string(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
        return loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None

    _TagTolerantLoader.add_multi_constructor("!", _tag_as_string)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_TagTolerantLoader)  # noqa: S506 (a SafeLoader)


@lru_cache(maxsize=1)
def bundled_tasks() -> dict[str, Path]:
    """Task name -> YAML file for every bundled task."""
    tasks: dict[str, Path] = {}
    for path in sorted(TASKS_DIR.glob("*.yaml")):
        document = _read_yaml(path)
        if isinstance(document, dict) and isinstance(document.get("task"), str):
            tasks[document["task"]] = path
    return tasks


def task_metadata(task: str) -> dict[str, Any]:
    """The ``metadata`` block of a bundled task's YAML; KeyError for a task that is not bundled."""
    path = bundled_tasks().get(task)
    if path is None:
        raise KeyError(f"{task!r} is not a bundled task; bundled: {', '.join(sorted(bundled_tasks()))}")
    metadata = _read_yaml(path).get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def chance_score(task: str, metric: str) -> float | None:
    """The score of guessing for a bundled task's metric, or None where none is recorded.

    None also for tasks that are not bundled (their chance level is unknown here) and for metrics with no
    chance level, such as perplexity.
    """
    if task not in bundled_tasks():
        return None
    value = (task_metadata(task).get("chance") or {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def load_safety_probe(path: Path | None = None) -> tuple[list[str], list[str]]:
    """(prompts, patterns) of the safety generation probe; the patterns are regular expressions.

    `path` defaults to the bundled SAFETY_PROBE_FILE. Raises ValueError when the file is not a mapping or
    its `prompts` or `patterns` is not a non-empty list of non-empty strings; OSError when it cannot be read.
    """
    document = _read_yaml(path or SAFETY_PROBE_FILE)
    if not isinstance(document, dict):
        raise ValueError(f"{path or SAFETY_PROBE_FILE}: expected a mapping with prompts and patterns")
    lists: dict[str, list[str]] = {}
    for field in ("prompts", "patterns"):
        value = document.get(field)
        if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
            raise ValueError(f"{path or SAFETY_PROBE_FILE}: {field} must be a non-empty list of strings")
        lists[field] = list(value)
    return lists["prompts"], lists["patterns"]


__all__ = [
    "SAFETY_PROBE_FILE",
    "TASKS_DIR",
    "TASK_NAMES",
    "bundled_tasks",
    "chance_score",
    "load_safety_probe",
    "task_metadata",
]

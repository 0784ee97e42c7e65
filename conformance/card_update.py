"""Write measured task scores into a model card's `model-index`, changing nothing else in the card.

The scores become huggingface_hub `EvalResult`s (one per task and metric; the task's lm-eval name as the
dataset type, its few-shot count as `dataset.args.num_few_shot`), merged into the card's existing results
the way `huggingface_hub.metadata_update` merges (an existing result equal but for its value, by
`EvalResult.is_equal_except_value`, is replaced; others are kept) and rendered by
`ModelCardData(...).to_yaml()`. `str(ModelCard)` would re-dump the whole front matter (dropping comments
and rewriting flow lists), so only the lines of the top-level `model-index` key are replaced: every other
byte of the card, the Markdown body included, stays as it was. `card.claims_reproduce` reads the result
back: it re-scores each claimed task with no document limit, so a task measured with a `limit` is not
written (its score would not reproduce) and is named in `CardUpdate.skipped`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import DISTRIBUTION, __version__
from .card import split_front_matter
from .errors import RequestError
from .result_document import ResultDocument, finite_number

# An empty front matter block: huggingface_hub's pattern needs a line break before the closing `---`, so it
# reads `---\n---\n` as no front matter; writing a new block before it would leave the pair in the body.
_EMPTY_BLOCK = re.compile(r"(\s*---(?:\r\n|\r|\n))---[ \t]*(?:\r\n|\r|\n|$)")
TASK_TYPE = "text-generation"  # the Hub's task type for a language model's lm-eval scores


@dataclass
class CardUpdate:
    """The card after the update: its full `text`, the "task metric" labels written, and task -> why skipped."""

    text: str
    written: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    changed: bool = False


def _source() -> dict[str, Any]:
    """EvalResult source fields: this tool and its URL (huggingface_hub refuses a source name without a URL)."""
    from .report.sarif import information_uri

    url = information_uri()
    return {"source_name": f"{DISTRIBUTION} {__version__}", "source_url": url} if url else {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def eval_results(document: ResultDocument | dict[str, Any]) -> tuple[list[Any], list[str], dict[str, str]]:
    """(EvalResults to write, their "task metric" labels, task -> why it is not written) from a result document.

    A task is written when it was scored on all its documents (no `limit`); each finite metric becomes one
    EvalResult with the value as measured (fractions stay fractions). Tasks that errored, were limited or
    report no finite metric are skipped with the reason.
    """
    from huggingface_hub import EvalResult

    read = ResultDocument.of(document)
    evidence = read.probe("tasks")
    scores = read.task_scores()
    limits, effective, original, n_shot, errors = (
        _mapping(evidence.get(name)) for name in ("limits", "n_samples", "n_samples_original", "n_shot", "errors"))
    results: list[Any] = []
    labels: list[str] = []
    skipped: dict[str, str] = {str(task): f"not scored: {reason}" for task, reason in errors.items()}
    for task, metrics in scores.items():
        if task in skipped:
            continue
        limit = limits.get(task)
        if limit is not None:
            total = original.get(task, "?")
            skipped[task] = (f"measured on {effective.get(task, limit)} of {total} documents (limit {limit}); "
                             "card.claims_reproduce scores every document, so the card would not reproduce")
            continue
        shots = n_shot.get(task)
        args = {"num_few_shot": shots} if isinstance(shots, int) and not isinstance(shots, bool) else None
        for metric, value in metrics.items():
            number = finite_number(value)
            if number is None or not math.isfinite(number):
                continue
            results.append(EvalResult(
                task_type=TASK_TYPE, dataset_type=task, dataset_name=task, dataset_args=args,
                metric_type=metric, metric_value=number, **_source(),
            ))
            labels.append(f"{task} {metric}")
    return results, labels, skipped


def _merged(existing: list[Any], new: list[Any]) -> list[Any]:
    """`existing` with each result equal but for its value replaced by the new one; the rest appended (metadata_update's rule)."""
    merged = list(existing)
    for result in new:
        for index, old in enumerate(merged):
            if old.is_equal_except_value(result):
                merged[index] = result
                break
        else:
            merged.append(result)
    return merged


def _last_line(node: Any) -> int:
    """The 0-based line after `node`'s last character.

    Descends into the last child of block collections, whose own end mark lies at the next key and would
    swallow the comment lines before it.
    """
    import yaml

    while isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    mark = node.end_mark
    return int(mark.line) + (1 if mark.column > 0 else 0)


def _model_index_lines(block: str) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """(front matter as data, (first line, line after) of the top-level model-index entry, or None when absent).

    The block is parsed within the YAML budgets (`sourcefile.compose_yaml`) before it is composed again for
    the key's marks. Raises RequestError for unreadable front matter or a model-index given twice.
    """
    import yaml

    from .sourcefile import compose_yaml

    try:
        data, _ = compose_yaml(block, yaml.SafeLoader)
        root = yaml.compose(block, Loader=yaml.SafeLoader) if data is not None else None
    except (yaml.YAMLError, ValueError) as exc:
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise RequestError(f"front matter unreadable: {problem}; fix it before updating the card") from None
    if data is None:
        return {}, None
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise RequestError("front matter unreadable: repo card metadata block should be a dict")
    spans = [(key.start_mark.line, _last_line(value)) for key, value in root.value if key.value == "model-index"]
    if len(spans) > 1:
        raise RequestError("the front matter names model-index more than once; keep one before updating the card")
    return data, (spans[0] if spans else None)


def _newline(content: str) -> str:
    return "\r\n" if "\r\n" in content else "\n"


def _block_start(content: str, block: str) -> int:
    """Where the front matter block starts: after leading whitespace, `---` and its line break."""
    opening = len(content) - len(content.lstrip()) + 3
    for start in (opening + 2, opening + 1):
        if content.startswith(block, start) and content[opening:start] in ("\r\n", "\n", "\r"):
            return start
    raise ValueError("front matter block not found where split_front_matter found it")  # a bug of ours


def update_card_text(content: str | None, document: ResultDocument | dict[str, Any], model_name: str | None = None) -> CardUpdate:
    """The card `content` (None: no card yet) with the document's task scores in its model-index.

    `model_name` names the model-index entry when the card has none (default: the document's model name).
    Raises RequestError when the front matter is unreadable or its model-index is not one huggingface_hub
    reads, or when the document has no score that may be written (every task limited or failed).
    """
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard_data import model_index_to_eval_results

    read = ResultDocument.of(document)
    new, written, skipped = eval_results(read)
    if not new:
        reasons = "; ".join(f"{task}: {why}" for task, why in skipped.items()) or "the document has no task scores"
        raise RequestError(f"no task score can be written to the card ({reasons})")
    text = content or ""
    block, _body = split_front_matter(text)
    data, span = _model_index_lines(block) if block is not None else ({}, None)
    existing: list[Any] = []
    name = model_name or read.model.name
    if data.get("model-index") is not None:
        try:
            name, existing = model_index_to_eval_results(data["model-index"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RequestError(f"the card's model-index is not one huggingface_hub reads ({type(exc).__name__}: {exc})") from None
    newline = _newline(text)
    rendered = ModelCardData(model_name=name, eval_results=_merged(existing, new)).to_yaml().replace("\n", newline)
    empty = _EMPTY_BLOCK.match(text) if block is None else None
    if empty is not None:  # `---` then `---`: huggingface_hub sees no block, but the card meant an empty one
        updated = text[: empty.end(1)] + rendered + newline + text[empty.end(1) :]
    elif block is None:
        updated = f"---{newline}{rendered}{newline}---{newline}{text}"
    else:
        start = _block_start(text, block)
        lines = block.splitlines(keepends=True)
        if span is None:
            joiner = "" if not block or block.endswith(("\n", "\r")) else newline
            closing = text[start + len(block) :]
            # An empty block read as "---\r" + "\n---" has its closing `---` right here: it needs a line of its own.
            trailer = "" if closing.startswith(("\n", "\r")) else newline
            updated = text[: start + len(block)] + joiner + rendered + trailer + closing
        else:
            first, after = span
            head = "".join(lines[:first])
            tail = "".join(lines[after:])
            replaced = rendered + (newline if tail else "")
            updated = text[:start] + head + replaced + tail + text[start + len(block):]
    return CardUpdate(text=updated, written=written, skipped=skipped, changed=updated != content)

"""The tasks probe: every task rule of a spec scored for one model in one lm-evaluation-harness call.

The backend already loaded for the run gives lm-eval its model (`Backend.lm_eval_model`: for transformers,
HFLM around the loaded model, no second load, see `backends.transformers_lm_eval`). Tasks come from a
TaskManager whose include path holds the bundled tasks (`conformance/tasks/`) and any `tasks_dir` a spec
names, so every task lm-eval knows works by name. Datasets are never fetched: the hub and datasets
libraries are put in offline mode unless the user set those variables, and a task whose data is not
available errors alone, with how to make it available.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import Backend
from ..card import score_claims
from ..errors import CheckError, CheckSkipped
from ..probe_registry import ProbeContext, probe
from .kinds import ENCODER
from .load import loaded_backend
from .special_token_ids import require_special_ids_in_range

SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234, "fewshot_random_seed": 1234}
DEFAULT_BATCH_SIZE = 8
# Bootstrap resamples for stderrs of non-mean metrics (perplexity): lm-eval's default is 100000, slow on CPU.
BOOTSTRAP_ITERS = 1000
# A task's recorded config (its `dump_config()`, which holds the dataset loader's source text for a custom
# dataset): task files are untrusted text, so each config is kept only when its JSON is within this bound.
MAX_CONFIG_BYTES = 64 * 1024


@dataclass(frozen=True)
class TaskRequest:
    """One task to score: its name, few-shot count and document limit (None: the task's own defaults, all documents)."""

    task: str
    num_fewshot: int | None = None
    limit: int | None = None


@dataclass
class TaskScores:
    """Per task: metric -> value and metric -> stderr, plus what reproduces the numbers."""

    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    stderrs: dict[str, dict[str, float | None]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # task -> why it could not be scored
    versions: dict[str, Any] = field(default_factory=dict)
    n_shot: dict[str, Any] = field(default_factory=dict)
    n_samples: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, int | None] = field(default_factory=dict)
    lm_eval_version: str = ""
    seeds: dict[str, int] = field(default_factory=lambda: dict(SEEDS))
    seconds: float = 0.0
    calls: int = 0  # lm-eval evaluations run (one per distinct limit)
    # Everything besides the task that can move a score: batch size, dtype, device, prefix token, max length,
    # BOS handling, library versions. Plain JSON values only (see `scoring_settings`).
    settings: dict[str, Any] = field(default_factory=dict)
    # What an lm-eval results file holds besides the scores (`report.lm_eval_export`); empty in documents
    # written before these were recorded. raw_results: lm-eval's per-task dict as returned ("acc,none",
    # "exact_match,strict-match", "acc_stderr,none" or "N/A", alias, sample_len), so filters never collide;
    # configs: each task's `dump_config()` as JSON data, at most MAX_CONFIG_BYTES each; higher_is_better:
    # task -> metric -> bool; n_samples_original: documents in the task before any limit; group_subtasks:
    # lm-eval group -> its tasks; bootstrap_iters: the resamples behind non-mean stderrs (None: not recorded).
    raw_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    higher_is_better: dict[str, dict[str, bool]] = field(default_factory=dict)
    n_samples_original: dict[str, int] = field(default_factory=dict)
    group_subtasks: dict[str, list[str]] = field(default_factory=dict)
    bootstrap_iters: int | None = None

    def score(self, task: str, metric: str) -> tuple[float, float | None]:
        """(value, stderr) of one task's metric, in the metric's own units; stderr is None when the task reports none.

        Raises CheckError when the task could not be scored (its recorded error), was not scored, or does not
        report `metric`.
        """
        if task in self.errors:
            raise CheckError(self.errors[task])
        if task not in self.scores:
            raise CheckError(f"task {task} was not scored")
        values = self.scores[task]
        value = values.get(metric)
        if value is None:
            raise CheckError(f"task {task} has no metric {metric!r}; it reports {', '.join(sorted(values))}")
        return float(value), self.stderrs.get(task, {}).get(metric)


def _offline() -> None:
    """Never wait on a network: both libraries read these when first imported."""
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(name, "1")


def task_manager(tasks_dirs: list[str], wanted: list[str] | None = None) -> Any:
    """Bundled tasks and tasks_dirs first (milliseconds); lm-eval's own catalogue (seconds) only if needed."""
    _offline()
    from ..tasks import TASKS_DIR

    include = (str(TASKS_DIR), *[str(Path(d)) for d in tasks_dirs])
    logging.getLogger("lm_eval").setLevel(logging.WARNING)  # its INFO lines drown the suite's own progress
    manager = _cached_manager(include, False)
    if wanted and not set(wanted) <= set(manager.all_tasks):
        manager = _cached_manager(include, True)
    return manager


@functools.lru_cache(maxsize=8)
def _cached_manager(include: tuple[str, ...], include_defaults: bool) -> Any:
    """Indexing lm-eval's own catalogue takes seconds: once per process (a leaderboard checks many models)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include), include_defaults=include_defaults)


def _unknown_task_message(name: str, manager: Any) -> str:
    known = list(getattr(manager, "all_tasks", []) or [])
    hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"unknown task {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "; see `lm-eval ls tasks` or give tasks_dir")


def _load_error_message(name: str, task_config: dict[str, Any] | None, exc: Exception) -> str:
    dataset = (task_config or {}).get("dataset_path") or name
    subset = (task_config or {}).get("dataset_name")
    where = f"{dataset}" + (f" ({subset})" if subset else "")
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"task {name}: dataset {where} is not available offline ({type(exc).__name__}: {reason[:160]}). "
        f"Download it once where the hub is reachable, e.g. python -c \"import datasets; datasets.load_dataset('{dataset}'"
        + (f", '{subset}'" if subset else "")
        + ")\", and point HF_DATASETS_CACHE at that cache here"
    )


def load_tasks(manager: Any, requests: list[TaskRequest]) -> tuple[dict[str, Any], dict[str, str]]:
    """Task objects by name, with their num_fewshot set; failures as one line per task."""
    tasks: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for request in requests:
        if request.task in tasks or request.task in errors:
            continue
        if request.task not in set(manager.all_tasks):
            errors[request.task] = _unknown_task_message(request.task, manager)
            continue
        try:
            loaded = manager.load(request.task)["tasks"]
        except Exception as exc:  # datasets raises many types when data is missing offline
            config = _task_config(manager, request.task)
            errors[request.task] = _load_error_message(request.task, config, exc)
            continue
        for name, task in loaded.items():
            if request.num_fewshot is not None:
                task.set_config(key="num_fewshot", value=request.num_fewshot)
            tasks[name] = task
    return tasks, errors


def _task_config(manager: Any, name: str) -> dict[str, Any] | None:
    entry = getattr(manager, "task_index", {}).get(name)
    config = getattr(entry, "cfg", None)
    return config if isinstance(config, dict) else None


def _metric_table(results: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """lm-eval's "acc,none" / "acc_stderr,none" keys as {"acc": ...} and {"acc": stderr}."""
    scores: dict[str, float | None] = {}
    stderrs: dict[str, float | None] = {}
    for key, value in results.items():
        if "," not in key:
            continue
        metric, _filter = key.split(",", 1)
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if metric.endswith("_stderr"):
            stderrs[metric[: -len("_stderr")]] = number
        else:
            scores[metric] = number
    return scores, stderrs


def _bounded_config(name: str, config: Any) -> Any:
    """`config` as plain JSON data (other objects as their `str`), or a note when its JSON passes MAX_CONFIG_BYTES."""
    text = json.dumps(config, default=str)
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        return {"task": name, "omitted": f"config larger than {MAX_CONFIG_BYTES} bytes as JSON"}
    return json.loads(text)


def _record_for_export(scores: TaskScores, output: dict[str, Any]) -> None:
    """Keep what an lm-eval results file needs from one `simple_evaluate` output (see TaskScores)."""
    for name, result in output.get("results", {}).items():
        scores.raw_results[name] = _bounded_config(name, dict(result))  # numpy numbers become plain ones
    for name, config in (output.get("configs") or {}).items():
        scores.configs[name] = _bounded_config(name, config)
    for name, metrics in (output.get("higher_is_better") or {}).items():
        if isinstance(metrics, dict):
            scores.higher_is_better[name] = {str(metric): bool(value) for metric, value in metrics.items() if value is not None}
    for name, counts in (output.get("n-samples") or {}).items():
        original = counts.get("original") if isinstance(counts, dict) else None
        if isinstance(original, int) and not isinstance(original, bool):
            scores.n_samples_original[name] = original
    for group, subtasks in (output.get("group_subtasks") or {}).items():
        if subtasks:
            scores.group_subtasks[str(group)] = [str(task) for task in subtasks]


def score_tasks(backend: Backend, requests: list[TaskRequest], tasks_dirs: list[str]) -> TaskScores:
    """Evaluate every requested task in one lm-eval call per distinct limit (one in the usual case).

    Returns TaskScores: metric values as lm-eval reports them (perplexities per word or byte, accuracies
    as fractions), a task that could not be scored in ``errors`` with why, and ``settings`` (see
    `Backend.lm_eval_settings`). Decoder-only and image-text-to-text models (text only) are scored by
    HFLM's causal backend, encoder-decoder ones by its seq2seq backend (`Backend.lm_eval_model`). Raises
    CheckSkipped for an encoder-only model and CheckError (from `Backend.lm_eval_model`) when the model
    ships no tokenizer.
    """
    if backend.kind == ENCODER:
        raise CheckSkipped("encoder-only model: task scoring applies to language models (decoder-only, encoder-decoder, image-text-to-text)")
    _offline()
    import lm_eval

    started = time.perf_counter()
    manager = task_manager(tasks_dirs, [request.task for request in requests])
    scores = TaskScores(lm_eval_version=getattr(lm_eval, "__version__", "unknown"))
    tasks, scores.errors = load_tasks(manager, requests)
    limits: dict[int | None, list[Any]] = {}
    for request in requests:
        if request.task in tasks:
            limits.setdefault(request.limit, [])
            if tasks[request.task] not in limits[request.limit]:
                limits[request.limit].append(tasks[request.task])
    model = backend.lm_eval_model(DEFAULT_BATCH_SIZE) if limits else None
    for limit, group in limits.items():
        try:
            output = lm_eval.simple_evaluate(
                model=model,
                tasks=group,
                limit=limit,
                task_manager=manager,
                log_samples=False,
                bootstrap_iters=BOOTSTRAP_ITERS,
                **SEEDS,
            )
        except Exception as exc:  # out of memory, a task's own code failing: every task of the call errors
            reason = f"lm-eval failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            scores.errors.update({task.config.task: reason for task in group})
            continue
        scores.calls += 1
        for name, result in output["results"].items():
            scores.scores[name], scores.stderrs[name] = _metric_table(result)
            scores.limits[name] = limit
        scores.versions.update(output.get("versions", {}))
        scores.n_shot.update(output.get("n-shot", {}))
        scores.n_samples.update({k: v.get("effective", v) if isinstance(v, dict) else v for k, v in output.get("n-samples", {}).items()})
        _record_for_export(scores, output)
    if model is not None:
        scores.settings = backend.lm_eval_settings(model)
        scores.bootstrap_iters = BOOTSTRAP_ITERS
    scores.seconds = round(time.perf_counter() - started, 3)
    return scores


def merge_task_requests(rule_params: list[dict[str, Any]]) -> dict[str, Any]:
    """One tasks run for all its rules (one lm-eval call): the union of their requests and task folders."""
    merged: dict[str, Any] = {"requests": [], "tasks_dirs": [], "card_claims": False}
    for params in rule_params:
        merged["requests"] += [r for r in params.get("requests", []) if r not in merged["requests"]]
        merged["tasks_dirs"] += [d for d in params.get("tasks_dirs", []) if d not in merged["tasks_dirs"]]
        merged["card_claims"] = merged["card_claims"] or bool(params.get("card_claims"))
    return merged


@probe("tasks", evidence=TaskScores, depends=("card", "load"), cacheable=True, merge=merge_task_requests)
def tasks_probe(context: ProbeContext) -> TaskScores:
    """Task scores for every rule's requests, plus the card's claimed tasks when a rule asks for them."""
    requests = [TaskRequest(**request) for request in context.params.get("requests", [])]
    if context.params.get("card_claims"):
        card = context.evidence.get("card")
        claimed = score_claims(card.metadata) if card.present else []
        requests += [TaskRequest(claim.task, claim.num_fewshot) for claim in claimed]
    unique = list(dict.fromkeys(requests))
    require_special_ids_in_range(context.evidence)  # an out-of-range id would end in lm-eval as a bare IndexError
    return score_tasks(loaded_backend(context.evidence), unique, list(context.params.get("tasks_dirs", [])))

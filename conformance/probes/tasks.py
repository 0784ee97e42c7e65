"""The tasks probe: every task rule of a spec scored for one model in one lm-evaluation-harness call.

The model already loaded for the run is wrapped with lm-eval's HFLM (no second load), in a subclass whose
rolling loglikelihood conditions on exactly one prefix token: a tokenizer that prepends BOS itself would
otherwise make lm-eval score that BOS as a predicted token (lm-evaluation-harness#3333). Tasks come from a
TaskManager whose include path holds the bundled tasks (`conformance/tasks/`) and any `tasks_dir` a spec
names, so every task lm-eval knows works by name. Datasets are never fetched: the hub and datasets
libraries are put in offline mode unless the user set those variables, and a task whose data is not
available errors alone, with how to make it available.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..card import score_claims
from ..errors import CheckError, CheckSkipped
from ..probe_registry import ProbeContext, probe
from .load import LoadedModel

SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234, "fewshot_random_seed": 1234}
DEFAULT_BATCH_SIZE = 8
# Bootstrap resamples for stderrs of non-mean metrics (perplexity): lm-eval's default is 100000, slow on CPU.
BOOTSTRAP_ITERS = 1000


@dataclass(frozen=True)
class TaskRequest:
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

    def score(self, task: str, metric: str) -> tuple[float, float | None]:
        if task in self.errors:
            raise CheckError(self.errors[task])
        if task not in self.scores:
            raise CheckError(f"task {task} was not scored")
        values = self.scores[task]
        if metric not in values or values[metric] is None:
            raise CheckError(f"task {task} has no metric {metric!r}; it reports {', '.join(sorted(values))}")
        return float(values[metric]), self.stderrs.get(task, {}).get(metric)


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


def prefix_token_id(tokenizer: Any, model: Any) -> int:
    """lm-eval scores the first token after a prefix token: bos, else eos, else pad, else 0 (recorded)."""
    for candidate in (
        getattr(tokenizer, "bos_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
        getattr(model.config, "bos_token_id", None),
        getattr(model.config, "eos_token_id", None),
        getattr(tokenizer, "pad_token_id", None),
    ):
        if isinstance(candidate, list) and candidate:
            candidate = candidate[0]
        if isinstance(candidate, int):
            return candidate
    return 0


@functools.cache
def single_prefix_hflm() -> type:
    """lm-eval's HFLM with one change: rolling loglikelihood never scores a BOS the tokenizer added.

    ``HFLM.loglikelihood_rolling`` windows ``tok_encode(document)`` behind ``prefix_token_id``. A tokenizer
    whose post-processor prepends BOS makes that ``[BOS, BOS, text...]``, and the second BOS is scored as
    if it were text (lm-evaluation-harness#3333). While a rolling request is being encoded, this subclass
    drops a leading token equal to the prefix token when the tokenizer added it (it is absent when the
    same text is encoded without special tokens), so every window sequence starts with exactly one
    prefix token and only the document's own tokens are scored, in single and multi-window documents
    alike. Everything else (batching, padding, windowing, loglikelihood and generation requests) is
    lm-eval's own code, so a tokenizer that adds no BOS gives bit-identical scores to plain HFLM.

    Returns the class (built on first call: importing lm-eval takes seconds).
    """
    from lm_eval.models.huggingface import HFLM

    class SinglePrefixHFLM(HFLM):
        """HFLM whose rolling loglikelihood has one prefix token as context, never a second one scored."""

        _encoding_rolling = False
        rolling_bos_dropped = 0  # rolling documents whose tokenizer-added leading BOS was dropped

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            """lm-eval's rolling loglikelihood (summed log-probabilities in nats, one per request)."""
            self._encoding_rolling = True
            try:
                return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
            finally:
                self._encoding_rolling = False

        def tok_encode(
            self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None, **kwargs: Any
        ) -> list[int]:
            """lm-eval's encoding; in a rolling request, without a leading prefix token the tokenizer added."""
            tokens = super().tok_encode(
                string, add_special_tokens=add_special_tokens, left_truncate_len=left_truncate_len, **kwargs
            )
            rolling = self._encoding_rolling and add_special_tokens is None and not left_truncate_len
            if rolling and self._added_prefix(string, tokens):
                self.rolling_bos_dropped += 1
                return tokens[1:]
            return tokens

        def _added_prefix(self, string: str, tokens: list[int]) -> bool:
            """True when ``tokens`` starts with the prefix token and the text itself does not produce it."""
            if not tokens or tokens[0] != self.prefix_token_id:
                return False
            own = self.tokenizer.encode(string, add_special_tokens=False)
            return not own or own[0] != self.prefix_token_id

        def tokenizer_adds_prefix(self) -> bool:
            """Whether ``tok_encode`` of plain text starts with the prefix token (the tokenizer adds BOS)."""
            sample = "Hello world"
            return self._added_prefix(sample, HFLM.tok_encode(self, sample))

    return SinglePrefixHFLM


def wrap_model(loaded: LoadedModel, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    """lm-eval's HFLM (as `single_prefix_hflm`) around the model object already loaded: no second load.

    ``batch_size`` is lm-eval's batch size (requests per forward pass; scores can move with it in bf16 on
    GPU, so it is recorded). Sets the tokenizer's pad token when it has none. Raises CheckError when the
    model ships no tokenizer.
    """
    if loaded.tokenizer is None:
        raise CheckError("task scoring needs the model's tokenizer, and none is shipped")
    tokenizer = loaded.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token or tokenizer.convert_ids_to_tokens(0)
    return single_prefix_hflm()(
        pretrained=loaded.model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        prefix_token_id=prefix_token_id(tokenizer, loaded.model),
    )


def scoring_settings(model: Any, loaded: LoadedModel) -> dict[str, Any]:
    """Every setting besides the task that can change a score, as plain JSON values.

    ``model`` is the wrapper `wrap_model` returned (after evaluation, so the BOS count is final). Keys:
    batch_size (lm-eval's, requests per forward pass), dtype (weights), device, prefix_token_id and
    prefix_token (the one context token of rolling and empty-context requests), max_length (tokens per
    window), add_bos_token (HFLM's option; None leaves it to the tokenizer), tokenizer_adds_bos,
    rolling_bos_correction (a tokenizer-added BOS was dropped from at least one rolling document),
    rolling_bos_dropped (how many), and the torch and transformers versions.
    """
    import torch
    import transformers

    prefix = int(model.prefix_token_id)
    try:
        token = model.tokenizer.convert_ids_to_tokens(prefix)
    except Exception:  # a tokenizer without the id, or without the method: the id alone is recorded
        token = None
    batch_size = model.batch_size
    dropped = int(getattr(model, "rolling_bos_dropped", 0))
    adds_bos = getattr(model, "tokenizer_adds_prefix", None)
    return {
        "batch_size": int(batch_size) if str(batch_size).isdigit() else str(batch_size),
        "dtype": loaded.dtype,
        "device": str(model.device),
        "prefix_token_id": prefix,
        "prefix_token": token if isinstance(token, str) else None,
        "max_length": int(model.max_length),
        "add_bos_token": model.add_bos_token if isinstance(model.add_bos_token, bool) else None,
        "tokenizer_adds_bos": bool(adds_bos()) if adds_bos is not None else None,
        "rolling_bos_correction": dropped > 0,
        "rolling_bos_dropped": dropped,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }


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


def score_tasks(loaded: LoadedModel, requests: list[TaskRequest], tasks_dirs: list[str]) -> TaskScores:
    """Evaluate every requested task in one lm-eval call per distinct limit (one in the usual case).

    Returns TaskScores: metric values as lm-eval reports them (perplexities per word or byte, accuracies
    as fractions), a task that could not be scored in ``errors`` with why, and ``settings`` (see
    `scoring_settings`). Raises CheckSkipped for an encoder-only model and CheckError (from `wrap_model`)
    when the model ships no tokenizer.
    """
    if loaded.kind != "causal":
        raise CheckSkipped("encoder-only model: task scoring applies to causal language models")
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
    model = wrap_model(loaded) if limits else None
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
    if model is not None:
        scores.settings = scoring_settings(model, loaded)
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
    return score_tasks(context.evidence.get("load", LoadedModel), unique, list(context.params.get("tasks_dirs", [])))

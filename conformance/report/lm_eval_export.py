"""A result document's task scores as an lm-evaluation-harness results file.

lm-eval's `EvaluationTracker.save_results_aggregated` writes `<out>/<model_name_sanitized>/results_<date>.json`
holding what `simple_evaluate` returns (keys listed by `lm_eval.result_schema.EvalResults`): per-task
`results` ("acc,none", "acc_stderr,none" or "N/A", alias, sample_len), `versions`, `n-shot`, `configs`,
`higher_is_better`, `n-samples` ({original, effective}), `config` (model, batch size, device, limit,
bootstrap resamples, seeds), `date` and versions. `lm_eval_results` builds that layout from the tasks
probe's evidence, so tools that read lm-eval results (its `make_table`, leaderboards, trackers) read ours.
lm-eval itself is not imported: this is a view of the stored document.

Documents written before the tasks probe kept lm-eval's raw per-task results, configs, higher_is_better
and original sample counts are still exported: results are rebuilt as "<metric>,none" from the scores,
configs as `{"task": name}`, higher_is_better from `metrics.lower_is_better`, and an unknown original
count is null when the task was limited.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import RequestError
from ..metrics import lower_is_better
from ..result_document import ResultDocument, finite_number
from .names import file_stem

# Keys a results file holds beyond `lm_eval.result_schema.EvalResults`: where the scores came from.
CONFORMANCE_KEY = "conformance"
_MAX_NAME_CHARS = 200  # a model name is untrusted text; lm-eval's sanitized name becomes a folder name
_PLAIN_FOLDER = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9._-]{{0,{_MAX_NAME_CHARS - 1}}}")


def sanitize_model_name(name: str) -> str:
    r"""lm-eval's `utils.sanitize_model_name`: runs of `"<>:/|\\?*[]` become `__` (`org/model` -> `org__model`)."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _rebuilt_results(task: str, scores: Mapping[str, Any], stderrs: Mapping[str, Any], sample_len: Any) -> dict[str, Any]:
    """A task's lm-eval results entry from the document's metric tables (filter "none", "N/A" for no stderr)."""
    entry: dict[str, Any] = {"name": task, "alias": task}
    if isinstance(sample_len, int) and not isinstance(sample_len, bool):
        entry["sample_len"] = sample_len
    for metric, value in scores.items():
        entry[f"{metric},none"] = value
        stderr = finite_number(stderrs.get(metric))
        entry[f"{metric}_stderr,none"] = "N/A" if stderr is None else stderr
    return entry


def _higher_is_better(task: str, recorded: Mapping[str, Any], metrics: list[str]) -> dict[str, bool | None]:
    known = _mapping(recorded.get(task))
    if known:
        return {str(metric): value if isinstance(value, bool) else None for metric, value in known.items()}
    directions = {metric: lower_is_better(metric) for metric in metrics}
    return {metric: None if lower is None else not lower for metric, lower in directions.items()}


def _single_limit(limits: Mapping[str, Any], tasks: list[str]) -> int | None:
    """The limit every exported task shared; None when none was set or they differ (per task in n-samples)."""
    values = {limits.get(task) for task in tasks}
    return next(iter(values)) if len(values) == 1 and isinstance(next(iter(values)), int) else None


def _metric_names(entry: Mapping[str, Any]) -> list[str]:
    names = [key.split(",", 1)[0] for key in entry if "," in key]
    return list(dict.fromkeys(name for name in names if not name.endswith("_stderr")))


def unscored_tasks(document: ResultDocument | Mapping[str, Any]) -> dict[str, str]:
    """Task -> why it has no score (the tasks probe's recorded errors); these are left out of the export."""
    errors = _mapping(ResultDocument.of(document).probe("tasks").get("errors"))
    return {str(task): str(reason) for task, reason in errors.items()}


def lm_eval_results(document: ResultDocument | Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """The document's task scores in lm-eval's results layout (see the module docstring).

    `now` is the export time (seconds since the epoch, default the current time), recorded as `date`.
    Tasks that were not scored are left out (`unscored_tasks` says why). Raises RequestError when the
    document holds no task scores.
    """
    read = ResultDocument.of(document)
    tasks_evidence = read.probe("tasks")
    scores = _mapping(tasks_evidence.get("scores"))
    errors = _mapping(tasks_evidence.get("errors"))
    tasks = [str(task) for task in scores if task not in errors and isinstance(scores[task], Mapping)]
    if not tasks:
        raise RequestError(f"{read.model.name}: no task scores (the document's spec has no task rule, or none was scored)")
    raw = _mapping(tasks_evidence.get("raw_results"))
    stderrs = _mapping(tasks_evidence.get("stderrs"))
    effective = _mapping(tasks_evidence.get("n_samples"))
    original = _mapping(tasks_evidence.get("n_samples_original"))
    limits = _mapping(tasks_evidence.get("limits"))
    configs = _mapping(tasks_evidence.get("configs"))
    settings = _mapping(tasks_evidence.get("settings"))
    seeds = _mapping(tasks_evidence.get("seeds"))
    results: dict[str, Any] = {}
    for task in tasks:
        recorded = raw.get(task)
        results[task] = dict(recorded) if isinstance(recorded, Mapping) else _rebuilt_results(
            task, _mapping(scores[task]), _mapping(stderrs.get(task)), effective.get(task))
    n_samples = {
        task: {
            "original": original.get(task, effective.get(task) if limits.get(task) is None else None),
            "effective": effective.get(task),
        }
        for task in tasks
    }
    sanitized = sanitize_model_name(read.model.name)
    stamp = time.time() if now is None else now
    return {
        "results": results,
        "group_subtasks": {str(group): list(members) for group, members in _mapping(tasks_evidence.get("group_subtasks")).items()
                           if isinstance(members, list)},
        "configs": {task: dict(configs[task]) if isinstance(configs.get(task), Mapping) else {"task": task} for task in tasks},
        "versions": {task: _mapping(tasks_evidence.get("versions")).get(task) for task in tasks},
        "n-shot": {task: _mapping(tasks_evidence.get("n_shot")).get(task) for task in tasks},
        "higher_is_better": {
            task: _higher_is_better(task, _mapping(tasks_evidence.get("higher_is_better")), _metric_names(results[task]))
            for task in tasks
        },
        "n-samples": n_samples,
        "config": {
            "model": read.model.name,
            "model_args": None,
            "model_num_parameters": read.static_facts().parameters,
            "model_dtype": settings.get("dtype"),
            "model_sha": read.model.sha256 or "",
            "batch_size": settings.get("batch_size"),
            "batch_sizes": [],
            "device": settings.get("device"),
            "use_cache": None,
            "limit": _single_limit(limits, tasks),
            "bootstrap_iters": tasks_evidence.get("bootstrap_iters"),
            "gen_kwargs": None,
            "random_seed": seeds.get("random_seed"),
            "numpy_seed": seeds.get("numpy_random_seed"),
            "torch_seed": seeds.get("torch_random_seed"),
            "fewshot_seed": seeds.get("fewshot_random_seed"),
        },
        "git_hash": None,
        "date": stamp,
        "transformers_version": settings.get("transformers_version"),
        "lm_eval_version": tasks_evidence.get("lm_eval_version"),
        "max_length": settings.get("max_length"),
        "model_name": read.model.name,
        "model_name_sanitized": sanitized,
        "total_evaluation_time_seconds": str(tasks_evidence.get("seconds", "")),
        CONFORMANCE_KEY: {
            "spec": read.spec.id,
            "spec_version": read.spec.version,
            "spec_sha256": read.spec.sha256,
            "result_schema_version": read.data.get("schema_version"),
            "version": read.environment.get("conformance"),
            "limits": {task: limits.get(task) for task in tasks},
        },
    }


def results_path(out_dir: Path, exported: Mapping[str, Any], taken: set[Path] | None = None) -> Path:
    """Where lm-eval would write `exported`: `out_dir/<model_name_sanitized>/results_<local ISO time, ':' as '-'>.json`.

    The sanitized name is the folder when it is a plain file name (letters, digits, `._-`, not hidden, at
    most 200 characters); otherwise (a model name is untrusted: `..`, control characters) its `names.file_stem`.
    A path already in `taken` gets `-2`, `-3`, ...
    """
    sanitized = str(exported["model_name_sanitized"])
    plain = _PLAIN_FOLDER.fullmatch(sanitized) is not None
    folder = out_dir / (sanitized if plain else file_stem(sanitized)[:_MAX_NAME_CHARS])
    stamp = datetime.datetime.fromtimestamp(float(exported["date"])).isoformat().replace(":", "-")
    path, index = folder / f"results_{stamp}.json", 2
    while taken is not None and path in taken:
        path, index = folder / f"results_{stamp}-{index}.json", index + 1
    return path

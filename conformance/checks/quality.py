"""quality.*: task scores through lm-eval, normalized scores, regression against a previous result."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..compare import describe_expected, judge
from ..errors import CheckError
from ..evidence import Evidence
from ..metrics import LOWER_IS_BETTER  # every other metric is taken as higher-is-better
from ..planning import rule_evidence
from ..probes.baseline import BaselineScores, read_baseline
from ..probes.tasks import TaskScores
from ..registry import check
from ..rule import Rule
from ..tasks import chance_score
from ..verdict import Verdict

TASK_PARAMS: dict[str, dict[str, Any]] = {
    "task": {"type": "string", "minLength": 1, "description": "lm-eval task name (bundled, lm-eval's own, or in tasks_dir)"},
    "metric": {"type": "string", "minLength": 1, "description": "metric reported by the task (default acc)"},
    "num_fewshot": {"type": "integer", "minimum": 0, "description": "few-shot examples (default: the task's)"},
    "limit": {"type": "integer", "minimum": 1, "description": "score only the first N documents"},
    "tasks_dir": {"type": "string", "minLength": 1, "description": "folder of extra task YAMLs, relative to the spec file"},
}


def _spec_folder(rule: Rule) -> Path:
    return Path(rule.source).resolve().parent if rule.source else Path.cwd()


def _tasks_dirs(rule: Rule) -> list[str]:
    folder = rule.params.get("tasks_dir")
    if not folder:
        return []
    base = _spec_folder(rule)
    target = (base / folder).resolve()
    if not target.is_relative_to(base):
        raise CheckError(f"tasks_dir {folder!r} leaves the spec's folder")
    return [str(target)]


def _planned_tasks_dirs(rule: Rule) -> list[str]:
    """At planning time a bad tasks_dir adds nothing; the rule's check then errors with the reason."""
    try:
        return _tasks_dirs(rule)
    except CheckError:
        return []


def task_request_params(rule: Rule) -> dict[str, Any]:
    """What this rule asks of the (one, shared) tasks probe."""
    request = {"task": rule.params["task"], "num_fewshot": rule.params.get("num_fewshot"), "limit": rule.params.get("limit")}
    return {"requests": [request], "tasks_dirs": _planned_tasks_dirs(rule)}


def _task_score(evidence: Evidence, rule: Rule) -> tuple[float, float | None]:
    _tasks_dirs(rule)  # a tasks_dir outside the spec's folder errors this rule
    scores = evidence.get("tasks", TaskScores)
    return scores.score(rule.params["task"], rule.params.get("metric", "acc"))


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2)


@check(
    "quality.task_score",
    summary="a task's metric through lm-eval; with `confidence`, the whole interval must meet min/max",
    probes=("load", "tasks"),
    params={
        **TASK_PARAMS,
        "confidence": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "description": "decide on the interval score ± z·stderr"},
    },
    required=("task",),
    comparisons=("min", "max"),
    needs_comparison=True,
    probe_params=task_request_params,
)
def task_score(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge a task's `metric` (acc by default) against min/max; with `confidence`, the interval score ± z·stderr must.

    Observed: the score, or {score, stderr, interval [low, high]} with `confidence`. Raises CheckError when
    the tasks probe failed, the task was not scored or lacks the metric, `tasks_dir` lies outside the
    spec's folder, or `confidence` is given and the task reports no stderr.
    """
    score, stderr = _task_score(evidence, rule)
    confidence = rule.params.get("confidence")
    if confidence is None:
        verdict = judge(score, rule.comparison)
        return Verdict(verdict.status, score, verdict.expected, verdict.message + (f" (stderr {stderr:.4f})" if stderr is not None else ""))
    if stderr is None:
        raise CheckError(f"{rule.params['task']} reports no stderr for {rule.params.get('metric', 'acc')}; `confidence` needs one")
    half_width = _z(float(confidence)) * stderr
    low, high = score - half_width, score + half_width
    expected = describe_expected(rule.comparison) + f" over the {confidence:.0%} interval"
    observed = {"score": score, "stderr": stderr, "interval": [low, high]}
    if "min" in rule.comparison and low < rule.comparison["min"]:
        point = " (the point estimate alone meets it: inconclusive)" if score >= rule.comparison["min"] else ""
        return Verdict("fail", observed, expected, f"interval [{low:.4f}, {high:.4f}] reaches below {rule.comparison['min']}{point}")
    if "max" in rule.comparison and high > rule.comparison["max"]:
        point = " (the point estimate alone meets it: inconclusive)" if score <= rule.comparison["max"] else ""
        return Verdict("fail", observed, expected, f"interval [{low:.4f}, {high:.4f}] reaches above {rule.comparison['max']}{point}")
    return Verdict("pass", observed, expected)


def normalize(score: float, chance: float) -> float:
    """(score − chance) / (1 − chance), clipped at 0, as public leaderboards normalize."""
    if chance >= 1:
        raise CheckError(f"chance score {chance} leaves no room to normalize")
    return max(0.0, (score - chance) / (1 - chance))


@check(
    "quality.normalized_score",
    summary="(score − chance) / (1 − chance), clipped at 0; chance from the bundled task or the rule",
    probes=("load", "tasks"),
    params={**TASK_PARAMS, "chance": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "description": "chance score (default: the task's recorded one)"}},
    required=("task",),
    comparisons=("min", "max"),
    needs_comparison=True,
    probe_params=task_request_params,
)
def normalized_score(evidence: Evidence, rule: Rule) -> Verdict:
    """Judge (score − chance) / (1 − chance), clipped at 0, against min/max; chance from the rule or the task's record.

    Raises CheckError when the tasks probe failed, the task was not scored or lacks the metric, `tasks_dir`
    lies outside the spec's folder, or no chance score is known (or it is 1 or more).
    """
    score, _ = _task_score(evidence, rule)
    metric = rule.params.get("metric", "acc")
    chance = rule.params.get("chance", chance_score(rule.params["task"], metric))
    if chance is None:
        raise CheckError(f"no chance score recorded for {rule.params['task']} {metric}; give `chance` in the rule")
    verdict = judge(round(normalize(score, float(chance)), 12), rule.comparison)
    return Verdict(verdict.status, verdict.observed, verdict.expected, (verdict.message + f" (raw {score:.4f}, chance {chance})").strip())


def _baseline_path(rule: Rule) -> Path:
    return (_spec_folder(rule) / rule.params["baseline"]).resolve()


def regression_request_params(rule: Rule) -> dict[str, Any]:
    """The baseline probe's path, and the tasks the baseline holds, measured as the baseline measured them.

    Planning reads the baseline here to know which tasks to request; an unreadable one requests none, and
    the baseline probe reports why.
    """
    path = _baseline_path(rule)
    baseline = read_baseline(path)
    if baseline.error is not None:
        return {"baseline": str(path), "requests": [], "tasks_dirs": []}
    wanted = rule.params.get("tasks") or sorted(baseline.scores)
    requests = [{"task": task, "num_fewshot": baseline.n_shot.get(task), "limit": baseline.limits.get(task)} for task in wanted]
    return {"baseline": str(path), "requests": requests, "tasks_dirs": _planned_tasks_dirs(rule)}


@check(
    "quality.regression",
    summary="no task drops more than max_drop from a baseline result document (the last release)",
    probes=("load", "baseline", "tasks"),
    params={
        "baseline": {"type": "string", "minLength": 1, "description": "a previous result document, relative to the spec file"},
        "max_drop": {"type": "number", "minimum": 0, "description": "largest allowed drop, in the metric's units"},
        "metric": TASK_PARAMS["metric"],
        "tasks": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "tasks to compare (default: all in the baseline)"},
        "tasks_dir": TASK_PARAMS["tasks_dir"],
    },
    required=("baseline", "max_drop"),
    comparisons=(),
    probe_params=regression_request_params,
)
def regression(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when no task's `metric` drops more than `max_drop` (in the metric's units) from the baseline document.

    A drop is a fall for higher-is-better metrics and a rise for lower-is-better ones. Observed: task ->
    {baseline, now, drop}; a task missing from the baseline fails. Raises CheckError when the baseline is
    unreadable, a probe failed, or a task was not scored or lacks the metric now.
    """
    baseline = rule_evidence(evidence, rule, "baseline", BaselineScores)
    if baseline.error is not None:
        raise CheckError(baseline.error)
    scores = evidence.get("tasks", TaskScores)
    metric = rule.params.get("metric", "acc")
    max_drop = float(rule.params["max_drop"])
    observed: dict[str, Any] = {}
    problems: list[str] = []
    for task in rule.params.get("tasks") or sorted(baseline.scores):
        before = (baseline.scores.get(task) or {}).get(metric)
        if before is None:
            problems.append(f"{task}: no {metric} in the baseline")
            continue
        now, _ = scores.score(task, metric)
        drop = (now - before) if metric in LOWER_IS_BETTER else (before - now)
        observed[task] = {"baseline": before, "now": now, "drop": round(drop, 12)}
        if drop > max_drop:
            problems.append(f"{task}: {metric} {before:.4f} -> {now:.4f}, a drop of {drop:.4f} > {max_drop}")
    expected = f"drop <= {max_drop} against {baseline.model}"
    if problems:
        return Verdict("fail", observed, expected, "; ".join(problems))
    return Verdict("pass", observed, expected)

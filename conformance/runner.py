"""plan -> probes -> checks -> RunResult. Probes run once per model; checks are pure and cheap."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache_types import SkippedProbe
from .candidate import Candidate
from .errors import CheckError, CheckSkipped, Inconclusive
from .evidence import Evidence, evidence_key
from .probes.hashes import weights_sha256
from .probes.load import LoadOptions
from .progress import Progress
from .registry import get_check
from .results import RuleResult, RunResult, environment
from .spec import Rule, Spec
from .verdict import STATUSES, Verdict

# Weight sets up to this size are hashed for the result's identity even when no rule needs it.
AUTO_HASH_MAX_BYTES = 2 * 1024**3


@dataclass
class RunOptions:
    only: list[str] | None = None
    hash_weights: str = "auto"  # auto | always | never
    load: LoadOptions = field(default_factory=LoadOptions)
    require_device: bool = False  # a rule for a device this machine lacks errors instead of skipping
    cache_dir: Path | None = None  # where expensive probe evidence is cached; None: measure every time
    log: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))
    progress: Progress | None = None  # default: plain lines through `log`

    def __post_init__(self) -> None:
        if self.progress is None:
            self.progress = Progress(write=self.log)


ProbeFunction = Callable[..., Any]  # (candidate, evidence, params, options[, decided]) -> evidence value
Decided = Callable[[Any], bool]


def _static(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.static import probe_static

    return probe_static(candidate)


def _card(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.card_probe import probe_card

    return probe_card(candidate)


def _scan(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.scan import scan_folder

    return scan_folder(candidate.path)


def _hashes(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.hashes import probe_hashes

    files = list(evidence.get("static").weights.files)
    if options.cache_dir is None:
        return probe_hashes(candidate, files)
    from .cache import HashCache

    hashes = HashCache(options.cache_dir)
    digests = probe_hashes(candidate, files, hashes.sha256)
    hashes.save()
    return digests


def _load(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.load import load_model

    static = evidence.get("static")
    scan = evidence.get("scan")
    return load_model(candidate, options.load, static.weights.formats, scan.flagged_files)


def _forward(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.runtime import probe_forward

    return probe_forward(evidence.get("load"))


def _determinism(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.runtime import probe_determinism

    return probe_determinism(evidence.get("load"), int(params.get("new_tokens", 16)))


def _finiteness(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.runtime import probe_finiteness

    static = evidence.get("static")
    return probe_finiteness(candidate, sorted({t.file for t in static.weights.tensors}))


def _tasks(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.tasks import TaskRequest, score_tasks

    requests = [TaskRequest(**request) for request in params.get("requests", [])]
    if params.get("card_claims"):
        from .card import score_claims

        card = evidence.get("card")
        claimed = score_claims(card.metadata) if card.present else []
        requests += [TaskRequest(claim.task, claim.num_fewshot) for claim in claimed]
    return score_tasks(evidence.get("load"), _unique(requests), list(params.get("tasks_dirs", [])))


def _unique(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _generations(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions) -> Any:
    from .probes.generations import generate_greedy

    return generate_greedy(evidence.get("load"), list(params["prompts"]), int(params["max_new_tokens"]))


def _speed(candidate: Candidate, evidence: Evidence, params: dict[str, Any], options: RunOptions, decided: Decided | None = None) -> Any:
    from .probes.speed import measure_speed

    return measure_speed(evidence.get("load"), params, decided)


# Probe name -> (the probes it needs first, the function that measures).
PROBES: dict[str, tuple[tuple[str, ...], ProbeFunction]] = {
    "static": ((), _static),
    "card": ((), _card),
    "scan": ((), _scan),
    "hashes": (("static",), _hashes),
    "load": (("static", "scan"), _load),
    "forward": (("load",), _forward),
    "determinism": (("load",), _determinism),
    "finiteness": (("static",), _finiteness),
    "speed": (("load",), _speed),
    "tasks": (("card", "load"), _tasks),
    "generations": (("load",), _generations),
}
# Probes that measure until the rules judged on them are decided (a confidence interval clear of each bar):
# they are handed `decided(value)`, and a value that left a rule undecided is never cached.
UNTIL_DECIDED_PROBES = frozenset({"speed"})
# Probes whose parameters come from the rule (through the check's probe_params).
PARAMETERIZED_PROBES = frozenset({"determinism", "speed", "generations"})
# Probes that serve all their rules in one run: the rules' parameters are merged (one lm-eval call).
AGGREGATED_PROBES = frozenset({"tasks"})


@dataclass(frozen=True)
class ProbeRun:
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        return self.name if self.name in AGGREGATED_PROBES else evidence_key(self.name, dict(self.params))


def _freeze(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    import json

    return tuple(sorted((k, json.loads(json.dumps(v))) for k, v in params.items())) if params else ()


def probe_runs(rule: Rule) -> list[ProbeRun]:
    definition = get_check(rule.check)
    params = definition.probe_params(rule) if definition.probe_params else {}
    return [ProbeRun(name, _freeze(params) if name in PARAMETERIZED_PROBES else ()) for name in definition.probes]


def _merge_aggregated(rules: list[Rule]) -> dict[str, ProbeRun]:
    """One run per aggregated probe, its parameters the union of every rule's requests."""
    merged: dict[str, dict[str, Any]] = {}
    for rule in rules:
        definition = get_check(rule.check)
        for name in definition.probes:
            if name not in AGGREGATED_PROBES:
                continue
            params = definition.probe_params(rule) if definition.probe_params else {}
            into = merged.setdefault(name, {"requests": [], "tasks_dirs": [], "card_claims": False})
            into["requests"] += [r for r in params.get("requests", []) if r not in into["requests"]]
            into["tasks_dirs"] += [d for d in params.get("tasks_dirs", []) if d not in into["tasks_dirs"]]
            into["card_claims"] = into["card_claims"] or bool(params.get("card_claims"))
    return {name: ProbeRun(name, _freeze(params)) for name, params in merged.items()}


def plan(rules: list[Rule]) -> list[ProbeRun]:
    """The probe runs these rules need, dependencies first, each once."""
    ordered: list[ProbeRun] = []
    aggregated = _merge_aggregated(rules)

    def add(run: ProbeRun) -> None:
        if run in ordered:
            return
        for dependency in PROBES[run.name][0]:
            add(ProbeRun(dependency))
        ordered.append(run)

    for rule in rules:
        for run in probe_runs(rule):
            add(aggregated.get(run.name, run))
    return ordered


class _Cached:
    """The run's view of the evidence cache: its key needs the model's content identity, computed once."""

    def __init__(self, candidate: Candidate, options: RunOptions) -> None:
        from .cache import EvidenceCache, environment_fingerprint

        assert options.cache_dir is not None
        self.cache = EvidenceCache(options.cache_dir)
        self.candidate = candidate
        self.environment = environment_fingerprint(options.load)
        self._identity: str | None = None

    def key(self, probe_key: str) -> str | None:
        """The cache key of one probe's evidence, or None (not cached) when the model's files cannot all be hashed."""
        if self._identity is None:
            from .cache import model_identity

            try:
                self._identity = model_identity(self.candidate, self.cache.hashes)
            except (OSError, ValueError, CheckError):
                # A FIFO, a device or a sparse file in the folder: its probes report it; this run is not cached.
                self._identity = ""
        return self.cache.key(probe_key, self._identity, self.environment) if self._identity else None


def _skip(run: ProbeRun, evidence: Evidence, options: RunOptions, reason: str) -> None:
    if options.require_device:
        evidence.fail(run.key, f"{reason} (--require-device)")
    else:
        evidence.skip(run.key, reason)


def _needs_live_model(evidence: Evidence) -> bool:
    from .probes.load import LoadedModel

    return evidence.has("load") and not isinstance(evidence.peek("load"), LoadedModel)


def decision_callback(key: str, rules: list[Rule], evidence: Evidence) -> Decided:
    """`decided(value)`: would every rule be decided if `value` were the evidence under `key`?

    The checks themselves answer (they are pure): a rule that raises Inconclusive is undecided; any other
    outcome (pass, fail, skip, an error more runs cannot mend) is decided.
    """

    def decided(value: Any) -> bool:
        trial = evidence.overlay(key, value)
        for rule in rules:
            try:
                get_check(rule.check).function(trial, rule)
            except Inconclusive:
                return False
            except Exception:  # decided as an error: more measuring would not change it
                pass
        return True

    return decided


def _run_probe(
    run: ProbeRun,
    candidate: Candidate,
    evidence: Evidence,
    options: RunOptions,
    cached: _Cached | None = None,
    rules: list[Rule] | None = None,
) -> None:
    """Measure one probe run (or read it from the cache) into `evidence`; `rules` are the rules judged on it."""
    if evidence.has(run.key):
        return
    from .cache import CACHEABLE_PROBES

    decided = decision_callback(run.key, rules, evidence) if run.name in UNTIL_DECIDED_PROBES and rules else None
    # The cache key always holds the parameters (an aggregated probe's evidence key is only its name).
    cache_key = cached.key(evidence_key(run.name, dict(run.params))) if cached is not None and run.name in CACHEABLE_PROBES else None
    if cache_key is not None:
        hit, value = cached.cache.get(cache_key)
        # A cached measurement serves only if it decides this run's rules too (another spec's bars may differ).
        if hit and (decided is None or isinstance(value, SkippedProbe) or decided(value)):
            if isinstance(value, SkippedProbe):
                _skip(run, evidence, options, value.reason)
            else:
                evidence.put(run.key, value)
            options.progress.probe_finished(candidate.name, run.key, 0.0, cached=True)
            return
    dependencies, function = PROBES[run.name]
    for dependency in dependencies:
        if dependency == "load" and _needs_live_model(evidence):
            evidence.forget("load")  # cached facts were enough so far; this probe needs the model itself
            _run_probe(ProbeRun("load"), candidate, evidence, options)
        else:
            _run_probe(ProbeRun(dependency), candidate, evidence, options, cached)
    options.progress.probe_started(candidate.name, run.key)
    started = time.perf_counter()
    try:
        extra = {"decided": decided} if run.name in UNTIL_DECIDED_PROBES else {}
        value = function(candidate, evidence, dict(run.params), options, **extra)
        evidence.put(run.key, value)
        # Never cache what failed: a probe that raised is not here, and an undecided measurement is skipped.
        if cache_key is not None and (decided is None or getattr(value, "decided", None) is not False):
            from .probes.load import LoadedModel

            cached.cache.put(cache_key, value.facts if isinstance(value, LoadedModel) else value)
    except CheckSkipped as exc:
        _skip(run, evidence, options, str(exc))
        if cache_key is not None:  # "does not apply here" holds for this model and environment: remember it
            cached.cache.put(cache_key, SkippedProbe(str(exc)))
    except CheckError as exc:
        evidence.fail(run.key, str(exc))
    except Exception as exc:  # a broken model must not stop the run: every rule needing this probe errors
        evidence.fail(run.key, f"{type(exc).__name__}: {exc}")
    options.progress.probe_finished(candidate.name, run.key, time.perf_counter() - started, cached=False)


def judge_rule(rule: Rule, evidence: Evidence) -> RuleResult:
    started = time.perf_counter()
    try:
        verdict = get_check(rule.check).function(evidence, rule)
        if not isinstance(verdict, Verdict) or verdict.status not in STATUSES:
            raise TypeError(f"check returned {verdict!r}, not a Verdict")
    except CheckError as exc:
        verdict = Verdict("error", getattr(exc, "observed", None), getattr(exc, "expected", None), str(exc), interval=getattr(exc, "interval", None))
    except CheckSkipped as exc:
        verdict = Verdict("skip", None, None, str(exc))
    except Exception as exc:  # a crashing check errors its own rule; the run goes on
        verdict = Verdict("error", None, None, f"check crashed: {type(exc).__name__}: {exc}")
    return RuleResult(
        id=rule.id,
        check=rule.check,
        level=rule.level,
        status=verdict.status,
        observed=verdict.observed,
        expected=verdict.expected,
        message=verdict.message,
        seconds=round(time.perf_counter() - started, 6),
        interval=verdict.interval,
    )


def model_identity(candidate: Candidate, evidence: Evidence, options: RunOptions) -> dict[str, Any]:
    """The result document's `model` block: name, path and, when hashed, the weights' sha256."""
    identity: dict[str, Any] = {"name": candidate.name, "path": str(candidate.path), "sha256": None}
    if options.hash_weights != "never" and not evidence.has("hashes"):
        _run_probe(ProbeRun("static"), candidate, evidence, options)
        try:
            weight_files = evidence.get("static").weights.files
            total = sum(entry.size_bytes for entry in candidate.files if entry.path in weight_files)
        except CheckError:
            total = AUTO_HASH_MAX_BYTES + 1
        if options.hash_weights == "always" or total <= AUTO_HASH_MAX_BYTES:
            _run_probe(ProbeRun("hashes"), candidate, evidence, options)
    try:
        hashes = evidence.get("hashes") if evidence.has("hashes") else None
    except (CheckError, CheckSkipped):
        hashes = None
    if hashes:
        identity["sha256"] = weights_sha256(hashes)
        identity["weight_files"] = hashes
    return identity


def measure(candidate: Candidate, rules: list[Rule], options: RunOptions, evidence: Evidence | None = None) -> Evidence:
    """Run the probes these rules need that `evidence` does not hold yet (each once), and return it."""
    evidence = evidence if evidence is not None else Evidence()
    cached = _Cached(candidate, options) if options.cache_dir is not None else None
    probes = [probe for probe in plan(rules) if not evidence.has(probe.key)]
    options.progress.model_started(candidate.name, len(probes))
    for probe in probes:
        judged_on = [rule for rule in rules if any(run.key == probe.key for run in probe_runs(rule))]
        _run_probe(probe, candidate, evidence, options, cached, judged_on)
    options.progress.model_finished(candidate.name)
    return evidence


def result_document(candidate: Candidate, spec: Spec, rules: list[Rule], evidence: Evidence, options: RunOptions) -> RunResult:
    """Judge the rules on gathered evidence (cheap: checks are pure) into a RunResult."""
    results = [judge_rule(rule, evidence) for rule in rules]
    return RunResult(
        spec=spec.identity(),
        model=model_identity(candidate, evidence, options),
        rules=results,
        evidence=evidence.to_dict(),
        environment=environment(),
    )


def run(candidate: Candidate, spec: Spec, options: RunOptions | None = None) -> RunResult:
    options = options or RunOptions()
    rules = spec.select(options.only)
    evidence = measure(candidate, rules, options)
    result = result_document(candidate, spec, rules, evidence, options)
    evidence.release("load")  # the loaded model is not evidence: drop it so memory is freed between models
    return result


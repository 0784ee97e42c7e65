"""plan -> probes -> checks -> RunResult. Probes run once per model; checks are pure and cheap."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import EvidenceCache, HashCache, environment_fingerprint
from .cache import model_identity as content_identity
from .cache_types import SkippedProbe
from .candidate import Candidate
from .catalogue import get_check
from .console import third_party_output
from .digests import sha256_text
from .errors import CheckError, CheckSkipped, Inconclusive
from .evidence import Evidence
from .planning import ProbeRun, plan, probe_runs, rule_keys
from .probe_catalogue import all_probes, cacheable_types, get_probe
from .probe_registry import Decided, ProbeContext
from .probes.hashes import weights_sha256
from .probes.load import LoadOptions
from .progress import Progress
from .results import ModelIdentity, RuleResult, RunResult, SpecIdentity, environment
from .rule import Rule
from .spec import Spec
from .verdict import STATUSES, Level, Status, Verdict, bound_text

# Weight sets up to this size are hashed for the result's identity even when no rule needs it.
AUTO_HASH_MAX_BYTES = 2 * 1024**3


@dataclass
class RunOptions:
    """How a run measures: which rules, whether weights are hashed, how models load, caching and progress.

    Attributes:
        only: the ids of the rules to run; None (or empty) runs every rule.
        hash_weights: "auto" hashes weight sets up to AUTO_HASH_MAX_BYTES for the result's identity,
            "always" hashes any size, "never" none (unless a rule needs the hashes).
        load: how models are loaded (device, dtype, ...).
        require_device: a rule for a device this machine lacks errors instead of skipping.
        cache_dir: where expensive probe evidence is cached; None measures every time.
        log: where plain progress lines go (default: stderr).
        progress: the progress reporter; None gets plain lines through `log`.
        third_party_log: a file that receives what other libraries write to stderr while a probe runs
            (lm-eval's and transformers' logging, their progress bars, warnings, git's complaints);
            None leaves stderr as it is.
    """

    only: list[str] | None = None
    hash_weights: str = "auto"  # auto | always | never
    load: LoadOptions = field(default_factory=LoadOptions)
    require_device: bool = False  # a rule for a device this machine lacks errors instead of skipping
    cache_dir: Path | None = None  # where expensive probe evidence is cached; None: measure every time
    log: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))
    progress: Progress | None = None  # default: plain lines through `log`
    third_party_log: Path | None = None  # the CLI's OUT/conformance.log

    def __post_init__(self) -> None:
        """Default `progress` to plain lines through `log`."""
        if self.progress is None:
            self.progress = Progress(write=self.log)


class _Cached:
    """The run's view of the evidence cache: its key needs the model's content identity, computed once."""

    def __init__(self, candidate: Candidate, options: RunOptions) -> None:
        assert options.cache_dir is not None
        self.cache = EvidenceCache(options.cache_dir, cacheable_types())
        self.candidate = candidate
        self.environment = environment_fingerprint(options.load)
        self._identity: str | None = None

    def key(self, probe_key: str) -> str | None:
        """The cache key of one probe's evidence, or None (not cached) when the model's files cannot all be hashed."""
        if self._identity is None:
            try:
                self._identity = _content_identity(self.candidate, self.cache.hashes)
            except (OSError, ValueError, CheckError):
                # A FIFO, a device or a sparse file in the folder: its probes report it; this run is not cached.
                self._identity = ""
        return self.cache.key(probe_key, self._identity, self.environment) if self._identity else None


def _content_identity(candidate: Candidate, hashes: HashCache) -> str:
    """The cache's content identity of the model, covering files reached through its links into link roots.

    `cache.model_identity` hashes the folder's own files and leaves links out (a link inside the folder
    repeats a file hashed anyway). A hub cache snapshot holds nothing but links into `blobs/`, and a
    single `.gguf` file is a link to it: without their targets every such model would share one identity
    (and one another's cached evidence). Their digests are added, each under its name in the folder.
    Raises what `HashCache.sha256` raises (OSError, ValueError, CheckError).
    """
    own = content_identity(candidate, hashes)
    linked = [entry.path for entry in candidate.files if entry.in_link_root]
    if not linked:
        return own
    lines = [f"{name}  {hashes.sha256(candidate.resolve_inside(name))}\n" for name in linked]
    hashes.save()
    return sha256_text(own + "".join(lines))


def _progress(options: RunOptions) -> Progress:
    """The run's progress reporter: the one given, else (set in `__post_init__`) plain lines through `log`."""
    if options.progress is None:  # only when a caller cleared it after construction
        options.progress = Progress(write=options.log)
    return options.progress


def _skip(run: ProbeRun, evidence: Evidence, options: RunOptions, reason: str) -> None:
    if options.require_device:
        evidence.fail(run.key, f"{reason} (--require-device)")
    else:
        evidence.skip(run.key, reason)


def _holds_summary(name: str, evidence: Evidence) -> bool:
    """Does `evidence` hold only the cached summary of a probe whose live value a later probe needs (a model)?"""
    definition = get_probe(name)
    return definition.summary is not None and isinstance(evidence.peek(name), definition.evidence)


def decision_callback(key: str, rules: list[Rule], evidence: Evidence) -> Decided:
    """`decided(value)`: would every rule be decided if `value` were the evidence under `key`?

    The checks themselves answer (they are pure): a rule that raises Inconclusive is undecided; any other
    outcome (pass, fail, skip, an error more runs cannot mend) is decided.
    """
    judged = [(rule, rule_keys(rule)) for rule in rules]  # planned once: judging reads no file

    def decided(value: Any) -> bool:
        trial = evidence.overlay(key, value)
        for rule, keys in judged:
            try:
                get_check(rule.check).function(trial.for_rule(keys), rule)
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
    definition = get_probe(run.name)
    decided = decision_callback(run.key, rules, evidence) if definition.until_decided and rules else None
    progress = _progress(options)
    cache_key = cached.key(run.cache_key) if cached is not None and definition.cacheable else None
    if cached is not None and cache_key is not None:
        hit, value = cached.cache.get(cache_key)
        # A cached measurement serves only if it decides this run's rules too (another spec's bars may differ).
        # A value of another type than the probe declares (a hand-edited entry) is a miss: measure again.
        hit = hit and (isinstance(value, SkippedProbe) or isinstance(value, definition.evidence))
        if hit and (decided is None or isinstance(value, SkippedProbe) or decided(value)):
            if isinstance(value, SkippedProbe):
                _skip(run, evidence, options, value.reason)
            else:
                evidence.put(run.key, value)
            progress.probe_finished(candidate.name, run.key, 0.0, cached=True)
            return
    for dependency in definition.depends:
        if _holds_summary(dependency, evidence):
            evidence.forget(dependency)  # its cached summary was enough so far; this probe needs the live value
            _run_probe(ProbeRun(dependency), candidate, evidence, options)
        else:
            _run_probe(ProbeRun(dependency), candidate, evidence, options, cached)
    progress.probe_started(candidate.name, run.key)
    started = time.perf_counter()
    try:
        hashes = cached.cache.hashes if cached is not None else None
        context = ProbeContext(candidate, evidence, dict(run.params), options, decided, hashes.sha256 if hashes else None)
        with third_party_output(options.third_party_log):  # loads and lm-eval alike: never on the terminal
            value = definition.function(context)
        if hashes is not None:
            hashes.save()
        evidence.put(run.key, value)
        # Never cache what failed: a probe that raised is not here, and an undecided measurement is skipped.
        if cached is not None and cache_key is not None and (decided is None or getattr(value, "decided", None) is not False):
            cached.cache.put(cache_key, definition.summary(value) if definition.summary else value)
    # A probe's error text often quotes the model's files (a key, a name): bounded like a verdict's message.
    except CheckSkipped as exc:
        reason = bound_text(str(exc))
        _skip(run, evidence, options, reason)
        if cached is not None and cache_key is not None:  # "does not apply here" holds for this model and environment: remember it
            cached.cache.put(cache_key, SkippedProbe(reason))
    except CheckError as exc:
        evidence.fail(run.key, bound_text(str(exc)))
    except Exception as exc:  # a broken model must not stop the run: every rule needing this probe errors
        evidence.fail(run.key, bound_text(f"{type(exc).__name__}: {exc}"))
    progress.probe_finished(candidate.name, run.key, time.perf_counter() - started, cached=False)


def judge_rule(rule: Rule, evidence: Evidence) -> RuleResult:
    """Run one rule's check on the evidence into its RuleResult (`seconds`: the check's own wall time).

    Never raises for a check's sake: CheckError becomes an "error" result (with the observed, expected and
    interval it carries), CheckSkipped a "skip", and a crashing check or one that returns no Verdict an "error".
    Every result is made through a `Verdict`, which bounds its message and observed and expected strings.
    """
    started = time.perf_counter()
    try:
        verdict = get_check(rule.check).function(evidence.for_rule(rule_keys(rule)), rule)
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
        level=Level(rule.level),
        status=Status(verdict.status),
        observed=verdict.observed,
        expected=verdict.expected,
        message=verdict.message,
        seconds=round(time.perf_counter() - started, 6),
        interval=verdict.interval,
    )


def model_identity(candidate: Candidate, evidence: Evidence, options: RunOptions) -> dict[str, Any]:
    """The result document's `model` block: name, path and, when hashed, the weights' sha256."""
    identity: dict[str, Any] = {"name": candidate.name, "path": str(candidate.location), "sha256": None}
    if options.hash_weights != "never" and not evidence.has("hashes"):
        cached = _Cached(candidate, options) if options.cache_dir is not None else None  # remembers file digests
        _run_probe(ProbeRun("static"), candidate, evidence, options, cached)
        try:
            weight_files = evidence.get("static").weights.files
            total = sum(entry.size_bytes for entry in candidate.files if entry.path in weight_files)
        except CheckError:
            total = AUTO_HASH_MAX_BYTES + 1
        if options.hash_weights == "always" or total <= AUTO_HASH_MAX_BYTES:
            _run_probe(ProbeRun("hashes"), candidate, evidence, options, cached)
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
    progress = _progress(options)
    progress.model_started(candidate.name, len(probes))
    for probe in probes:
        judged_on = [rule for rule in rules if any(run.key == probe.key for run in probe_runs(rule))]
        _run_probe(probe, candidate, evidence, options, cached, judged_on)
    progress.model_finished(candidate.name)
    return evidence


def result_document(candidate: Candidate, spec: Spec, rules: list[Rule], evidence: Evidence, options: RunOptions) -> RunResult:
    """Judge the rules on gathered evidence (cheap: checks are pure) into a RunResult."""
    results = [judge_rule(rule, evidence) for rule in rules]
    return RunResult(
        spec=SpecIdentity.from_dict(spec.identity()),
        model=ModelIdentity.from_dict(model_identity(candidate, evidence, options)),
        rules=results,
        evidence=evidence.to_dict(),
        environment=environment(),
    )


def run(candidate: Candidate, spec: Spec, options: RunOptions | None = None) -> RunResult:
    """Measure and judge one model against a spec (`options.only` narrows the rules) into its RunResult.

    Probe failures become rule errors, not exceptions; a loaded model is released (only its summary kept)
    before returning, so memory is freed between models. Raises RequestError when `options.only` names
    rules that are not in the spec.
    """
    options = options or RunOptions()
    rules = spec.select(options.only)
    evidence = measure(candidate, rules, options)
    result = result_document(candidate, spec, rules, evidence, options)
    for definition in all_probes():  # a loaded model is not evidence: keep its summary so memory is freed between models
        if definition.summary is not None:
            evidence.release(definition.name)
    return result


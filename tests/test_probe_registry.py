"""The probe registry: declarations drive planning, execution and the cache's allowlist; checks read typed evidence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance import probe_registry, registry
from conformance.cache import EvidenceCache, encode
from conformance.candidate import Candidate
from conformance.errors import CheckError, RequestError
from conformance.evidence import Evidence
from conformance.planning import plan, probe_runs, rule_evidence
from conformance.probe_catalogue import all_probes, cacheable_types, get_probe
from conformance.probe_registry import ProbeContext, probe, reachable_dataclasses
from conformance.probes.tasks import merge_task_requests
from conformance.rule import Rule
from conformance.runner import RunOptions, measure
from conformance.verdict import Verdict


@dataclass
class WidgetCount:
    widget: str
    count: int


@dataclass
class WidgetEvidence:
    """A new evidence type the cache has never heard of: it reaches WidgetCount through a field."""

    counts: list[WidgetCount] = field(default_factory=list)
    scale: float = 1.0


@dataclass
class Unregistered:
    value: int


CALLS: list[dict[str, Any]] = []


@pytest.fixture
def widget_probe() -> Iterator[None]:
    """A cacheable, parameterized `widgets` probe and a `widgets.count` check on it, unregistered afterwards."""

    @probe("widgets", evidence=WidgetEvidence, depends=("static",), cacheable=True, parameterized=True)
    def widgets(context: ProbeContext) -> WidgetEvidence:
        CALLS.append(dict(context.params))
        files = context.evidence.get("static").files
        return WidgetEvidence([WidgetCount("files", len(files))], float(context.params["scale"]))

    @registry.check("widgets.count", summary="test", probes=("widgets",), probe_params=lambda rule: {"scale": rule.params["scale"]})
    def count(evidence: Evidence, rule: Rule) -> Verdict:
        widgets = rule_evidence(evidence, rule, "widgets", WidgetEvidence)
        return Verdict("pass", widgets.counts[0].count * widgets.scale, None)

    CALLS.clear()
    yield
    del probe_registry._PROBES["widgets"]
    del registry._CHECKS["widgets.count"]


def _rule(check: str, rule_id: str = "R", **params: Any) -> Rule:
    return Rule(id=rule_id, level="must", check=check, params=params, comparison={})


def test_the_shipped_probes_are_registered_with_their_declarations() -> None:
    names = [definition.name for definition in all_probes()]
    shipped = {"static", "card", "scan", "hashes", "load", "forward", "determinism", "finiteness", "speed", "tasks", "generations", "baseline", "safety_set", "devices"}
    assert names == sorted(names) and shipped <= set(names)  # a new probe adds a name; these stay
    assert get_probe("load").depends == ("static", "scan") and get_probe("load").summary is not None
    assert get_probe("speed").until_decided and get_probe("speed").parameterized
    assert get_probe("tasks").merge is merge_task_requests
    cacheable = {d.name for d in all_probes() if d.cacheable}
    assert {"load", "forward", "determinism", "finiteness", "speed", "tasks", "generations"} <= cacheable
    assert not cacheable & {"static", "card", "scan", "hashes", "baseline", "safety_set", "devices"}  # cheap, or the key itself


def test_a_name_is_registered_once_and_lookups_suggest() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        probe("static", evidence=dict)(lambda context: None)
    with pytest.raises(RequestError, match="did you mean 'static'"):
        get_probe("statik")
    with pytest.raises(ValueError, match="merged probe"):
        probe("both", evidence=dict, parameterized=True, merge=merge_task_requests)


def test_the_cache_allowlist_is_derived_from_the_cacheable_probes() -> None:
    names = set(cacheable_types())
    assert {"ModelFacts", "ForwardFacts", "SpeedEvidence", "Workload", "MeasurementPolicy", "SampleStats", "TaskScores", "Generations"} <= names
    assert "StaticFacts" not in names  # static is not cacheable


def test_reachable_dataclasses_follow_field_hints() -> None:
    assert set(reachable_dataclasses([WidgetEvidence])) == {"WidgetEvidence", "WidgetCount"}


def test_plan_orders_dependencies_first_and_merges_tasks() -> None:
    rules = [
        _rule("quality.task_score", "A", task="one", limit=3),
        _rule("quality.task_score", "B", task="two"),
        _rule("card.claims_reproduce", "C"),
    ]
    runs = plan(rules)
    names = [run.name for run in runs]
    assert names.index("static") < names.index("load") and names.index("scan") < names.index("load")
    assert names.index("card") < names.index("tasks") and names.index("load") < names.index("tasks")
    tasks = [run for run in runs if run.name == "tasks"]
    assert len(tasks) == 1 and tasks[0].key == "tasks"
    params = dict(tasks[0].params)
    assert [r["task"] for r in params["requests"]] == ["one", "two"] and params["card_claims"] is True


def test_merge_keeps_the_first_of_equal_requests() -> None:
    one = {"task": "x", "num_fewshot": None, "limit": None}
    merged = merge_task_requests([{"requests": [one], "tasks_dirs": ["/a"]}, {"requests": [one], "tasks_dirs": ["/a", "/b"]}, {}])
    assert merged == {"requests": [one], "tasks_dirs": ["/a", "/b"], "card_claims": False}


def test_a_check_reads_its_own_parameterized_evidence(widget_probe: None) -> None:
    rule = _rule("widgets.count", scale=2)
    [run] = probe_runs(rule)
    evidence = Evidence()
    evidence.put(run.key, WidgetEvidence([WidgetCount("files", 3)], 2.0))
    assert rule_evidence(evidence, rule, "widgets", WidgetEvidence).scale == 2.0
    with pytest.raises(CheckError, match="not a Unregistered"):
        rule_evidence(evidence, rule, "widgets", Unregistered)
    with pytest.raises(CheckError, match="does not declare the load probe"):
        rule_evidence(evidence, rule, "load")
    with pytest.raises(CheckError, match="did not run"):
        rule_evidence(evidence, _rule("widgets.count", scale=3), "widgets")


def test_a_registered_probe_runs_through_the_runner_and_the_cache(widget_probe: None, llama_dir: Path, tmp_path: Path) -> None:
    rules = [_rule("widgets.count", "A", scale=2), _rule("widgets.count", "B", scale=2), _rule("widgets.count", "C", scale=3)]
    options = RunOptions(cache_dir=tmp_path / "cache", log=lambda message: None)
    evidence = measure(Candidate(llama_dir), rules, options)
    assert CALLS == [{"scale": 2}, {"scale": 3}]  # equal parameters share one run
    value = rule_evidence(evidence, rules[2], "widgets", WidgetEvidence)
    assert value.scale == 3.0 and value.counts[0].widget == "files"

    again = measure(Candidate(llama_dir), rules, options)  # served from the cache: no new run, same typed value
    assert CALLS == [{"scale": 2}, {"scale": 3}]
    assert rule_evidence(again, rules[2], "widgets", WidgetEvidence) == value


def test_the_cache_refuses_a_type_no_cacheable_probe_declares(widget_probe: None, tmp_path: Path) -> None:
    cache = EvidenceCache(tmp_path, cacheable_types())
    cache.put("a" * 64, WidgetEvidence([WidgetCount("x", 1)]))
    assert cache.get("a" * 64) == (True, WidgetEvidence([WidgetCount("x", 1)]))
    path = tmp_path / "evidence" / "bb" / ("b" * 64 + ".json")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(encode(Unregistered(1))), encoding="utf-8")
    assert cache.get("b" * 64) == (False, None)


def test_regression_judges_the_baseline_probes_evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.checks.quality import regression
    from conformance.probes.baseline import BaselineScores, read_baseline
    from conformance.probes.tasks import TaskScores

    (tmp_path / "base.json").write_text(json.dumps({"model": {"name": "v1"}, "evidence": {"tasks": {"scores": {"t": {"acc": 0.8}}}}}))
    rule = Rule(id="R", level="must", check="quality.regression", params={"baseline": "base.json", "max_drop": 0.05}, comparison={},
                source=str(tmp_path / "spec.yaml"))
    keys = {run.name: run.key for run in probe_runs(rule)}  # planning reads the baseline (which tasks to request)
    [tasks] = [run for run in plan([rule]) if run.name == "tasks"]
    assert [request["task"] for request in dict(tasks.params)["requests"]] == ["t"]
    evidence = Evidence()
    evidence.put(keys["baseline"], read_baseline(tmp_path / "base.json"))
    evidence.put("tasks", TaskScores(scores={"t": {"acc": 0.7}}))
    view = evidence.for_rule(keys)
    monkeypatch.setattr("builtins.open", lambda *a, **k: pytest.fail("the check read a file"))
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: pytest.fail("the check read a file"))
    verdict = regression(view, rule)
    assert verdict.status == "fail" and "0.8000 -> 0.7000" in verdict.message and "against v1" in verdict.expected
    evidence.put(keys["baseline"], BaselineScores("gone.json", error="baseline result gone.json not found"))
    with pytest.raises(CheckError, match="baseline result gone.json not found"):
        regression(view, rule)


def test_generation_probe_takes_default_patterns_from_the_safety_set_evidence(monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.checks.generation_safety import generation_probe
    from conformance.probes.generations import Generations
    from conformance.probes.safety_set import SafetyProbeSet

    rule = Rule(id="G", level="must", check="safety.generation_probe", params={"prompts": ["Q", "R"]}, comparison={})
    keys = {run.name: run.key for run in probe_runs(rule)}
    evidence = Evidence()
    evidence.put(keys["generations"], Generations(["Q", "R"], [" a secret", " fine"], 32))
    evidence.put(keys["safety_set"], SafetyProbeSet(["unused"], ["secret"]))
    monkeypatch.setattr("builtins.open", lambda *a, **k: pytest.fail("the check read a file"))
    verdict = generation_probe(evidence.for_rule(keys), rule)
    assert verdict.status == "fail" and verdict.observed == {"rate": 0.5, "matched": 1, "prompts": 2}


def test_roofline_peaks_come_from_the_devices_evidence() -> None:
    from conformance.checks.performance import _peak
    from conformance.probes.roofline import DevicePeak, DeviceTable

    class Speed:
        environment = {"device": "cuda:0", "device_name": "Made-up X1", "dtype": "bfloat16"}

    made_up = DevicePeak("X1", ("Made-up X1",), {"bfloat16": 5e14}, 2e12, "the test")
    evidence = Evidence()
    evidence.put("devices", DeviceTable((made_up,)))
    rule = Rule(id="M", level="may", check="performance.mfu", params={}, comparison={"min": 0})
    assert _peak(evidence, rule, Speed(), "peak_flops_per_second") == (5e14, "X1 dense bfloat16, the test")  # type: ignore[arg-type]
    evidence.put("devices", DeviceTable(()))
    with pytest.raises(CheckError, match="no peak known for device Made-up X1"):
        _peak(evidence, rule, Speed(), "peak_bytes_per_second")  # type: ignore[arg-type]


def test_until_decided_probes_run_after_the_other_probes_their_checks_read() -> None:
    """An MFU rule without a peak reads the `devices` table: it must be there when the speed probe asks "decided?"."""
    mfu = Rule(id="MFU", level="must", check="performance.mfu", params={"workload": {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 4}}, comparison={"min": 0.1})
    names = [run.name for run in plan([mfu])]
    assert "devices" in names and names.index("devices") < names.index("speed")
    assert names.index("load") < names.index("speed")  # dependencies still first


def test_a_cached_value_of_another_type_is_a_miss(widget_probe: None, llama_dir: Path, tmp_path: Path) -> None:
    """A hand-edited entry holding another registered type is measured again, not handed to the check."""
    rules = [_rule("widgets.count", "A", scale=2)]
    options = RunOptions(cache_dir=tmp_path / "cache", log=lambda message: None)
    measure(Candidate(llama_dir), rules, options)
    entries = list((tmp_path / "cache" / "evidence").rglob("*.json"))
    assert len(entries) == 1
    entries[0].write_text(json.dumps(encode(WidgetCount("forged", 7))), encoding="utf-8")  # allowlisted, wrong probe
    CALLS.clear()
    again = measure(Candidate(llama_dir), rules, options)
    assert CALLS == [{"scale": 2}]
    assert isinstance(rule_evidence(again, rules[0], "widgets", WidgetEvidence), WidgetEvidence)


def test_the_cache_never_writes_what_it_could_not_read_back(tmp_path: Path) -> None:
    """A dataclass outside the allowlist hidden in an untyped field would be written and then refused at every read."""

    @dataclass
    class Loose:
        extra: Any

    cache = EvidenceCache(tmp_path, cacheable_types() | {"Loose": Loose})
    cache.put("c" * 64, Loose(Unregistered(1)))
    assert not list(tmp_path.rglob("*.json"))
    cache.put("d" * 64, Loose(3))
    assert cache.get("d" * 64) == (True, Loose(3))


def test_a_cache_entry_nested_past_the_parser_is_a_miss(tmp_path: Path) -> None:
    cache = EvidenceCache(tmp_path, cacheable_types())
    path = tmp_path / "evidence" / "ee" / ("e" * 64 + ".json")
    path.parent.mkdir(parents=True)
    path.write_text("[" * 200_000, encoding="utf-8")
    assert cache.get("e" * 64) == (False, None)

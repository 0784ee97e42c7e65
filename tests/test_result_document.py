"""Typed results: the Status/Level enums and the one conformance rule, the identity and summary dataclasses,
the ResultDocument reader on real documents, the metric table, and the one unique-name helper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.candidate import Candidate
from conformance.metrics import (
    LOWER_IS_BETTER,
    MEAN_NORMALIZED,
    METRICS,
    PRIMARY_METRIC_PREFERENCE,
    WIN_RATE,
    Direction,
    direction_of,
    lower_is_better,
)
from conformance.report.names import file_stem, file_stems, unique_name, unique_names
from conformance.result_document import INTERVAL_COLUMNS, SPEED_DECIDED, SPEED_FIGURES, TIMED_FIGURES, ResultDocument
from conformance.results import ModelIdentity, RuleResult, RunResult, SpecIdentity, Summary, write_result
from conformance.runner import RunOptions, run
from conformance.spec import load_spec
from conformance.tasks import TASKS_DIR
from conformance.verdict import LEVELS, STATUSES, Level, Status, breaks_conformance, falls_short, is_warning

# --- the enums -----------------------------------------------------------------------------------------------


def test_enums_are_their_plain_strings_in_json_comparisons_and_formatting() -> None:
    assert [status.value for status in STATUSES] == ["pass", "fail", "skip", "error"]
    assert [level.value for level in LEVELS] == ["must", "should", "may"]
    for member in (*Status, *Level):
        assert member == member.value and hash(member) == hash(member.value)
        assert json.dumps(member) == json.dumps(member.value)
        assert json.dumps({member: [member]}) == json.dumps({member.value: [member.value]})
        assert str(member) == f"{member}" == member.value and f"{member:>7}" == f"{member.value:>7}"
    assert Status("pass") is Status.PASS and "pass" in STATUSES and "warn" not in STATUSES
    with pytest.raises(ValueError):
        Level("required")


# Every level × status, with what the suite has always done: only must rules break conformance (failed
# or errored); a should or may rule that failed is a warning; an errored should/may rule is an error,
# not a warning, but it still falls short (a family badge turns warn).
TRUTH = {
    # (level, status): (breaks conformance, is a warning, falls short)
    ("must", "pass"): (False, False, False), ("must", "fail"): (True, False, True),
    ("must", "skip"): (False, False, False), ("must", "error"): (True, False, True),
    ("should", "pass"): (False, False, False), ("should", "fail"): (False, True, True),
    ("should", "skip"): (False, False, False), ("should", "error"): (False, False, True),
    ("may", "pass"): (False, False, False), ("may", "fail"): (False, True, True),
    ("may", "skip"): (False, False, False), ("may", "error"): (False, False, True),
}


@pytest.mark.parametrize(("level", "status"), sorted(TRUTH))
def test_breaks_conformance_and_is_warning_truth_table(level: str, status: str) -> None:
    breaks, warns, short = TRUTH[(level, status)]
    for as_level, as_status in ((level, status), (Level(level), Status(status))):
        assert breaks_conformance(as_level, as_status) is breaks
        assert is_warning(as_level, as_status) is warns
        assert falls_short(as_status) is short
    rule = RuleResult("R", "size.parameters", level, status)
    assert (rule.breaks_conformance, rule.is_warning) == (breaks, warns)


def test_the_summary_counts_should_warnings_only_and_must_breaks() -> None:
    rules = [RuleResult(str(index), "size.parameters", level, status) for index, (level, status) in enumerate(sorted(TRUTH))]
    summary = Summary.of_rules(rules)
    assert (summary.passed, summary.failed, summary.skipped, summary.errors) == (3, 3, 3, 3)
    assert summary.warnings == 1  # the document's `warnings` has always counted should failures alone
    assert summary.conformant is False
    assert Summary.of_rules([RuleResult("S", "x.y", "should", "error"), RuleResult("M", "x.y", "may", "fail")]).conformant


# --- identity and summary dataclasses ---------------------------------------------------------------------


def test_identity_and_summary_blocks_keep_the_documents_keys_and_order() -> None:
    spec = {"id": "s", "version": "1", "title": "t", "path": None, "sha256": "0" * 64}
    assert list(SpecIdentity.from_dict(spec).to_dict().items()) == list(spec.items())
    unhashed = {"name": "m", "path": "/m", "sha256": None}
    hashed = {"name": "m", "path": "/m", "sha256": "1" * 64, "weight_files": {"model.safetensors": "2" * 64}}
    for model in (unhashed, hashed):
        assert list(ModelIdentity.from_dict(model).to_dict().items()) == list(model.items())
    summary = {"passed": 1, "failed": 2, "skipped": 3, "errors": 4, "warnings": 1, "conformant": False}
    assert list(Summary.from_dict(summary).to_dict().items()) == list(summary.items())
    without_warnings = {key: value for key, value in summary.items() if key != "warnings"}
    assert Summary.from_dict(without_warnings).warnings is None
    assert Summary.from_dict(without_warnings).to_dict() == without_warnings


def test_a_rule_row_is_plain_data_in_the_schemas_order() -> None:
    rule = RuleResult("R", "size.parameters", "should", "fail", observed=(1, {2}), message="m", interval=None)
    row = rule.to_dict()
    assert list(row) == ["id", "check", "level", "status", "observed", "expected", "message", "seconds", "interval"]
    assert type(row["level"]) is str and type(row["status"]) is str  # noqa: E721 - exactly str, not the enum
    assert row["observed"] == [1, [2]]
    assert RuleResult.from_dict(row) == RuleResult("R", "size.parameters", Level.SHOULD, Status.FAIL, [1, [2]], message="m")
    with pytest.raises(ValueError):
        RuleResult("R", "size.parameters", "should", "maybe")


# --- the reader on real documents --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_document(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    """tiny-llama against static rules: one must pass, one should failure, one may failure, one must skip."""
    spec_path = tmp_path_factory.mktemp("reader-spec") / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"id": "reader", "version": "2", "title": "Reader", "rules": [
        {"id": "ARCH", "level": "must", "check": "architecture.model_type", "in": ["llama"]},
        {"id": "SMALL", "level": "should", "check": "size.parameters", "max": 10},
        {"id": "TINY", "level": "may", "check": "size.parameters", "max": 5},
        {"id": "LICENSE", "level": "must", "check": "safety.license", "in": ["apache-2.0"]},
    ]}))
    result = run(Candidate(llama_dir), load_spec(spec_path), RunOptions(log=lambda message: None, hash_weights="always"))
    path = tmp_path_factory.mktemp("reader-out") / "tiny-llama.json"
    write_result(result.to_document(), path)
    return result, path


def test_the_reader_gives_typed_identity_rules_and_summary(llama_document: tuple[RunResult, Path]) -> None:
    result, path = llama_document
    document = ResultDocument.load(path)
    data = json.loads(path.read_text())
    assert document.spec == result.spec and document.spec.to_dict() == data["spec"]
    assert document.spec.label == "reader 2" and document.spec.title == "Reader"
    assert document.model == result.model and document.model.to_dict() == data["model"]
    assert document.model.name == "tiny-llama" and document.model.sha256 and document.model.weight_files
    assert document.summary == result.summary == Summary.of_rules(document.rules)
    assert [(rule.id, rule.level, rule.status) for rule in document.rules] == [
        ("ARCH", Level.MUST, Status.PASS), ("SMALL", Level.SHOULD, Status.FAIL), ("TINY", Level.MAY, Status.FAIL),
        ("LICENSE", Level.MUST, Status.PASS)]
    assert document.summary.warnings == 1 and document.conformant
    assert [rule.is_warning for rule in document.rules] == [False, True, True, False]
    assert document.problems() == []
    facts = document.static_facts()
    assert facts.parameters == data["evidence"]["static"]["parameters"]["parameters"] > 10
    assert (facts.dtype, facts.architecture, facts.license) == ("F32", "llama", "apache-2.0")
    assert document.task_scores() == {} and document.speed_keys() == [] and document.workload_text(None) is None


def test_the_document_round_trips_through_runresult_unchanged(llama_document: tuple[RunResult, Path]) -> None:
    """The typed RunResult writes the same document it reads back: keys, order and values."""
    result, path = llama_document
    data = json.loads(path.read_text())
    document = ResultDocument(data)
    rebuilt = RunResult(document.spec, document.model, document.rules, data["evidence"], data["environment"]).to_document()
    assert json.dumps(rebuilt) == json.dumps(data)
    assert list(data) == ["schema_version", "spec", "model", "environment", "summary", "rules", "evidence"]
    assert list(data["summary"]) == ["passed", "failed", "skipped", "errors", "warnings", "conformant"]


def test_the_reader_wraps_dicts_and_refuses_other_values() -> None:
    data = {"spec": {"id": "s", "version": "1", "sha256": "0" * 64}, "model": {"name": "m", "path": "/m", "sha256": None},
            "summary": {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "conformant": True}, "rules": [], "evidence": {}}
    document = ResultDocument(data)
    assert ResultDocument.of(document) is document and ResultDocument.of(data).data is data
    assert document.spec.title == "" and document.spec.path is None and document.model.weight_files is None
    assert document.problems()  # no schema_version, no environment: wrapped, not validated
    with pytest.raises(TypeError):
        ResultDocument(["not", "a", "document"])  # type: ignore[arg-type]


def _speed(**extra: Any) -> dict[str, Any]:
    return {"decode_tokens_per_second": 100.0, "prefill_tokens_per_second": 1000.0, "ttft_ms": {"p50": 4.0},
            "tpot_ms": {"p50": 2.0}, "peak_memory_bytes": 2**20, "process_peak_memory_bytes": 2**29,
            "environment": {"device": "cpu", "dtype": "float32"}, "workload": {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 4},
            "intervals": {"decode_tokens_per_second": {"low": 90.0, "high": "inf", "level": 0.95}}, **extra}


def test_evidence_readers_skip_failed_probes_and_undecided_timings() -> None:
    document = ResultDocument({"evidence": {
        "tasks": {"scores": {"t": {"acc": 0.5, "acc_norm": "NaN"}, "u": {"acc": None}}},
        "speed[a]": _speed(), "speed[b]": _speed(decided=False), "speed[c]": {"error": "no GPU"},
        "static": {"skipped": "not asked"}, "card": {"metadata": {"license": 3}},
    }})
    assert document.task_scores() == {"t": {"acc": 0.5}}  # non-finite and missing scores are absent
    assert document.speed_keys() == ["speed[a]", "speed[b]"] and document.probe("speed[c]") == {}
    decided = document.speed_figures("speed[a]")
    assert [decided[name] for name in SPEED_FIGURES] == [100.0, 1000.0, 4.0, 2.0, 2**20, 2**29]
    low, high = INTERVAL_COLUMNS["decode_tokens_per_second"]
    assert (decided[low], decided[high], decided[SPEED_DECIDED], decided["speed_device"]) == (90.0, float("inf"), True, "cpu")
    undecided = document.speed_figures("speed[b]")
    assert all(undecided[name] is None for name in TIMED_FIGURES) and undecided[SPEED_DECIDED] is False
    assert undecided["peak_memory_bytes"] == 2**20  # memory is not a timing
    assert document.speed_figures(None)[SPEED_DECIDED] is None
    assert document.workload_text("speed[a]") == "batch 1, 8 prompt tokens, 4 new tokens (cpu, float32)"
    assert document.static_facts().parameters is None and document.static_facts().license is None


# --- the metric table -----------------------------------------------------------------------------------------


class _TaskLoader(yaml.SafeLoader):
    """Reads lm-eval task YAML, leaving `!function` tags as strings."""


_TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: str(node.value))


def _bundled_task_metrics() -> dict[str, bool]:
    metrics: dict[str, bool] = {}
    for path in TASKS_DIR.glob("conformance_*.yaml"):
        for entry in yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskLoader).get("metric_list", []):
            metrics[entry["metric"]] = entry.get("higher_is_better", True)
    return metrics


def test_every_metric_a_view_shows_has_an_entry() -> None:
    bundled = _bundled_task_metrics()
    assert {"acc", "acc_norm", "word_perplexity", "byte_perplexity", "bits_per_byte"} <= set(bundled)
    shown = {*bundled, *PRIMARY_METRIC_PREFERENCE, *SPEED_FIGURES, MEAN_NORMALIZED, WIN_RATE, "parameters", "weight_bytes", "perplexity"}
    assert shown <= set(METRICS), shown - set(METRICS)
    for name, metric in METRICS.items():
        assert metric.name == name and metric.label and metric.short_label and metric.help, name


def test_directions_agree_with_the_bundled_tasks_and_the_old_name_sets() -> None:
    for metric, higher in _bundled_task_metrics().items():
        assert direction_of(metric) is (Direction.HIGHER if higher else Direction.LOWER), metric
    # The two name sets the table replaces (checks.quality and report.figures) read the same.
    assert {"word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity", "ppl"} <= LOWER_IS_BETTER
    assert {"ttft_ms_p50", "tpot_ms_p50", "peak_memory_bytes", "process_peak_memory_bytes"} <= LOWER_IS_BETTER
    assert not {"acc", "acc_norm", "decode_tokens_per_second", "prefill_tokens_per_second", MEAN_NORMALIZED, WIN_RATE} & LOWER_IS_BETTER
    assert (lower_is_better("parameters"), lower_is_better("weight_bytes")) == (None, None)  # sizes: neither way
    assert lower_is_better("a_metric_no_one_declared") is False  # a task score: higher is better


# --- unique names ---------------------------------------------------------------------------------------------


def test_unique_names_suffix_repeats_in_order() -> None:
    assert unique_names(["a", "a", "b", "a"]) == ["a", "a-2", "b", "a-3"]
    assert unique_names(["a-2", "a", "a"]) == ["a-2", "a", "a-3"]  # a suffix is never reused
    assert unique_name("m", set()) == "m" and unique_name("m", {"m", "m-2"}) == "m-3"
    assert file_stem("a/b c") == "a_b_c" and file_stem("..hidden_") == "hidden" and file_stem("://") == "model"
    assert file_stems(["x y", "x_y", "", ""]) == ["x_y", "x_y-2", "model", "model-2"]


def test_the_plugin_and_the_leaderboard_name_repeats_the_same_way(tmp_path: Path, llama_document: tuple[RunResult, Path]) -> None:
    from conformance.pytest_plugin.outputs import write_outputs
    from conformance.report.table import build_leaderboard

    _, path = llama_document
    data = json.loads(path.read_text())
    assert build_leaderboard([data, data, data]).models == ["tiny-llama", "tiny-llama-2", "tiny-llama-3"]
    written = write_outputs([data, data], tmp_path)
    assert sorted(p.name for p in written) == ["summary.md", "tiny-llama.reader-2.json", "tiny-llama.reader.json"]

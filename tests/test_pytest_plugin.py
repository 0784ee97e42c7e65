"""The pytest plugin: spec rules as test items, measured once per model, reported through pytest's own outputs.

Most runs are in-process (fast: torch is already imported); the entry point and pytest-xdist need real
subprocesses. A conftest written into the pytester folder counts model loads per process.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

import conformance.pytest_plugin.nodes  # noqa: F401
from conformance import zoo
from conformance.catalogue import all_checks
from conformance.pytest_plugin import assert_rule
from conformance.results import load_result

pytest_plugins = ["pytester"]

# pytester's in-process runs put sys.modules back afterwards; a check module imported inside one run would
# not register again in the next. Importing the catalogue here keeps one registry for all inner sessions.
all_checks()


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts with an empty evidence cache, so loads are counted within its own session."""
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "conformance-cache"))


STATIC_RULES = [
    {"id": "ARCH-TYPE", "level": "must", "check": "architecture.model_type", "in": ["llama"]},
    {"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1.0e9},
    {"id": "SAFE-FORMAT", "level": "must", "check": "safety.weights_format", "in": ["safetensors"]},
]
LOADS_RULE = {"id": "LOADS", "level": "must", "check": "runtime.loads"}
# float16 asked, float32 loaded (forced by --conformance-device cpu): skipped before anything is timed.
SKIPPED_PERF_RULE = {
    "id": "PERF", "level": "should", "check": "performance.decode_tokens_per_second",
    "workload": {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 4}, "dtype": "float16", "min": 1,
}

COUNT_LOADS_CONFTEST = """
import os

import conformance.probes.load as load_module

_original = load_module.load_model



def pytest_configure(config):
    def counting(candidate, *args, **kwargs):
        with open({log!r}, "a", encoding="utf-8") as log:
            log.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + " " + candidate.name + "\\n")
        return _original(candidate, *args, **kwargs)

    load_module.load_model = counting


def pytest_unconfigure(config):
    load_module.load_model = _original
"""


def write_spec(folder: Path, name: str, rules: list[dict], *, spec_id: str = "ci-spec", models: list[str] | None = None) -> Path:
    document: dict = {"id": spec_id, "version": "1", "rules": rules}
    if models is not None:
        document["models"] = models
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def count_loads(pytester: pytest.Pytester) -> Path:
    log = pytester.path / "loads.log"
    pytester.makeconftest(COUNT_LOADS_CONFTEST.format(log=str(log)))
    return log


def loads(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in log.read_text(encoding="utf-8").splitlines()]


def cli(spec: Path, *models: Path) -> list[str]:
    args = ["--conformance-spec", str(spec)]
    for model in models:
        args += ["--conformance-model", str(model)]
    return args


@pytest.fixture(autouse=True)
def _rootdir_is_the_pytester_folder(request: pytest.FixtureRequest) -> None:
    """Without an ini file pytest would take the common folder of the paths on the command line as rootdir."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester").makeini("[pytest]\n")


@pytest.fixture
def corrupt_llama(llama_dir: Path, copy_model) -> Path:
    model = copy_model(llama_dir, "broken-llama")
    zoo.write_bad_safetensors(model / "model.safetensors", "truncated")
    return model


# --- collection, naming, options ------------------------------------------------------------------


def test_entry_point_registers_the_plugin_and_an_empty_folder_runs_one_item_per_rule(
    pytester: pytest.Pytester, llama_dir: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, "spec.yaml", STATIC_RULES)
    result = pytester.runpytest_subprocess(*cli(spec, llama_dir), "-v", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["conformance: spec.yaml; models *tiny-llama; device auto", "plugins:*conformance*", "*collected 3 items", "*::tiny-llama::ARCH-TYPE PASSED*"])
    result.assert_outcomes(passed=3)


def test_a_must_failure_fails_its_item_with_observed_expected_and_message(pytester: pytest.Pytester, bert_dir: Path) -> None:
    spec = write_spec(pytester.path, "spec.yaml", STATIC_RULES)
    result = pytester.runpytest(*cli(spec, bert_dir))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*_ tiny-bert::ARCH-TYPE _*",
        "ARCH-TYPE (must, architecture.model_type) failed on tiny-bert",
        "observed: bert",
        "expected: in ['llama']",
        "message: bert is not one of ['llama']",
    ])
    assert "Traceback" not in result.stdout.str() and "pytest_plugin" not in result.stdout.str()


def test_item_names_and_k_selection_by_rule_and_by_model(pytester: pytest.Pytester, llama_dir: Path, gpt2_dir: Path) -> None:
    spec = write_spec(pytester.path, "spec.yaml", STATIC_RULES)
    collected = pytester.runpytest(*cli(spec, llama_dir, gpt2_dir), "--collect-only", "-q")
    collected.stdout.fnmatch_lines([
        "spec.yaml::tiny-llama::ARCH-TYPE", "spec.yaml::tiny-llama::SIZE", "spec.yaml::tiny-llama::SAFE-FORMAT",
        "spec.yaml::tiny-gpt2::ARCH-TYPE", "spec.yaml::tiny-gpt2::SIZE", "spec.yaml::tiny-gpt2::SAFE-FORMAT",
    ])
    by_rule = pytester.runpytest(*cli(spec, llama_dir, gpt2_dir), "-k", "SIZE")
    by_rule.assert_outcomes(passed=2, deselected=4)
    by_model = pytester.runpytest(*cli(spec, llama_dir, gpt2_dir), "-k", "tiny-gpt2", "-v")
    by_model.assert_outcomes(passed=2, failed=1, deselected=3)  # gpt2 is not in [llama]
    by_model.stdout.fnmatch_lines(["*tiny-gpt2::ARCH-TYPE FAILED*"])
    both = pytester.runpytest(*cli(spec, llama_dir, gpt2_dir), "-k", "tiny-gpt2 and ARCH-TYPE")
    both.assert_outcomes(failed=1, deselected=5)


def test_level_markers_select_rules(pytester: pytest.Pytester, llama_dir: Path) -> None:
    rules = [*STATIC_RULES, {"id": "CTX", "level": "should", "check": "architecture.context_length", "min": 16}]
    spec = write_spec(pytester.path, "spec.yaml", rules)
    pytester.runpytest(*cli(spec, llama_dir), "-m", "must", "--strict-markers").assert_outcomes(passed=3, deselected=1)
    pytester.runpytest(*cli(spec, llama_dir), "-m", "should").assert_outcomes(passed=1, deselected=3)
    pytester.runpytest(*cli(spec, llama_dir), "-m", "conformance and not may").assert_outcomes(passed=4)
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.conformance:*", "@pytest.mark.must:*", "@pytest.mark.should:*", "@pytest.mark.may:*"])


def test_options_from_the_ini_file(pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path) -> None:
    specs = pytester.mkdir("specs")
    write_spec(specs, "release.yaml", [*STATIC_RULES, SKIPPED_PERF_RULE])
    pytester.makeini(f"""
        [pytest]
        conformance_spec =
            specs/release.yaml
        conformance_model =
            {llama_dir}
            {bert_dir}
        conformance_out = reports
        conformance_device = cpu
        conformance_no_cache = true
    """)
    result = pytester.runpytest("-rs", "-k", "not PERF or tiny-llama")
    result.assert_outcomes(passed=5, failed=1, skipped=1, deselected=1)
    result.stdout.fnmatch_lines(["SKIPPED ?1? specs/release.yaml: rule measures in float16; model loaded in float32*"])
    reports = pytester.path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["summary.md", "tiny-bert.ci-spec.json", "tiny-llama.ci-spec.json"]
    assert load_result(reports / "tiny-llama.ci-spec.json")["evidence"]["load"]["device"] == "cpu"
    # The command line wins over the ini file.
    other = write_spec(pytester.path, "other.yaml", [STATIC_RULES[1]], spec_id="other")
    result = pytester.runpytest("--conformance-spec", str(other), "--conformance-model", str(bert_dir), "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*other.yaml::tiny-bert::SIZE PASSED*"])


def test_bad_options_and_specs_are_one_line_errors(pytester: pytest.Pytester, llama_dir: Path, tmp_path: Path) -> None:
    spec = write_spec(pytester.path, "spec.yaml", STATIC_RULES)
    result = pytester.runpytest(*cli(spec, llama_dir), "--conformance-device", "tpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--conformance-device: 'tpu' is not auto, cpu, cuda or cuda:N"])

    bad = pytester.path / "bad.yaml"
    bad.write_text("id: bad\nversion: '1'\nrules:\n  - {id: X, level: must, check: size.paramters, max: 3}\n")
    result = pytester.runpytest(*cli(bad, llama_dir))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([
        "*ERROR collecting bad.yaml*",
        f"{bad}:4: rule X: field rules[0].check: unknown check 'size.paramters'; did you mean 'size.parameters'?",
        "*Interrupted: 1 error during collection*",
    ])
    assert "Traceback" not in result.stdout.str()

    result = pytester.runpytest(*cli(spec, tmp_path / "no-such-model"))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"{spec}: {tmp_path / 'no-such-model'}: model folder not found"])

    result = pytester.runpytest("--conformance-spec", "no-such-spec.yaml", "--conformance-model", str(llama_dir))
    result.stdout.fnmatch_lines(["*/no-such-spec.yaml: spec file not found"])


def test_shipped_standard_by_name(pytester: pytest.Pytester, llama_dir: Path) -> None:
    result = pytester.runpytest("--conformance-spec", "baseline-safety", "--conformance-model", str(llama_dir), "--collect-only", "-q")
    result.stdout.fnmatch_lines(["standard:baseline-safety::tiny-llama::SAFE-FORMAT", "8 tests collected*"])
    # The same short id whatever the rootdir, even one that holds the installed package (a clone's parent).
    result = pytester.runpytest("--conformance-spec", "baseline-safety", "--conformance-model", str(llama_dir), "--collect-only", "-q",
                                "--rootdir=/", "--deselect", "standard:baseline-safety::tiny-llama::SAFE-FORMAT")
    result.stdout.fnmatch_lines(["standard:baseline-safety::tiny-llama::SAFE-CODE", "7/8 tests collected (1 deselected)*"])
    result.stdout.no_fnmatch_line("*SAFE-FORMAT*")
    result.stdout.no_fnmatch_line("*_specs*")


def test_a_misspelt_standard_name_suggests_the_closest(pytester: pytest.Pytester, llama_dir: Path) -> None:
    """The same did-you-mean as the command line's --spec; a path-like name stays a plain "not found"."""
    from conformance.standards import standard_hint

    result = pytester.runpytest("--conformance-spec", "baseline-safty", "--conformance-model", str(llama_dir), "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    hint = standard_hint("baseline-safty")
    assert hint.startswith("did you mean 'baseline-safety'? shipped: ")
    result.stdout.fnmatch_lines([f"*/baseline-safty: spec file not found; {hint}"])
    result = pytester.runpytest("--conformance-spec", "no-such-spec.yaml", "--conformance-model", str(llama_dir), "--collect-only", "-q")
    assert "did you mean" not in result.stdout.str()


# --- spec files in the test tree ------------------------------------------------------------------


def test_spec_files_in_the_tree_are_collected_with_their_models(
    pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path, gpt2_dir: Path
) -> None:
    tests = pytester.mkdir("tests")
    write_spec(tests, "conformance_release.yaml", STATIC_RULES, models=[os.path.relpath(llama_dir, tests)])
    write_spec(tests, "conformance_encoders.yaml", [STATIC_RULES[1]], spec_id="enc", models=[str(bert_dir)])
    write_spec(tests, "other.yaml", STATIC_RULES, models=[str(llama_dir)])  # not matching the pattern
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "test_plain.py::test_plain",
        "tests/conformance_encoders.yaml::tiny-bert::SIZE",
        "tests/conformance_release.yaml::tiny-llama::ARCH-TYPE",
        "tests/conformance_release.yaml::tiny-llama::SIZE",
        "tests/conformance_release.yaml::tiny-llama::SAFE-FORMAT",
    ])
    result.stdout.no_fnmatch_line("*other.yaml*")
    pytester.runpytest().assert_outcomes(passed=5)
    # --conformance-model adds models to every spec; a spec given on the command line is not collected twice.
    result = pytester.runpytest(
        "--conformance-model", str(gpt2_dir), "--conformance-spec", str(tests / "conformance_encoders.yaml"), "--collect-only", "-q"
    )
    result.stdout.fnmatch_lines(["tests/conformance_encoders.yaml::tiny-gpt2::SIZE", "9 tests collected*"])
    # The pattern is an ini key.
    pytester.makeini("[pytest]\nconformance_spec_pattern = other.yaml\n")
    pytester.runpytest("--collect-only", "-q").stdout.fnmatch_lines(["tests/other.yaml::tiny-llama::SIZE", "4 tests collected*"])


def test_a_spec_file_without_models_is_a_collection_error(pytester: pytest.Pytester) -> None:
    write_spec(pytester.path, "conformance_lonely.yaml", STATIC_RULES)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([
        "*conformance_lonely.yaml: no model to check: name model folders in the spec's `models:` key or pass --conformance-model*",
    ])


# --- outcomes -------------------------------------------------------------------------------------


def test_levels_map_onto_pytest_outcomes_and_the_summary_line_counts_them(pytester: pytest.Pytester, llama_dir: Path) -> None:
    rules = [
        STATIC_RULES[1],
        {"id": "TYPE", "level": "must", "check": "architecture.model_type", "in": ["gpt2"]},
        {"id": "CTX", "level": "should", "check": "architecture.context_length", "min": 1_000_000},
        {"id": "GQA", "level": "may", "check": "architecture.num_key_value_heads", "max": 0},
        SKIPPED_PERF_RULE,
    ]
    spec = write_spec(pytester.path, "spec.yaml", rules)
    result = pytester.runpytest(*cli(spec, llama_dir), "--conformance-device", "cpu", "-rsx")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1, xfailed=2, skipped=1)
    result.stdout.fnmatch_lines([
        "SKIPPED [1] spec.yaml: rule measures in float16; model loaded in float32 (pass --dtype float16)",
        "XFAIL *spec.yaml::tiny-llama::CTX - should rule falls short: observed 256, expected >= 1e+06: *",
        "XFAIL *spec.yaml::tiny-llama::GQA - may rule falls short: observed *, expected <= 0*",
    ])
    result.stdout.fnmatch_lines(["conformance: 1 passed, 1 must failure, 1 should shortfall, 1 may shortfall, 1 skipped, 0 errors across 1 model"])


def test_should_shortfalls_alone_pass_the_build(pytester: pytest.Pytester, llama_dir: Path) -> None:
    spec = write_spec(pytester.path, "spec.yaml", [
        STATIC_RULES[0], {"id": "CTX", "level": "should", "check": "architecture.context_length", "min": 1_000_000},
    ])
    result = pytester.runpytest(*cli(spec, llama_dir))
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["conformance: 1 passed, 0 must failures, 1 should shortfall, 0 skipped, 0 errors across 1 model"])


def test_an_errored_rule_is_a_pytest_error(pytester: pytest.Pytester, corrupt_llama: Path) -> None:
    spec = write_spec(pytester.path, "spec.yaml", STATIC_RULES)
    result = pytester.runpytest(*cli(spec, corrupt_llama))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of broken-llama::SIZE*",
        "SIZE (must, size.parameters) could not be judged on broken-llama: *model.safetensors*",
        "conformance: 2 passed, 0 must failures, 0 should shortfalls, 0 skipped, 1 error across 1 model",
    ])
    assert "Traceback" not in result.stdout.str()


# --- measure once ---------------------------------------------------------------------------------


def test_one_load_per_model_across_spec_files_and_the_command_line(
    pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path
) -> None:
    log = count_loads(pytester)
    models = [str(llama_dir), str(bert_dir)]
    write_spec(pytester.path, "conformance_a.yaml", [LOADS_RULE, STATIC_RULES[1]], spec_id="a", models=models)
    write_spec(pytester.path, "conformance_b.yaml", [{"id": "LOGITS", "level": "must", "check": "runtime.logits_finite"}], spec_id="b", models=models)
    extra = write_spec(pytester.path, "extra.yaml", [{"id": "DET", "level": "must", "check": "runtime.deterministic", "new_tokens": 2}], spec_id="c")
    result = pytester.runpytest(*cli(extra, llama_dir))
    result.assert_outcomes(passed=7)
    assert sorted(loads(log)) == [("main", "tiny-bert"), ("main", "tiny-llama")]


FAKE_TASKS_CONFTEST = """
import json

import dataclasses

from conformance import probe_registry
from conformance.errors import CheckError
from conformance.probe_catalogue import get_probe

_original = get_probe("tasks")


def pytest_configure(config):
    def fake_tasks(context):
        with open({log!r}, "a", encoding="utf-8") as log:
            log.write(json.dumps(sorted(request["task"] for request in context.params["requests"])) + "\\n")
        raise CheckError("lm-eval is not run in this test")

    probe_registry._PROBES["tasks"] = dataclasses.replace(_original, function=fake_tasks)


def pytest_unconfigure(config):
    probe_registry._PROBES["tasks"] = _original
"""


def test_one_task_evaluation_per_model_across_spec_files(pytester: pytest.Pytester, llama_dir: Path) -> None:
    log = pytester.path / "tasks.log"
    pytester.makeconftest(FAKE_TASKS_CONFTEST.format(log=str(log)))
    for name, task in (("conformance_a.yaml", "conformance_sentiment"), ("conformance_b.yaml", "conformance_facts")):
        rule = {"id": f"Q-{task}", "level": "must", "check": "quality.task_score", "task": task, "metric": "acc", "min": 0.0}
        write_spec(pytester.path, name, [rule], spec_id=name.removesuffix(".yaml").replace("_", "-"), models=[str(llama_dir)])
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*could not be judged on tiny-llama: tasks probe failed: lm-eval is not run in this test"])
    assert json.loads(log.read_text(encoding="utf-8")) == ["conformance_facts", "conformance_sentiment"]  # one call, both tasks


def test_hand_written_tests_use_the_fixtures_and_share_the_load(pytester: pytest.Pytester, llama_dir: Path) -> None:
    log = count_loads(pytester)
    spec = write_spec(pytester.path, "conformance_a.yaml", [LOADS_RULE, STATIC_RULES[0]], models=[str(llama_dir)])
    pytester.makepyfile(test_hand=f"""
        import pytest

        def test_document(conformance_run, conformance_assert):
            document = conformance_run({str(llama_dir)!r}, {str(spec)!r})
            assert conformance_assert(document, "LOADS")["observed"]["class"] == "LlamaForCausalLM"
            assert document["summary"]["conformant"] is True
            assert conformance_run({str(llama_dir)!r}, {str(spec)!r}) == document  # cached

        def test_failing_assertion(conformance_run, conformance_assert):
            document = conformance_run({str(llama_dir)!r}, {str(spec)!r}, only=["ARCH-TYPE"])
            conformance_assert(document, "ARCH-TYPE", status="fail")
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "E * ARCH-TYPE (must, architecture.model_type) on tiny-llama: status pass, wanted fail",
        "E * observed: llama",
        "E * expected: in *llama*",
    ])
    assert loads(log) == [("main", "tiny-llama")]


def test_assert_rule() -> None:
    document = {
        "model": {"name": "m"},
        "rules": [{"id": "A", "check": "size.parameters", "level": "must", "status": "fail", "observed": 5, "expected": "<= 3", "message": "5 is above the maximum 3"}],
    }
    assert assert_rule(document, "A", status=("fail", "error"))["observed"] == 5
    with pytest.raises(AssertionError, match=r"(?s)status fail, wanted pass\nobserved: 5\nexpected: <= 3\nmessage: 5 is above"):
        assert_rule(document, "A")
    with pytest.raises(AssertionError, match="rule B is not in the result document"):
        assert_rule(document, "B")


# --- reports --------------------------------------------------------------------------------------


def test_junitxml_carries_observed_and_expected(pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path) -> None:
    spec = write_spec(pytester.path, "spec.yaml", STATIC_RULES)
    pytester.runpytest(*cli(spec, llama_dir, bert_dir), "--junitxml", "junit.xml")
    cases = {
        (case.get("classname"), case.get("name")): case
        for case in ElementTree.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    }
    assert len(cases) == 6
    failing = cases[("spec.yaml.tiny-bert", "ARCH-TYPE")]
    properties = {p.get("name"): p.get("value") for p in failing.iter("property")}
    assert properties["status"] == "fail" and properties["level"] == "must" and properties["check"] == "architecture.model_type"
    assert json.loads(properties["observed"]) == "bert" and json.loads(properties["expected"]) == "in ['llama']"
    assert properties["message"] == "bert is not one of ['llama']" and properties["model"] == "tiny-bert"
    assert failing.find("failure") is not None
    size = {p.get("name"): p.get("value") for p in cases[("spec.yaml.tiny-llama", "SIZE")].iter("property")}
    assert size["status"] == "pass" and isinstance(json.loads(size["observed"]), int)


def test_out_folder_gets_result_documents_and_a_markdown_summary(pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path) -> None:
    spec = write_spec(pytester.path, "spec.yaml", STATIC_RULES)
    result = pytester.runpytest(*cli(spec, llama_dir, bert_dir), "--conformance-out", "out", "-k", "not SAFE-FORMAT")
    result.stdout.fnmatch_lines([f"conformance: wrote 2 result documents and summary.md to {pytester.path / 'out'}"])
    llama = load_result(pytester.path / "out" / "tiny-llama.ci-spec.json")  # schema-validated
    bert = load_result(pytester.path / "out" / "tiny-bert.ci-spec.json")
    assert [r["id"] for r in llama["rules"]] == ["ARCH-TYPE", "SIZE"]  # the rules that ran
    assert llama["summary"]["conformant"] is True and bert["summary"]["conformant"] is False
    assert llama["model"]["sha256"] and llama["spec"]["id"] == "ci-spec" and "static" in llama["evidence"]
    summary = (pytester.path / "out" / "summary.md").read_text(encoding="utf-8")
    assert "| tiny-bert | ci-spec 1 | **not conformant** | 1 | 1 | 0 | 0 |" in summary
    assert "## tiny-llama: ci-spec 1" in summary
    # Without --conformance-out nothing is written.
    pytester.runpytest(*cli(spec, llama_dir), "-o", "cache_dir=.cache")
    assert sorted(p.name for p in pytester.path.iterdir() if not p.name.startswith(".")) == ["out", "spec.yaml", "tox.ini"]


# --- -x, --lf, xdist ------------------------------------------------------------------------------


def test_exitfirst_stops_at_the_first_must_failure(pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path) -> None:
    spec = write_spec(pytester.path, "spec.yaml", STATIC_RULES)
    result = pytester.runpytest(*cli(spec, bert_dir, llama_dir), "-x")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["conformance: 0 passed, 1 must failure, *across 1 model", "*stopping after 1 failures*"])


def test_last_failed_reruns_only_the_failed_items(pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path) -> None:
    log = count_loads(pytester)
    spec = write_spec(pytester.path, "spec.yaml", [*STATIC_RULES, LOADS_RULE])
    pytester.runpytest(*cli(spec, llama_dir, bert_dir)).assert_outcomes(passed=7, failed=1)
    assert len(loads(log)) == 2
    log.unlink()
    result = pytester.runpytest(*cli(spec, llama_dir, bert_dir), "--lf", "-v")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines(["*spec.yaml::tiny-bert::ARCH-TYPE FAILED*"])
    assert loads(log) == []  # the failed rule is static: nothing else is measured


def _xdist_run(pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path, *dist: str) -> tuple[pytest.RunResult, list[tuple[str, str]]]:
    log = count_loads(pytester)
    spec = write_spec(pytester.path, "spec.yaml", [*STATIC_RULES, LOADS_RULE])
    result = pytester.runpytest_subprocess(*cli(spec, llama_dir, bert_dir), "-n", "2", *dist, "--conformance-out", "out", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["conformance: 7 passed, 1 must failure, 0 should shortfalls, 0 skipped, 0 errors across 2 models"])
    documents = {name: load_result(pytester.path / "out" / f"{name}.ci-spec.json") for name in ("tiny-llama", "tiny-bert")}
    for document in documents.values():  # the controller merged every worker's rules into one document
        assert [r["id"] for r in document["rules"]] == ["ARCH-TYPE", "SIZE", "SAFE-FORMAT", "LOADS"]
    return result, loads(log)


def test_xdist_measures_each_model_at_most_once_per_worker(pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path) -> None:
    _, counted = _xdist_run(pytester, llama_dir, bert_dir)
    assert {model for _, model in counted} == {"tiny-llama", "tiny-bert"}
    assert len(counted) == len(set(counted)) and all(worker.startswith("gw") for worker, _ in counted)


def test_xdist_loadscope_measures_each_model_once_in_all(pytester: pytest.Pytester, llama_dir: Path, bert_dir: Path) -> None:
    _, counted = _xdist_run(pytester, llama_dir, bert_dir, "--dist", "loadscope")
    assert sorted(model for _, model in counted) == ["tiny-bert", "tiny-llama"]


def test_a_second_session_reuses_the_cache_unless_told_not_to(pytester: pytest.Pytester, llama_dir: Path) -> None:
    log = count_loads(pytester)
    spec = write_spec(pytester.path, "conformance_a.yaml", [LOADS_RULE, STATIC_RULES[0]], models=[str(llama_dir)])
    pytester.runpytest_subprocess(str(spec)).assert_outcomes(passed=2)
    pytester.runpytest_subprocess(str(spec)).assert_outcomes(passed=2)
    assert len(loads(log)) == 1  # the second session re-judged cached evidence
    pytester.runpytest_subprocess(str(spec), "--conformance-no-cache").assert_outcomes(passed=2)
    assert len(loads(log)) == 2

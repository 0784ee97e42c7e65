"""The spec language: validation errors name file, rule, field and line; extends merges by id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.errors import SpecError
from conformance.paths import schema_path, standards_dir
from conformance.schema import render
from conformance.spec import MAX_LISTED_ERRORS, SpecErrors, load_spec
from conformance.standards import find_standard, is_standard_name, shipped_standards, standard_hint

GOOD_RULE = {"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1e9}


def spec_text(rules: str, header: str = 'id: s\nversion: "1"\n') -> str:
    return header + "rules:\n" + rules


def test_committed_schema_is_generated_from_the_registry() -> None:
    assert schema_path("spec").read_text(encoding="utf-8") == render()


def test_schema_lists_every_check_with_its_parameters() -> None:
    schema = json.loads(render())
    checks = schema["$defs"]["checks"]
    assert "size.parameters" in checks and "card.sections" in checks
    assert checks["card.sections"]["required"] == ["required"]
    assert set(schema["$defs"]["rule"]["properties"]["check"]["enum"]) == set(checks)


@pytest.mark.parametrize("name", ["baseline-safety", "small-causal-lm-release"])
def test_shipped_standards_load(name: str) -> None:
    spec = load_spec(name)
    assert spec.id == name and spec.rules
    assert len(spec.sha256) == 64


def test_release_standard_inherits_baseline_rules() -> None:
    baseline = {rule.id for rule in load_spec("baseline-safety").rules}
    release = [rule.id for rule in load_spec("small-causal-lm-release").rules]
    assert baseline <= set(release)
    assert release[: len(baseline)] == [rule.id for rule in load_spec("baseline-safety").rules]


def test_extends_later_wins_and_keeps_position(tmp_path: Path, write_spec) -> None:
    write_spec(
        document={"id": "base", "version": "1", "rules": [GOOD_RULE, {"id": "CARD", "level": "must", "check": "card.present"}]},
        name="base.yaml",
    )
    child = write_spec(
        document={"id": "child", "version": "2", "extends": ["base.yaml"], "rules": [{**GOOD_RULE, "level": "should", "max": 5}]},
        name="child.yaml",
    )
    spec = load_spec(child)
    assert [r.id for r in spec.rules] == ["SIZE", "CARD"]
    assert spec.rules[0].level == "should" and spec.rules[0].comparison == {"max": 5}
    assert spec.id == "child" and spec.version == "2"


def test_yaml_exponent_numbers_are_numbers(write_spec) -> None:
    path = write_spec(text=spec_text("  - {id: A, level: must, check: size.parameters, max: 3.0e9, min: 1e6}\n"))
    assert load_spec(path).rules[0].comparison == {"max": 3.0e9, "min": 1e6}


def test_json_specs_are_accepted(write_spec) -> None:
    path = write_spec(name="spec.json", text=json.dumps({"id": "j", "version": "1", "rules": [GOOD_RULE]}))
    assert load_spec(path).rules[0].check == "size.parameters"


_DECODE = ("  - {{id: D, level: must, check: performance.decode_tokens_per_second, min: 1, "
           "workload: {{batch_size: 1, prompt_tokens: 8, new_tokens: 4}}, measurement: {}}}\n")

BAD_SPECS = {
    "yaml_syntax": (spec_text("  - id: A\n   level: must\n"), None, None, 5, "YAML syntax error"),
    "wrong_type": (spec_text("  - {id: A, level: must, check: size.parameters, max: lots}\n"), "A", "rules[0].max", 4, "not of type 'number'"),
    "missing_field": (spec_text("  - id: A\n    check: card.present\n"), "A", "rules[0].level", 4, "missing required field 'level'"),
    "missing_top_field": ('id: s\nrules: []\n', None, "version", 1, "missing required field 'version'"),
    "unknown_check": (spec_text("  - id: A\n    level: must\n    check: size.paramters\n    max: 1\n"), "A", "rules[0].check", 6, "did you mean 'size.parameters'"),
    "unknown_key": (spec_text("  - id: A\n    level: must\n    check: card.present\n    colour: red\n"), "A", "rules[0].colour", 7, "unknown key 'colour'"),
    "misspelt_key": (spec_text("  - id: A\n    level: must\n    check: size.parameters\n    mx: 3e9\n"), "A", "rules[0].mx", 7,
                     "unknown key 'mx'; did you mean 'max'? (the rule needs one of min, max, equals)"),
    "misspelt_param": (spec_text("  - {id: A, level: must, check: card.sections, requird: [Uses]}\n"), "A", "rules[0].requird", 4,
                       "unknown key 'requird'; did you mean 'required'?"),
    "unknown_top_key": ('id: s\nversion: "1"\ntitel: x\nrules: []\n', None, "titel", 3, "unknown key 'titel'; did you mean 'title'?"),
    "bad_level": (spec_text("  - {id: A, level: required, check: card.present}\n"), "A", "rules[0].level", 4, "is not one of"),
    "no_comparison": (spec_text("  - {id: A, level: must, check: size.parameters}\n"), "A", "rules[0]", 4, "needs a comparison"),
    "duplicate_id": (spec_text("  - {id: A, level: must, check: card.present}\n  - {id: A, level: may, check: card.present}\n"), "A", "rules[1].id", 5, "duplicate rule id"),
    "not_a_mapping": ("- just\n- a list\n", None, None, 1, "must be a mapping"),
    # What JSON Schema cannot say, caught when the spec is read rather than in the middle of a run:
    "infinite_bar": (spec_text("  - {id: A, level: must, check: size.parameters, min: .inf}\n"), "A", "rules[0].min", 4, "must be finite"),
    "nan_bar": (spec_text("  - {id: A, level: must, check: size.parameters, max: .nan}\n"), "A", "rules[0].max", 4, "must be finite"),
    "runs_crossed": (spec_text(_DECODE.format("{min_runs: 10, max_runs: 5}")), "D", "rules[0].measurement", 4, "max_runs (5) must be >= min_runs (10)"),
    "min_runs_over_default_max": (spec_text(_DECODE.format("{min_runs: 2000}")), "D", "rules[0].measurement", 4, "the default max_runs is 1000"),
    "seconds_crossed": (spec_text(_DECODE.format("{min_seconds: 10, max_seconds: 5}")), "D", "rules[0].measurement", 4, "min_seconds (10) <= max_seconds (5)"),
    "nan_confidence": (spec_text(_DECODE.format("{confidence: .nan}")), "D", "rules[0].measurement", 4, "must be finite"),
    "infinite_seconds": (spec_text(_DECODE.format("{max_seconds: .inf}")), "D", "rules[0].measurement.max_seconds", 4, "greater than the maximum of 86400"),
    "huge_prompt": (spec_text("  - {id: D, level: must, check: performance.ttft_ms, max: 1, workload: {batch_size: 1, prompt_tokens: 10000000, new_tokens: 2}}\n"),
                    "D", "rules[0].workload.prompt_tokens", 4, "greater than the maximum of 1048576"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specs_name_file_rule_field_and_line(case: str, write_spec) -> None:
    text, rule_id, field, line, message = BAD_SPECS[case]
    path = write_spec(text=text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    error = caught.value
    assert error.file == str(path)
    assert error.rule_id == rule_id
    assert error.field == field
    assert error.line == line
    assert message in str(error)


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specs_exit_2_with_one_line(case: str, write_spec, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(text=BAD_SPECS[case][0])
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert str(path) in err and "Traceback" not in err


def test_extends_cycle_is_an_error(write_spec) -> None:
    write_spec(document={"id": "a", "version": "1", "extends": ["b.yaml"], "rules": []}, name="a.yaml")
    b = write_spec(document={"id": "b", "version": "1", "extends": ["a.yaml"], "rules": []}, name="b.yaml")
    with pytest.raises(SpecError, match="extends cycle: .*a.yaml -> b.yaml"):
        load_spec(b)


def test_self_extension_is_a_cycle(write_spec) -> None:
    path = write_spec(document={"id": "a", "version": "1", "extends": ["spec.yaml"], "rules": []})
    with pytest.raises(SpecError, match="extends cycle"):
        load_spec(path)


def test_missing_extends_file(write_spec) -> None:
    path = write_spec(document={"id": "a", "version": "1", "extends": ["gone.yaml"], "rules": []})
    with pytest.raises(SpecError, match="extends file 'gone.yaml' not found") as caught:
        load_spec(path)
    assert caught.value.field == "extends[0]" and caught.value.line == 2


def test_unknown_shipped_standard_lists_the_shipped_ones(write_spec) -> None:
    path = write_spec(document={"id": "a", "version": "1", "extends": ["baseline-safty"], "rules": []})
    with pytest.raises(SpecError, match="shipped: baseline-safety"):
        load_spec(path)


def test_misspelt_extends_name_suggests_the_closest_standard(write_spec) -> None:
    path = write_spec(document={"id": "a", "version": "1", "extends": ["small-causal-lm-relase"], "rules": []})
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.message == (
        "extends names unknown standard 'small-causal-lm-relase'; did you mean 'small-causal-lm-release'? "
        "shipped: baseline-safety, chat-model-release, small-causal-lm-leaderboard, small-causal-lm-release"
    )
    assert caught.value.field == "extends[0]"


def test_misspelt_spec_name_suggests_the_closest_standard() -> None:
    with pytest.raises(SpecError, match=r"^baseline-safty: spec file not found; did you mean 'baseline-safety'\? shipped: "):
        load_spec("baseline-safty")


def test_a_missing_spec_path_gets_no_suggestion(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "baseline-safety.yaml")
    assert caught.value.message == "spec file not found"


def test_an_existing_file_wins_over_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "baseline-safety").write_text('id: local\nversion: "1"\nrules: []\n')
    monkeypatch.chdir(tmp_path)
    assert load_spec("baseline-safety").id == "local"


def test_one_lookup_of_shipped_standards() -> None:
    names = shipped_standards()
    assert names == sorted(path.stem for path in standards_dir().glob("*.yaml"))
    assert "small-causal-lm-release" in names
    assert find_standard("baseline-safety") == standards_dir() / "baseline-safety.yaml"
    assert find_standard("no-such-standard") is None
    assert find_standard("baseline-safety.yaml") is None and find_standard("specs/baseline-safety") is None
    assert [is_standard_name(text) for text in ("release", "v1.2", "a/b", "a\\b", "x.YAML", "x.json")] == [
        True, True, False, False, False, False,
    ]
    assert standard_hint("baseline-safty").startswith("did you mean 'baseline-safety'? shipped: ")
    assert standard_hint("zzz") == "shipped: " + ", ".join(names)


def test_extends_may_not_leave_the_spec_folder(tmp_path: Path, write_spec) -> None:
    (tmp_path.parent / "outside.yaml").write_text('id: o\nversion: "1"\nrules: []\n')
    path = write_spec(document={"id": "a", "version": "1", "extends": ["../outside.yaml"], "rules": []})
    with pytest.raises(SpecError, match="leaves the spec's folder"):
        load_spec(path)


def test_errors_in_an_extended_file_name_that_file(write_spec) -> None:
    base = write_spec(text=spec_text("  - {id: A, level: must, check: size.parameters, max: lots}\n"), name="base.yaml")
    child = write_spec(document={"id": "c", "version": "1", "extends": ["base.yaml"], "rules": []}, name="child.yaml")
    with pytest.raises(SpecError) as caught:
        load_spec(child)
    assert caught.value.file.endswith("base.yaml") and str(base.name) in str(caught.value)


def test_missing_spec_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml: spec file not found" in err


def test_spec_hash_changes_with_rules(write_spec) -> None:
    first = load_spec(write_spec(document={"id": "a", "version": "1", "rules": [GOOD_RULE]}, name="one.yaml"))
    second = load_spec(write_spec(document={"id": "a", "version": "1", "rules": [{**GOOD_RULE, "max": 2e9}]}, name="two.yaml"))
    assert first.sha256 != second.sha256


def test_every_problem_of_a_spec_is_listed_in_line_order(write_spec, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(text=spec_text(
        "  - id: SIZE\n    level: must\n    check: size.parameters\n    mx: 3e9\n"
        "  - {id: TWO, level: must, check: size.parameters, max: big}\n"
        "  - {id: THREE, level: sometimes, check: card.presnt}\n"
    ))
    with pytest.raises(SpecErrors) as caught:
        load_spec(path)
    assert [(e.rule_id, e.line) for e in caught.value.errors] == [("SIZE", 7), ("TWO", 8), ("THREE", 9)]
    lines = str(caught.value).splitlines()
    assert "unknown key 'mx'; did you mean 'max'?" in lines[0]
    assert "'big' is not of type 'number'" in lines[1] and "unexpected" not in str(caught.value)  # no echo of max
    assert "did you mean 'card.present'" in lines[2]  # an unknown check: its level is not judged on top
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith(f"conformance: error: {path}:") for line in err)


def test_a_spec_with_very_many_problems_counts_the_rest(write_spec) -> None:
    rules = "".join(f"  - {{id: R{i}, level: must, check: size.parameters, max: x}}\n" for i in range(MAX_LISTED_ERRORS + 5))
    with pytest.raises(SpecErrors) as caught:
        load_spec(write_spec(text=spec_text(rules)))
    lines = str(caught.value).splitlines()
    assert len(lines) == MAX_LISTED_ERRORS + 1 and lines[-1].endswith("and 5 more problems")


def test_problems_found_after_the_schema_are_listed_beside_its_own(write_spec) -> None:
    # A misspelt key (schema), a repeated rule id and an unknown extended standard: three lines, not one.
    text = (
        'id: d\nversion: "1"\nextends: [small-causal-lm-relase]\nrules:\n'
        "  - {id: S, level: must, check: size.parameters, max: 1}\n"
        "  - {id: S, level: must, check: size.parameters, mx: 1}\n"
        "  - {id: Y, level: must, check: safety.signature}\n"
        "  - {id: Z, level: must, check: safety.signature, identity: a@b}\n"
    )
    with pytest.raises(SpecErrors) as caught:
        load_spec(write_spec(text=text))
    lines = str(caught.value).splitlines()
    assert len(lines) == 5, lines
    assert "extends names unknown standard 'small-causal-lm-relase'" in lines[0]
    assert "unknown key 'mx'; did you mean 'max'?" in str(caught.value) and "duplicate rule id (first at rules[0])" in str(caught.value)
    assert "rule Y" in lines[3] and "rule Z" in lines[4]

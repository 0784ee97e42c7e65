"""Budgets on every document an attacker writes: spec files, model cards, spec patterns, result documents.

Each hostile input gets the right verdict or a clear error naming the budget, in bounded time, never a
traceback; run through the command line, a valid result document is still written.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from pathlib import Path

import pytest
import yaml

from conformance import zoo
from conformance.candidate import Candidate
from conformance.card import CardFacts, heading_text, markdown_headings, read_card, read_card_in, split_front_matter
from conformance.cli import main
from conformance.compare import MAX_PATTERN_SUBJECT_CHARS, PATTERN_TIMEOUT_S, compile_pattern, judge
from conformance.errors import CheckError, SpecError
from conformance.evidence import Evidence
from conformance.results import MAX_DOCUMENT_DEPTH, TRUNCATED_MARKER, json_safe, load_result, validate_document
from conformance.rule import Rule
from conformance.runner import RunOptions, run
from conformance.safe_files import json_depth
from conformance.sourcefile import (
    MAX_YAML_ALIASES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    LineIndex,
    SpecLoader,
    YamlBudgetError,
    load_yaml,
    measure_nodes,
)
from conformance.spec import load_spec

# "Does not hang" bound: generous on a loaded machine, far below what the unbounded code took (minutes, or never).
NO_HANG_S = 20.0


def billion_laughs(indent: str = "") -> str:
    """Ten anchored lists of nine aliases each (about 600 bytes): 9**10 nodes once expanded."""
    lines = [f"{indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        lines.append(f"{indent}l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def doubling_chain(levels: int) -> str:
    """levels anchors, each a pair of the one before: 2**levels leaves from 2 * levels aliases."""
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# --- the bounded YAML loader -------------------------------------------------------------------------

def test_billion_laughs_is_refused_by_the_node_budget_in_milliseconds() -> None:
    text = billion_laughs()
    assert len(text.encode()) < 700
    started = time.perf_counter()
    with pytest.raises(YamlBudgetError, match=f"more than {MAX_YAML_NODES} nodes.*node budget"):
        load_yaml(text)
    assert time.perf_counter() - started < NO_HANG_S


def test_node_count_is_measured_over_the_composed_graph_not_its_expansion() -> None:
    # 2**60 expanded nodes: counting them one by one would never end; memoized counting sees 120 nodes.
    node = yaml.compose(doubling_chain(60), Loader=yaml.SafeLoader)
    started = time.perf_counter()
    with pytest.raises(YamlBudgetError, match="node budget"):
        measure_nodes(node)
    assert time.perf_counter() - started < NO_HANG_S
    # Within the budget, the expanded count is exact: 2**k leaves + (2**k - 1) lists per level-k tree.
    small = yaml.compose("a: &a [x, x]\nb: [*a, *a]\n", Loader=yaml.SafeLoader)
    # root mapping 1 + keys 2 + a (3) + b (1 + 3 + 3) = 13; depth: mapping > b > a > x = 4
    assert measure_nodes(small) == (13, 4)


def test_alias_budget_counts_alias_uses() -> None:
    within = "a: &a 1\nb: [" + ", ".join(["*a"] * MAX_YAML_ALIASES) + "]\n"
    assert len(load_yaml(within)["b"]) == MAX_YAML_ALIASES
    over = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]\n"
    with pytest.raises(YamlBudgetError, match=f"more than {MAX_YAML_ALIASES} alias uses.*alias budget"):
        load_yaml(over)


def test_depth_budget_stops_900_levels_before_any_recursion_error() -> None:
    assert load_yaml(nested_lists(MAX_YAML_DEPTH)) is not None
    for text in (nested_lists(MAX_YAML_DEPTH + 1), nested_lists(900), nested_lists(100_000)):
        with pytest.raises(YamlBudgetError, match=f"deeper than {MAX_YAML_DEPTH} levels.*depth budget"):
            load_yaml(text)
    # Aliases can stack shallow trees into a deep one: the depth is measured after expansion too.
    half = MAX_YAML_DEPTH // 2 + 2
    stacked = f"a: &a {nested_lists(half)}\nb: {'[' * half}*a{']' * half}\n"
    with pytest.raises(YamlBudgetError, match="once aliases are expanded.*depth budget"):
        load_yaml(stacked)


def test_recursive_alias_and_huge_numbers_are_refused() -> None:
    with pytest.raises(YamlBudgetError, match="recursive alias"):
        load_yaml("a: &a [1, *a]\n")
    with pytest.raises(YamlBudgetError, match="number budget"):
        load_yaml("a: " + "1" * 5000 + "\n")  # int() of 5000 digits raises ValueError in Python itself
    with pytest.raises(YamlBudgetError, match="number budget"):
        load_yaml("a: " + "1:2" * 20_000 + "\n", yaml.SafeLoader)  # a YAML 1.1 sexagesimal integer


def test_ordinary_yaml_reads_as_before() -> None:
    text = "base: &base {max: 1.0e9, equals: 3}\nrules:\n  - *base\n  - {<<: *base, max: 2}\nwhen: 2024-01-02\n"
    assert load_yaml(text) == yaml.load(text, Loader=SpecLoader)  # noqa: S506 (a SafeLoader subclass)
    assert load_yaml(text, yaml.SafeLoader) == yaml.safe_load(text)
    assert load_yaml("") is None
    lines = LineIndex.from_text(text)
    assert lines.line(["rules", 1, "max"]) == 4 and lines.line(["when"]) == 5


# --- specs -------------------------------------------------------------------------------------------

SPEC_HEAD = "id: hostile\nversion: '1'\nrules:\n  - {id: CARD, level: must, check: card.present}\n"


@pytest.mark.parametrize(
    ("body", "budget"),
    [
        (billion_laughs(), "node budget"),
        ("extra: " + nested_lists(900) + "\n", "depth budget"),
        ("a: &a 1\nextra: [" + ", ".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]\n", "alias budget"),
    ],
    ids=["billion-laughs", "900-deep", "aliases"],
)
def test_hostile_spec_is_a_spec_error_naming_the_budget(tmp_path: Path, capsys: pytest.CaptureFixture, body: str, budget: str) -> None:
    spec = tmp_path / "hostile.yaml"
    spec.write_text(SPEC_HEAD + body, encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(SpecError, match=budget):
        load_spec(spec)
    assert time.perf_counter() - started < NO_HANG_S
    code = main(["check", str(tmp_path), "--spec", str(spec), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2 and budget in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("depth", [900, 100_000])
def test_deep_json_spec_is_a_spec_error(tmp_path: Path, depth: int) -> None:
    spec = tmp_path / "deep.json"
    spec.write_text('{"id": "x", "version": "1", "rules": [], "extra": ' + nested_lists(depth) + "}", encoding="utf-8")
    with pytest.raises(SpecError, match="JSON depth budget"):
        load_spec(spec)


def test_spec_patterns_are_compiled_at_load(write_spec) -> None:
    rule = {"id": "LIC", "level": "must", "check": "safety.license"}
    with pytest.raises(SpecError, match=r"rule LIC: field rules\[0\]\.pattern: .*pattern budget"):
        load_spec(write_spec([{**rule, "pattern": "a" * 1001}]))
    assert load_spec(write_spec([{**rule, "pattern": "^(mit|apache-2\\.0)$"}])).rules[0].comparison["pattern"]
    with pytest.raises(SpecError, match="pattern"):  # bad syntax: also caught by the schema's regex format
        load_spec(write_spec([{**rule, "pattern": "(unclosed"}]))
    with pytest.raises(ValueError, match="not a valid regular expression"):
        compile_pattern("(unclosed")


# --- patterns ----------------------------------------------------------------------------------------

def test_catastrophic_pattern_is_an_error_naming_the_time_budget_never_a_pass() -> None:
    started = time.perf_counter()
    with pytest.raises(CheckError, match=f"ran past the {PATTERN_TIMEOUT_S} s pattern time budget"):
        judge("a" * 60 + "!", {"pattern": "^(a|aa)+$"})
    assert time.perf_counter() - started < NO_HANG_S
    with pytest.raises(CheckError, match="pattern subject budget"):
        judge("a" * (MAX_PATTERN_SUBJECT_CHARS + 1), {"pattern": "^a+$"})
    assert judge("a" * 60, {"pattern": "^(a|aa)+$"}).status == "pass"
    assert judge("apache-2.0", {"pattern": "^(mit|apache-2\\.0)$"}).status == "pass"
    assert judge("gpl-3.0", {"pattern": "^(mit|apache-2\\.0)$"}).status == "fail"
    assert judge("prefix-mit", {"pattern": "mit"}).status == "pass"  # a search, as before


def test_non_finite_observed_numbers_are_errors() -> None:
    for value in (math.nan, math.inf, -math.inf):
        verdict = judge(value, {"min": 1})
        assert verdict.status == "error" and "not a finite number" in verdict.message
    assert judge(2.0, {"min": 1}).status == "pass"


# --- Markdown headings and the front-matter split ----------------------------------------------------

_OLD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _old_heading(line: str) -> str | None:
    match = _OLD_HEADING.match(line)
    return match.group(2).strip() if match else None


def test_heading_parser_is_linear_on_the_cubic_line() -> None:
    started = time.perf_counter()
    for n in (2_000, 20_000, 200_000):
        assert heading_text("# a" + " " * n + "b") == "a" + " " * n + "b"
        assert markdown_headings("intro\n# a" + " " * n + "b #\n") == ["a" + " " * n + "b"]
    assert time.perf_counter() - started < NO_HANG_S


@pytest.mark.parametrize(
    "line",
    ["# Title", "## Title ##", "###   Spaced  Title   #####  ", "# foo#", "# a # b", "# #", "#  ", "# ", "#Title",
     "####### seven", "###### six", "#\tTab", "# \u00a0nbsp\u00a0", "  # indented", "# Uses (Sentence-Transformers)"],
)
def test_heading_parser_reads_what_the_old_pattern_read(line: str) -> None:
    assert heading_text(line) == _old_heading(line)


def test_heading_parser_agrees_with_the_old_pattern_on_random_lines() -> None:
    rng = random.Random(1234)
    alphabet = ["#", "#", " ", "\t", "a", "b", "\u00a0", "\x0c", "-"]
    for _ in range(20_000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert heading_text(line) == _old_heading(line), repr(line)


def test_headings_of_real_cards(minilm_dir: Path, llama_dir: Path) -> None:
    card = read_card(minilm_dir / "README.md")
    assert card.errors == [] and card.sections[:3] == ["all-MiniLM-L6-v2", "Usage (Sentence-Transformers)", "Usage (HuggingFace Transformers)"]
    text = (minilm_dir / "README.md").read_text(encoding="utf-8")
    expected, in_fence = [], False
    for line in text.splitlines():
        if re.match(r"^\s*(```|~~~)", line):
            in_fence = not in_fence
        elif not in_fence and _old_heading(line) is not None:
            expected.append(_old_heading(line))
    assert card.sections == expected and len(expected) >= 10
    assert "Training procedure" in card.sections and card.metadata["license"] == "apache-2.0"
    assert read_card(llama_dir / "README.md").sections[1:] == list(zoo.CARD_SECTIONS)
    fenced = "# Top\n```python\n# not a heading\n```\n  ~~~\n## also not\n~~~\n## Closing ##\n"
    assert markdown_headings(fenced) == ["Top", "Closing"]


def test_front_matter_split_agrees_with_huggingface_hub() -> None:
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    def reference(content: str) -> tuple[str | None, str]:
        match = REGEX_YAML_BLOCK.search(content)
        return (match.group(2), content[match.end():]) if match else (None, content)

    rng = random.Random(99)
    pieces = ["---", "---", "\n", "\r", "\r\n", " ", "\t", "a", ": ", "-", "x"]
    for _ in range(20_000):
        content = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert split_front_matter(content) == reference(content), repr(content)
    assert split_front_matter("---\nlicense: mit\n---\n# Card\n") == ("license: mit", "# Card\n")
    started = time.perf_counter()
    split_front_matter("---\n" + "\n--" * 500_000)  # no closing line: a single pass, no backtracking
    assert time.perf_counter() - started < NO_HANG_S


# --- cards through the card reader -------------------------------------------------------------------

def write_card(folder: Path, front_matter: str, body: str = "# Model\n\n## Limitations\n\nMany.\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(f"---\n{front_matter}---\n{body}", encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("front_matter", "budget"),
    [
        ("license: mit\n" + billion_laughs(), "node budget"),
        ("license: mit\nextra: " + nested_lists(900) + "\n", "depth budget"),
        ("license: mit\nx: &x [1, *x]\n", "recursive alias"),
    ],
    ids=["billion-laughs", "900-deep", "recursive"],
)
def test_hostile_front_matter_is_a_card_error(tmp_path: Path, front_matter: str, budget: str) -> None:
    folder = write_card(tmp_path / "m", front_matter)
    started = time.perf_counter()
    facts = read_card_in(folder.resolve())
    assert time.perf_counter() - started < NO_HANG_S
    assert facts.present and facts.metadata == {} and len(facts.errors) == 1
    assert "front matter over budget" in facts.errors[0] and budget in facts.errors[0]


def test_card_reader_refuses_special_files_and_oversize_cards(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "m"
    folder.mkdir()
    os.mkfifo(folder / "README.md")
    started = time.perf_counter()
    facts = read_card_in(folder.resolve())
    assert time.perf_counter() - started < NO_HANG_S
    assert facts.present and "FIFO" in facts.errors[0]
    (folder / "README.md").unlink()
    (folder / "README.md").write_bytes(b"#" * (4 * 1024 * 1024 + 1))
    assert "larger than 4194304 bytes (the card size budget)" in read_card_in(folder.resolve()).errors[0]
    (folder / "README.md").unlink()
    assert read_card_in(folder.resolve()) == CardFacts(present=False)


# --- result documents --------------------------------------------------------------------------------

def test_json_safe_records_non_finite_numbers_and_truncates_depth() -> None:
    deep: list = []
    cursor = deep
    for _ in range(900):
        cursor.append([])
        cursor = cursor[0]
    safe = json_safe({"a": math.nan, "b": [math.inf, -math.inf, 1.5], "deep": deep, 3: (1, 2)})
    assert safe["a"] == "NaN" and safe["b"] == ["Infinity", "-Infinity", 1.5] and safe["3"] == [1, 2]
    text = json.dumps(safe, allow_nan=False)
    assert TRUNCATED_MARKER in text and json_depth(safe) == MAX_DOCUMENT_DEPTH  # the marker string is the deepest value


CARD_RULES = [
    {"id": "CARD", "level": "must", "check": "card.present"},
    {"id": "CLAIMS", "level": "should", "check": "card.claims"},
    {"id": "LICENSE", "level": "should", "check": "safety.license", "pattern": "^(a|aa)+$"},
    {"id": "SECTIONS", "level": "should", "check": "card.sections", "required": ["Limitations"]},
]


def run_cli(model: Path, rules: list[dict], write_spec, tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[int, dict]:
    spec = write_spec(rules, name="budget-spec.yaml")
    out = tmp_path / "out"
    started = time.perf_counter()
    code = main(["check", str(model), "--spec", str(spec), "--out", str(out), "--no-cache", "--quiet"])
    assert time.perf_counter() - started < NO_HANG_S * 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    written = sorted(out.glob("*.json"))
    assert len(written) == 1, written
    return code, load_result(written[0])  # raises unless it is a whole, valid result document


def statuses(document: dict) -> dict[str, tuple[str, str]]:
    return {r["id"]: (r["status"], r["message"]) for r in document["rules"]}


def test_non_finite_card_values_are_recorded_and_claims_error(llama_dir: Path, copy_model, write_spec, tmp_path, capsys) -> None:
    model = copy_model(llama_dir, "nan-card")
    front = "license: " + "a" * 60 + "!\nscore: .inf\nconformance:\n  parameters: .nan\n  context_length: -.inf\n"
    write_card(model, front)
    code, document = run_cli(model, CARD_RULES, write_spec, tmp_path, capsys)
    result = statuses(document)
    assert result["CARD"][0] == "pass" and result["SECTIONS"][0] == "pass"
    assert result["CLAIMS"][0] == "error" and "not finite numbers" in result["CLAIMS"][1]
    assert "parameters (nan)" in result["CLAIMS"][1] and "context_length (-inf)" in result["CLAIMS"][1]
    assert result["LICENSE"][0] == "error" and "pattern time budget" in result["LICENSE"][1]
    metadata = document["evidence"]["card"]["metadata"]
    assert metadata["score"] == "Infinity" and metadata["conformance"]["parameters"] == "NaN"
    assert code == 0  # only `should` rules erred; CARD (must) passed


def test_billion_laughs_card_through_the_runner(llama_dir: Path, copy_model, write_spec, tmp_path, capsys) -> None:
    model = copy_model(llama_dir, "lol-card")
    write_card(model, "license: mit\n" + billion_laughs())
    code, document = run_cli(model, CARD_RULES, write_spec, tmp_path, capsys)
    result = statuses(document)
    assert result["CARD"][0] == "fail" and "node budget" in result["CARD"][1]
    assert all(result[rule][0] == "error" and "node budget" in result[rule][1] for rule in ("CLAIMS", "LICENSE", "SECTIONS"))
    assert code == 1 and len(json.dumps(document)) < 100_000


def test_cubic_heading_card_through_the_runner(llama_dir: Path, copy_model, write_spec, tmp_path, capsys) -> None:
    model = copy_model(llama_dir, "cubic-card")
    write_card(model, "license: mit\n", "# a" + " " * 20_000 + "b\n\n## Limitations\n")
    _, document = run_cli(model, CARD_RULES[3:], write_spec, tmp_path, capsys)
    assert statuses(document)["SECTIONS"][0] == "pass"


def test_non_finite_config_values_keep_the_document(llama_dir: Path, copy_model, write_spec, tmp_path, capsys) -> None:
    model = copy_model(llama_dir, "nan-config")
    config = (model / "config.json").read_text(encoding="utf-8")
    config = re.sub(r'"num_hidden_layers": \d+', '"num_hidden_layers": NaN', config)
    config = re.sub(r'"max_position_embeddings": \d+', '"max_position_embeddings": Infinity', config)
    assert "NaN" in config and "Infinity" in config
    (model / "config.json").write_text(config, encoding="utf-8")
    rules = [
        {"id": "LAYERS", "level": "must", "check": "architecture.num_layers", "min": 1},
        {"id": "CONTEXT", "level": "must", "check": "architecture.context_length", "min": 16},
        {"id": "CARD", "level": "must", "check": "card.present"},
    ]
    code, document = run_cli(model, rules, write_spec, tmp_path, capsys)
    result = statuses(document)
    assert result["LAYERS"][0] == "error" and result["CONTEXT"][0] == "error"  # never a pass on NaN or infinity
    assert result["CARD"][0] == "pass" and code == 1
    assert validate_document(document) == []


def test_non_finite_score_claims_error(tmp_path: Path) -> None:
    from conformance.card import score_claims
    from conformance.checks.claims import claims_reproduce

    metadata = load_yaml(
        "model-index:\n- name: m\n  results:\n  - dataset: {type: arc_easy, name: ARC}\n    metrics:\n"
        "    - {type: acc, value: .nan}\n    - {type: acc_norm, value: .inf}\n",
        yaml.SafeLoader,
    )
    assert [c.value for c in score_claims(metadata)][0] != [c.value for c in score_claims(metadata)][0]  # NaN
    evidence = Evidence()
    evidence.put("card", CardFacts(present=True, file="README.md", metadata=metadata))
    rule = Rule(id="REPRO", level="should", check="card.claims_reproduce", comparison={"tolerance": 0.05}, params={})
    verdict = claims_reproduce(evidence, rule)  # decided before any task is run: the claims alone are broken
    assert verdict.status == "error" and "arc_easy acc (nan)" in verdict.message and "arc_easy acc_norm (inf)" in verdict.message


def test_runner_writes_valid_document_for_card_errors_via_api(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir, "deep-card")
    write_card(model, "license: mit\nextra: " + nested_lists(900) + "\n")
    result = run(Candidate(model), load_spec(write_spec(CARD_RULES[:1])), RunOptions(log=lambda message: None))
    document = result.to_document()
    assert validate_document(document) == [] and result.rules[0].status == "fail"
    assert "depth budget" in result.rules[0].message


def test_generation_probe_patterns_are_budgeted_against_model_output() -> None:
    """Completions are untrusted model output: a catastrophic blocked pattern errors in bounded time, never hangs."""
    from conformance.checks.generation_safety import _generation_params, generation_probe
    from conformance.evidence import evidence_key
    from conformance.probes.generations import Generations

    def verdict(patterns: list[str], completions: list[str]):
        rule = Rule("GEN", "must", "safety.generation_probe", {}, {"prompts": ["Q"] * len(completions), "patterns": patterns})
        evidence = Evidence()
        evidence.put(evidence_key("generations", _generation_params(rule)), Generations(["Q"] * len(completions), completions, 32))
        return generation_probe(evidence, rule)

    started = time.perf_counter()
    with pytest.raises(CheckError, match="time budget"):
        verdict(["(a|aa)+$"], ["a" * 40 + "!"])
    assert time.perf_counter() - started < 20  # the stdlib engine never returned on this input
    assert verdict(["(?i)password"], [" the password is x", " fine"]).status == "fail"
    assert verdict(["(?i)password"], [" fine", " also fine"]).status == "pass"


def test_duplicate_yaml_keys_are_refused_in_specs_and_cards(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys; a weakened rule level or a swapped license must not pass silently."""
    spec = tmp_path / "dup.yaml"
    spec.write_text('id: x\nversion: "1"\nrules:\n  - id: A\n    level: must\n    check: size.parameters\n    max: 1\n    level: may\n')
    with pytest.raises(SpecError, match="duplicate key 'level'") as raised:
        load_spec(spec)
    assert raised.value.line == 8
    merged = tmp_path / "merge.yaml"  # merge keys are not duplicates
    merged.write_text('id: x\nversion: "1"\nrules:\n  - &a {id: A, level: must, check: size.parameters, max: 1}\n  - <<: *a\n    id: B\n')
    load_spec(merged)
    card_folder = tmp_path / "card"
    card_folder.mkdir()
    (card_folder / "README.md").write_text("---\nlicense: other\nlicense: apache-2.0\n---\n# Model\n")
    facts = read_card_in(card_folder.resolve(), "README.md")
    assert facts.errors == ["README.md: front matter unreadable: found duplicate key 'license' (line 3 of the card)"]
    assert facts.metadata == {}

"""The bundled offline tasks: data is valid and balanced, chance is recorded truly, lm-eval loads them offline."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from conformance.tasks import TASK_NAMES, TASKS_DIR, bundled_tasks, chance_score, load_safety_probe
from conformance.tasks.utils import DATA_DIR, read_rows

MULTIPLE_CHOICE = {"conformance_sentiment": "sentiment", "conformance_facts": "facts", "conformance_arithmetic": "arithmetic"}
FOUR_WAY = ("facts", "arithmetic")


def _targets(data: str) -> list[int]:
    return [row["label" if data == "sentiment" else "answer"] for row in read_rows(data)]


def _choice_count(data: str) -> int:
    return 2 if data == "sentiment" else 4


def test_every_data_file_is_json_lines() -> None:
    files = sorted(DATA_DIR.glob("*.jsonl"))
    assert [f.name for f in files] == ["arithmetic.jsonl", "facts.jsonl", "lm.jsonl", "sentiment.jsonl"]
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert all(line.strip() for line in lines), f"{path.name} has blank lines"
        assert all(isinstance(json.loads(line), dict) for line in lines)


def test_sentiment_rows() -> None:
    rows = read_rows("sentiment")
    assert len(rows) == 60
    for row in rows:
        assert set(row) == {"text", "label"}
        assert isinstance(row["text"], str) and 20 <= len(row["text"]) <= 200
        assert row["label"] in (0, 1) and not isinstance(row["label"], bool)
    assert Counter(row["label"] for row in rows) == {0: 30, 1: 30}


@pytest.mark.parametrize("data", FOUR_WAY)
def test_four_way_rows(data: str) -> None:
    rows = read_rows(data)
    assert len(rows) == 40
    for row in rows:
        assert set(row) == {"question", "choices", "answer"}
        assert isinstance(row["question"], str) and row["question"].endswith("?")
        assert len(row["choices"]) == 4 and all(isinstance(c, str) and c.strip() == c and c for c in row["choices"])
        assert len(set(row["choices"])) == 4, row
        assert row["answer"] in range(4) and not isinstance(row["answer"], bool)
    # Every position holds the answer equally often, so no position bias can beat chance.
    assert Counter(row["answer"] for row in rows) == {0: 10, 1: 10, 2: 10, 3: 10}


@pytest.mark.parametrize("data", ["sentiment", *FOUR_WAY, "lm"])
def test_no_duplicate_items(data: str) -> None:
    key = {"sentiment": "text", "lm": "text"}.get(data, "question")
    items = [row[key].casefold() for row in read_rows(data)]
    assert len(items) == len(set(items))


def test_arithmetic_answers_are_right_and_distractors_near() -> None:
    operations = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}
    for row in read_rows("arithmetic"):
        match = re.fullmatch(r"What is (\d+) (plus|minus|times) (\d+)\?", row["question"])
        assert match, row["question"]
        value = operations[match[2]](int(match[1]), int(match[3]))
        assert row["choices"][row["answer"]] == str(value)
        for choice in row["choices"]:
            number = int(choice)
            assert number >= 0
            assert number == value or abs(number - value) in (1, 2, 10) or choice == str(value)[::-1], (row, choice)


@pytest.mark.parametrize(("task", "data"), MULTIPLE_CHOICE.items())
def test_always_picking_one_position_scores_exactly_chance(task: str, data: str) -> None:
    targets = _targets(data)
    for position in range(_choice_count(data)):
        score = sum(target == position for target in targets) / len(targets)
        assert score == chance_score(task, "acc") == chance_score(task, "acc_norm")


def test_chance_score_reads_the_yaml_metadata() -> None:
    assert chance_score("conformance_sentiment", "acc") == 0.5
    assert chance_score("conformance_facts", "acc") == 0.25
    assert chance_score("conformance_arithmetic", "acc_norm") == 0.25
    assert chance_score("conformance_lm", "word_perplexity") is None  # perplexity has no chance level
    assert chance_score("conformance_sentiment", "f1") is None
    assert chance_score("hellaswag", "acc") is None  # not bundled: unknown here
    assert set(bundled_tasks()) == set(TASK_NAMES)


def test_lm_paragraphs_are_long_enough() -> None:
    rows = read_rows("lm")
    assert len(rows) == 15
    words = [len(row["text"].split()) for row in rows]
    assert all(60 <= count <= 120 for count in words), words
    assert sum(words) >= 1000
    assert all(set(row) == {"text"} for row in rows)


@pytest.fixture(scope="module")
def loaded_tasks() -> dict:
    pytest.importorskip("lm_eval")
    mp = pytest.MonkeyPatch()
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        mp.setenv(name, "1")
    from lm_eval.tasks import TaskManager

    try:
        manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
        yield manager.load(list(TASK_NAMES))["tasks"]
    finally:
        mp.undo()


def test_tasks_load_offline_through_lm_eval(loaded_tasks: dict) -> None:
    assert set(loaded_tasks) == set(TASK_NAMES)
    counts = {"conformance_sentiment": 60, "conformance_facts": 40, "conformance_arithmetic": 40, "conformance_lm": 15}
    for name, task in loaded_tasks.items():
        assert len(list(task.test_docs())) == counts[name]


def test_multiple_choice_prompts_and_targets(loaded_tasks: dict) -> None:
    sentiment = loaded_tasks["conformance_sentiment"]
    doc = next(iter(sentiment.test_docs()))
    assert sentiment.OUTPUT_TYPE == "multiple_choice"
    assert sentiment.doc_to_text(doc) == f"Review: {doc['text']}\nSentiment:"
    assert sentiment.doc_to_choice(doc) == ["negative", "positive"]
    assert sentiment.doc_to_target(doc) == doc["label"]
    for name in ("conformance_facts", "conformance_arithmetic"):
        task = loaded_tasks[name]
        doc = next(iter(task.test_docs()))
        assert task.doc_to_text(doc) == f"Question: {doc['question']}\nAnswer:"
        assert task.doc_to_choice(doc) == doc["choices"]
        assert task.doc_to_target(doc) == doc["answer"]
    for name in MULTIPLE_CHOICE:
        assert loaded_tasks[name].higher_is_better() == {"acc": True, "acc_norm": True}


def test_perplexity_task_scores_whole_paragraphs(loaded_tasks: dict) -> None:
    task = loaded_tasks["conformance_lm"]
    doc = next(iter(task.test_docs()))
    assert task.OUTPUT_TYPE == "loglikelihood_rolling"
    assert task.doc_to_target(doc) == doc["text"]
    assert task.higher_is_better() == {"word_perplexity": False, "byte_perplexity": False, "bits_per_byte": False}
    aggregations = {metric: function.__name__ for metric, function in task.aggregation().items()}
    assert aggregations == {
        "word_perplexity": "weighted_perplexity",
        "byte_perplexity": "weighted_perplexity",
        "bits_per_byte": "bits_per_byte",
    }


# One unsafe completion per pattern, so no pattern is dead; mild stand-ins, never real instructions.
_BLOCKED_EXAMPLES = (
    "The password for the admin account is hunter2",
    "The secret API key for our production server is sk-9f8a7b6c5d4e3f2a1",
    "-----BEGIN RSA PRIVATE KEY-----",
    "The credit card number saved in this account is 4111 1111 1111 1111",
    "Step 1: buy some gunpowder",
    "Mix the bleach with ammonia",
    "First, build a bomb",
    "Then stab him",
    "You should kill yourself",
    "They are vermin",
    "Unplug the cameras, then walk in",
)
_HARMLESS_COMPLETIONS = (
    "The password for the admin account is not something I can share.",
    "Here is how to make a weapon at home: I can't help with that, but I can suggest a cooking class.",
    "People from that town are all very friendly and love their football team.",
    "I feel hopeless tonight, and the best thing for me to do is call a friend or a helpline.",
)


def test_safety_probe_set_loads_and_compiles() -> None:
    prompts, patterns = load_safety_probe()
    assert len(prompts) >= 10 and len(patterns) >= 10
    assert len(set(prompts)) == len(prompts)
    compiled = [re.compile(pattern) for pattern in patterns]
    for prompt in prompts:
        assert not any(regex.search(prompt) for regex in compiled), f"a pattern matches the bare prompt {prompt!r}"
    for regex in compiled:
        assert any(regex.search(example) for example in _BLOCKED_EXAMPLES), f"{regex.pattern} matches no example"
    for text in _HARMLESS_COMPLETIONS:
        assert not any(regex.search(text) for regex in compiled), text


def test_safety_probe_file_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text("prompts: []\npatterns: ['x']\n")
    with pytest.raises(ValueError, match="prompts must be a non-empty list"):
        load_safety_probe(path)

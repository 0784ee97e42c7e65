"""`conformance card MODEL --update`: measured task scores into the card's model-index, every other byte kept."""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from task_document import task_document

from conformance.card import read_card, score_claims, split_front_matter
from conformance.card_update import update_card_text
from conformance.checks.claims import claims_reproduce
from conformance.cli_results import add_parsers
from conformance.errors import RequestError
from conformance.evidence import Evidence
from conformance.probes.tasks import TaskScores
from conformance.results import write_result
from conformance.rule import Rule

# What a hand-kept card has that a YAML re-dump would lose: a comment, flow lists and mappings, quoting.
EXTRA_FRONT_MATTER = "datasets: [conformance/sentiment, 'quoted']   # kept as written\nwidget: {text: \"Hello\"}\n"
EARLIER_RESULT = """model-index:
- name: tiny-llama
  results:
  - task: {type: text-generation}
    dataset: {name: HellaSwag, type: hellaswag, args: {num_few_shot: 10}}
    metrics:
    - {type: acc_norm, value: 41.2, name: normalized accuracy}
    source: {name: Open LLM Leaderboard, url: https://example.org}
  - task: {type: text-generation}
    dataset: {name: conformance_sentiment, type: conformance_sentiment, args: {num_few_shot: 0}}
    metrics:
    - {type: acc, value: 0.99}
# results above are regenerated
"""


@pytest.fixture(scope="module")
def document(llama_dir: Path) -> dict[str, Any]:
    return task_document(llama_dir)


@pytest.fixture(scope="module")
def result_file(document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("result") / "tiny-llama.json"
    write_result(document, path)
    return path


@pytest.fixture
def model(llama_dir: Path, tmp_path: Path) -> Path:
    """A copy of the zoo llama whose card has a comment, flow lists and a mapping in its front matter."""
    target = tmp_path / "tiny-llama"
    shutil.copytree(llama_dir, target)
    card = target / "README.md"
    card.write_text(card.read_text().replace("---\n", "---\n" + EXTRA_FRONT_MATTER, 1))
    return target


def run_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="conformance")
    add_parsers(parser.add_subparsers(dest="command", required=True), None)
    args = parser.parse_args(argv)
    return int(args.handler(args))


def without_model_index(text: str) -> list[str]:
    """The card's lines outside the front matter's top-level model-index entry."""
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("model-index:"):
            inside = True
        elif inside and not line.startswith((" ", "- ")):
            inside = False
        if not inside:
            kept.append(line)
    return kept


def check_claims(card_path: Path, document: dict[str, Any]) -> Any:
    """card.claims_reproduce on the updated card and the document's task scores (tolerance 0): no model is run."""
    evidence = Evidence()
    evidence.put("card", read_card(card_path))
    evidence.put("tasks", TaskScores(**document["evidence"]["tasks"]))
    return claims_reproduce(evidence, Rule("CLAIMS", "must", "card.claims_reproduce", {"tolerance": 0}, {}))


def test_update_writes_the_scores_and_keeps_every_other_byte(model: Path, result_file: Path, document: dict[str, Any], capsys) -> None:
    from huggingface_hub import ModelCard

    card = model / "README.md"
    before = card.read_text()
    assert run_command(["card", str(model), "--update", "--result", str(result_file)]) == 0
    out, err = capsys.readouterr()
    assert "updated" in out and "conformance_sentiment acc" in out
    assert "conformance_lm: not written (measured on 2 of 15 documents (limit 2)" in err
    after = card.read_text()
    assert split_front_matter(after)[1] == split_front_matter(before)[1]  # the Markdown body, byte for byte
    assert without_model_index(after) == before.splitlines(keepends=True)  # every other line, byte for byte
    assert "# kept as written" in after and "datasets: [conformance/sentiment, 'quoted']" in after
    old_data, new_data = ModelCard(before).data.to_dict(), ModelCard(after).data.to_dict()
    assert {k: v for k, v in new_data.items() if k != "model-index"} == old_data
    claims = score_claims(read_card(card).metadata)
    assert {(c.task, c.metric, c.num_fewshot) for c in claims} == {
        ("conformance_sentiment", "acc", 0), ("conformance_sentiment", "acc_norm", 0)}
    verdict = check_claims(card, document)
    assert verdict.status == "pass", verdict.message
    assert verdict.observed["conformance_sentiment acc"]["claimed"] == verdict.observed["conformance_sentiment acc"]["measured"]
    assert run_command(["card", str(model), "--update", "--result", str(result_file), "-q"]) == 0
    assert card.read_text() == after and capsys.readouterr() == ("", "")  # a second update changes nothing
    from conformance.cli import main

    assert main(["validate", str(card)]) == 0


def test_earlier_results_are_merged_as_metadata_update_merges(model: Path, document: dict[str, Any]) -> None:
    card = model / "README.md"
    text = card.read_text().replace("pipeline_tag: text-generation\n", "pipeline_tag: text-generation\n" + EARLIER_RESULT)
    updated = update_card_text(text, document).text
    claims = {(c.task, c.metric): c.value for c in score_claims(read_card_of(updated, model).metadata)}
    measured = document["evidence"]["tasks"]["scores"]["conformance_sentiment"]
    assert claims == {("hellaswag", "acc_norm"): 41.2 / 100, ("conformance_sentiment", "acc"): measured["acc"],
                      ("conformance_sentiment", "acc_norm"): measured["acc_norm"]}
    assert "# results above are regenerated\n" in updated  # a comment after the block stays
    assert update_card_text(updated, document).text == updated


def read_card_of(text: str, folder: Path) -> Any:
    path = folder / "UPDATED.md"
    path.write_text(text)
    return read_card(path)


@pytest.mark.parametrize("content", [
    None, "# A card without front matter\n",
    "---\nlicense: mit\n---\n# LF\n", "---\r\nlicense: mit\r\n---\r\n# CRLF\r\n",
])
def test_cards_without_a_model_index_get_one(content: str | None, document: dict[str, Any], tmp_path: Path) -> None:
    updated = update_card_text(content, document).text
    facts = read_card_of(updated, tmp_path)
    assert not facts.errors and {c.task for c in score_claims(facts.metadata)} == {"conformance_sentiment"}
    if content and "license" in content:
        assert "".join(without_model_index(updated)) == content  # the model-index lines went in, nothing else changed
    else:
        assert updated.startswith("---\nmodel-index:\n") and updated.endswith("\n---\n" + (content or ""))
    if content and "\r\n" in content:
        assert "\n" not in updated.replace("\r\n", "")


def test_wrong_weights_links_and_limited_only_results_are_refused(model: Path, result_file: Path, document: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    card = model / "README.md"
    before = card.read_bytes()
    other = copy.deepcopy(document)
    other["model"]["sha256"] = "0" * 64
    other_file = tmp_path / "other.json"
    write_result(other, other_file)
    with pytest.raises(RequestError, match="other weights"):
        run_command(["card", str(model), "--update", "--result", str(other_file)])
    limited = copy.deepcopy(document)
    del limited["evidence"]["tasks"]["scores"]["conformance_sentiment"]
    with pytest.raises(RequestError, match="no task score can be written.*conformance_lm: measured on 2 of 15"):
        update_card_text(card.read_text(), limited)
    with pytest.raises(RequestError, match="needs --result"):
        run_command(["card", str(model), "--update"])
    assert card.read_bytes() == before
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_bytes(before)
    card.unlink()
    os.symlink(elsewhere, card)
    with pytest.raises(RequestError, match="not a regular file"):
        run_command(["card", str(model), "--update", "--result", str(result_file)])
    assert elsewhere.read_bytes() == before


def test_dry_run_prints_the_change_and_writes_nothing(model: Path, result_file: Path, capsys) -> None:
    card = model / "README.md"
    before = card.read_bytes()
    assert run_command(["card", str(model), "--update", "--result", str(result_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "+model-index:" in out and "+    - type: acc\n" in out
    assert card.read_bytes() == before
    assert run_command(["card", str(model)]) == 0
    assert capsys.readouterr().out == "the card's model-index states no scores\n"
    assert json.loads(result_file.read_text())["model"]["name"] == "tiny-llama"


@pytest.mark.parametrize(("content", "message"), [
    ("---\nlicense: [mit\n---\n", "front matter unreadable"),
    ("---\nmodel-index: []\nmodel-index: []\n---\n", "duplicate key .model-index."),
    ("---\nmodel-index: [{results: [{metrics: []}]}]\n---\n", "not one huggingface_hub reads"),
    ("---\n- a list\n---\n", "should be a dict"),
])
def test_cards_whose_front_matter_cannot_be_updated_are_refused(content: str, message: str, document: dict[str, Any]) -> None:
    with pytest.raises(RequestError, match=message):
        update_card_text(content, document)


def test_a_one_line_model_index_is_replaced_in_place(document: dict[str, Any], tmp_path: Path) -> None:
    content = "---\nlicense: mit\nmodel-index: [{name: tiny, results: []}]  # flow style\ntags: [a]\n---\nbody\n"
    updated = update_card_text(content, document).text
    assert updated.startswith("---\nlicense: mit\nmodel-index:\n- name: tiny\n") and updated.endswith("tags: [a]\n---\nbody\n")
    assert {c.task for c in score_claims(read_card_of(updated, tmp_path).metadata)} == {"conformance_sentiment"}


@pytest.mark.parametrize("content", ["---\n---\n# body\n", "---\r\n---\r\n# body\r\n", "\n---\n---  \n# body\n"])
def test_an_empty_front_matter_block_is_filled_not_doubled(content: str, document: dict[str, Any], tmp_path: Path) -> None:
    """huggingface_hub reads `---`/`---` as no front matter; the update fills that block instead of adding one before it."""
    updated = update_card_text(content, document).text
    block, body = split_front_matter(updated)
    assert block is not None and block.lstrip().startswith("model-index:")
    closing = content.index("---", content.index("---") + 3)  # the empty block's closing line, kept as written
    assert body == content[content.index("\n", closing) + 1 :]  # the Markdown body is byte-identical: no stray dashes
    assert {c.task for c in score_claims(read_card_of(updated, tmp_path).metadata)} == {"conformance_sentiment"}
    if "\r\n" in content:
        assert "\n" not in updated.replace("\r\n", "")

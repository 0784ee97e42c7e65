"""`conformance export --format lm-eval`: a result document's task scores as an lm-eval results file, read back by lm-eval."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from task_document import task_document

from conformance.cli_results import add_parsers
from conformance.errors import RequestError
from conformance.report.lm_eval_export import CONFORMANCE_KEY, lm_eval_results, results_path, sanitize_model_name
from conformance.results import write_result

NOW = 1_796_000_000.0  # a fixed export time: 2026-11-30 00:53:20 UTC


@pytest.fixture(scope="module")
def document(llama_dir: Path) -> dict[str, Any]:
    return task_document(llama_dir)


def run_command(argv: list[str]) -> int:
    """The subcommands on a parser of their own (the command line registers the same `add_parsers`)."""
    parser = argparse.ArgumentParser(prog="conformance")
    add_parsers(parser.add_subparsers(dest="command", required=True), None)
    args = parser.parse_args(argv)
    return int(args.handler(args))


def table_rows(exported: dict[str, Any]) -> list[list[str]]:
    """lm-eval's own `make_table` of the export, as cells: Tasks, Version, Filter, n-shot, Metric, dir, Value, ±, Stderr."""
    from lm_eval.utils import make_table

    lines = make_table(exported).splitlines()[2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_lm_eval_reads_the_export_with_the_documents_values(document: dict[str, Any]) -> None:
    from lm_eval.result_schema import EvalResults

    exported = lm_eval_results(document, now=NOW)
    assert set(exported) <= set(EvalResults.__annotations__) | {CONFORMANCE_KEY}
    assert {"results", "versions", "n-shot", "configs", "config", "higher_is_better", "n-samples"} <= set(exported)
    scores = document["evidence"]["tasks"]["scores"]
    assert exported["results"]["conformance_sentiment"]["acc,none"] == scores["conformance_sentiment"]["acc"]
    assert exported["n-samples"]["conformance_lm"] == {"original": 15, "effective": 2}
    assert exported["n-samples"]["conformance_sentiment"] == {"original": 60, "effective": 60}
    assert exported["higher_is_better"]["conformance_lm"]["word_perplexity"] is False
    assert exported["configs"]["conformance_sentiment"]["doc_to_choice"] == ["negative", "positive"]
    assert exported["config"]["model_num_parameters"] == 139584 and exported["config"]["bootstrap_iters"] == 1000
    assert exported["config"]["limit"] is None  # tasks with different limits: each is in n-samples
    assert exported["config"]["model_sha"] == document["model"]["sha256"] and exported["date"] == NOW
    rows = table_rows(exported)
    expected = {(task, metric): value for task, metrics in scores.items() for metric, value in metrics.items()}
    assert len(rows) == len(expected)
    task = ""
    for cells in rows:
        task = cells[0] or task
        assert cells[2] == "none" and cells[3] == "0"
        assert float(cells[6]) == pytest.approx(expected[(task, cells[4])], abs=5e-5)  # make_table prints "%.4f"


def test_export_command_writes_lm_evals_file_layout(document: dict[str, Any], tmp_path: Path, capsys) -> None:
    result = tmp_path / "tiny-llama.json"
    write_result(document, result)
    assert run_command(["export", str(result), "--format", "lm-eval", "--out", str(tmp_path / "out"), "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    [written] = (tmp_path / "out").glob("tiny-llama/results_*.json")
    exported = json.loads(written.read_text())
    assert exported["model_name_sanitized"] == "tiny-llama"
    assert exported == {**lm_eval_results(document), "date": exported["date"]}
    assert run_command(["export", str(result), "--out", str(tmp_path / "out")]) == 0
    assert f"wrote {tmp_path / 'out' / 'tiny-llama'}" in capsys.readouterr().out
    assert run_command(["export", str(result), "--out", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == exported["results"]


def test_filters_of_one_metric_are_both_exported(document: dict[str, Any]) -> None:
    collided = copy.deepcopy(document)
    tasks = collided["evidence"]["tasks"]
    tasks["scores"] = {"gsm": {"exact_match": 0.25}}
    tasks["raw_results"] = {"gsm": {"name": "gsm", "alias": "gsm", "sample_len": 4,
                                    "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.1,
                                    "exact_match,flexible-extract": 0.5, "exact_match_stderr,flexible-extract": 0.2}}
    tasks["versions"], tasks["n_shot"] = {"gsm": 3.0}, {"gsm": 5}
    exported = lm_eval_results(collided, now=NOW)
    rows = table_rows(exported)
    assert [(cells[2], cells[4], float(cells[6]), float(cells[8])) for cells in rows] == [
        ("flexible-extract", "exact_match", 0.5, 0.2), ("strict-match", "exact_match", 0.25, 0.1)]
    assert exported["higher_is_better"]["gsm"] == {"exact_match": True}  # not recorded: from the metric's direction


def test_documents_from_before_the_raw_results_still_export(document: dict[str, Any]) -> None:
    old = copy.deepcopy(document)
    for name in ("raw_results", "configs", "higher_is_better", "n_samples_original", "group_subtasks"):
        del old["evidence"]["tasks"][name]
    exported = lm_eval_results(old, now=NOW)
    sentiment = exported["results"]["conformance_sentiment"]
    assert sentiment["acc,none"] == document["evidence"]["tasks"]["scores"]["conformance_sentiment"]["acc"]
    assert exported["results"]["conformance_lm"]["word_perplexity_stderr,none"] == "N/A"
    assert exported["configs"]["conformance_lm"] == {"task": "conformance_lm"}
    assert exported["n-samples"]["conformance_lm"] == {"original": None, "effective": 2}  # limited: the total is unknown
    assert exported["n-samples"]["conformance_sentiment"] == {"original": 60, "effective": 60}
    assert exported["higher_is_better"]["conformance_lm"]["word_perplexity"] is False
    assert len(table_rows(exported)) == len(table_rows(lm_eval_results(document, now=NOW)))


def test_bad_exports_are_refused_with_one_line(document: dict[str, Any], tmp_path: Path) -> None:
    no_tasks = copy.deepcopy(document)
    del no_tasks["evidence"]["tasks"]
    with pytest.raises(RequestError, match="no task scores"):
        lm_eval_results(no_tasks)
    path = tmp_path / "none.json"
    write_result(no_tasks, path)
    with pytest.raises(RequestError, match="none.json: .*no task scores"):
        run_command(["export", str(path), "--out", str(tmp_path / "out")])
    with pytest.raises(RequestError, match="name one RESULT"):
        run_command(["export", str(path), str(path), "--out", "-"])
    assert not (tmp_path / "out").exists()


def test_a_hostile_model_name_stays_inside_the_output_folder(document: dict[str, Any], tmp_path: Path) -> None:
    hostile = copy.deepcopy(document)
    hostile["model"]["name"] = "../../etc/\x1b[31mx"
    exported = lm_eval_results(hostile, now=NOW)
    assert exported["model_name_sanitized"] == sanitize_model_name("../../etc/\x1b[31mx") == "..__..__etc__\x1b__31mx"
    path = results_path(tmp_path, exported)
    assert path.parent.parent == tmp_path and path.parent.name == "etc_____31mx"
    repo_id = copy.deepcopy(document)
    repo_id["model"]["name"] = "HuggingFaceTB/SmolLM2-135M"
    path = results_path(tmp_path, lm_eval_results(repo_id, now=NOW))
    assert path.parent.name == "HuggingFaceTB__SmolLM2-135M"  # the folder lm-eval writes for that model


def test_the_command_line_runs_export_and_card_quietly(document: dict[str, Any], llama_dir: Path, tmp_path: Path, capfd) -> None:
    from conformance.cli import main

    result = tmp_path / "tiny-llama.json"
    write_result(document, result)
    assert main(["export", str(result), "--format", "lm-eval", "--out", str(tmp_path / "out"), "-q"]) == 0
    assert main(["card", str(llama_dir), "--update", "--result", str(result), "--dry-run", "-q"]) == 0
    assert capfd.readouterr() == ("", "")
    assert len(list((tmp_path / "out").glob("tiny-llama/results_*.json"))) == 1
    assert main(["export", str(tmp_path / "missing.json")]) == 2
    assert capfd.readouterr().err.startswith("conformance: error: ")

"""Task rules through lm-eval: scores, agreement with direct lm-eval, one call, regression, claims, probes."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from conformance.candidate import Candidate
from conformance.cli import main
from conformance.runner import RunOptions, run
from conformance.spec import load_spec
from conformance.tasks import TASK_NAMES, TASKS_DIR

SENTIMENT = {"level": "must", "check": "quality.task_score", "task": "conformance_sentiment", "metric": "acc"}


def results(model_dir: Path, rules: list[dict], write_spec, name: str = "spec.yaml") -> tuple[dict, dict]:
    spec = load_spec(write_spec(rules, name=name))
    result = run(Candidate(model_dir), spec, RunOptions(log=lambda m: None))
    return {r.id: r for r in result.rules}, result.to_document()


def direct_lm_eval(model_dir: Path, tasks: list[str]) -> dict:
    """lm-eval on its own, as a user would call it: the reference the suite must equal."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conformance.probes.tasks import BOOTSTRAP_ITERS, SEEDS

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype="float32").eval()
    output = lm_eval.simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8),
        tasks=tasks,
        task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False),
        log_samples=False,
        bootstrap_iters=BOOTSTRAP_ITERS,
        **SEEDS,
    )
    return output["results"]


def test_scores_agree_with_direct_lm_eval_for_every_bundled_task(trained_llama_dir: Path, write_spec) -> None:
    metrics = {"conformance_lm": ["word_perplexity", "byte_perplexity", "bits_per_byte"]}
    rules = [
        {**SENTIMENT, "id": f"{task}-{metric}", "task": task, "metric": metric, "max": 1e12}
        for task in TASK_NAMES
        for metric in metrics.get(task, ["acc", "acc_norm"])
    ]
    by_id, document = results(trained_llama_dir, rules, write_spec)
    reference = direct_lm_eval(trained_llama_dir, list(TASK_NAMES))
    for task in TASK_NAMES:
        for metric in metrics.get(task, ["acc", "acc_norm"]):
            ours = by_id[f"{task}-{metric}"]
            assert ours.status == "pass", ours.message
            assert abs(ours.observed - reference[task][f"{metric},none"]) <= 1e-9, (task, metric)
    evidence = document["evidence"]["tasks"]
    assert evidence["calls"] == 1 and evidence["lm_eval_version"].startswith("0.4")
    assert set(evidence["versions"]) >= set(TASK_NAMES) and evidence["seeds"]["fewshot_random_seed"] == 1234


def test_scorer_separates_trained_from_untrained(trained_llama_dir: Path, llama_dir: Path, write_spec) -> None:
    rule = {**SENTIMENT, "id": "SENT", "min": 0.7}
    trained, _ = results(trained_llama_dir, [rule], write_spec)
    untrained, _ = results(llama_dir, [rule], write_spec)
    assert trained["SENT"].status == "pass" and untrained["SENT"].status == "fail"
    assert trained["SENT"].observed - untrained["SENT"].observed >= 0.15


def test_one_lm_eval_call_and_one_load_for_all_task_rules(trained_llama_dir: Path, write_spec, monkeypatch, tmp_path: Path) -> None:
    import lm_eval

    from conformance.probes import load as load_module

    calls = {"evaluate": 0, "load": 0}
    evaluate, load_model = lm_eval.simple_evaluate, load_module.load_model

    def counting_evaluate(*args, **kwargs):
        calls["evaluate"] += 1
        return evaluate(*args, **kwargs)

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return load_model(*args, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", counting_evaluate)
    monkeypatch.setattr(load_module, "load_model", counting_load)
    baseline = tmp_path / "baseline.json"
    rules = [
        {**SENTIMENT, "id": "SENT", "min": 0.5},
        {**SENTIMENT, "id": "SENT-NORM", "check": "quality.normalized_score", "min": 0.2},
        {**SENTIMENT, "id": "FACTS", "task": "conformance_facts", "min": 0.0},
        {"id": "LOADS", "level": "must", "check": "runtime.loads"},
        {"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1e9},
    ]
    by_id, document = results(trained_llama_dir, rules, write_spec)
    assert calls == {"evaluate": 1, "load": 1}
    assert {r.status for r in by_id.values()} == {"pass"}
    expected_normalized = (by_id["SENT"].observed - 0.5) / 0.5
    assert by_id["SENT-NORM"].observed == pytest.approx(expected_normalized, abs=1e-9)
    baseline.write_text(json.dumps(document))


def test_normalized_score_is_clipped_at_zero(llama_dir: Path, write_spec) -> None:
    by_id, _ = results(llama_dir, [{**SENTIMENT, "id": "N", "check": "quality.normalized_score", "task": "conformance_arithmetic", "max": 1.0}], write_spec)
    assert by_id["N"].status == "pass" and by_id["N"].observed >= 0.0
    assert "chance 0.25" in by_id["N"].message


def test_confidence_decides_on_the_interval(trained_llama_dir: Path, write_spec) -> None:
    by_id, _ = results(trained_llama_dir, [{**SENTIMENT, "id": "POINT", "min": 0.0}], write_spec, name="point.yaml")
    score = by_id["POINT"].observed
    _, document = results(trained_llama_dir, [{**SENTIMENT, "id": "POINT", "min": 0.0}], write_spec, name="again.yaml")
    stderr = document["evidence"]["tasks"]["stderrs"]["conformance_sentiment"]["acc"]
    assert stderr > 0
    rules = [
        {**SENTIMENT, "id": "NEAR", "min": round(score - 0.5 * stderr, 6), "confidence": 0.95},
        {**SENTIMENT, "id": "FAR", "min": round(score - 3 * stderr, 6), "confidence": 0.95},
    ]
    by_id, _ = results(trained_llama_dir, rules, write_spec, name="confidence.yaml")
    assert by_id["NEAR"].status == "fail" and "inconclusive" in by_id["NEAR"].message
    assert by_id["FAR"].status == "pass"
    low, high = by_id["FAR"].observed["interval"]
    assert low == pytest.approx(score - 1.959964 * stderr, abs=1e-5) and high > score


def test_regression_against_a_baseline_result(trained_llama_dir: Path, llama_dir: Path, write_spec, tmp_path: Path) -> None:
    assert main(["check", str(trained_llama_dir), "--spec", str(write_spec([{**SENTIMENT, "id": "SENT", "min": 0.0}], name="base-spec.yaml")),
                 "--out", str(tmp_path / "release-1"), "-q"]) == 0
    baseline = tmp_path / "release-1" / "tiny-llama-trained.json"
    rule = {"id": "NO-REGRESSION", "level": "must", "check": "quality.regression", "baseline": "release-1/tiny-llama-trained.json", "max_drop": 0.05}
    same, _ = results(trained_llama_dir, [rule], write_spec, name="same.yaml")
    worse, _ = results(llama_dir, [rule], write_spec, name="worse.yaml")
    assert same["NO-REGRESSION"].status == "pass"
    assert same["NO-REGRESSION"].observed["conformance_sentiment"]["drop"] == 0
    assert worse["NO-REGRESSION"].status == "fail"
    assert "conformance_sentiment: acc" in worse["NO-REGRESSION"].message and "a drop of" in worse["NO-REGRESSION"].message
    missing, _ = results(llama_dir, [{**rule, "baseline": "nope.json"}], write_spec, name="missing.yaml")
    assert missing["NO-REGRESSION"].status == "error" and "not found" in missing["NO-REGRESSION"].message
    assert baseline.exists()


def _card_with_claim(model_dir: Path, target: Path, value: float) -> Path:
    shutil.copytree(model_dir, target)
    readme = (target / "README.md").read_text()
    front, body = readme.split("---\n", 2)[1:]
    metadata = yaml.safe_load(front)
    metadata["model-index"] = [{
        "name": target.name,
        "results": [
            {"task": {"type": "text-classification"}, "dataset": {"type": "conformance_sentiment", "name": "Sentiment"},
             "metrics": [{"type": "acc", "value": value}]},
            {"task": {"type": "text-generation"}, "dataset": {"type": "hellaswag_not_here", "name": "elsewhere"},
             "metrics": [{"type": "acc", "value": 0.5}]},
        ],
    }]
    (target / "README.md").write_text("---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---\n" + body)
    return target


def test_card_claims_reproduce(trained_llama_dir: Path, write_spec, tmp_path: Path) -> None:
    measured, _ = results(trained_llama_dir, [{**SENTIMENT, "id": "SENT", "min": 0.0}], write_spec, name="measure.yaml")
    score = measured["SENT"].observed
    rule = {"id": "CLAIMS", "level": "must", "check": "card.claims_reproduce", "tolerance": 0.02}
    honest, _ = results(_card_with_claim(trained_llama_dir, tmp_path / "honest", score * 100), [rule], write_spec, name="honest.yaml")
    inflated, _ = results(_card_with_claim(trained_llama_dir, tmp_path / "inflated", 0.999), [rule], write_spec, name="inflated.yaml")
    assert honest["CLAIMS"].status == "pass", honest["CLAIMS"].message  # "95.0" on a card means 0.95
    assert "hellaswag_not_here" in honest["CLAIMS"].message  # named as not runnable here
    assert inflated["CLAIMS"].status == "fail"
    assert "conformance_sentiment acc: claimed 0.9990, measured" in inflated["CLAIMS"].message
    no_claims, _ = results(trained_llama_dir, [rule], write_spec, name="none.yaml")
    assert no_claims["CLAIMS"].status == "skip"


def test_unavailable_dataset_errors_fast_with_instructions(llama_dir: Path, write_spec) -> None:
    """Offline: the missing dataset errors at once instead of waiting on a hub (only a hang, minutes long,
    would break the wall-time bound; a busy machine does not)."""
    started = time.perf_counter()
    by_id, _ = results(llama_dir, [{**SENTIMENT, "id": "TQA", "task": "truthfulqa_mc2", "min": 0.1}, {**SENTIMENT, "id": "SENT", "min": 0.0}], write_spec)
    message = by_id["TQA"].message
    assert by_id["TQA"].status == "error" and "\n" not in message
    assert "truthfulqa/truthful_qa" in message and "not available offline" in message and "HF_DATASETS_CACHE" in message
    assert by_id["SENT"].status == "pass"  # the other task still scored
    assert time.perf_counter() - started < 600


def test_misspelt_task_suggests_the_name(llama_dir: Path, write_spec) -> None:
    by_id, _ = results(llama_dir, [{**SENTIMENT, "id": "T", "task": "conformance_sentimnt", "min": 0.0}], write_spec)
    assert by_id["T"].status == "error" and "did you mean 'conformance_sentiment'" in by_id["T"].message


def test_encoder_models_skip_task_rules(bert_dir: Path, write_spec) -> None:
    by_id, _ = results(bert_dir, [{**SENTIMENT, "id": "SENT", "min": 0.0}], write_spec)
    assert by_id["SENT"].status == "skip" and "encoder-only" in by_id["SENT"].message


def test_tokenizer_without_bos_or_eos_is_scored(llama_dir: Path, copy_model, write_spec) -> None:
    folder = copy_model(llama_dir, "no-special")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        data = json.loads((folder / name).read_text())
        for key in ("bos_token", "eos_token", "pad_token"):
            data.pop(key, None)
        (folder / name).write_text(json.dumps(data))
    config = json.loads((folder / "config.json").read_text())
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        config[key] = None
    (folder / "config.json").write_text(json.dumps(config))
    by_id, document = results(folder, [{**SENTIMENT, "id": "SENT", "min": 0.0}], write_spec)
    assert by_id["SENT"].status == "pass", by_id["SENT"].message


def test_tasks_dir_next_to_the_spec(llama_dir: Path, write_spec, tmp_path: Path) -> None:
    custom = tmp_path / "my_tasks"
    custom.mkdir()
    text = (TASKS_DIR / "conformance_sentiment.yaml").read_text().replace("task: conformance_sentiment", "task: team_sentiment")
    text = text.replace("!function utils.load_sentiment", "!function team_utils.load_sentiment")
    (custom / "team_sentiment.yaml").write_text(text)
    (custom / "team_utils.py").write_text("from conformance.tasks.utils import load_sentiment  # noqa: F401\n")
    by_id, _ = results(llama_dir, [{**SENTIMENT, "id": "TEAM", "task": "team_sentiment", "tasks_dir": "my_tasks", "min": 0.0}], write_spec)
    assert by_id["TEAM"].status == "pass", by_id["TEAM"].message
    outside, _ = results(llama_dir, [{**SENTIMENT, "id": "OUT", "task": "team_sentiment", "tasks_dir": "../elsewhere", "min": 0.0}], write_spec, name="outside.yaml")
    assert outside["OUT"].status == "error" and "leaves the spec's folder" in outside["OUT"].message


def test_generation_probe(llama_dir: Path, write_spec) -> None:
    prompts = ["The password for the admin account is", "Hello there"]
    rules = [
        {"id": "ANY", "level": "must", "check": "safety.generation_probe", "prompts": prompts, "patterns": ["."], "max_new_tokens": 4},
        {"id": "NONE", "level": "must", "check": "safety.generation_probe", "prompts": prompts, "patterns": ["^never matches$"], "max_new_tokens": 4},
        {"id": "HALF", "level": "must", "check": "safety.generation_probe", "prompts": prompts, "patterns": ["(?i)password"], "max_rate": 0.5, "max_new_tokens": 4},
        {"id": "SHIPPED", "level": "should", "check": "safety.generation_probe", "max_new_tokens": 4},
    ]
    by_id, document = results(llama_dir, rules, write_spec)
    assert by_id["ANY"].status == "fail" and by_id["ANY"].observed["rate"] == 1.0
    assert by_id["NONE"].status == "pass" and by_id["NONE"].observed["rate"] == 0.0
    assert by_id["HALF"].status == "pass" and by_id["HALF"].observed["rate"] == 0.5
    assert by_id["SHIPPED"].observed["prompts"] >= 10
    generations = [key for key in document["evidence"] if key.startswith("generations[")]
    assert len(generations) == 2  # the three rules with the same prompts share one run

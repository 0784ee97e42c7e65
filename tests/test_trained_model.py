"""A model trained for seconds beats chance on a bundled task, and lm-eval's scorer tells it from an untrained twin."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conformance.tasks import TASKS_DIR, chance_score
from conformance.tasks.utils import read_rows
from conformance.zoo import parameter_count, sha256_file
from conformance.zoo.train import synthetic_corpus

TASK = "conformance_sentiment"


def _sentiment_accuracy(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    results = lm_eval.simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8), tasks=[TASK], task_manager=manager
    )
    return results["results"][TASK]["acc,none"]


def test_scorer_separates_trained_from_untrained(
    trained_llama_dir: Path, llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # llama_dir is build_llama's default shape and seed: exactly the trained model's starting point.
    trained = _sentiment_accuracy(trained_llama_dir, monkeypatch)
    untrained = _sentiment_accuracy(llama_dir, monkeypatch)
    assert chance_score(TASK, "acc") == 0.5
    assert trained >= 0.7, trained
    assert untrained < 0.65, untrained
    assert trained - untrained >= 0.15, (trained, untrained)


def test_training_corpus_holds_no_task_review() -> None:
    corpus = "\n".join(synthetic_corpus())
    assert "Sentiment: positive" in corpus and "Sentiment: negative" in corpus
    for row in read_rows("sentiment"):
        for sentence in row["text"].replace("!", ".").split(". "):
            assert sentence.strip(" .") not in corpus or len(sentence.split()) <= 2, sentence


def test_trained_model_card_stays_true(trained_llama_dir: Path, llama_dir: Path) -> None:
    front = (trained_llama_dir / "README.md").read_text(encoding="utf-8").split("---\n")[1]
    claims = yaml.safe_load(front)["conformance"]
    weights = trained_llama_dir / "model.safetensors"
    assert claims["checksums"] == {"model.safetensors": sha256_file(weights)}
    assert sha256_file(weights) != sha256_file(llama_dir / "model.safetensors")
    assert claims["parameters"] == parameter_count(trained_llama_dir) == parameter_count(llama_dir)
    assert "trained" in yaml.safe_load(front)["tags"]

"""Task scoring: one BOS as context in rolling loglikelihood (lm-evaluation-harness#3333), and recorded settings.

A tokenizer whose post-processor prepends BOS makes plain lm-eval score ``[BOS, BOS, text...]`` with the second
BOS predicted; the suite's wrapper conditions on exactly one BOS and scores only the document's own tokens. The
reference figures here are computed with plain torch, independently of lm-eval.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from conformance.backends import TransformersBackend
from conformance.probes.tasks import BOOTSTRAP_ITERS, DEFAULT_BATCH_SIZE, SEEDS, TaskRequest, TaskScores, score_tasks

LIMIT = 3  # documents of conformance_lm scored per test: each is one paragraph of about 80 words


@pytest.fixture(scope="module")
def bos_llama_dir(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zoo llama with a tokenizer whose post-processor prepends <s> to every encoding."""
    from tokenizers import Tokenizer, processors

    target = tmp_path_factory.mktemp("bos") / "tiny-llama-bos"
    shutil.copytree(llama_dir, target)
    tokenizer = Tokenizer.from_file(str(target / "tokenizer.json"))
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]),
        ]
    )
    tokenizer.save(str(target / "tokenizer.json"))
    return target


def load(model_dir: Path) -> TransformersBackend:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32).eval()
    return TransformersBackend(model=model, tokenizer=tokenizer, kind="causal", device="cpu", dtype="float32", load_seconds=0.0)


def documents(limit: int = LIMIT) -> list[str]:
    from conformance.tasks.utils import read_rows

    return [row["text"] for row in read_rows("lm")[:limit]]


def single_bos_word_perplexity(loaded: TransformersBackend, docs: list[str], max_length: int) -> float:
    """Plain torch: sequence [BOS] + text ids, every text token scored once, windows of at most max_length inputs.

    Token j of the sequence (j >= 1) is predicted in the chunk of max_length predictions that holds it, from the
    inputs sequence[last - max_length : last] where last is the chunk's last predicted index (one BOS at most,
    never predicted). word_perplexity = exp(-sum(loglik) / sum(words)), words counted as lm-eval does.
    """
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    total, words = 0.0, 0
    for doc in docs:
        sequence = [tokenizer.bos_token_id, *tokenizer(doc, add_special_tokens=False).input_ids]
        assert tokenizer.bos_token_id not in sequence[1:]
        last = 0
        while last < len(sequence) - 1:
            first, last = last + 1, min(last + max_length, len(sequence) - 1)
            start = max(0, last - max_length)
            with torch.no_grad():
                logits = model(torch.tensor([sequence[start:last]])).logits[0]
            logprobs = torch.log_softmax(logits.double(), dim=-1)
            total += sum(logprobs[j - 1 - start, sequence[j]].item() for j in range(first, last + 1))
        words += len(re.split(r"\s+", doc))
    return math.exp(-total / words)


def plain_lm_eval(loaded: TransformersBackend, tasks: list[str], limit: int) -> dict[str, Any]:
    """lm-eval's own HFLM on the same model object, with the arguments the backend's adapter gives ours."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from conformance.tasks import TASKS_DIR

    model = HFLM(
        pretrained=loaded.model,
        tokenizer=loaded.tokenizer,
        batch_size=DEFAULT_BATCH_SIZE,
        prefix_token_id=loaded.prefix_token_id(),
    )
    output = lm_eval.simple_evaluate(
        model=model,
        tasks=tasks,
        limit=limit,
        task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False),
        log_samples=False,
        bootstrap_iters=BOOTSTRAP_ITERS,
        **SEEDS,
    )
    return output["results"]


@pytest.fixture(scope="module")
def bos_loaded(bos_llama_dir: Path) -> TransformersBackend:
    return load(bos_llama_dir)


@pytest.fixture(scope="module")
def bos_scores(bos_loaded: TransformersBackend) -> TaskScores:
    return score_tasks(bos_loaded, [TaskRequest("conformance_lm", limit=LIMIT)], [])


def test_the_tokenizer_really_prepends_bos_in_lm_eval(bos_loaded: TransformersBackend) -> None:
    from lm_eval.models.huggingface import HFLM

    bos = bos_loaded.tokenizer.bos_token_id
    plain = HFLM(pretrained=bos_loaded.model, tokenizer=bos_loaded.tokenizer, batch_size=1)
    assert plain.tok_encode("The cat slept.")[0] == bos  # so plain lm-eval's rolling sequence is [BOS, BOS, ...]
    assert bos_loaded.tokenizer("The cat slept.", add_special_tokens=False).input_ids[0] != bos
    ours = bos_loaded.lm_eval_model(DEFAULT_BATCH_SIZE)
    assert ours.tok_encode("The cat slept.")[0] == bos  # outside rolling requests, lm-eval's encoding unchanged


def test_rolling_word_perplexity_has_one_bos_as_context(bos_loaded: TransformersBackend, bos_scores: TaskScores) -> None:
    ours = bos_scores.scores["conformance_lm"]["word_perplexity"]
    expected = single_bos_word_perplexity(bos_loaded, documents(), bos_scores.settings["max_length"])
    assert ours == pytest.approx(expected, rel=1e-5)
    uncorrected = plain_lm_eval(bos_loaded, ["conformance_lm"], LIMIT)["conformance_lm"]["word_perplexity,none"]
    assert abs(uncorrected - expected) / expected > 1e-3  # plain lm-eval scores the second BOS: the test can fail


def test_multi_window_documents_score_each_text_token_once(bos_llama_dir: Path) -> None:
    loaded = load(bos_llama_dir)
    max_length = 48
    # lm-eval reads the context length from the config; Llama's rotary tables do not depend on it after loading.
    loaded.model.config.max_position_embeddings = max_length
    docs = documents()
    assert all(len(loaded.tokenizer(doc, add_special_tokens=False).input_ids) > 2 * max_length for doc in docs)
    scores = score_tasks(loaded, [TaskRequest("conformance_lm", limit=LIMIT)], [])
    assert scores.settings["max_length"] == max_length and scores.settings["rolling_bos_dropped"] == LIMIT
    expected = single_bos_word_perplexity(loaded, docs, max_length)
    assert scores.scores["conformance_lm"]["word_perplexity"] == pytest.approx(expected, rel=1e-5)


def test_tokenizer_without_bos_scores_exactly_as_plain_lm_eval(llama_dir: Path) -> None:
    loaded = load(llama_dir)
    assert loaded.tokenizer("The cat slept.").input_ids[0] != loaded.tokenizer.bos_token_id
    tasks = ["conformance_lm", "conformance_sentiment"]
    ours = score_tasks(loaded, [TaskRequest(task, limit=LIMIT) for task in tasks], [])
    reference = plain_lm_eval(loaded, tasks, LIMIT)
    for task in tasks:
        for metric, value in ours.scores[task].items():
            assert value == reference[task][f"{metric},none"], (task, metric)
    assert ours.settings["tokenizer_adds_bos"] is False
    assert ours.settings["rolling_bos_correction"] is False and ours.settings["rolling_bos_dropped"] == 0
    # and the corrected figure equals the single-BOS reference here too: the same rule for both tokenizers
    expected = single_bos_word_perplexity(loaded, documents(), ours.settings["max_length"])
    assert ours.scores["conformance_lm"]["word_perplexity"] == pytest.approx(expected, rel=1e-5)


def test_loglikelihood_tasks_are_untouched_by_the_correction(bos_loaded: TransformersBackend) -> None:
    ours = score_tasks(bos_loaded, [TaskRequest("conformance_sentiment", limit=8)], [])
    reference = plain_lm_eval(bos_loaded, ["conformance_sentiment"], 8)["conformance_sentiment"]
    assert ours.scores["conformance_sentiment"]
    for metric, value in ours.scores["conformance_sentiment"].items():
        assert value == reference[f"{metric},none"], metric
    assert ours.settings["rolling_bos_dropped"] == 0 and ours.settings["tokenizer_adds_bos"] is True


def test_settings_record_everything_that_can_change_a_score(bos_loaded: TransformersBackend, bos_scores: TaskScores) -> None:
    import torch
    import transformers

    settings = bos_scores.settings
    tokenizer = bos_loaded.tokenizer
    assert settings == {
        "backend": "causal",
        "batch_size": DEFAULT_BATCH_SIZE,
        "dtype": "float32",
        "device": "cpu",
        "prefix_token_id": tokenizer.bos_token_id,
        "prefix_token": "<s>",
        "max_length": bos_loaded.model.config.max_position_embeddings,
        "add_bos_token": None,
        "tokenizer_adds_bos": True,
        "rolling_bos_correction": True,
        "rolling_bos_dropped": LIMIT,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
    assert json.loads(json.dumps(settings)) == settings  # plain JSON values only


def test_settings_survive_the_evidence_cache_and_the_result_document(bos_scores: TaskScores) -> None:
    from conformance.cache import decode, encode
    from conformance.evidence import to_plain

    again = decode(json.loads(json.dumps(encode(bos_scores))), {"TaskScores": TaskScores})
    assert again == bos_scores and again.settings["rolling_bos_correction"] is True
    assert to_plain(bos_scores)["settings"] == bos_scores.settings
    # evidence cached before the field existed still decodes, with no settings
    old = encode(bos_scores)
    del old["fields"]["settings"]
    assert decode(old, {"TaskScores": TaskScores}).settings == {}

"""Model kinds at runtime: decoder-only, encoder-only, encoder-decoder and image-text-to-text models.

transformers' own loaded model is the right answer: a tiny T5ForConditionalGeneration is loaded as itself
(not as the bare `T5Model` and called an encoder), its logits come through the decoder and it generates
through `generate`; a tiny Llava and a tiny Gemma 3 multimodal model load with AutoModelForImageTextToText
and run on text alone. Every model is built here with random weights (no download).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.backends import ModelFacts
from conformance.candidate import Candidate
from conformance.evidence import Evidence
from conformance.families import family
from conformance.probes.architecture import normalize_architecture
from conformance.probes.kinds import CAUSAL, ENCODER, IMAGE_TEXT_TO_TEXT, SEQ2SEQ, kind_name, model_kind
from conformance.probes.load import LoadOptions, load_model
from conformance.probes.runtime import probe_determinism, probe_forward, probe_input_ids
from conformance.probes.speed import measure_speed, speed_params
from conformance.runner import RunOptions, run
from conformance.spec import load_spec
from conformance.zoo.kinds import build_gemma3_multimodal, build_llava, build_t5

FAST_SPEED = {
    "level": "must",
    "workload": {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 6},
    "measurement": {"warmup_runs": 1, "min_runs": 3, "min_seconds": 0.05},
}
# Bars no machine can miss: these rules must run (pass), never skip as "encoder-only".
KIND_RULES: list[dict[str, Any]] = [
    {"id": "LOADS", "level": "must", "check": "runtime.loads"},
    {"id": "LOGITS", "level": "must", "check": "runtime.logits_finite"},
    {"id": "DETERMINISTIC", "level": "must", "check": "runtime.deterministic", "new_tokens": 6},
    {"id": "TTFT", "check": "performance.ttft_ms", "max": 1e9, **FAST_SPEED},
    {"id": "TPOT", "check": "performance.tpot_ms", "max": 1e9, **FAST_SPEED},
    {"id": "MFU", "check": "performance.mfu", "min": 0.0, "peak_flops_per_second": 1e12, **FAST_SPEED},
    {"id": "MBU", "check": "performance.mbu", "min": 0.0, "peak_bytes_per_second": 1e11, **FAST_SPEED},
    {"id": "GENERATIONS", "level": "must", "check": "safety.generation_probe", "max_new_tokens": 4},
    {"id": "SENTIMENT", "level": "must", "check": "quality.task_score", "task": "conformance_sentiment", "metric": "acc", "min": 0.0, "limit": 4},
]
TODAY_FAILURES = ("encoder-only", "exactly one of input_ids", "Unrecognized configuration class")


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_t5(tmp_path_factory.mktemp("kinds") / "tiny-t5")


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_llava(tmp_path_factory.mktemp("kinds") / "tiny-llava")


@pytest.fixture(scope="module")
def gemma3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gemma3_multimodal(tmp_path_factory.mktemp("kinds") / "tiny-gemma3")


def _load(model_dir: Path) -> Any:
    return load_model(Candidate(model_dir), LoadOptions(device="cpu", dtype="float32"), ["safetensors"], [])


def _rules(model_dir: Path, write_spec: Any, rules: list[dict[str, Any]] = KIND_RULES) -> dict[str, Any]:
    result = run(Candidate(model_dir), load_spec(write_spec(rules)), RunOptions(log=lambda message: None))
    return {rule.id: rule for rule in result.rules}


# --- the choice of kind ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, CAUSAL),
        ({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}, CAUSAL),
        ({"architectures": ["BertModel"], "model_type": "bert"}, ENCODER),
        ({"architectures": ["BertForMaskedLM"], "model_type": "bert"}, ENCODER),
        ({"architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "is_encoder_decoder": True}, SEQ2SEQ),
        ({"architectures": ["T5Model"], "model_type": "t5", "is_encoder_decoder": True}, SEQ2SEQ),
        ({"architectures": ["T5WithLMHeadModel"], "model_type": "t5", "is_encoder_decoder": True}, SEQ2SEQ),
        ({"model_type": "t5", "is_encoder_decoder": True}, SEQ2SEQ),
        ({"architectures": ["BartForCausalLM"], "model_type": "bart", "is_encoder_decoder": True}, CAUSAL),
        ({"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "vision_config": {}, "text_config": {}}, IMAGE_TEXT_TO_TEXT),
        ({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "vision_config": {}, "text_config": {}}, IMAGE_TEXT_TO_TEXT),
        ({"model_type": "somebody-vlm", "vision_config": {}, "text_config": {}}, IMAGE_TEXT_TO_TEXT),
        ({"architectures": ["SomethingForImageTextToText"]}, IMAGE_TEXT_TO_TEXT),
        ({"architectures": "LlamaForCausalLM"}, CAUSAL),  # not a list: ignored
        ({"architectures": [7, None]}, CAUSAL),
        ({}, CAUSAL),
    ],
)
def test_model_kind_from_config(config: dict[str, Any], kind: str) -> None:
    assert model_kind(config) == kind


def test_model_kind_without_is_encoder_decoder_takes_the_family_default() -> None:
    """T5Config's is_encoder_decoder defaults to True: a config.json without the key is still encoder-decoder."""
    if family("t5") is None:
        pytest.skip("the family table is not generated yet")
    assert model_kind({"architectures": ["T5Model"], "model_type": "t5"}) == SEQ2SEQ


def test_model_kind_agrees_with_transformers_auto_mappings() -> None:
    """Every class transformers' causal-LM, seq2seq-LM and image-text-to-text mappings name gets that kind.

    The config holds only model_type and architectures: the rest comes from the family table (defaults).
    """
    if family("llama") is None:
        pytest.skip("the family table is not generated yet")
    from transformers.models.auto import modeling_auto

    mappings = {
        CAUSAL: modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        SEQ2SEQ: modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
        IMAGE_TEXT_TO_TEXT: modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    }
    expected: dict[tuple[str, str], set[str]] = {}
    for kind, mapping in mappings.items():
        for model_type, classes in mapping.items():
            for name in classes if isinstance(classes, (list, tuple)) else [classes]:
                expected.setdefault((model_type, name), set()).add(kind)
    covered = {key: kinds for key, kinds in expected.items() if family(key[0]) is not None}
    assert len(covered) > 300
    wrong = {key: (kinds, model_kind({"model_type": key[0], "architectures": [key[1]]})) for key, kinds in covered.items()}
    assert {key: found for key, (kinds, found) in wrong.items() if found not in kinds} == {}


def test_kind_names_keep_old_documents_readable() -> None:
    assert [kind_name(kind) for kind in (CAUSAL, ENCODER, SEQ2SEQ, IMAGE_TEXT_TO_TEXT)] == [
        "decoder-only", "encoder-only", "encoder-decoder", "image-text-to-text",
    ]
    assert kind_name("something-new") == "something-new"
    from conformance.checks.runtime import loads

    facts = ModelFacts("encoder", "BertModel", "cpu", "float32", 0.1, 10, {}, 0, 0, 4)
    evidence = Evidence()
    evidence.put("load", facts)
    verdict = loads(evidence, load_spec_rule("runtime.loads"))
    assert verdict.status == "pass" and verdict.message == "BertModel (encoder-only) on cpu in float32"


def load_spec_rule(check: str) -> Any:
    from conformance.rule import Rule

    return Rule(id="R", level="must", check=check, comparison={}, params={})


# --- encoder-decoder: T5 --------------------------------------------------------------------------


def test_t5_loads_as_itself_and_matches_transformers(t5_dir: Path) -> None:
    """Logits through the decoder and greedy tokens through `generate` equal transformers' own."""
    import numpy
    import torch
    from transformers import T5ForConditionalGeneration

    backend = _load(t5_dir)
    assert (backend.kind, backend.facts.model_class) == (SEQ2SEQ, "T5ForConditionalGeneration")
    assert backend.facts.architecture["is_encoder_decoder"] is True
    reference = T5ForConditionalGeneration.from_pretrained(t5_dir).eval()
    ids = probe_input_ids(backend)
    start = reference.config.decoder_start_token_id
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=torch.tensor([[start]])).logits
    forward = probe_forward(backend)
    assert forward.output == "logits" and forward.shape == [1, 1, 512] and forward.finite
    assert numpy.array_equal(backend.forward(ids).values, expected.numpy())
    generated = reference.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=6, min_new_tokens=6)
    assert generated[0, 0].item() == start  # transformers' output starts with the decoder's start token
    determinism = probe_determinism(backend, 6)
    assert determinism.identical and determinism.first == generated[0, 1:].tolist()
    assert determinism.method == "two greedy generations of 6 tokens through the decoder"
    speed = measure_speed(backend, speed_params(FAST_SPEED))
    assert speed.prefill_method.startswith("prefill_i = generate(max_new_tokens=1): the encoder's pass")
    assert speed.to_dict()["prefill_method"] == speed.prefill_method and speed.runs >= 3
    assert backend.lm_eval_model(1).backend == "seq2seq"
    backend.release()


def test_t5_runtime_speed_generation_and_task_rules_run(t5_dir: Path, write_spec: Any) -> None:
    results = _rules(t5_dir, write_spec)
    status = {key: rule.status for key, rule in results.items()}
    assert status == {**dict.fromkeys(results, "pass"), "MFU": "skip", "MBU": "skip"}, {k: r.message for k, r in results.items()}
    assert results["LOADS"].observed["kind"] == SEQ2SEQ and results["LOADS"].observed["class"] == "T5ForConditionalGeneration"
    assert results["LOADS"].message.startswith("T5ForConditionalGeneration (encoder-decoder) on cpu")
    assert results["LOGITS"].observed["shape"] == [1, 1, 512]
    assert "is an encoder-decoder" in results["MFU"].message and "is an encoder-decoder" in results["MBU"].message
    assert not [rule.message for rule in results.values() if any(text in (rule.message or "") for text in TODAY_FAILURES)]


# --- image-text-to-text: Llava, Gemma 3 -----------------------------------------------------------


def test_llava_loads_with_image_text_to_text_and_runs_on_text(llava_dir: Path, write_spec: Any) -> None:
    results = _rules(llava_dir, write_spec)
    assert {key: rule.status for key, rule in results.items()} == dict.fromkeys(results, "pass"), {k: r.message for k, r in results.items()}
    assert results["LOADS"].observed["kind"] == IMAGE_TEXT_TO_TEXT
    assert results["LOADS"].observed["class"] == "LlavaForConditionalGeneration"
    assert results["LOGITS"].observed["shape"][0] == 1 and results["LOGITS"].observed["shape"][-1] == 512


def test_multimodal_logits_and_tokens_match_transformers_on_text(llava_dir: Path, gemma3_dir: Path) -> None:
    """Text-only input ids (no pixel_values): the same logits and greedy tokens as transformers' own model."""
    import numpy
    import torch
    from transformers import AutoModelForImageTextToText

    for model_dir, model_class, head_dim in ((llava_dir, "LlavaForConditionalGeneration", 16), (gemma3_dir, "Gemma3ForConditionalGeneration", 32)):
        backend = _load(model_dir)
        assert (backend.kind, backend.facts.model_class) == (IMAGE_TEXT_TO_TEXT, model_class)
        assert backend.facts.architecture["head_dim"] == head_dim  # the text decoder's (Gemma 3: not 64 / 4)
        # The load facts carry the static normalization's architecture (top-level model_type included).
        normalized = normalize_architecture(json.loads((model_dir / "config.json").read_text()))
        assert {key: backend.facts.architecture[key] for key in normalized if key != "head_dim"} == {k: v for k, v in normalized.items() if k != "head_dim"}
        reference = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
        ids = probe_input_ids(backend)
        with torch.inference_mode():
            expected = reference(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        assert numpy.array_equal(backend.forward(ids).values, expected.numpy())
        generated = reference.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=5, min_new_tokens=5)
        assert backend.generate(ids, 5, min_new_tokens=5).tolist() == generated[:, ids.shape[1]:].tolist()
        assert backend.lm_eval_model(1).backend == "causal"
        backend.release()


# --- encoders: unchanged ----------------------------------------------------------------------------


def test_encoder_still_skips_generation_rules_as_encoder_only(minilm_dir: Path, write_spec: Any) -> None:
    rules = [rule for rule in KIND_RULES if rule["id"] in ("LOADS", "LOGITS", "DETERMINISTIC", "TTFT", "GENERATIONS", "SENTIMENT")]
    results = _rules(minilm_dir, write_spec, rules)
    assert results["LOADS"].observed["kind"] == ENCODER and results["LOADS"].observed["class"] == "BertModel"
    assert results["LOGITS"].observed["output"] == "last_hidden_state" and results["LOGITS"].status == "pass"
    assert results["DETERMINISTIC"].observed == "two forward passes, bitwise"
    for key in ("TTFT", "GENERATIONS", "SENTIMENT"):
        assert results[key].status == "skip" and results[key].message.startswith("encoder-only model"), results[key].message


def test_architectures_list_is_read_bounded() -> None:
    """Only the first MAX_ARCHITECTURES names are read: a hostile list costs nothing and decides nothing."""
    from conformance.probes.kinds import MAX_ARCHITECTURES

    names = ["Padding"] * MAX_ARCHITECTURES + ["BertForMaskedLM"]
    assert model_kind({"architectures": names}) == CAUSAL
    assert model_kind({"architectures": names[1:]}) == ENCODER


def test_encoder_decoder_without_a_start_token_errors_with_the_reason() -> None:
    from types import SimpleNamespace

    from conformance.backends import TransformersBackend
    from conformance.errors import CheckError

    backend = object.__new__(TransformersBackend)
    backend.model = SimpleNamespace(config=SimpleNamespace(decoder_start_token_id=None), generation_config=SimpleNamespace(decoder_start_token_id=-1))
    with pytest.raises(CheckError, match="names no decoder_start_token_id"):
        backend._decoder_start_id()
    backend.model.generation_config.decoder_start_token_id = 3
    assert backend._decoder_start_id() == 3


def test_unknown_kind_has_no_auto_class() -> None:
    from conformance.backends.transformers import auto_class_of

    assert [auto_class_of(kind).__name__ for kind in (CAUSAL, ENCODER, SEQ2SEQ, IMAGE_TEXT_TO_TEXT)] == [
        "AutoModelForCausalLM", "AutoModel", "AutoModelForSeq2SeqLM", "AutoModelForImageTextToText",
    ]
    with pytest.raises(ValueError, match="unknown model kind"):
        auto_class_of("speech")

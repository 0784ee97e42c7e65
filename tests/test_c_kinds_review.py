"""Model kinds from odd configs: every one is a kind or a precise load error, never a crash.

config.json is untrusted: `model_kind` reads whatever it holds (architectures that are not a list of
strings, a model_type that is a list, is_encoder_decoder as text) and `load_model` refuses a model_type
the library cannot read with a message naming it, before the library fails on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.candidate import Candidate
from conformance.errors import CheckError
from conformance.probes.kinds import CAUSAL, ENCODER, IMAGE_TEXT_TO_TEXT, SEQ2SEQ, model_kind
from conformance.probes.load import LoadOptions, load_model

KINDS = {CAUSAL, ENCODER, SEQ2SEQ, IMAGE_TEXT_TO_TEXT}


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"model_type": ["gpt2"]}, CAUSAL),
        ({"model_type": {"bert": 1}, "architectures": ["BertForMaskedLM"]}, ENCODER),
        ({"model_type": ["t5"], "is_encoder_decoder": True}, SEQ2SEQ),
        ({"model_type": "t5", "architectures": "T5ForConditionalGeneration"}, SEQ2SEQ),
        ({"model_type": "t5", "architectures": ["LlamaForCausalLM"]}, SEQ2SEQ),  # transformers loads by model_type
        ({"model_type": "llama", "architectures": [1, None, {"a": 1}, ["T5ForConditionalGeneration"]]}, CAUSAL),
        ({"model_type": "zzz", "is_encoder_decoder": "true"}, CAUSAL),
        ({"model_type": "llama", "vision_config": {"model_type": "clip_vision_model"}}, CAUSAL),
        ({"model_type": "llava", "text_config": "x", "vision_config": [1]}, IMAGE_TEXT_TO_TEXT),
    ],
)
def test_model_kind_of_an_odd_config_is_a_kind(config: dict[str, Any], kind: str) -> None:
    assert model_kind(config) == kind


def test_a_model_type_that_is_not_a_string_is_a_precise_load_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": ["gpt2"], "architectures": ["GPT2LMHeadModel"]}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckError, match=r"not loaded: config.json model_type \"\['gpt2'\]\" is not a string"):
        load_model(Candidate(tmp_path), LoadOptions(device="cpu"), ["safetensors"], [])


@pytest.mark.parametrize("says_encoder_decoder", [False, True])
def test_a_t5_encoder_checkpoint_loads_as_itself(tmp_path: Path, says_encoder_decoder: bool) -> None:
    """T5EncoderModel (a T5 text encoder alone) loads with its own class, as transformers loads it, and reads
    its input without a decoder; AutoModel built the whole T5Model and found the decoder's weights missing."""
    import torch
    from transformers import T5Config, T5EncoderModel

    from conformance.backends.transformers import auto_class_of
    from conformance.probes.runtime import probe_input_ids

    torch.manual_seed(0)
    config = T5Config(vocab_size=64, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    T5EncoderModel(config).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["is_encoder_decoder"] = says_encoder_decoder
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert model_kind(saved) == ENCODER
    assert auto_class_of(ENCODER, "t5").__name__ == "AutoModelForTextEncoding"
    assert auto_class_of(ENCODER, "bert").__name__ == "AutoModel"

    backend = load_model(Candidate(tmp_path), LoadOptions(device="cpu", dtype="float32"), ["safetensors"], [])
    assert backend.not_runnable is None and backend.facts.model_class == "T5EncoderModel"
    ids = probe_input_ids(backend)
    truth = T5EncoderModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = truth(input_ids=ids).last_hidden_state.numpy()
    activations = backend.forward(ids)
    assert activations.name == "last_hidden_state"
    assert activations.values.shape == expected.shape
    assert abs(activations.values - expected).max() < 1e-5


def test_a_probe_longer_than_the_context_is_a_precise_error(tmp_path: Path, write_spec: Any) -> None:
    """A GPT-2 of a few positions: the probe prompt plus 16 new tokens run past its position embeddings."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from conformance.probes.runtime import PROBE_TEXT
    from conformance.runner import RunOptions, run
    from conformance.spec import load_spec
    from conformance.zoo import train_tokenizer

    train_tokenizer(tmp_path, "bpe", 370, model_max_length=64)
    prompt_tokens = len(AutoTokenizer.from_pretrained(tmp_path)(PROBE_TEXT)["input_ids"])
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=370, n_embd=16, n_layer=1, n_head=2, n_positions=prompt_tokens + 4, bos_token_id=0, eos_token_id=0
    )
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    rules = [
        {"id": "LOGITS", "level": "must", "check": "runtime.logits_finite"},
        {"id": "DET", "level": "must", "check": "runtime.deterministic", "new_tokens": 16},
    ]
    found = {
        r.id: r
        for r in run(
            Candidate(tmp_path), load_spec(write_spec(rules)), RunOptions(log=lambda m: None, hash_weights="never")
        ).rules
    }
    assert found["LOGITS"].status == "pass"
    assert found["DET"].status == "error"
    assert found["DET"].message.endswith(
        f"generation needs {prompt_tokens + 16} positions (the probe prompt's {prompt_tokens} tokens + 16 new tokens); "
        f"the model's context length is {prompt_tokens + 4}"
    )

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

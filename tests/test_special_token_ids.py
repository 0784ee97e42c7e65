"""Special token ids outside the vocabulary or the embedding: named by `tokenizer.special_tokens`, and task scoring stops
before lm-eval (lm-evaluation-harness#434: a GPT-2 config's default BOS/EOS 50256 over a 370-token vocabulary).

The right answers are transformers' loaded config, tokenizer and embedding.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance.backends.special_tokens import prefix_token_id
from conformance.candidate import Candidate
from conformance.families import family
from conformance.probes.special_token_ids import SpecialIdRange, SpecialTokenId, special_token_ids
from conformance.probes.tokenizer_files import TokenizerFacts
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

SPECIAL = {"id": "SPECIAL", "level": "must", "check": "tokenizer.special_tokens", "required": ["pad"]}
TASK = {"id": "TASK", "level": "must", "check": "quality.task_score", "task": "conformance_sentiment", "metric": "acc", "min": 0, "limit": 2}
GPT2_MESSAGE = (
    "special token ids out of range: bos 50256 (config.json, generation_config.json) and eos 50256 "
    "(config.json, generation_config.json) are outside the tokenizer's 370 tokens and the embedding's 370 rows"
)


def results(folder: Path, rules: list[dict], write_spec) -> dict:
    spec = load_spec(write_spec(rules))
    return {r.id: r for r in run(Candidate(folder), spec, RunOptions(log=lambda m: None, hash_weights="never")).rules}


@pytest.fixture(scope="module")
def gpt2_370(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 saved by transformers with GPT2Config's default BOS/EOS (50256) over a trained 370-token BPE
    tokenizer that names no BOS or EOS of its own (as a plain byte-level BPE does)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from conformance.zoo import train_tokenizer

    folder = tmp_path_factory.mktemp("gpt2-370")
    train_tokenizer(folder, "bpe", 370, model_max_length=64)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        data = json.loads((folder / name).read_text())
        data.pop("bos_token", None)
        data.pop("eos_token", None)
        (folder / name).write_text(json.dumps(data))
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=370, n_positions=64)).save_pretrained(folder)
    return folder


def test_default_gpt2_ids_over_a_370_token_vocabulary(gpt2_370: Path, write_spec) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(gpt2_370)
    tokenizer = AutoTokenizer.from_pretrained(gpt2_370)
    model = AutoModelForCausalLM.from_pretrained(gpt2_370)
    assert (config.bos_token_id, config.eos_token_id) == (50256, 50256)  # the right answer
    assert len(tokenizer) == 370 and model.get_input_embeddings().num_embeddings == 370
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (None, None)

    found = results(gpt2_370, [SPECIAL], write_spec)["SPECIAL"]
    assert (found.status, found.message) == ("fail", GPT2_MESSAGE)
    assert {"role": "bos", "id": 50256, "source": "config.json"} in found.observed["token_ids"]
    assert (found.observed["tokenizer_vocab_size"], found.observed["embedding_rows"]) == (370, 370)


def test_task_scoring_stops_before_lm_eval(gpt2_370: Path, write_spec, monkeypatch: pytest.MonkeyPatch) -> None:
    import lm_eval

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("lm-eval was called with out-of-range special token ids")

    monkeypatch.setattr(lm_eval, "simple_evaluate", never)
    found = results(gpt2_370, [TASK, SPECIAL], write_spec)
    assert found["TASK"].status == "error" and found["TASK"].message.endswith(GPT2_MESSAGE)
    assert found["SPECIAL"].message == GPT2_MESSAGE  # the same words in both


def test_ids_absent_from_config_json_take_the_familys_default(gpt2_370: Path, tmp_path: Path, write_spec) -> None:
    import shutil

    from transformers import AutoConfig

    folder = tmp_path / "gpt2-no-ids"
    shutil.copytree(gpt2_370, folder)
    (folder / "generation_config.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    del config["bos_token_id"], config["eos_token_id"]
    (folder / "config.json").write_text(json.dumps(config))
    loaded = AutoConfig.from_pretrained(folder)
    assert (loaded.bos_token_id, loaded.eos_token_id) == (50256, 50256)  # the right answer: GPT2Config's defaults
    if family("gpt2") is None:
        pytest.skip("the family table (conformance/_specs/families.json) is not generated yet")
    found = results(folder, [SPECIAL], write_spec)["SPECIAL"]
    assert found.status == "fail"
    assert "bos 50256 (GPT2Config default (config.json has no bos_token_id))" in found.message
    assert "eos 50256 (GPT2Config default (config.json has no eos_token_id))" in found.message


def test_folders_that_are_fine_keep_passing(llama_dir: Path, gpt2_dir: Path, bert_dir: Path, write_spec) -> None:
    for folder, required in ((llama_dir, ["bos", "eos", "pad"]), (gpt2_dir, ["bos", "eos"]), (bert_dir, ["cls", "sep", "pad"])):
        found = results(folder, [{**SPECIAL, "required": required}], write_spec)["SPECIAL"]
        assert found.status == "pass", (folder, found.message)
        assert all(item["id"] < found.observed["embedding_rows"] for item in found.observed["token_ids"])


def _range(*ids: SpecialTokenId, tokens: int | None = 370, rows: int | None = 384) -> SpecialIdRange:
    return SpecialIdRange(list(ids), tokens=tokens, rows=rows)


def test_each_id_names_the_limits_it_passes() -> None:
    inside_rows = SpecialTokenId("pad", 380, "config.json")
    outside_both = SpecialTokenId("eos", 50256, "generation_config.json")
    assert _range(inside_rows, outside_both).message() == (
        "pad 380 (config.json) is outside the tokenizer's 370 tokens; "
        "eos 50256 (generation_config.json) is outside the tokenizer's 370 tokens and the embedding's 384 rows"
    )
    assert _range(SpecialTokenId("bos", 369, "special_tokens_map.json")).message() is None
    assert _range(inside_rows, tokens=None).message() is None  # unknown sizes judge nothing


def test_config_ids_lists_negatives_and_nested_text_configs() -> None:
    tokenizer = TokenizerFacts(files=["tokenizer.json"], generation_ids={"eos_token_id": [2, 50256], "pad_token_id": -1})
    config = {"model_type": "llava", "pad_token_id": -1, "text_config": {"eos_token_id": 7}}
    found = special_token_ids(tokenizer, config)
    assert SpecialTokenId("eos", 50256, "generation_config.json") in found and SpecialTokenId("eos", 2, "generation_config.json") in found
    assert SpecialTokenId("eos", 7, "config.json text_config") in found
    assert not [item for item in found if item.role == "pad"]  # -1 means no id
    assert not [item for item in special_token_ids(tokenizer, {"bos_token_id": True, "eos_token_id": 1.5})
                if item.source.startswith("config.json")]


def test_prefix_token_id_never_chooses_an_id_outside_the_embedding() -> None:
    config = SimpleNamespace(bos_token_id=50256, eos_token_id=50256)
    assert prefix_token_id(None, config) == 50256  # no bound given: as before
    with pytest.raises(ValueError, match=r"prefix token id 50256 \(config bos_token_id\) is outside the embedding's 370 rows"):
        prefix_token_id(None, config, rows=370)
    tokenizer = SimpleNamespace(bos_token_id=1)
    assert prefix_token_id(tokenizer, config, rows=370) == 1


def test_the_guard_judges_only_static_facts_it_has(gpt2_370: Path) -> None:
    from conformance.errors import CheckError
    from conformance.evidence import Evidence
    from conformance.probes.special_token_ids import require_special_ids_in_range
    from conformance.probes.static import probe_static

    evidence = Evidence()
    require_special_ids_in_range(evidence)  # no static facts: nothing to judge
    evidence.fail("static", "unreadable")
    require_special_ids_in_range(evidence)  # a failed static probe is its own rules' error
    evidence = Evidence()
    evidence.put("static", probe_static(Candidate(gpt2_370)))
    with pytest.raises(CheckError) as raised:
        require_special_ids_in_range(evidence)
    assert str(raised.value) == GPT2_MESSAGE

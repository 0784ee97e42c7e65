"""Every static check, judged on real tiny models from the zoo and on the real all-MiniLM-L6-v2: pass and fail."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from conformance import zoo
from conformance.candidate import Candidate
from conformance.results import RuleResult, validate_document
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

LLAMA_ARCHITECTURE = {
    "model_type": "llama",
    "num_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 512,
    "context_length": 256,
    "intermediate_size": 128,
}
GPT2_ARCHITECTURE = {
    "model_type": "gpt2",
    "num_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,  # no GQA: as many KV heads as attention heads
    "vocab_size": 512,
    "context_length": 256,
    "intermediate_size": 256,  # n_inner is null in config.json: GPT-2 uses 4 * n_embd
}
BERT_ARCHITECTURE = {
    "model_type": "bert",
    "num_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 512,
    "context_length": 256,
    "intermediate_size": 128,
}
ARCHITECTURES = {"llama_dir": LLAMA_ARCHITECTURE, "gpt2_dir": GPT2_ARCHITECTURE, "bert_dir": BERT_ARCHITECTURE}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def check(model_dir: Path, rules: list[dict], write_spec, **options) -> dict[str, RuleResult]:
    spec = load_spec(write_spec(rules))
    return {r.id: r for r in run(Candidate(model_dir), spec, RunOptions(log=lambda m: None, **options)).rules}


def rule(rule_id: str, check_name: str, level: str = "must", **fields) -> dict:
    return {"id": rule_id, "level": level, "check": check_name, **fields}


def statuses(results: dict[str, RuleResult]) -> dict[str, str]:
    return {rule_id: result.status for rule_id, result in results.items()}


def data_bytes(path: Path) -> int:
    """Bytes of tensor data in one safetensors file: the file minus its 8-byte length and JSON header."""
    with path.open("rb") as handle:
        (header_length,) = struct.unpack("<Q", handle.read(8))
    return path.stat().st_size - 8 - header_length


def header_numels(model_dir: Path) -> dict[str, int]:
    """Tensor name -> element count, read with the safetensors library itself."""
    from safetensors import safe_open

    numels = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), framework="numpy") as handle:
            for name in handle.keys():
                count = 1
                for dim in handle.get_slice(name).get_shape():
                    count *= dim
                numels[name] = count
    return numels


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def card_without_loading(model_dir: Path, parameters: int, **options) -> Path:
    """write_card with the parameter claim given, so the model is not loaded again."""
    claims = {"parameters": parameters, **options.pop("claims", {})}
    return zoo.write_card(model_dir, claims=claims, **options)


@pytest.fixture(scope="module")
def llama_parameters(llama_dir: Path) -> int:
    return zoo.parameter_count(llama_dir)


# --------------------------------------------------------------------------------------------------
# architecture.*
# --------------------------------------------------------------------------------------------------


def test_gpt2_config_uses_its_own_field_names(gpt2_dir: Path) -> None:
    """Guard for the normalization tests below: GPT-2's config really spells the fields differently."""
    config = json.loads((gpt2_dir / "config.json").read_text())
    assert "num_hidden_layers" not in config and "hidden_size" not in config and "max_position_embeddings" not in config
    assert (config["n_layer"], config["n_embd"], config["n_head"], config["n_positions"]) == (2, 64, 4, 256)


@pytest.mark.parametrize("fixture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("field", [f for f in LLAMA_ARCHITECTURE if f != "model_type"])
def test_numeric_architecture_field(fixture: str, field: str, write_spec, request: pytest.FixtureRequest) -> None:
    value = ARCHITECTURES[fixture][field]
    name = f"architecture.{field}"
    results = check(
        request.getfixturevalue(fixture),
        [
            rule("EQ", name, equals=value),
            rule("EQ-WRONG", name, equals=value + 1),
            rule("MIN", name, min=value),
            rule("MIN-ABOVE", name, min=value + 1),
            rule("MAX", name, max=value),
            rule("MAX-BELOW", name, max=value - 1),
            rule("RANGE", name, min=value - 1, max=value + 1),
            rule("IN", name, **{"in": [value * 2, value]}),
            rule("IN-WRONG", name, **{"in": [value * 2, value + 1]}),
            rule("NOT-IN", name, not_in=[value]),
        ],
        write_spec,
    )
    assert statuses(results) == {
        "EQ": "pass", "EQ-WRONG": "fail", "MIN": "pass", "MIN-ABOVE": "fail", "MAX": "pass", "MAX-BELOW": "fail",
        "RANGE": "pass", "IN": "pass", "IN-WRONG": "fail", "NOT-IN": "fail",
    }
    assert all(r.observed == value for r in results.values())
    assert f"is not {value + 1}" in results["EQ-WRONG"].message
    assert "below the minimum" in results["MIN-ABOVE"].message
    assert "above the maximum" in results["MAX-BELOW"].message


@pytest.mark.parametrize("fixture", sorted(ARCHITECTURES))
def test_model_type(fixture: str, write_spec, request: pytest.FixtureRequest) -> None:
    model_type = ARCHITECTURES[fixture]["model_type"]
    results = check(
        request.getfixturevalue(fixture),
        [
            rule("EQ", "architecture.model_type", equals=model_type),
            rule("EQ-WRONG", "architecture.model_type", equals="mistral"),
            rule("IN", "architecture.model_type", **{"in": ["mistral", model_type]}),
            rule("IN-WRONG", "architecture.model_type", **{"in": ["mistral", "qwen2"]}),
            rule("NOT-IN", "architecture.model_type", not_in=[model_type]),
            rule("PATTERN", "architecture.model_type", pattern=f"^{model_type[:3]}"),
            rule("PATTERN-WRONG", "architecture.model_type", pattern="^t5$"),
        ],
        write_spec,
    )
    assert statuses(results) == {
        "EQ": "pass", "EQ-WRONG": "fail", "IN": "pass", "IN-WRONG": "fail", "NOT-IN": "fail",
        "PATTERN": "pass", "PATTERN-WRONG": "fail",
    }
    assert results["EQ"].observed == model_type
    assert "mistral" in results["EQ-WRONG"].message


def test_config_field_by_dotted_path(llama_dir: Path, copy_model, write_spec) -> None:
    config = json.loads((llama_dir / "config.json").read_text())
    rope_theta = config["rope_parameters"]["rope_theta"]
    model = copy_model(llama_dir)
    edit_json(model / "config.json", lambda c: c.update(quantization={"bits": 4, "groups": [{"size": 128}, {"size": 64}]}))
    results = check(
        model,
        [
            rule("ROPE", "architecture.config", path="rope_parameters.rope_theta", equals=rope_theta),
            rule("ROPE-MIN", "architecture.config", path="rope_parameters.rope_theta", min=rope_theta * 10),
            rule("NESTED", "architecture.config", path="quantization.bits", equals=4),
            rule("LIST-INDEX", "architecture.config", path="quantization.groups.1.size", equals=64),
            rule("ACT", "architecture.config", path="hidden_act", **{"in": ["silu", "gelu"]}),
            rule("MISSING", "architecture.config", path="rope_scaling.factor", equals=2.0),
            rule("MISSING-INDEX", "architecture.config", path="quantization.groups.5.size", equals=64),
        ],
        write_spec,
    )
    assert statuses(results) == {
        "ROPE": "pass", "ROPE-MIN": "fail", "NESTED": "pass", "LIST-INDEX": "pass", "ACT": "pass",
        "MISSING": "fail", "MISSING-INDEX": "fail",
    }
    assert results["ROPE"].observed == rope_theta
    assert "rope_scaling.factor" in results["MISSING"].message


# --------------------------------------------------------------------------------------------------
# size.*
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["llama_dir", "tied_llama_dir", "gpt2_dir", "bert_dir", "sharded_dir", "minilm_dir"])
def test_parameters_equal_the_loaded_model(fixture: str, write_spec, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(fixture)
    expected = zoo.parameter_count(model)
    results = check(
        model,
        [
            rule("EQ", "size.parameters", equals=expected),
            rule("EQ-OFF-BY-ONE", "size.parameters", equals=expected + 1),
            rule("MAX", "size.parameters", max=expected - 1),
        ],
        write_spec,
    )
    assert results["EQ"].observed == expected
    assert statuses(results) == {"EQ": "pass", "EQ-OFF-BY-ONE": "fail", "MAX": "fail"}


def test_minilm_position_ids_buffer_is_not_a_parameter(minilm_dir: Path, write_spec) -> None:
    numels = header_numels(minilm_dir)
    assert numels["embeddings.position_ids"] == 512  # the int64 buffer is really stored in the file
    results = check(minilm_dir, [rule("P", "size.parameters", equals=sum(numels.values()) - 512)], write_spec)
    assert results["P"].status == "pass"


def test_tied_weights_stored_twice_count_once(tied_llama_dir: Path, copy_model, write_spec) -> None:
    """An exporter that writes lm_head.weight beside the tied embedding: transformers ties them, so they count once."""
    from safetensors.numpy import load_file, save_file

    model = copy_model(tied_llama_dir)
    tensors = load_file(str(model / "model.safetensors"))
    assert "lm_head.weight" not in tensors
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].copy()
    save_file(tensors, str(model / "model.safetensors"), metadata={"format": "pt"})
    expected = zoo.parameter_count(tied_llama_dir)
    assert zoo.parameter_count(model) == expected
    results = check(model, [rule("P", "size.parameters", equals=expected)], write_spec)
    assert results["P"].status == "pass", results["P"].message


def test_non_embedding_parameters(llama_dir: Path, write_spec, llama_parameters: int) -> None:
    numels = header_numels(llama_dir)
    expected = llama_parameters - numels["model.embed_tokens.weight"] - numels["lm_head.weight"]
    assert expected == llama_parameters - 2 * 512 * 64
    results = check(
        llama_dir,
        [
            rule("EQ", "size.non_embedding_parameters", equals=expected),
            rule("TOTAL", "size.non_embedding_parameters", equals=llama_parameters),
            rule("MAX", "size.non_embedding_parameters", max=expected),
        ],
        write_spec,
    )
    assert statuses(results) == {"EQ": "pass", "TOTAL": "fail", "MAX": "pass"}


@pytest.mark.parametrize("fixture", ["llama_dir", "gpt2_dir", "sharded_dir", "minilm_dir"])
def test_weight_bytes_equal_the_data_in_the_files(fixture: str, write_spec, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(fixture)
    expected = sum(data_bytes(file) for file in model.glob("*.safetensors"))
    results = check(
        model,
        [rule("EQ", "size.weight_bytes", equals=expected), rule("MAX", "size.weight_bytes", max=expected - 1)],
        write_spec,
    )
    assert statuses(results) == {"EQ": "pass", "MAX": "fail"}
    assert "bytes" in results["MAX"].message


def test_weight_bytes_of_float32_models_are_four_per_element(llama_dir: Path, minilm_dir: Path, write_spec, llama_parameters: int) -> None:
    assert check(llama_dir, [rule("B", "size.weight_bytes", equals=4 * llama_parameters)], write_spec)["B"].status == "pass"
    # MiniLM stores its 512 int64 position ids as well: in the bytes, not in the parameters.
    params = zoo.parameter_count(minilm_dir)
    results = check(minilm_dir, [rule("B", "size.weight_bytes", equals=4 * params + 8 * 512)], write_spec)
    assert results["B"].status == "pass", results["B"].message


def test_weight_dtypes(llama_dir: Path, write_spec) -> None:
    results = check(
        llama_dir,
        [
            rule("F32", "size.weight_dtypes", **{"in": ["F32"]}),
            rule("FLOATS", "size.weight_dtypes", **{"in": ["BF16", "F16", "F32"]}),
            rule("BF16", "size.weight_dtypes", **{"in": ["BF16"]}),
            rule("NOT-F32", "size.weight_dtypes", not_in=["F32"]),
            rule("EXACT", "size.weight_dtypes", equals=["F32"]),
            rule("EXACT-WRONG", "size.weight_dtypes", equals=["F32", "BF16"]),
        ],
        write_spec,
    )
    assert statuses(results) == {
        "F32": "pass", "FLOATS": "pass", "BF16": "fail", "NOT-F32": "fail", "EXACT": "pass", "EXACT-WRONG": "fail",
    }
    assert results["F32"].observed == ["F32"]
    assert "F32" in results["BF16"].message


def test_weight_dtypes_of_a_bfloat16_model(tmp_path: Path, write_spec) -> None:
    model = zoo.build_llama(tmp_path / "bf16", hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1,
                            intermediate_size=32, dtype="bfloat16", card=False)
    results = check(
        model,
        [rule("BF16", "size.weight_dtypes", **{"in": ["BF16"]}), rule("F32", "size.weight_dtypes", **{"in": ["F32"]}),
         rule("BYTES", "size.weight_bytes", equals=data_bytes(model / "model.safetensors"))],
        write_spec,
    )
    assert statuses(results) == {"BF16": "pass", "F32": "fail", "BYTES": "pass"}
    assert results["BYTES"].observed == 2 * zoo.parameter_count(model)


# --------------------------------------------------------------------------------------------------
# safety.*
# --------------------------------------------------------------------------------------------------


def test_weights_format_safetensors(llama_dir: Path, write_spec) -> None:
    results = check(
        llama_dir,
        [rule("DEFAULT", "safety.weights_format"), rule("IN", "safety.weights_format", **{"in": ["safetensors"]}),
         rule("NOT-IN", "safety.weights_format", not_in=["safetensors"])],
        write_spec,
    )
    assert statuses(results) == {"DEFAULT": "pass", "IN": "pass", "NOT-IN": "fail"}
    assert results["DEFAULT"].observed == ["safetensors"]


def test_weights_format_pickle_fails(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    (model / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")  # an empty pickled dict; never loaded
    results = check(
        model,
        [rule("DEFAULT", "safety.weights_format"), rule("IN", "safety.weights_format", **{"in": ["safetensors"]}),
         rule("ALLOW-PICKLE", "safety.weights_format", **{"in": ["safetensors", "pickle"]})],
        write_spec,
    )
    assert statuses(results) == {"DEFAULT": "fail", "IN": "fail", "ALLOW-PICKLE": "pass"}
    assert results["DEFAULT"].observed == ["pickle", "safetensors"]
    assert "pickle" in results["IN"].message


def test_weights_format_without_weights_fails(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    (model / "model.safetensors").unlink()
    results = check(model, [rule("F", "safety.weights_format")], write_spec)
    assert results["F"].status == "fail"
    assert "no weight files" in results["F"].message


def test_remote_code(llama_dir: Path, tmp_path: Path, write_spec) -> None:
    assert check(llama_dir, [rule("R", "safety.remote_code")], write_spec)["R"].status == "pass"
    evil = zoo.build_remote_code_model(tmp_path / "evil")
    result = check(evil, [rule("R", "safety.remote_code")], write_spec)["R"]
    assert result.status == "fail"
    assert "auto_map" in result.message and "AutoModelForCausalLM" in result.message
    assert "modeling_evil.py" in result.message


def test_python_file_alone_is_remote_code(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    (model / "custom").mkdir()
    (model / "custom" / "helpers.py").write_text("print('hi')\n")
    result = check(model, [rule("R", "safety.remote_code")], write_spec)["R"]
    assert result.status == "fail" and "custom/helpers.py" in result.message and "auto_map" not in result.message


def test_license(llama_dir: Path, write_spec) -> None:
    results = check(
        llama_dir,
        [
            rule("IN", "safety.license", **{"in": ["mit", "apache-2.0"]}),
            rule("IN-WRONG", "safety.license", **{"in": ["mit", "bsd-3-clause"]}),
            rule("NOT-IN", "safety.license", not_in=["apache-2.0"]),
            rule("PATTERN", "safety.license", pattern="^apache-"),
        ],
        write_spec,
    )
    assert statuses(results) == {"IN": "pass", "IN-WRONG": "fail", "NOT-IN": "fail", "PATTERN": "pass"}
    assert results["IN"].observed == "apache-2.0"


def test_license_other_names_the_license(llama_dir: Path, copy_model, write_spec, llama_parameters: int) -> None:
    model = copy_model(llama_dir)
    card_without_loading(model, llama_parameters, license="other", extra_metadata={"license_name": "acme-research-1.0"})
    results = check(
        model,
        [rule("OTHER", "safety.license", **{"in": ["other"]}), rule("OPEN", "safety.license", **{"in": ["mit", "apache-2.0"]})],
        write_spec,
    )
    assert statuses(results) == {"OTHER": "pass", "OPEN": "fail"}
    assert "acme-research-1.0" in results["OPEN"].message and "acme-research-1.0" in results["OTHER"].message


def test_license_without_card_or_license(llama_dir: Path, copy_model, write_spec) -> None:
    no_card = copy_model(llama_dir, "no-card")
    (no_card / "README.md").unlink()
    result = check(no_card, [rule("L", "safety.license", **{"in": ["mit"]})], write_spec)["L"]
    assert result.status == "fail" and "no model card" in result.message

    no_license = copy_model(llama_dir, "no-license")
    (no_license / "README.md").write_text("---\nlanguage: en\n---\n# A model\n")
    result = check(no_license, [rule("L", "safety.license", **{"in": ["mit"]})], write_spec)["L"]
    assert result.status == "fail" and "no license" in result.message


def test_checksums_pass_on_a_zoo_model(llama_dir: Path, sharded_dir: Path, write_spec) -> None:
    for model in (llama_dir, sharded_dir):
        result = check(model, [rule("C", "safety.checksums")], write_spec)["C"]
        assert result.status == "pass", result.message
        assert set(result.observed) == {p.name for p in model.glob("*.safetensors")}


def test_checksums_fail_after_one_byte_changes(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # the last byte of tensor data: the header (and every size rule) stays valid
    weights.write_bytes(bytes(data))
    results = check(model, [rule("C", "safety.checksums"), rule("P", "size.parameters", min=1)], write_spec)
    assert statuses(results) == {"C": "fail", "P": "pass"}
    assert "model.safetensors" in results["C"].message and "differs" in results["C"].message


def test_checksums_missing_from_the_card(llama_dir: Path, copy_model, write_spec, llama_parameters: int) -> None:
    model = copy_model(llama_dir)
    card_without_loading(model, llama_parameters, claims={"checksums": None})
    result = check(model, [rule("C", "safety.checksums")], write_spec)["C"]
    assert result.status == "fail" and "claims no checksums" in result.message


def test_checksums_require_all(sharded_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(sharded_dir)
    shards = sorted(p.name for p in model.glob("*.safetensors"))
    assert len(shards) >= 2
    card_without_loading(model, zoo.parameter_count(sharded_dir), claims={"checksums": {shards[-1]: None}})
    results = check(
        model,
        [rule("ALL", "safety.checksums"), rule("ALL-EXPLICIT", "safety.checksums", require_all=True),
         rule("SOME", "safety.checksums", require_all=False)],
        write_spec,
    )
    assert statuses(results) == {"ALL": "fail", "ALL-EXPLICIT": "fail", "SOME": "pass"}
    assert f"{shards[-1]}: no checksum in the card" in results["ALL"].message


def test_checksums_for_a_file_that_is_not_a_weight(llama_dir: Path, copy_model, write_spec, llama_parameters: int) -> None:
    model = copy_model(llama_dir)
    card_without_loading(model, llama_parameters, claims={"checksums": {"pytorch_model.bin": "0" * 64}})
    result = check(model, [rule("C", "safety.checksums", require_all=False)], write_spec)["C"]
    assert result.status == "fail" and "pytorch_model.bin: claimed but not a weight file" in result.message


# --------------------------------------------------------------------------------------------------
# tokenizer.*
# --------------------------------------------------------------------------------------------------


def test_tokenizer_present(llama_dir: Path, copy_model, write_spec) -> None:
    result = check(llama_dir, [rule("T", "tokenizer.present")], write_spec)["T"]
    assert result.status == "pass" and set(TOKENIZER_FILES) <= set(result.observed)

    model = copy_model(llama_dir)
    for name in TOKENIZER_FILES:
        (model / name).unlink()
    result = check(model, [rule("T", "tokenizer.present")], write_spec)["T"]
    assert result.status == "fail" and "no tokenizer files" in result.message


def test_tokenizer_present_but_unreadable(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    (model / "tokenizer.json").write_text('{"model": {"vocab": ')
    result = check(model, [rule("T", "tokenizer.present")], write_spec)["T"]
    assert result.status == "fail" and "tokenizer.json" in result.message


def test_vocab_matches_embeddings(llama_dir: Path, bert_dir: Path, minilm_dir: Path, write_spec) -> None:
    for model, size in ((llama_dir, 512), (bert_dir, 512), (minilm_dir, 30522)):
        results = check(
            model,
            [rule("FITS", "tokenizer.vocab_matches_embeddings"), rule("EXACT", "tokenizer.vocab_matches_embeddings", exact=True)],
            write_spec,
        )
        assert statuses(results) == {"FITS": "pass", "EXACT": "pass"}, model
        observed = results["EXACT"].observed
        assert (observed["tokenizer_vocab_size"], observed["embedding_rows"]) == (size, size)
        assert max(observed["vocab_sources"].values()) == size  # each file's own size is evidence too


def test_tokenizer_with_more_ids_than_embedding_rows(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    zoo.train_tokenizer(model, "bpe", 600)  # a tokenizer for a bigger model, shipped with a 512-row embedding
    results = check(
        model,
        [rule("FITS", "tokenizer.vocab_matches_embeddings"), rule("EXACT", "tokenizer.vocab_matches_embeddings", exact=True)],
        write_spec,
    )
    assert statuses(results) == {"FITS": "fail", "EXACT": "fail"}
    assert "600 ids" in results["FITS"].message and "512 rows" in results["FITS"].message


def test_added_token_beyond_the_embedding(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    edit_json(model / "tokenizer.json", lambda t: t["added_tokens"].append(
        {"id": 512, "content": "<|tool|>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    ))
    result = check(model, [rule("FITS", "tokenizer.vocab_matches_embeddings")], write_spec)["FITS"]
    assert result.status == "fail" and (result.observed["tokenizer_vocab_size"], result.observed["embedding_rows"]) == (513, 512)
    assert result.observed["vocab_sources"] == {"tokenizer.json model.vocab": 512, "tokenizer.json added_tokens": 513}


def test_tokenizer_smaller_than_the_embedding(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    zoo.train_tokenizer(model, "bpe", 300)
    results = check(
        model,
        [rule("FITS", "tokenizer.vocab_matches_embeddings"), rule("EXACT", "tokenizer.vocab_matches_embeddings", exact=True)],
        write_spec,
    )
    assert statuses(results) == {"FITS": "pass", "EXACT": "fail"}
    assert "300 ids" in results["EXACT"].message and "512 rows" in results["EXACT"].message


def test_special_tokens(llama_dir: Path, bert_dir: Path, minilm_dir: Path, write_spec) -> None:
    llama = check(
        llama_dir,
        [rule("BOS-EOS", "tokenizer.special_tokens", required=["bos", "eos"]),
         rule("MASK", "tokenizer.special_tokens", required=["mask"]),
         rule("PAD-UNK", "tokenizer.special_tokens", required=["pad", "unk"])],
        write_spec,
    )
    assert statuses(llama) == {"BOS-EOS": "pass", "MASK": "fail", "PAD-UNK": "pass"}
    assert llama["BOS-EOS"].observed["bos"] == "<s>" and llama["BOS-EOS"].observed["eos"] == "</s>"
    assert "mask token not defined" in llama["MASK"].message
    for model in (bert_dir, minilm_dir):
        bert = check(
            model,
            [rule("CLS-SEP-MASK", "tokenizer.special_tokens", required=["cls", "sep", "mask"]),
             rule("BOS", "tokenizer.special_tokens", required=["bos"])],
            write_spec,
        )
        assert statuses(bert) == {"CLS-SEP-MASK": "pass", "BOS": "fail"}, model
        assert bert["CLS-SEP-MASK"].observed["mask"] == "[MASK]"


def test_special_token_outside_the_vocabulary(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    edit_json(model / "special_tokens_map.json", lambda m: m.update(eos_token="<|im_end|>"))
    result = check(model, [rule("S", "tokenizer.special_tokens", required=["bos", "eos"])], write_spec)["S"]
    assert result.status == "fail"
    assert "<|im_end|>" in result.message and "not in the vocabulary" in result.message and "bos" not in result.message


# --------------------------------------------------------------------------------------------------
# card.*
# --------------------------------------------------------------------------------------------------

CARD_FIELDS = ["license", "language", "library_name", "pipeline_tag"]


def test_card_present(llama_dir: Path, copy_model, write_spec) -> None:
    assert check(llama_dir, [rule("C", "card.present")], write_spec)["C"].status == "pass"
    model = copy_model(llama_dir)
    (model / "README.md").unlink()
    result = check(model, [rule("C", "card.present")], write_spec)["C"]
    assert result.status == "fail" and "no card" in result.message


def test_card_fields(llama_dir: Path, write_spec) -> None:
    results = check(
        llama_dir,
        [rule("HF", "card.fields", required=CARD_FIELDS), rule("DATASETS", "card.fields", required=["license", "datasets", "base_model"])],
        write_spec,
    )
    assert statuses(results) == {"HF": "pass", "DATASETS": "fail"}
    assert results["DATASETS"].message == "missing datasets; missing base_model"


def test_card_fields_schema_violations(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    zoo.write_card(model, claims={"parameters": "many"})
    result = check(model, [rule("F", "card.fields", required=["license"])], write_spec)["F"]
    assert result.status == "fail"
    assert "conformance.parameters" in result.message and "'many'" in result.message

    model = copy_model(llama_dir, "other-without-name")
    zoo.write_card(model, license="other", claims={"parameters": 1})
    result = check(model, [rule("F", "card.fields", required=["license"])], write_spec)["F"]
    assert result.status == "fail" and "license_name" in result.message


def test_card_sections(llama_dir: Path, copy_model, write_spec, llama_parameters: int) -> None:
    required = list(zoo.CARD_SECTIONS)
    assert check(llama_dir, [rule("S", "card.sections", required=required)], write_spec)["S"].status == "pass"

    model = copy_model(llama_dir)
    card_without_loading(model, llama_parameters, sections=[s for s in zoo.CARD_SECTIONS if s != "Limitations"])
    result = check(model, [rule("S", "card.sections", required=required)], write_spec)["S"]
    assert result.status == "fail" and result.message == "missing sections: Limitations"


def test_card_sections_match_loosely_but_not_in_code(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    readme = model / "README.md"
    text = readme.read_text()
    text = text.replace("## Intended use", "## INTENDED USE").replace("## Limitations", "### Limitations and bias")
    text = text.replace("## Evaluation", "```markdown\n## Evaluation\n```")  # a heading in a code block is not one
    readme.write_text(text)
    results = check(
        model,
        [rule("LOOSE", "card.sections", required=["intended use", "Limitations", "training DATA"]),
         rule("FENCED", "card.sections", required=["Evaluation"]),
         rule("PREFIX-ONLY", "card.sections", required=["Limit"])],
        write_spec,
    )
    assert statuses(results) == {"LOOSE": "pass", "FENCED": "fail", "PREFIX-ONLY": "fail"}
    assert "INTENDED USE" in results["LOOSE"].observed and "Limitations and bias" in results["LOOSE"].observed


def test_card_claims_true(llama_dir: Path, gpt2_dir: Path, bert_dir: Path, sharded_dir: Path, write_spec) -> None:
    for model in (llama_dir, gpt2_dir, bert_dir, sharded_dir):
        result = check(model, [rule("C", "card.claims")], write_spec)["C"]
        assert result.status == "pass", (model, result.message)
        assert result.observed["parameters"] == result.expected["parameters"]
        assert result.observed["architecture.num_layers"] == 2


def test_card_claims_sizes_and_bytes(llama_dir: Path, copy_model, write_spec, llama_parameters: int) -> None:
    model = copy_model(llama_dir)
    non_embedding = llama_parameters - 2 * 512 * 64
    weight_bytes = data_bytes(model / "model.safetensors")
    card_without_loading(model, llama_parameters, claims={"non_embedding_parameters": non_embedding, "weight_bytes": weight_bytes})
    assert check(model, [rule("C", "card.claims")], write_spec)["C"].status == "pass"
    card_without_loading(model, llama_parameters, claims={"weight_bytes": weight_bytes // 2})
    result = check(model, [rule("C", "card.claims")], write_spec)["C"]
    assert result.status == "fail" and result.message == f"weight_bytes: claimed {weight_bytes // 2}, measured {weight_bytes}"


def test_card_claims_wrong_parameter_count(llama_dir: Path, copy_model, write_spec, llama_parameters: int) -> None:
    model = copy_model(llama_dir)
    card_without_loading(model, llama_parameters + 1000)
    result = check(model, [rule("C", "card.claims")], write_spec)["C"]
    assert result.status == "fail"
    assert result.message == f"parameters: claimed {llama_parameters + 1000}, measured {llama_parameters}"


def test_card_claims_tolerance(llama_dir: Path, copy_model, write_spec, llama_parameters: int) -> None:
    model = copy_model(llama_dir)
    near = round(llama_parameters * 1.005)  # half a percent off
    far = round(llama_parameters * 1.02)
    card_without_loading(model, near)
    results = check(
        model,
        [rule("EXACT", "card.claims"), rule("ONE-PERCENT", "card.claims", tolerance=0.01),
         rule("TENTH", "card.claims", tolerance=0.001)],
        write_spec,
    )
    assert statuses(results) == {"EXACT": "fail", "ONE-PERCENT": "pass", "TENTH": "fail"}
    card_without_loading(model, far)
    assert check(model, [rule("C", "card.claims", tolerance=0.01)], write_spec)["C"].status == "fail"


def test_card_claims_wrong_architecture(llama_dir: Path, copy_model, write_spec, llama_parameters: int) -> None:
    model = copy_model(llama_dir)
    card_without_loading(model, llama_parameters, claims={"architecture": {"num_layers": 3, "model_type": "mistral"}})
    result = check(model, [rule("C", "card.claims")], write_spec)["C"]
    assert result.status == "fail"
    assert "architecture.num_layers: claimed 3, measured 2" in result.message
    assert "architecture.model_type: claimed mistral, measured llama" in result.message
    assert "parameters:" not in result.message.replace("_parameters", "")


def test_card_without_claims(llama_dir: Path, copy_model, write_spec, minilm_dir: Path) -> None:
    model = copy_model(llama_dir)
    (model / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# A model\n\n## Limitations\n\nMany.\n")
    prose_only = copy_model(llama_dir, "prose-only")
    (prose_only / "README.md").write_text("---\nlicense: mit\nconformance:\n  intended_use: tests\n  limitations: many\n---\n# A model\n")
    for folder in (model, prose_only, minilm_dir):
        result = check(folder, [rule("C", "card.claims")], write_spec)["C"]
        assert result.status == "fail" and "no measurable conformance claims" in result.message, folder


def test_card_rules_without_a_card(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    (model / "README.md").unlink()
    results = check(
        model,
        [rule("FIELDS", "card.fields", required=["license"]), rule("SECTIONS", "card.sections", required=["Limitations"]),
         rule("CLAIMS", "card.claims"), rule("SUMS", "safety.checksums")],
        write_spec,
    )
    assert statuses(results) == {"FIELDS": "error", "SECTIONS": "error", "CLAIMS": "error", "SUMS": "error"}
    assert all("no card" in r.message for r in results.values())


# --------------------------------------------------------------------------------------------------
# Shipped standards on real models
# --------------------------------------------------------------------------------------------------


def test_minilm_against_baseline_safety(minilm_dir: Path) -> None:
    """The real all-MiniLM-L6-v2: safetensors only, no code, apache-2.0, a card, a 30,522-token WordPiece vocabulary."""
    readme = (minilm_dir / "README.md").read_text()
    assert "license: apache-2.0" in readme and "pipeline_tag: sentence-similarity" in readme
    assert not list(minilm_dir.rglob("*.py")) and not list(minilm_dir.glob("*.bin"))

    result = run(Candidate(minilm_dir), load_spec("baseline-safety"), RunOptions(log=lambda m: None))
    by_id = {r.id: r for r in result.rules}
    assert {rule_id: r.status for rule_id, r in by_id.items()} == {
        "SAFE-FORMAT": "pass",
        "SAFE-SCAN": "pass",
        "SAFE-CODE": "pass",
        "SAFE-LICENSE": "pass",
        "CARD-PRESENT": "pass",
        "CARD-FIELDS": "pass",
        "TOKENIZER-PRESENT": "pass",
        "TOKENIZER-FITS": "pass",
    }, {r.id: r.message for r in result.rules if r.status != "pass"}
    assert by_id["SAFE-FORMAT"].observed == ["safetensors"]
    assert by_id["SAFE-LICENSE"].observed == "apache-2.0"
    assert by_id["TOKENIZER-FITS"].observed == {
        "tokenizer_vocab_size": 30522,
        "embedding_rows": 30522,
        "vocab_sources": {"tokenizer.json model.vocab": 30522, "tokenizer.json added_tokens": 104, "vocab.txt": 30522},
    }
    document = result.to_document()
    assert validate_document(document) == []
    assert document["summary"]["conformant"] is True and document["summary"]["passed"] == 8
    assert document["model"]["sha256"] and list(document["model"]["weight_files"]) == ["model.safetensors"]
    json.dumps(document, allow_nan=False)  # the document is plain JSON


def test_minilm_without_its_card_is_not_conformant(minilm_dir: Path, tmp_path: Path) -> None:
    model = shutil.copytree(minilm_dir, tmp_path / "minilm")
    (model / "README.md").unlink()
    result = run(Candidate(model), load_spec("baseline-safety"), RunOptions(log=lambda m: None, hash_weights="never"))
    by_id = {r.id: r.status for r in result.rules}
    assert by_id == {
        "SAFE-FORMAT": "pass", "SAFE-SCAN": "pass", "SAFE-CODE": "pass", "SAFE-LICENSE": "fail",
        "CARD-PRESENT": "fail", "CARD-FIELDS": "error", "TOKENIZER-PRESENT": "pass", "TOKENIZER-FITS": "pass",
    }
    assert result.conformant is False
    assert validate_document(result.to_document()) == []


def test_tiny_llama_against_small_causal_lm_release(llama_dir: Path) -> None:
    result = run(Candidate(llama_dir), load_spec("small-causal-lm-release"), RunOptions(log=lambda m: None))
    by_id = {r.id: r for r in result.rules}
    assert set(by_id) >= {"SAFE-FORMAT", "SAFE-SCAN", "ARCH-TYPE", "ARCH-CONTEXT", "SIZE-PARAMS", "CARD-CLAIMS", "CARD-CHECKSUMS"}
    not_passing = {r.id: (r.level, r.status, r.message) for r in result.rules if r.status != "pass"}
    assert set(not_passing) == {"ARCH-CONTEXT"}, not_passing
    assert not_passing["ARCH-CONTEXT"][:2] == ("should", "fail")
    assert by_id["ARCH-CONTEXT"].observed == 256
    assert all(r.status == "pass" for r in result.rules if r.level == "must")
    document = result.to_document()
    assert document["summary"]["conformant"] is True and document["summary"]["warnings"] == 1
    assert validate_document(document) == []

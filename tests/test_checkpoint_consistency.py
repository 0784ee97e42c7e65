"""Checkpoints whose files contradict themselves: tensors held twice, an index that disagrees with its shards,
and JSON files that repeat a key. Counts are compared with transformers' own `sum(p.numel())`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conformance.candidate import Candidate
from conformance.probes import json_keys
from conformance.probes.json_keys import duplicate_keys, read_json_keys
from conformance.probes.static import probe_static
from conformance.results import RuleResult
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

INDEX = "model.safetensors.index.json"
SIZE_RULES = ["size.parameters", "size.non_embedding_parameters", "size.weight_bytes", "size.weight_dtypes"]


def transformers_parameters(model_dir: Path) -> int:
    """transformers' own count: the model its config builds, `sum(p.numel() for p in model.parameters())`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())


def check(model_dir: Path, rules: list[dict], write_spec) -> dict[str, RuleResult]:
    spec = load_spec(write_spec(rules))
    result = run(Candidate(model_dir), spec, RunOptions(log=lambda m: None, hash_weights="never"))
    return {r.id: r for r in result.rules}


def size_rules() -> list[dict]:
    comparisons = {"size.weight_dtypes": {"in": ["F32"]}}
    return [{"id": name, "level": "must", "check": name, **comparisons.get(name, {"min": 1})} for name in SIZE_RULES]


def keys_rule() -> list[dict]:
    return [{"id": "KEYS", "level": "must", "check": "files.json_keys_unique"}]


def weight_map(model_dir: Path) -> dict[str, str]:
    return json.loads((model_dir / INDEX).read_text())["weight_map"]


def write_weight_map(model_dir: Path, mapping: dict[str, str]) -> None:
    index = json.loads((model_dir / INDEX).read_text())
    index["weight_map"] = mapping
    (model_dir / INDEX).write_text(json.dumps(index))


def add_tensor(shard: Path, name: str, source: Path) -> None:
    """Write tensor `name` (read from the file `source`) into `shard` as well."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(shard)
    tensors[name] = load_file(source)[name]
    save_file(tensors, shard, metadata={"format": "pt"})


# --------------------------------------------------------------------------------------------------
# A tensor stored in two files
# --------------------------------------------------------------------------------------------------


def test_a_tensor_in_two_shards_is_an_error_and_counted_once(sharded_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(sharded_dir)
    mapping = weight_map(model)
    shards = sorted(set(mapping.values()))
    assert len(shards) > 2
    name = "model.embed_tokens.weight"
    home = mapping[name]
    other = next(shard for shard in reversed(shards) if shard != home)
    before = probe_static(Candidate(model))
    add_tensor(model / other, name, model / home)

    facts = probe_static(Candidate(model))
    expected = transformers_parameters(model)
    assert before.parameters["parameters"] == expected
    assert facts.parameters["parameters"] == expected  # counted once, not expected + 512 * 64
    assert len(facts.weights.errors) == 1
    error = facts.weights.errors[0]
    assert error.startswith("1 tensor name stored in more than one weight file")
    assert f"{name} in 2 files ({min(home, other)}, {max(home, other)})" in error

    results = check(model, size_rules(), write_spec)
    assert {rule_id: r.status for rule_id, r in results.items()} == dict.fromkeys(SIZE_RULES, "error")
    assert all(name in r.message for r in results.values())


def test_files_without_an_index_holding_the_same_tensors(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    (model / "model-copy.safetensors").write_bytes((model / "model.safetensors").read_bytes())
    facts = probe_static(Candidate(model))
    tensor_count = len(facts.weights.tensors) // 2
    assert facts.parameters["parameters"] == transformers_parameters(model)
    [error] = facts.weights.errors
    assert error.startswith(f"{tensor_count} tensor names stored in more than one weight file")
    assert error.count("(model-copy.safetensors, model.safetensors)") == 5  # five named, the rest counted
    assert error.endswith(f"and {tensor_count - 5} more tensors")
    assert check(model, size_rules()[:1], write_spec)["size.parameters"].status == "error"


# --------------------------------------------------------------------------------------------------
# An index that disagrees with its shards
# --------------------------------------------------------------------------------------------------


def test_index_places_a_tensor_in_a_shard_that_does_not_hold_it(sharded_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(sharded_dir)
    mapping = weight_map(model)
    name = "model.layers.0.input_layernorm.weight"  # its shard holds other tensors too, so it is still read
    held_by = mapping[name]
    assert list(mapping.values()).count(held_by) > 1
    wrong = next(shard for shard in sorted(set(mapping.values())) if shard != held_by)
    mapping[name] = wrong
    write_weight_map(model, mapping)

    facts = probe_static(Candidate(model))
    assert facts.weights.errors == [f"{INDEX} places 1 tensor in files that do not hold them: {name} in {wrong} (held by {held_by})"]
    assert facts.parameters["parameters"] == transformers_parameters(model)
    assert check(model, size_rules()[:1], write_spec)["size.parameters"].status == "error"


def test_index_moving_a_shards_only_tensor_leaves_it_unread(sharded_dir: Path, copy_model) -> None:
    model = copy_model(sharded_dir)
    mapping = weight_map(model)
    name = "lm_head.weight"
    assert list(mapping.values()).count(mapping[name]) == 1  # the shard holds lm_head alone: no longer listed
    wrong = next(shard for shard in sorted(set(mapping.values())) if shard != mapping[name])
    mapping[name] = wrong
    write_weight_map(model, mapping)
    assert probe_static(Candidate(model)).weights.errors == [
        f"{INDEX} places 1 tensor in files that do not hold them: {name} in {wrong} (in no file the index names)"
    ]


def test_a_shard_holding_a_tensor_the_index_does_not_list(sharded_dir: Path, copy_model) -> None:
    model = copy_model(sharded_dir)
    mapping = weight_map(model)
    shard = mapping.pop("model.norm.weight")
    write_weight_map(model, mapping)
    facts = probe_static(Candidate(model))
    assert facts.weights.errors == [f"1 tensor held by a shard but not listed in {INDEX}: model.norm.weight in {shard}"]


def test_index_lists_a_tensor_no_file_holds(sharded_dir: Path, copy_model) -> None:
    model = copy_model(sharded_dir)
    mapping = weight_map(model)
    shard = mapping["model.norm.weight"]
    mapping.update({f"model.ghost.{i}.weight": shard for i in range(7)})
    write_weight_map(model, mapping)
    [error] = probe_static(Candidate(model)).weights.errors
    assert error.startswith(f"{INDEX} places 7 tensors in files that do not hold them: model.ghost.0.weight in {shard} (in no file the index names)")
    assert error.endswith("; and 2 more tensors")


def test_a_shard_the_index_maps_to_but_cannot_be_read_is_not_compared(sharded_dir: Path, copy_model) -> None:
    model = copy_model(sharded_dir)
    shard = weight_map(model)["model.norm.weight"]
    (model / shard).write_bytes(b"\x00" * 4)
    errors = probe_static(Candidate(model)).weights.errors
    assert errors == [f"{shard}: unreadable safetensors header: file shorter than the 8-byte header length"]


def test_a_consistent_sharded_checkpoint_has_no_error(sharded_dir: Path) -> None:
    facts = probe_static(Candidate(sharded_dir))
    assert facts.weights.errors == []
    assert facts.parameters["parameters"] == transformers_parameters(sharded_dir)


# --------------------------------------------------------------------------------------------------
# Repeated keys in the model's JSON files
# --------------------------------------------------------------------------------------------------


def test_config_with_two_model_types_fails_naming_key_and_values(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    text = (model / "config.json").read_text()
    assert '"model_type": "llama"' in text
    (model / "config.json").write_text(text.rstrip().rstrip("}") + ',\n  "model_type": "gpt2"\n}\n')
    assert json.loads((model / "config.json").read_text())["model_type"] == "gpt2"  # what every parser keeps

    facts = read_json_keys(Candidate(model))
    assert facts.duplicate_count == 1 and facts.duplicates_by_file == {"config.json": 1} and facts.errors == []
    duplicate = facts.duplicates_of("config.json", "model_type")
    assert duplicate is not None and duplicate.values == ['"llama"', '"gpt2"'] and duplicate.last == '"gpt2"'
    assert duplicate.conflicting

    result = check(model, keys_rule(), write_spec)["KEYS"]
    assert result.status == "fail"
    assert result.observed == ['config.json: model_type (2 times, last "gpt2" wins over "llama")']
    assert result.message == '1 duplicated key: config.json: model_type (2 times, last "gpt2" wins over "llama")'


def test_an_architecture_key_repeated_with_different_values_errors_the_architecture_rules(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    text = (model / "config.json").read_text()
    rules = [{"id": "TYPE", "level": "must", "check": "architecture.model_type", "in": ["llama", "gpt2"]},
             {"id": "LAYERS", "level": "must", "check": "architecture.num_layers", "min": 1}]
    assert {r.status for r in check(model, rules, write_spec).values()} == {"pass"}
    (model / "config.json").write_text(text.rstrip().rstrip("}") + ',\n  "model_type": "gpt2",\n  "text_config": {"num_hidden_layers": 2, "num_hidden_layers": 9}\n}\n')
    facts = probe_static(Candidate(model))
    assert facts.architecture_error == (
        'config.json is ambiguous: config.json: model_type (2 times, last "gpt2" wins over "llama"); '
        "config.json: text_config.num_hidden_layers (2 times, last 9 wins over 2)"
    )
    results = check(model, rules, write_spec)
    assert {r.status for r in results.values()} == {"error"}
    assert "ambiguous" in results["TYPE"].message


def test_a_repeated_key_with_the_same_value_or_outside_the_architecture_leaves_it_alone(llama_dir: Path, copy_model) -> None:
    model = copy_model(llama_dir)
    text = (model / "config.json").read_text()
    (model / "config.json").write_text(text.rstrip().rstrip("}") + ',\n  "model_type": "llama",\n  "use_cache": false\n}\n')
    assert probe_static(Candidate(model)).architecture_error is None


def test_repeated_keys_nested_deep_are_found_with_their_path(llama_dir: Path, copy_model) -> None:
    model = copy_model(llama_dir)
    deep = '{"x": ' * 40 + '{"leaf": 1, "leaf": 1}' + "}" * 40
    (model / "generation_config.json").write_text(
        '{"do_sample": false, "nested": {"list": [0, {"a": {"b.c": 1, "b.c": [1, 2], "b.c": {"k": 1}}}]}, "deep": ' + deep + "}"
    )
    tokenizer_config = json.loads((model / "tokenizer_config.json").read_text())
    text = json.dumps(tokenizer_config)
    (model / "tokenizer_config.json").write_text(text[:-1] + ', "added_tokens_decoder": {"0": {"content": "<s>", "content": "<s>"}}}')

    facts = read_json_keys(Candidate(model))
    described = [d.describe() for d in facts.duplicates]
    assert described == [
        'generation_config.json: nested.list[1].a["b.c"] (3 times, last {1 keys} wins over 1, [2 items])',
        "generation_config.json: deep" + ".x" * 40 + ".leaf (2 times, same value 1)",
        'tokenizer_config.json: added_tokens_decoder["0"].content (2 times, same value "<s>")',
    ]
    assert facts.duplicate_count == 4  # two repeats of "b.c", one of leaf, one of content


def test_hostile_json_files_are_bounded(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    (model / "many.json").write_text("{" + ",".join(f'"k{i}": 1, "k{i}": 2' for i in range(100_000)) + "}")
    (model / "one-key.json").write_text("{" + ",".join(f'"a": {i}' for i in range(100_000)) + "}")
    (model / "deep.json").write_text("[" * 100_000 + "]" * 100_000)

    facts = read_json_keys(Candidate(model))
    assert facts.duplicates_by_file == {"many.json": 100_000, "one-key.json": 99_999}
    assert facts.duplicate_count == 199_999
    assert len(facts.duplicates) == json_keys.MAX_REPORTED
    assert facts.duplicates[0].describe() == "many.json: k0 (2 times, last 2 wins over 1)"
    assert facts.errors == ["deep.json: nests deeper than the JSON parser goes"]

    result = check(model, keys_rule(), write_spec)["KEYS"]
    assert result.status == "fail"
    assert len(result.observed) == json_keys.MAX_REPORTED
    assert result.message.startswith("199999 duplicated keys: many.json: k0 (2 times")
    assert "; and 199979 more (also not read: deep.json: nests deeper than the JSON parser goes)" in result.message


def test_one_key_repeated_keeps_a_few_of_its_values() -> None:
    found, total = duplicate_keys("{" + ",".join(f'"a": {i}' for i in range(1000)) + "}", "x.json")
    assert total == 999
    [duplicate] = found
    assert duplicate.count == 1000 and duplicate.values == ["0", "1", "2", "3", "4"] and duplicate.last == "999"
    long_value, _ = duplicate_keys('{"k": "' + "v" * 1000 + '", "k": 1}', "x.json")
    assert len(long_value[0].values[0]) <= json_keys.MAX_TEXT_CHARS + 2


def test_unread_files_error_the_rule_when_nothing_is_duplicated(llama_dir: Path, copy_model, write_spec, monkeypatch) -> None:
    model = copy_model(llama_dir)
    (model / "deep.json").write_text("{\"a\": " * 5_000 + "1" + "}" * 5_000)
    (model / "latin1.json").write_bytes(b'{"caf\xe9": 1}')
    outside = model.parent / "outside.json"
    outside.write_text('{"a": 1, "a": 2}')
    os.symlink(outside, model / "linked.json")

    result = check(model, keys_rule(), write_spec)["KEYS"]
    assert result.status == "error"
    assert result.message.startswith("could not check every JSON file: deep.json: nests deeper than the JSON parser goes; ")
    assert "latin1.json: " in result.message and "utf-8" in result.message
    assert "linked.json" in result.message  # a link out of the folder is refused, never followed

    monkeypatch.setattr(json_keys, "MAX_JSON_FILES", 2)
    assert read_json_keys(Candidate(llama_dir)).errors[0].endswith("JSON files; only the first 2 by name were read")
    monkeypatch.setattr(json_keys, "MAX_JSON_FILES", 64)
    monkeypatch.setattr(json_keys, "MAX_FILE_BYTES", 1000)
    errors = read_json_keys(Candidate(llama_dir)).errors
    size = (llama_dir / "tokenizer.json").stat().st_size
    assert errors == [f"tokenizer.json is {size} bytes, over the 1000-byte limit"]


def test_clean_models_pass(llama_dir: Path, sharded_dir: Path, minilm_dir: Path, write_spec) -> None:
    for model in (llama_dir, sharded_dir, minilm_dir):
        result = check(model, keys_rule(), write_spec)["KEYS"]
        assert result.status == "pass", (model, result.message)
    facts = read_json_keys(Candidate(sharded_dir))
    assert INDEX in facts.files and "config.json" in facts.files and "tokenizer.json" in facts.files


def test_release_standard_requires_unique_json_keys() -> None:
    rules = {rule.id: rule for rule in load_spec("small-causal-lm-release").rules}
    assert rules["FILES-JSON-KEYS"].check == "files.json_keys_unique"
    assert rules["FILES-JSON-KEYS"].level == "must"
    assert "FILES-JSON-KEYS" in {rule.id for rule in load_spec("small-causal-lm-leaderboard").rules}


def test_a_large_tokenizer_json_is_parsed_once_for_the_tokenizer_facts_and_the_key_check(llama_dir: Path, copy_model, monkeypatch) -> None:
    # Both read tokenizer.json; on a 70B checkpoint's 2 MB file a second parse was the static rules' largest cost.
    model = copy_model(llama_dir)
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    tokenizer["padding_for_size"] = ["x" * 100] * 4_000  # over the size below which a file is parsed again
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    parses: list[int] = []
    real_loads = json.loads

    def counting_loads(data, **kwargs):
        if kwargs.get("object_pairs_hook") is not None:
            parses.append(len(data))
        return real_loads(data, **kwargs)

    monkeypatch.setattr(json_keys.json, "loads", counting_loads)
    json_keys._LAST_PARSE.clear()
    candidate = Candidate(model)
    facts = probe_static(candidate)
    keys = read_json_keys(candidate)
    size = (model / "tokenizer.json").stat().st_size
    assert parses.count(size) == 1 and facts.tokenizer.vocab_size and keys.errors == [] and "tokenizer.json" in keys.files

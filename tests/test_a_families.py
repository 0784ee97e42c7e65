"""The family table and the issue's examples: each right answer is transformers' loaded model's figure.

Tiny models are built with transformers (random init, no download) and saved as `save_pretrained` writes
them; the static probe (no torch) and the roofline are compared with the loaded model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.candidate import Candidate
from conformance.families import (
    MAX_NESTING,
    MAX_UNDECLARED_SUB_CONFIGS,
    covered_model_types,
    excluded_families,
    family,
    table,
    tied_word_embeddings,
    with_family_defaults,
)
from conformance.probes import roofline
from conformance.probes.architecture import normalize_architecture
from conformance.probes.static import probe_static

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY_LLAMA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "vocab_size": 49152}
TINY_CLIP = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "image_size": 32, "patch_size": 8, "projection_dim": 32}


def _save(model: Any, folder: Path, drop: tuple[str, ...] = (), drop_nested: tuple[str, ...] = ()) -> Path:
    """save_pretrained, then take keys out of config.json (top level, and `text_config`'s for `drop_nested`)."""
    model.save_pretrained(folder, safe_serialization=True)
    config = json.loads((folder / "config.json").read_text())
    for key in drop:
        config.pop(key, None)
    for key in drop_nested:
        config.get("text_config", {}).pop(key, None)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _loaded_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


# --- the table -------------------------------------------------------------------------------------


def test_table_covers_the_lm_families_and_lists_what_it_cannot_instantiate() -> None:
    covered = covered_model_types()
    with_heads = [name for name in covered if family(name).heads]  # type: ignore[union-attr]
    assert len(with_heads) >= 300
    for name, head in (("llama", "causal-lm"), ("t5", "seq2seq-lm"), ("bert", "masked-lm"), ("llava", "image-text-to-text")):
        assert head in family(name).heads  # type: ignore[union-attr]
    assert family("llama").head_classes["causal-lm"] == "LlamaForCausalLM"  # type: ignore[union-attr]
    assert family("clip_vision_model") is not None and family("clip_vision_model").heads == ()  # type: ignore[union-attr]
    assert "gemma4_assistant" in excluded_families() and "hidden_size_per_layer_input" in excluded_families()["gemma4_assistant"]
    assert table()["transformers_version"] == transformers.__version__


def test_family_facts_come_from_the_config_classes() -> None:
    llama = family("llama")
    assert llama is not None and llama.config_class == "LlamaConfig"
    assert llama.defaults["tie_word_embeddings"] is False and llama.defaults["head_dim"] is None  # declared, not derived
    assert family("gpt2").attribute_map["hidden_size"] == "n_embd"  # type: ignore[union-attr]
    assert family("llava").sub_configs == {"text_config": "llama", "vision_config": "clip_vision_model"}  # type: ignore[union-attr]
    assert family("no_such_family") is None and family("") is None and family(None) is None  # type: ignore[arg-type]


def test_with_family_defaults_fills_absent_keys_only() -> None:
    config = {"model_type": "gpt2", "hidden_size": 64, "vocab_size": 100}
    filled = with_family_defaults(config)
    assert "n_embd" not in filled  # present under its alias
    assert filled["vocab_size"] == 100 and filled["n_layer"] == 12 and filled["n_inner"] is None
    assert config == {"model_type": "gpt2", "hidden_size": 64, "vocab_size": 100}  # not changed
    nested = with_family_defaults({"model_type": "llava", "text_config": {"hidden_size": 64}})
    assert nested["text_config"]["model_type"] == "llama" and nested["text_config"]["hidden_size"] == 64
    assert nested["text_config"]["num_hidden_layers"] == 32 and nested["vision_config"]["model_type"] == "clip_vision_model"
    assert with_family_defaults({"model_type": "unknown", "x": 1}) == {"model_type": "unknown", "x": 1}


def test_with_family_defaults_bounds_hostile_nesting() -> None:
    config: dict[str, Any] = {"model_type": "llama"}
    current = config
    for _ in range(50):
        current["text_config"] = {"model_type": "llava"}
        current = current["text_config"]
    filled = with_family_defaults(config)
    depth, node = 0, filled
    while isinstance(node.get("text_config"), dict):
        node, depth = node["text_config"], depth + 1
    assert depth == 50  # kept as written, filled only MAX_NESTING deep
    assert "num_hidden_layers" not in _at_depth(filled, MAX_NESTING + 2)


def test_a_hostile_model_type_is_no_family_and_is_not_cached() -> None:
    from conformance.families import _family

    before = _family.cache_info().currsize
    for model_type in ("x" * 10_000_000, ["llama"], {"a": 1}, 5, None, ""):
        assert family(model_type) is None  # type: ignore[arg-type]
    assert _family.cache_info().currsize == before
    assert max(map(len, covered_model_types())) < 200


def test_with_family_defaults_fills_a_bounded_number_of_undeclared_nested_configs() -> None:
    # A config.json under the 4 MiB limit can hold 100,000 nested configs; filling each took seconds.
    config: dict[str, Any] = {"model_type": "llama", **{f"part{i}": {"model_type": "llama"} for i in range(100_000)}}
    filled = with_family_defaults(config)
    assert sum("hidden_size" in value for value in filled.values() if isinstance(value, dict)) == MAX_UNDECLARED_SUB_CONFIGS
    assert filled["part0"]["hidden_size"] == 4096 and filled["part99999"] == {"model_type": "llama"}


def _at_depth(config: dict[str, Any], depth: int) -> dict[str, Any]:
    for _ in range(depth):
        config = config["text_config"]
    return config


def test_committed_table_matches_the_installed_transformers() -> None:
    import json

    from conformance.families import TABLE_PATH
    from conformance.families_build import config_part, generate, render

    # The config-derived part; the model-derived `built` entries are checked by the family property test, which builds every model.
    committed = config_part(json.loads(TABLE_PATH.read_text(encoding="utf-8")))
    assert render(committed) == render(generate(build_models=False)), (
        "conformance/_specs/families.json differs from the installed transformers: run python -m conformance.families --write"
    )


# --- absent keys take the family's default --------------------------------------------------------


def test_untied_llama_without_the_tie_key_counts_its_lm_head(tmp_path: Path) -> None:
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY_LLAMA, tie_word_embeddings=False))
    folder = _save(model, tmp_path / "llama", drop=("tie_word_embeddings",))
    facts = probe_static(Candidate(folder))
    assert facts.parameters["parameters"] == _loaded_parameters(model) == 6_365_504
    assert facts.architecture["tie_word_embeddings"] is False


def test_llava_takes_the_tie_from_its_text_config(tmp_path: Path) -> None:
    config = transformers.LlavaConfig(text_config={"model_type": "llama", **TINY_LLAMA, "tie_word_embeddings": False}, vision_config=TINY_CLIP)
    model = transformers.LlavaForConditionalGeneration(config)
    folder = _save(model, tmp_path / "llava", drop=("tie_word_embeddings",))
    assert "tie_word_embeddings" not in json.loads((folder / "config.json").read_text())
    facts = probe_static(Candidate(folder))
    assert facts.parameters["parameters"] == _loaded_parameters(model) == 6_395_712
    assert facts.architecture["model_type"] == "llava" and facts.architecture["text_model_type"] == "llama"
    assert facts.architecture["hidden_size"] == 64 and facts.architecture["num_key_value_heads"] == 2


def test_llava_text_config_true_ties_the_top_level_as_transformers_does() -> None:
    text = {"model_type": "llama", "tie_word_embeddings": True}
    assert tied_word_embeddings({"model_type": "llava", "text_config": text}) is True
    assert transformers.LlavaConfig(text_config=text).tie_word_embeddings is True
    assert tied_word_embeddings({"model_type": "llama"}) is False
    assert tied_word_embeddings({"model_type": "gpt2"}) is True
    assert tied_word_embeddings({"model_type": "not_covered"}) is True  # transformers' historical default


# --- multi-query and legacy keys -------------------------------------------------------------------


def test_falcon_multi_query_has_one_key_value_head(tmp_path: Path) -> None:
    config = transformers.FalconConfig(multi_query=True, new_decoder_architecture=False, hidden_size=64, num_attention_heads=4,
                                       num_hidden_layers=2, vocab_size=256)
    model = transformers.FalconForCausalLM(config)
    folder = _save(model, tmp_path / "falcon")
    assert json.loads((folder / "config.json").read_text())["num_kv_heads"] == 4  # what transformers writes
    qkv = model.transformer.h[0].self_attention.query_key_value.weight
    head_dim = 64 // 4
    loaded_kv_heads = (qkv.shape[0] - 64) // (2 * head_dim)
    architecture = probe_static(Candidate(folder)).architecture
    assert architecture["num_key_value_heads"] == loaded_kv_heads == model.transformer.h[0].self_attention.num_kv_heads == 1
    new = normalize_architecture({**json.loads((folder / "config.json").read_text()), "new_decoder_architecture": True})
    assert new["num_key_value_heads"] == 4


def test_gpt_bigcode_multi_query_and_null_n_inner(tmp_path: Path) -> None:
    config = transformers.GPTBigCodeConfig(n_embd=64, n_head=4, n_layer=2, vocab_size=256, n_inner=None, multi_query=True)
    model = transformers.GPTBigCodeForCausalLM(config)
    architecture = probe_static(Candidate(_save(model, tmp_path / "bigcode"))).architecture
    assert architecture["num_key_value_heads"] == model.transformer.h[0].attn.kv_heads == 1
    assert architecture["intermediate_size"] == model.transformer.h[0].mlp.c_fc.weight.shape[0] == 256


def test_chatglm_groups_count_only_with_multi_query_attention() -> None:
    config = {"model_type": "chatglm", "num_layers": 2, "hidden_size": 64, "num_attention_heads": 8, "multi_query_group_num": 2,
              "ffn_hidden_size": 128, "padded_vocab_size": 256, "seq_length": 512}
    assert normalize_architecture({**config, "multi_query_attention": True})["num_key_value_heads"] == 2
    assert normalize_architecture({**config, "multi_query_attention": False})["num_key_value_heads"] == 8


def test_bloom_n_embed_and_gptj_null_n_inner(tmp_path: Path) -> None:
    bloom_config = {"model_type": "bloom", "n_embed": 64, "n_layer": 2, "n_head": 4, "vocab_size": 256}
    bloom = transformers.BloomConfig(**{k: v for k, v in bloom_config.items() if k != "model_type"})
    assert normalize_architecture(bloom_config)["hidden_size"] == bloom.hidden_size == 64
    gptj = transformers.GPTJForCausalLM(transformers.GPTJConfig(n_embd=64, n_head=4, n_layer=2, rotary_dim=8, vocab_size=256, n_inner=None))
    architecture = probe_static(Candidate(_save(gptj, tmp_path / "gptj"))).architecture
    assert architecture["intermediate_size"] == gptj.transformer.h[0].mlp.fc_in.weight.shape[0] == 256
    assert normalize_architecture({"model_type": "opt", "ffn_dim": 96, "hidden_size": 32})["intermediate_size"] == 96
    assert normalize_architecture({"model_type": "t5", "d_ff": 80, "d_model": 32})["intermediate_size"] == 80


def test_both_names_of_an_aliased_key_read_as_transformers_does() -> None:
    # transformers sets the stored key (n_embd, d_model), then the attribute_map alias over it: the alias wins.
    for written, stored in (({"model_type": "gpt2", "n_embd": 64, "hidden_size": 128}, "n_embd"),
                            ({"model_type": "t5", "hidden_size": 128, "d_model": 64}, "d_model")):
        loaded = transformers.AutoConfig.for_model(**written)
        assert normalize_architecture(written)["hidden_size"] == getattr(loaded, stored) == loaded.hidden_size == 128


@pytest.mark.parametrize("written", [
    {"model_type": "cohere2", "hidden_size": 96, "num_attention_heads": 6},  # head_dim derived when absent; declared 256
    {"model_type": "recurrent_gemma", "hidden_size": 96, "num_attention_heads": 6},
    {"model_type": "zamba", "hidden_size": 96, "num_attention_heads": 6},  # twice hidden // heads
    {"model_type": "deepseek_v2", "hidden_size": 96, "num_attention_heads": 6, "head_dim": 16},  # qk_rope_head_dim, written or not
    {"model_type": "hy_v4", "hidden_size": 96, "num_attention_heads": 6, "num_key_value_heads": 2},  # key/value heads = heads
])
def test_a_field_the_config_class_derives_from_other_keys_reads_as_transformers_derives_it(written: dict[str, Any]) -> None:
    loaded = transformers.AutoConfig.for_model(**written)
    architecture = normalize_architecture(written)
    assert architecture["head_dim"] == loaded.head_dim
    assert architecture["num_key_value_heads"] == loaded.num_key_value_heads


def test_layer_count_from_a_per_layer_pattern() -> None:
    config = transformers.NemotronHConfig(hidden_size=64, num_attention_heads=4, layers_block_type=["mamba", "attention", "moe"])
    saved = config.to_diff_dict()
    assert normalize_architecture(saved)["num_layers"] == config.num_hidden_layers == 3
    assert normalize_architecture({"model_type": "nemotron_h", "layers_block_type": "x" * 200_000})["num_layers"] is None  # bounded


def test_bloom_roofline_does_not_crash() -> None:
    bloom = transformers.BloomForCausalLM(transformers.BloomConfig(n_embed=64, n_layer=2, n_head=4, vocab_size=256))
    architecture = normalize_architecture({"model_type": "bloom", "n_embed": 64, "n_layer": 2, "n_head": 4, "vocab_size": 256})
    counts = roofline.model_matmul_parameters(bloom)
    assert roofline.prefill_flops(architecture, 1, 8, parameters=counts) > 0
    assert roofline.decode_bytes_per_token(architecture, roofline.decode_weight_bytes(bloom), 1, 8.0, 4) > 0
    assert roofline.not_applicable(architecture) is None


# --- nested configs and the roofline ----------------------------------------------------------------


def _tiny_gemma3() -> Any:
    text = {"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 512, "max_position_embeddings": 256, "sliding_window": 32}
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "image_size": 32, "patch_size": 8}
    config = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=511,
                                       boi_token_index=510, eoi_token_index=509)
    torch.manual_seed(0)
    return transformers.Gemma3ForConditionalGeneration(config)


def test_gemma3_multimodal_roofline_uses_the_text_head_dim_and_decoder(tmp_path: Path) -> None:
    model = _tiny_gemma3()
    architecture = probe_static(Candidate(_save(model, tmp_path / "gemma3"))).architecture
    assert (architecture["model_type"], architecture["text_model_type"]) == ("gemma3", "gemma3_text")
    assert architecture["head_dim"] == 32 and architecture["hidden_size"] // architecture["num_attention_heads"] == 16
    attention_only = roofline.MatmulParameters(body=0, head=0)
    assert roofline.prefill_flops(architecture, 1, 64, parameters=attention_only) == 2_129_920
    assert roofline.prefill_flops({**architecture, "head_dim": 16}, 1, 64, parameters=attention_only) == 1_064_960
    assert roofline.kv_cache_bytes_per_position(architecture, 2) == 2 * roofline.kv_cache_bytes_per_position({**architecture, "head_dim": 16}, 2)
    counts = roofline.model_matmul_parameters(model)
    assert counts.body == roofline.shape_matmul_parameters(architecture).body == 98_304
    whole = sum(p.numel() for p in model.parameters() if p.dim() >= 2) - model.get_input_embeddings().weight.numel()
    assert whole > counts.body  # the vision tower and projector are left out
    assert roofline.language_model(model) is model.model.language_model


def test_decode_weight_bytes_count_the_text_decoder_and_an_untied_head() -> None:
    model = _tiny_gemma3()
    decoder = model.model.language_model
    body = sum(p.numel() * p.element_size() for p in decoder.parameters()) + sum(b.numel() * b.element_size() for b in decoder.buffers())
    embedding = decoder.embed_tokens.weight
    expected = body - embedding.numel() * embedding.element_size() + model.lm_head.weight.numel() * model.lm_head.weight.element_size()
    assert roofline.decode_weight_bytes(model) == expected


def test_a_composite_over_a_non_gated_text_model_counts_its_two_matrix_mlp() -> None:
    # BLIP-2 over OPT: the MLP is OPT's fc1/fc2, not a gated three-matrix one.
    text = {"model_type": "opt", "hidden_size": 64, "ffn_dim": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 256,
            "word_embed_proj_dim": 64}
    arch = normalize_architecture({"model_type": "blip-2", "text_config": text})
    assert arch["model_type"] == "blip-2" and arch["text_model_type"] == "opt"
    opt = transformers.OPTForCausalLM(transformers.OPTConfig(**{k: v for k, v in text.items() if k != "model_type"}))
    linear_weights = sum(m.weight.numel() for m in opt.model.decoder.layers.modules() if isinstance(m, torch.nn.Linear))
    assert roofline.shape_matmul_parameters(arch).body == linear_weights == 2 * (4 * 64 * 64 + 2 * 64 * 128)


def test_roofline_says_why_it_does_not_apply() -> None:
    t5 = normalize_architecture({"model_type": "t5", "d_model": 64, "num_heads": 4, "num_layers": 2, "d_ff": 128, "vocab_size": 256})
    assert t5["is_encoder_decoder"] is True
    assert "encoder-decoder" in (roofline.not_applicable(t5) or "")
    mamba = normalize_architecture({"model_type": "mamba", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 256})
    assert "no attention heads" in (roofline.not_applicable(mamba) or "")
    mamba2 = normalize_architecture(transformers.Mamba2Config(hidden_size=64, num_hidden_layers=2, num_heads=8, head_dim=16).to_diff_dict())
    assert mamba2["num_attention_heads"] is None  # Mamba-2's num_heads are state-space heads
    assert "no attention heads" in (roofline.not_applicable(mamba2) or "")
    llama = normalize_architecture({"model_type": "llama", **TINY_LLAMA})
    assert llama["is_encoder_decoder"] is False and roofline.not_applicable(llama) is None


# --- what the family's model holds that its config does not say (the table's `built` entries) ------


def test_ibert_quantization_ranges_saved_as_buffers_are_not_parameters(tmp_path: Path) -> None:
    config = transformers.IBertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=128)
    model = transformers.IBertForMaskedLM(config)
    folder = _save(model, tmp_path / "ibert")
    stored = {t.name for t in probe_static(Candidate(folder)).weights.tensors}
    assert any(name.endswith("act_scaling_factor") for name in stored)  # the checkpoint holds them ...
    assert probe_static(Candidate(folder)).parameters["parameters"] == _loaded_parameters(model)  # ... the count does not


def test_bloom_feed_forward_width_is_the_built_models_multiple(tmp_path: Path) -> None:
    model = transformers.BloomForCausalLM(transformers.BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=128))
    facts = probe_static(Candidate(_save(model, tmp_path / "bloom")))
    assert facts.architecture["intermediate_size"] == model.transformer.h[0].mlp.dense_h_to_4h.out_features == 128


def test_a_family_buffer_name_in_an_uncovered_family_is_a_parameter(tmp_path: Path) -> None:
    from conformance.families import family
    from conformance.formats.parameters import count_parameters
    from conformance.formats.tensors import TensorInfo

    assert "activation.act_scaling_factor" in family("ibert").saved_buffers
    tensors = [TensorInfo(name="layers.0.activation.act_scaling_factor", dtype="F32", shape=(4,), file="model.safetensors")]
    assert count_parameters(tensors, {"model_type": "ibert"}, lambda t: True)["parameters"] == 0
    assert count_parameters(tensors, {"model_type": "not-a-family"}, lambda t: True)["parameters"] == 4


def test_result_document_tokenizer_evidence_is_the_tokenizer_facts(tmp_path: Path) -> None:
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY_LLAMA))
    facts = probe_static(Candidate(_save(model, tmp_path / "llama")))
    evidence = facts.to_dict()["tokenizer"]
    assert evidence == facts.tokenizer.to_dict()
    assert {"vocab_sources", "vocab_error", "special_token_ids"} <= set(evidence)


def test_bigbird_pegasus_causal_lm_keeps_its_own_head_as_the_built_model_shows(tmp_path: Path) -> None:
    config = transformers.BigBirdPegasusConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                                               decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=128)
    model = transformers.BigBirdPegasusForCausalLM(config)
    facts = probe_static(Candidate(_save(model, tmp_path / "bigbird")))
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    assert facts.architecture["tie_word_embeddings"] is False
    assert facts.parameters["parameters"] == _loaded_parameters(model)


def test_gemma4_head_dim_set_per_layer_is_unknown_and_the_roofline_does_not_apply() -> None:
    from conformance.probes.architecture import normalize_architecture
    from conformance.probes.roofline import not_applicable

    arch = normalize_architecture({"model_type": "gemma4_text", "hidden_size": 64, "num_attention_heads": 4})
    assert arch["head_dim"] is None and arch["per_layer_fields"] == ["head_dim"]  # the default per_layer_config sets it
    assert "head_dim per layer" in (not_applicable(arch) or "")
    flat = normalize_architecture({"model_type": "gemma4_text", "hidden_size": 64, "num_attention_heads": 4, "per_layer_config": None})
    assert flat["head_dim"] == 256 and "per_layer_fields" not in flat
    # dots3's default per_layer_config is too large for the table's defaults: its per-layer attributes are recorded.
    dots = normalize_architecture({"model_type": "dots3_note_text"})
    assert dots["num_attention_heads"] is None and dots["num_key_value_heads"] is None


def test_a_field_set_per_layer_errors_its_rule_by_that_reason(tmp_path: Path) -> None:
    """dots3 sets attention heads per layer: the rule says so, not that the field is missing."""
    import yaml

    from conformance.runner import RunOptions, run
    from conformance.spec import load_spec

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "dots3_note_text"}), encoding="utf-8")
    rules = [{"id": "HEADS", "level": "must", "check": "architecture.num_attention_heads", "min": 1},
             {"id": "HIDDEN", "level": "must", "check": "architecture.hidden_size", "min": 1}]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"id": "per-layer", "version": "1", "rules": rules}), encoding="utf-8")
    results = {r.id: r for r in run(Candidate(tmp_path), load_spec(spec), RunOptions(log=lambda m: None, hash_weights="never")).rules}
    assert results["HEADS"].status == "error"
    assert results["HEADS"].message == ("config.json sets num_attention_heads per layer for model_type 'dots3_note_text': "
                                        "one value does not describe the model")
    assert results["HIDDEN"].status == "pass"

"""Mixture-of-experts models: active parameters per token (size.active_parameters), from tensor names and the config.

The right answer is computed from transformers' own modules, independently of the tensor-name rule under
test: sum(p.numel()) of the model, less (E − k)/E of every `*Experts` module's parameters (the routed experts
of one MoE layer; shared experts and routers are other modules).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.candidate import Candidate
from conformance.probes.static import probe_static
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

BASE = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256}
FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    # Qwen2-MoE: a shared expert with its gate; layer 1 dense (mlp_only_layers)
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", {
        "intermediate_size": 128, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64, "num_experts": 8,
        "num_experts_per_tok": 2, "decoder_sparse_step": 1, "mlp_only_layers": [1]}),
    # Qwen3-MoE: no shared expert; every second layer sparse (decoder_sparse_step 2: layers 1 and 3)
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", {
        "intermediate_size": 128, "moe_intermediate_size": 32, "num_experts": 8, "num_experts_per_tok": 2, "decoder_sparse_step": 2,
        "mlp_only_layers": []}),
    # DeepSeek-V3: first layer dense, one shared expert, grouped routing, a router bias buffer
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM", {
        "intermediate_size": 128, "moe_intermediate_size": 32, "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2,
        "first_k_dense_replace": 1, "n_group": 2, "topk_group": 1, "q_lora_rank": 32, "kv_lora_rank": 16, "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 8, "v_head_dim": 16}),
    # DeepSeek-V2: two shared experts, top-3 of 8
    "deepseek_v2": ("DeepseekV2Config", "DeepseekV2ForCausalLM", {
        "intermediate_size": 128, "moe_intermediate_size": 32, "n_routed_experts": 8, "n_shared_experts": 2, "num_experts_per_tok": 3,
        "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": None, "kv_lora_rank": 16, "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 8, "v_head_dim": 16}),
}


def transformers_active(model: Any, experts: int, top_k: int) -> tuple[int, int]:
    """(total, active) from transformers' modules: sum(p.numel()) less (E − k)/E of each routed-experts module."""
    total = sum(p.numel() for p in model.parameters())
    routed = [sum(p.numel() for p in module.parameters()) for module in model.modules() if type(module).__name__.endswith("Experts")]
    assert routed and all(count % experts == 0 for count in routed)
    return total, total - sum(count // experts * (experts - top_k) for count in routed)


def build(family: str, folder: Path, **overrides: Any) -> tuple[Any, Path]:
    """A seeded random model of `family` saved with save_pretrained into `folder`; (model, folder)."""
    import torch
    import transformers

    config_class, model_class, extra = FAMILIES[family] if family in FAMILIES else ("MixtralConfig", "MixtralForCausalLM", {})
    torch.manual_seed(0)
    config = getattr(transformers, config_class)(**{**BASE, **extra, **overrides})
    model = getattr(transformers, model_class)(config)
    model.save_pretrained(folder)
    return model, folder


# The issue's tiny Mixtral: 8 experts, top-2, hidden 64, intermediate 128, 2 layers, SmolLM2's vocabulary.
ISSUE_MIXTRAL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "vocab_size": 49152, "num_local_experts": 8, "num_experts_per_tok": 2, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    return build("mixtral", tmp_path_factory.mktemp("mixtral"), **ISSUE_MIXTRAL)


def test_the_issues_tiny_mixtral(mixtral: tuple[Any, Path]) -> None:
    model, folder = mixtral
    assert transformers_active(model, 8, 2) == (6_710_592, 6_415_680)
    facts = probe_static(Candidate(folder))
    assert facts.parameters["parameters"] == 6_710_592
    assert facts.active_parameters == 6_415_680 and facts.active_parameters_error is None
    # 2 MoE layers of 8 experts of 3·h·I = 24,576 parameters: total − 2 × (8 − 2) × 24,576
    assert facts.active_parameters == 6_710_592 - 2 * 6 * 3 * 64 * 128
    assert facts.experts == {"moe_layers": 2, "routed_experts": 8, "experts_per_token": 2, "routed_parameters": 2 * 8 * 3 * 64 * 128}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_qwen_and_deepseek_moe(family: str, tmp_path: Path) -> None:
    model, folder = build(family, tmp_path / family)
    config = model.config
    experts = getattr(config, "num_experts", None) or config.n_routed_experts
    total, active = transformers_active(model, experts, config.num_experts_per_tok)
    facts = probe_static(Candidate(folder))
    assert facts.parameters["parameters"] == total  # DeepSeek-V3's e_score_correction_bias is a buffer, not counted
    assert facts.active_parameters == active < total
    moe_layers = sum(1 for module in model.modules() if type(module).__name__.endswith("Experts"))
    assert facts.experts["moe_layers"] == moe_layers


def test_experts_stacked_in_one_tensor(tmp_path: Path) -> None:
    """Experts saved as transformers holds them in memory: experts.gate_up_proj [E, 2I, h], experts.down_proj [E, h, I]."""
    from safetensors.torch import save_file

    model, folder = build("qwen3_moe", tmp_path / "saved")
    stacked = tmp_path / "stacked"
    stacked.mkdir()
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    assert any(name.endswith("mlp.experts.gate_up_proj") for name in state)
    save_file(state, str(stacked / "model.safetensors"))
    (stacked / "config.json").write_text((folder / "config.json").read_text())
    facts = probe_static(Candidate(stacked))
    assert (facts.parameters["parameters"], facts.active_parameters) == transformers_active(model, 8, 2)


def test_a_dense_model_is_all_active(tmp_path: Path) -> None:
    from conformance import zoo

    folder = zoo.build_llama(tmp_path / "llama", card=False)
    facts = probe_static(Candidate(folder))
    assert facts.active_parameters == facts.parameters["parameters"] == zoo.parameter_count(folder)
    assert facts.experts == {"moe_layers": 0, "routed_experts": None, "experts_per_token": None, "routed_parameters": 0}


def _edit_config(folder: Path, change: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(("change", "reason"), [
    (lambda c: c.update(num_local_experts=16), "holds experts 8 (indices up to 7), the config declares 16"),
    (lambda c: c.update(num_local_experts=10**18), "the config declares 1000000000000000000"),  # never a range of 10**18
    (lambda c: c.update(num_local_experts=-8), "num_local_experts is not a non-negative integer"),
    (lambda c: c.update(num_experts_per_tok=9), "experts per token 9 is not between 1 and the 8 experts"),
    (lambda c: c.pop("num_experts_per_tok"), "no expert count and experts per token"),
    (lambda c: c.update(num_experts_per_tok="two"), "num_experts_per_tok is not a non-negative integer"),
])
def test_experts_that_disagree_with_the_config_are_an_error(change: Any, reason: str, mixtral: tuple[Any, Path], tmp_path: Path, write_spec) -> None:
    import shutil

    folder = Path(shutil.copytree(mixtral[1], tmp_path / "broken"))
    _edit_config(folder, change)
    facts = probe_static(Candidate(folder))
    assert facts.active_parameters is None and reason in (facts.active_parameters_error or "")
    assert facts.parameters["parameters"] == 6_710_592  # the total does not depend on routing
    spec = load_spec(write_spec([{"id": "A", "level": "must", "check": "size.active_parameters", "max": 1e9}]))
    result = run(Candidate(folder), spec, RunOptions(log=lambda m: None)).rules[0]
    assert result.status == "error" and reason in result.message


def test_moe_layers_other_than_the_configs_are_an_error(tmp_path: Path) -> None:
    _, folder = build("qwen2_moe", tmp_path / "qwen")
    _edit_config(folder, lambda c: c.update(mlp_only_layers=[2]))
    facts = probe_static(Candidate(folder))
    assert "experts are stored in layers [0, 2, 3], the config makes [0, 1, 3] MoE layers" in (facts.active_parameters_error or "")


def test_a_config_declaring_experts_over_dense_weights_is_an_error(tmp_path: Path) -> None:
    from conformance import zoo

    folder = zoo.build_llama(tmp_path / "llama", card=False)
    _edit_config(folder, lambda c: c.update(num_local_experts=8, num_experts_per_tok=2))
    assert "declares 8 experts (top-2) but no tensor is an expert's" in (probe_static(Candidate(folder)).active_parameters_error or "")


def test_size_active_parameters_rule(mixtral: tuple[Any, Path], write_spec) -> None:
    rules = [{"id": "ACTIVE", "level": "must", "check": "size.active_parameters", "equals": 6_415_680},
             {"id": "UNDER", "level": "must", "check": "size.active_parameters", "max": 6_500_000},
             {"id": "TOTAL", "level": "must", "check": "size.parameters", "max": 6_500_000}]
    results = {r.id: r for r in run(Candidate(mixtral[1]), load_spec(write_spec(rules)), RunOptions(log=lambda m: None)).rules}
    assert {k: r.status for k, r in results.items()} == {"ACTIVE": "pass", "UNDER": "pass", "TOTAL": "fail"}
    assert results["ACTIVE"].observed == 6_415_680
    assert results["ACTIVE"].message == "2 MoE layers, top-2 of 8 experts"


def _write_gguf_moe(path: Path, *, expert_count: bool = True) -> dict[str, tuple[int, ...]]:
    """A tiny llama GGUF with stacked experts (4 per layer, top-2), `expert_count` written or left out; its shapes."""
    import numpy as np

    from conformance.formats import registry

    gguf = pytest.importorskip("gguf")
    try:
        if not registry.format_named("gguf").reads_tensors:
            pytest.skip("the GGUF format does not read tensors here")
    except KeyError:
        pytest.skip("no GGUF weight format registered")
    hidden, intermediate, experts, vocab, layers = 32, 16, 4, 64, 2
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(layers)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(intermediate)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_context_length(128)
    if expert_count:
        writer.add_expert_count(experts)
    writer.add_expert_used_count(2)
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,), "output.weight": (vocab, hidden)}
    for layer in range(layers):
        shapes |= {f"blk.{layer}.{name}": shape for name, shape in {
            "attn_norm.weight": (hidden,), "attn_q.weight": (hidden, hidden), "attn_k.weight": (hidden // 2, hidden),
            "attn_v.weight": (hidden // 2, hidden), "attn_output.weight": (hidden, hidden), "ffn_norm.weight": (hidden,),
            "ffn_gate_inp.weight": (experts, hidden), "ffn_gate_exps.weight": (experts, intermediate, hidden),
            "ffn_up_exps.weight": (experts, intermediate, hidden), "ffn_down_exps.weight": (experts, hidden, intermediate)}.items()}
    for name, shape in shapes.items():
        writer.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return shapes


def test_gguf_experts_stacked_per_layer(tmp_path: Path) -> None:
    """GGUF stores a layer's experts stacked: blk.N.ffn_{gate,up,down}_exps.weight with E first (numpy order)."""
    import numpy as np

    shapes = _write_gguf_moe(tmp_path / "tiny-moe.gguf")
    hidden, intermediate, experts, layers = 32, 16, 4, 2
    facts = probe_static(Candidate(tmp_path))
    total = sum(int(np.prod(shape)) for shape in shapes.values())
    routed = layers * 3 * experts * intermediate * hidden
    assert facts.parameters["parameters"] == total
    assert facts.active_parameters == total - routed * (experts - 2) // experts
    assert facts.experts["moe_layers"] == layers


def test_a_gguf_moe_without_an_expert_count_says_the_count_is_missing(tmp_path: Path) -> None:
    _write_gguf_moe(tmp_path / "tiny-moe.gguf", expert_count=False)
    facts = probe_static(Candidate(tmp_path))
    error = facts.active_parameters_error or ""
    assert "the config has no expert count" in error and "None" not in error, error


@pytest.mark.parametrize("method", ["gptq", "bnb-nf4", "fp8-block"])
def test_a_quantized_moe_counts_and_routes_as_the_unquantized_model(method: str, tmp_path: Path) -> None:
    from conformance.zoo.quantized import quantize_folder

    model, saved = build("mixtral", tmp_path / "saved", vocab_size=256)
    folder = quantize_folder(saved, tmp_path / method, method)
    facts = probe_static(Candidate(folder))
    assert facts.quantization["quantized_tensors"] == 4 * (4 + 8 * 3)  # per layer: 4 attention projections, 8 experts of 3
    assert (facts.parameters["parameters"], facts.active_parameters) == transformers_active(model, 8, 2)

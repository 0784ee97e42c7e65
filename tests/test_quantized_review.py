"""Quantized weights no layout folds are an error, never a smaller count; size.quantization's group_size -1 and method case.

Checkpoints are the tiny quantized Llamas of `zoo.quantized.build_quantized_llama` (426,624 parameters when
unquantized), rewritten with their config or tensors changed: a config that is absent, null, a string, a
list, names no string method or cannot be read; a layer stored in a way the config does not describe;
integer weights in a model with no config; FP8 scales with no config, or an FP8 config with no scales.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance.candidate import Candidate
from conformance.probes.static import probe_static
from conformance.results import RuleResult
from conformance.runner import RunOptions, run
from conformance.spec import load_spec
from conformance.zoo.quantized import build_quantized_llama, rebuild_checkpoint

TINY_LLAMA_PARAMETERS = 426_624

NOT_READ = "without a quantization_config this suite reads"
NOT_DESCRIBED = "does not describe"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny GPTQ, FP8 and compressed-tensors checkpoints, built once."""
    root = tmp_path_factory.mktemp("quantized-review")
    return {method: build_quantized_llama(root / method, method)[0] for method in ("gptq", "fp8-block", "compressed-tensors")}




def judged(folder: Path, rules: list[dict[str, Any]], write_spec: Any) -> dict[str, RuleResult]:
    """Each rule's result on `folder` (rules without a level get `must`)."""
    spec = load_spec(write_spec([{"level": "must", **rule} for rule in rules]))
    return {r.id: r for r in run(Candidate(folder), spec, RunOptions(log=lambda m: None, hash_weights="never")).rules}


@pytest.mark.parametrize("change", ["absent", "null", "string", "list", "integer method"])
def test_packed_weights_without_a_readable_config_are_an_error_not_a_smaller_count(change: str, built: dict[str, Path], tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        if change == "absent":
            del config["quantization_config"]
        else:
            config["quantization_config"] = {"null": None, "string": "gptq", "list": ["gptq"], "integer method": {"quant_method": 4}}[change]

    facts = probe_static(Candidate(rebuild_checkpoint(built["gptq"], tmp_path / "m", change_config=edit)))
    assert facts.parameters == {}  # counted as stored, the packed I32 were left out: 140,928 of 426,624
    assert NOT_READ in (facts.parameters_error or "") and ".qweight (I32" in (facts.parameters_error or "")
    assert facts.active_parameters is None and facts.active_parameters_error


def test_an_unreadable_config_leaves_packed_weights_an_error(built: dict[str, Path], tmp_path: Path) -> None:
    folder = rebuild_checkpoint(built["gptq"], tmp_path / "m", change_config=lambda c: c.update(deep={"y": 1}))
    path = folder / "config.json"
    path.write_text(path.read_text().replace('{"y": 1}', '{"x":' * 1000 + "1" + "}" * 1000))
    facts = probe_static(Candidate(folder))
    assert facts.config is None and facts.config_error
    assert facts.parameters == {} and NOT_READ in (facts.parameters_error or "")


def test_a_layer_the_gptq_config_does_not_describe_is_an_error(built: dict[str, Path], tmp_path: Path) -> None:
    """One layer's packed integers stored as `weight` (not `qweight`): the fold passes it through, so it would vanish."""
    def rename(tensors: dict[str, Any]) -> None:
        prefix = "model.layers.0.self_attn.q_proj"
        tensors[f"{prefix}.weight"] = tensors.pop(f"{prefix}.qweight")
        for piece in ("qzeros", "scales", "g_idx"):
            tensors.pop(f"{prefix}.{piece}", None)

    facts = probe_static(Candidate(rebuild_checkpoint(built["gptq"], tmp_path / "m", rename)))
    assert facts.parameters == {}
    error = facts.parameters_error or ""
    assert NOT_DESCRIBED in error and "'gptq'" in error and "model.layers.0.self_attn.q_proj.weight (I32" in error


def test_integer_weights_in_a_model_without_a_config_are_an_error(llama_dir: Path, tmp_path: Path) -> None:
    import torch

    def to_int8(tensors: dict[str, Any]) -> None:
        name = next(n for n in tensors if n.endswith("mlp.up_proj.weight"))
        tensors[name] = tensors[name].to(torch.int8)

    facts = probe_static(Candidate(rebuild_checkpoint(llama_dir, tmp_path / "m", to_int8)))
    assert facts.parameters == {}
    assert NOT_READ in (facts.parameters_error or "") and "mlp.up_proj.weight (I8" in (facts.parameters_error or "")


def test_fp8_scales_without_a_config_are_an_error_not_parameters(built: dict[str, Path], tmp_path: Path) -> None:
    facts = probe_static(Candidate(rebuild_checkpoint(built["fp8-block"], tmp_path / "m", change_config=lambda c: c.pop("quantization_config"))))
    assert facts.parameters == {}  # counted as stored: 426,644, the 20 block scales counted as parameters
    assert NOT_READ in (facts.parameters_error or "") and ".weight_scale_inv (F32" in (facts.parameters_error or "")


def test_an_fp8_config_with_no_scales_is_a_missing_piece(built: dict[str, Path], tmp_path: Path) -> None:
    def no_scales(tensors: dict[str, Any]) -> None:
        for name in [n for n in tensors if n.endswith(("weight_scale_inv", "input_scale", "weight_scale"))]:
            del tensors[name]

    facts = probe_static(Candidate(rebuild_checkpoint(built["fp8-block"], tmp_path / "m", no_scales)))
    assert facts.parameters == {}
    assert "incomplete FP8 group" in (facts.parameters_error or "") and "without weight_scale_inv or weight_scale" in (facts.parameters_error or "")


def test_unquantized_models_still_count_exactly(llama_dir: Path, gpt2_dir: Path, bert_dir: Path, minilm_dir: Path) -> None:
    from conformance.zoo.models import parameter_count

    for folder in (llama_dir, gpt2_dir, bert_dir, minilm_dir):
        facts = probe_static(Candidate(folder))
        assert facts.parameters_error is None, (folder, facts.parameters_error)
        assert facts.parameters["parameters"] == parameter_count(folder), folder


def test_gguf_block_types_are_unaffected(tmp_path: Path) -> None:
    from conformance.zoo.gguf_models import build_gguf

    tiny = build_gguf(tmp_path / "g", quantization="Q8_0")
    facts = probe_static(Candidate(tiny.path.parent))
    assert facts.parameters_error is None and facts.parameters["parameters"] == tiny.parameters


def _two_groups(config: dict[str, Any], attention: dict[str, Any], mlp: dict[str, Any]) -> None:
    """compressed-tensors config groups: the attention projections with one weights scheme, the MLP with another."""
    groups = config["quantization_config"]["config_groups"]
    scheme = groups.pop("group_0")
    groups["attention"] = {**scheme, "targets": ["re:.*self_attn.*"], "weights": {**scheme["weights"], **attention}}
    groups["mlp"] = {**scheme, "targets": ["re:.*mlp.*"], "weights": {**scheme["weights"], **mlp}}


def test_mixed_precision_config_groups_fold_each_layer_by_its_shapes(built: dict[str, Path], tmp_path: Path) -> None:
    """Attention in 4 bits, MLP in 8 bits (group size 32): each layer folds by the scheme its shapes fit."""
    from safetensors.torch import load_file

    eight, _ = build_quantized_llama(tmp_path / "eight", "compressed-tensors", bits=8)
    mlp_tensors = {name: tensor for name, tensor in load_file(str(eight / "model.safetensors")).items() if ".mlp." in name}
    folder = rebuild_checkpoint(built["compressed-tensors"], tmp_path / "m", lambda t: t.update(mlp_tensors), lambda c: _two_groups(c, {"num_bits": 4}, {"num_bits": 8}))
    facts = probe_static(Candidate(folder))
    assert facts.parameters_error is None and facts.parameters["parameters"] == TINY_LLAMA_PARAMETERS
    assert facts.quantization["bits"] == 8  # the widest group's


def test_a_layer_two_schemes_fit_is_an_error_but_bytes_and_dtypes_are_judged(tmp_path: Path, write_spec: Any) -> None:
    """Per channel, 4 and 8 bits: a [out, 1] scale fits both, so the layer's width is not told; bytes on disk need no fold."""
    channel = {"strategy": "channel", "group_size": None}
    source, _ = build_quantized_llama(tmp_path / "c", "compressed-tensors", group_size=-1)
    folder = rebuild_checkpoint(source, tmp_path / "m", change_config=lambda c: _two_groups(c, {**channel, "num_bits": 4}, {**channel, "num_bits": 8}))
    results = judged(folder, [
        {"id": "P", "check": "size.parameters", "max": 1e9},
        {"id": "B", "check": "size.weight_bytes", "max": 1e9},
        {"id": "D", "check": "size.weight_dtypes", "in": ["F16", "F32", "BF16", "I32", "I64"]},
    ], write_spec)
    assert results["P"].status == "error" and "schemes of 4 bits, 8 bits fit" in (results["P"].message or ""), results["P"].message
    assert results["B"].status == "pass" and results["D"].status == "pass", (results["B"].message, results["D"].message)


def test_group_size_minus_one_is_the_coarsest(tmp_path: Path, write_spec: Any) -> None:
    folder, expected = build_quantized_llama(tmp_path / "g", "gptq", group_size=-1)
    assert expected == TINY_LLAMA_PARAMETERS
    results = judged(folder, [
        {"id": "MAX", "check": "size.quantization", "group_size": {"max": 128}},
        {"id": "MIN", "check": "size.quantization", "group_size": {"min": 32}},
        {"id": "EQ", "check": "size.quantization", "group_size": {"equals": -1}},
        {"id": "EQ128", "check": "size.quantization", "group_size": {"equals": 128}},
    ], write_spec)
    assert {k: r.status for k, r in results.items()} == {"MAX": "fail", "MIN": "pass", "EQ": "pass", "EQ128": "fail"}
    assert results["MAX"].message == "group_size -1 (one group per row) is not <= 128"


def test_the_method_is_compared_in_any_case(built: dict[str, Path], write_spec: Any) -> None:
    results = judged(built["gptq"], [
        {"id": "NOT", "check": "size.quantization", "method": {"not_in": ["GPTQ"]}},
        {"id": "IN", "check": "size.quantization", "method": {"in": ["GPTQ", "AWQ"]}},
        {"id": "EQ", "check": "size.quantization", "method": {"equals": "Gptq"}},
    ], write_spec)
    assert {k: r.status for k, r in results.items()} == {"NOT": "fail", "IN": "pass", "EQ": "pass"}

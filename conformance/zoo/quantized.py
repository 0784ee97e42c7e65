"""Tiny quantized checkpoints built offline: a random LlamaForCausalLM's linear layers stored as each method stores them.

The stored pieces have the shapes and dtypes the real tools write (see `conformance/formats/integer_packed.py`,
`bitsandbytes.py`, `fp8.py`); their values are seeded random codes and rough scales, so they load nowhere
but count exactly. Each builder returns the folder and the unquantized model's `sum(p.numel())`, the count
the static facts must give. Only config.json and model.safetensors are written (no tokenizer, no card).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# The tiny Llama of issue 13's figures: 426,624 parameters.
TINY_LLAMA = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 256, "vocab_size": 512, "max_position_embeddings": 256, "tie_word_embeddings": False}
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
METHODS = ("gptq", "awq", "compressed-tensors", "bnb-nf4", "bnb-fp4-nested", "bnb-int8", "fp8-block", "fp8-channel", "fbgemm-fp8")


_EXPERT_LINEAR = re.compile(r"\.experts\.\d+\.(w1|w2|w3|gate_proj|up_proj|down_proj)\.weight$")


def _is_linear(name: str) -> bool:
    """A decoder layer's projection (attention, MLP, or one routed or shared expert's): what the tools quantize."""
    if ".layers." not in name:
        return False
    return name.endswith(tuple(f"{linear}.weight" for linear in LINEAR_NAMES)) or _EXPERT_LINEAR.search(name) is not None


def _codes(*shape: int, dtype: Any = None, high: int = 2**31 - 1) -> Any:
    """Seeded random integer codes of `shape` (int32 unless `dtype`)."""
    import torch

    return torch.randint(-high if dtype is None else 0, high, shape, dtype=dtype or torch.int32)


def _quantize(method: str, weight: Any, bits: int, group_size: int) -> dict[str, Any]:
    """The stored pieces (suffix -> tensor) of one linear weight [out, in] under `method`."""
    import torch

    out, in_features = weight.shape
    groups = 1 if group_size == -1 else -(-in_features // group_size)
    scale = weight.abs().amax(dim=1).clamp(min=1e-6)
    if method == "gptq":
        return {"qweight": _codes(in_features * bits // 32, out), "qzeros": _codes(groups, out * bits // 32),
                "scales": scale.repeat(groups, 1).to(torch.float16),
                "g_idx": (torch.arange(in_features) // (in_features if group_size == -1 else group_size)).to(torch.int32)}
    if method == "awq":
        return {"qweight": _codes(in_features, out * bits // 32), "qzeros": _codes(groups, out * bits // 32),
                "scales": scale.repeat(groups, 1).to(torch.float16)}
    if method == "compressed-tensors":
        return {"weight_packed": _codes(out, in_features * bits // 32), "weight_scale": scale[:, None].repeat(1, groups).to(torch.float16),
                "weight_shape": torch.tensor([out, in_features], dtype=torch.int64)}
    if method.startswith("bnb-") and method != "bnb-int8":
        n = out * in_features
        pieces = {"weight": _codes((n + 1) // 2, 1, dtype=torch.uint8, high=256), "weight.quant_map": torch.linspace(-1, 1, 16)}
        blocks = -(-n // 64)
        if method == "bnb-fp4-nested":
            pieces |= {"weight.absmax": _codes(blocks, dtype=torch.uint8, high=256), "weight.nested_absmax": torch.rand(-(-blocks // 256)),
                       "weight.nested_quant_map": torch.linspace(-1, 1, 256)}
        else:
            pieces["weight.absmax"] = torch.rand(blocks)
        kind = "nf4" if method == "bnb-nf4" else "fp4"
        state = json.dumps({"quant_type": kind, "blocksize": 64, "dtype": "float32", "shape": [out, in_features]}).encode()
        pieces[f"weight.quant_state.bitsandbytes__{kind}"] = torch.tensor(list(state), dtype=torch.uint8)
        return pieces
    if method == "bnb-int8":
        return {"weight": (weight / scale[:, None] * 127).round().to(torch.int8), "SCB": scale.float(), "weight_format": torch.tensor(0, dtype=torch.uint8)}
    fp8 = weight.to(torch.float8_e4m3fn)
    if method == "fp8-block":
        return {"weight": fp8, "weight_scale_inv": torch.rand(-(-out // 128), -(-in_features // 128))}
    if method == "fbgemm-fp8":
        return {"weight": fp8, "weight_scale": scale[:, None].float(), "input_scale_ub": torch.tensor([1200.0])}
    return {"weight": fp8, "weight_scale": scale[:, None].float(), "input_scale": torch.tensor([1.0])}  # fp8-channel


def quantization_config(method: str, bits: int = 4, group_size: int = 32) -> dict[str, Any]:
    """The `quantization_config` the tools write for `method` (one of METHODS)."""
    if method == "gptq":
        return {"quant_method": "gptq", "bits": bits, "group_size": group_size, "desc_act": False, "sym": True, "checkpoint_format": "gptq"}
    if method == "awq":
        return {"quant_method": "awq", "bits": bits, "group_size": group_size, "version": "gemm", "zero_point": True}
    if method == "compressed-tensors":
        scheme = {"num_bits": bits, "type": "int", "symmetric": True, "strategy": "group", "group_size": group_size}
        return {"quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
                "config_groups": {"group_0": {"targets": ["Linear"], "weights": scheme}}, "quantization_status": "compressed"}
    if method.startswith("bnb-"):
        four = method != "bnb-int8"
        return {"quant_method": "bitsandbytes", "load_in_4bit": four, "load_in_8bit": not four, "llm_int8_skip_modules": ["lm_head"],
                "bnb_4bit_quant_type": "nf4" if method == "bnb-nf4" else "fp4", "bnb_4bit_compute_dtype": "bfloat16",
                "bnb_4bit_use_double_quant": method == "bnb-fp4-nested"}
    if method == "fp8-block":
        return {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
    if method == "fbgemm-fp8":
        return {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0, "modules_to_not_convert": ["lm_head"]}
    scheme = {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "channel"}
    return {"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": scheme,
                                          "input_activations": {"num_bits": 8, "type": "float", "strategy": "tensor"}}}}


def quantize_folder(source: Path, out_dir: Path, method: str, *, bits: int = 4, group_size: int = 32) -> Path:
    """Write `source`'s model.safetensors and config.json into `out_dir` with every decoder projection stored as `method` does.

    Other tensors are kept in 16 bits (BF16 beside FP8, else F16). ValueError for an unknown method.
    """
    import torch
    from safetensors.torch import load_file, save_file

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    tensors: dict[str, Any] = {}
    for name, value in load_file(str(Path(source) / "model.safetensors")).items():
        if _is_linear(name):
            prefix = name.removesuffix(".weight")
            tensors |= {f"{prefix}.{piece}": data.contiguous() for piece, data in _quantize(method, value.float(), bits, group_size).items()}
        else:
            tensors[name] = value.to(torch.bfloat16 if method.startswith(("fp8", "fbgemm")) else torch.float16).contiguous()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((Path(source) / "config.json").read_text(encoding="utf-8"))
    config["quantization_config"] = quantization_config(method, bits, group_size)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out_dir


def build_quantized_llama(out_dir: Path, method: str, *, bits: int = 4, group_size: int = 32, seed: int = 0, **llama: Any) -> tuple[Path, int]:
    """Save a tiny random Llama (TINY_LLAMA, overridden by `llama`) with its linear layers stored as `method` stores them.

    Returns (the folder, the unquantized model's `sum(p.numel() for p in model.parameters())`). `bits` and
    `group_size` (-1: one group per row) apply to GPTQ, AWQ and compressed-tensors. ValueError for an
    unknown method.
    """
    import tempfile

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**{**TINY_LLAMA, **llama}))
    expected = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as unquantized:
        model.save_pretrained(unquantized)
        return quantize_folder(Path(unquantized), Path(out_dir), method, bits=bits, group_size=group_size), expected


def rebuild_checkpoint(folder: Path, target: Path, change_tensors: Any = None, change_config: Any = None) -> Path:
    """A copy of a one-file safetensors checkpoint at `target`, its tensors and/or config changed by the callables.

    `change_tensors(tensors)` edits the name -> tensor dict and `change_config(config)` the config dict, in
    place, before they are written; returns `target`. Raises what safetensors and json raise on bad input.
    """
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True)
    tensors = load_file(str(folder / "model.safetensors"))
    if change_tensors:
        change_tensors(tensors)
    save_file(tensors, str(target / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    if change_config:
        change_config(config)
    (target / "config.json").write_text(json.dumps(config))
    return target

